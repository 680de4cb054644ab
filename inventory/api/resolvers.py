"""``resolver``: strawberry's field decorator, typed (a leaf: it knows no domain).

``strawberry.field(...)`` is typed as returning Any (it is a field's default value as well as a
decorator), so mypy would see every resolver it decorates as untyped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import strawberry

F = TypeVar("F", bound=Callable[..., Any])


def resolver(**options: Any) -> Callable[[F], F]:
    """``@strawberry.field(**options)`` on a resolver method; mypy keeps the method's own type."""
    decorate: Callable[[F], F] = strawberry.field(**options)
    return decorate
