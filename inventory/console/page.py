"""What a console page handler is given (a leaf of the console): the request, its reader, the database,
and the refusals a handler raises (each answered as a page by ``inventory.console.app``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from inventory.console import params
from inventory.console.owners import Owners
from inventory.console.render import TEMPLATES
from inventory.console.sessions import Viewer
from inventory.read import inventory
from inventory.read.database import Database
from inventory.read.inventory import AsOf
from inventory.read.scope import Scope


async def together(*reads: Awaitable[Any]) -> list[Any]:
    """The results of independent reads, run at once (each on a connection of its own); the first failure
    is raised once all have ended (none is left running or unretrieved)."""
    results = await asyncio.gather(*reads, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)


class NotFound(Exception):
    """No such object (or none the reader may see: the two look alike)."""


class Forbidden(Exception):
    """The reader's token lacks the scope the page needs."""


@dataclass(frozen=True)
class Page:
    request: Request
    viewer: Viewer
    db: Database
    owners: Owners
    graphiql: bool = False

    @property
    def scope(self) -> Scope:
        """What the reader's token may see: given to every read, as GraphQL gives it."""
        return self.viewer.principal.registries

    async def as_of(self, name: str = "as_of") -> AsOf | None:
        """The page's past time, checked by the read layer (HistoryNotRetained before the horizon)."""
        at: datetime | None = params.time(self.request, name)
        return None if at is None else await inventory.as_of(self.db, at, name)

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        context = {"viewer": self.viewer, "graphiql": self.graphiql, "path": self.request.url.path, **values}
        return TEMPLATES.TemplateResponse(self.request, template, context, status_code=status)
