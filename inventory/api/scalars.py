"""The API's own scalars and shared arguments (a leaf)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, NewType

import strawberry

AS_OF = "The inventory as the syncs had observed it at this time: what was present then, with its values then."
AsOf = Annotated[datetime | None, strawberry.argument(description=AS_OF)]
"""The ``asOf`` argument of the fields that read the inventory at a past time."""

Long = NewType("Long", int)
LONG = strawberry.scalar(
    name="Long",
    serialize=int,
    parse_value=int,
    description="A 64-bit integer (GraphQL's Int is 32-bit, and images exceed 2 GiB).",
)
"""``Long``'s GraphQL scalar (the schema's ``scalar_map``)."""
