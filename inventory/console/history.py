"""The console's page of changes: the change feed with its filters (newest first), and the net change
between two times (the ``diff``), over ``inventory.read.history``."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.responses import Response

from inventory.console import params
from inventory.console.inventory import narrowed
from inventory.console.page import Page
from inventory.console.params import BadParameter
from inventory.feed.event import TYPES
from inventory.feed.query import EventFilter
from inventory.read import history, inventory, search
from inventory.read.bounds import check_globs
from inventory.read.errors import invalid_parameter

EVENT_PARAMETERS = ("registry", "region", "repository", "tag", "digest", "type", "since", "until", "from", "to")
PAGE = 50
"""Events (and diff rows) per page."""


async def events_page(page: Page) -> Response:
    """``GET /console/events``: the feed (filtered), and, given ``from`` and ``to``, the diff between them."""
    request = page.request
    repository = params.text(request, "repository")
    if repository is not None:
        check_globs([repository], "repository")
    region, tag, digest = (params.text(request, n) for n in ("region", "tag", "digest"))
    kind = params.choice(request, "type", TYPES)
    since, until = params.time(request, "since"), params.time(request, "until")
    if since is not None and until is not None and since >= until:
        raise invalid_parameter("since: must be earlier than until")
    reader = narrowed(page.scope, params.text(request, "registry"))
    f = EventFilter(
        regions=None if region is None else [region],
        repository_names=None if repository is None else [repository],
        tags=None if tag is None else [tag],
        image_digests=None if digest is None else [digest],
        types=None if kind is None else [kind],
        since=since,
        until=until,
    )
    events = await history.event_page(page.db, reader, f, PAGE, params.text(request, "after"), newest_first=True)
    diff = None
    since_at, until_at = params.time(request, "from"), params.time(request, "to")
    if since_at is None and until_at is not None:
        raise BadParameter("from", "give the time the diff starts from (to: now, when not given)")
    if since_at is not None:
        until_at = until_at or datetime.now(UTC)
        checked_until = await inventory.as_of(page.db, until_at, "to")
        checked_since = await inventory.as_of(page.db, since_at, "from")
        images = search.ImageFilter(
            regions=f.regions, repository_names=f.repository_names, tags=f.tags, digests=f.image_digests
        )
        diff = await history.diff_page(
            page.db, reader, images, checked_since, checked_until, PAGE, params.text(request, "diff_after")
        )
    given = {name: request.query_params.get(name, "") for name in EVENT_PARAMETERS}
    registries = await inventory.registries(page.db, page.scope)
    return page.render("events.html", events=events, diff=diff, given=given, types=TYPES, registries=registries)
