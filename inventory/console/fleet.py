"""The console's pages of the fleet: the overview (registries, and a chart of each), how fresh each
registry region is, and the webhooks (admin tokens only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.responses import Response

from inventory.console import chart
from inventory.console.page import Forbidden, Page
from inventory.read import history, inventory, sync, webhooks
from inventory.status import worst_first

FAILED_DELIVERIES = 10
"""Recent failed deliveries the webhooks page shows per webhook."""


async def home_page(page: Page) -> Response:
    """``GET /console``: each registry the reader may see, its images and its changes over time."""
    registries = await inventory.registries(page.db, page.scope)
    names = [r.name for r in registries]
    statuses = await sync.region_statuses(page.db, page.scope, names)
    now = datetime.now(UTC)
    since = now - timedelta(days=chart.DAYS)
    series = await history.activity(page.db, page.scope, since, now, chart.BUCKETS)
    cards = []
    for r in registries:
        regions, points = statuses[r.name], series.get(r.name, [])
        stale = sum(1 for s in regions if s.stale_since is not None)
        drawn = chart.svg(points, since, now) if any(p.events for p in points) else None
        cards.append(
            {
                "registry": r,
                "total": points[-1].images if points else 0,
                "stale": stale,
                "regions": len(regions),
                "chart": drawn,
            }
        )
    return page.render("home.html", cards=cards, days=chart.DAYS)


async def status_page(page: Page) -> Response:
    """``GET /console/status``: every declared registry region the reader may see, stale first."""
    registries = await inventory.registries(page.db, page.scope)
    statuses = await sync.region_statuses(page.db, page.scope, [r.name for r in registries])
    regions = worst_first([s for found in statuses.values() for s in found])
    return page.render("status.html", regions=regions, now=datetime.now(UTC))


async def webhooks_page(page: Page) -> Response:
    """``GET /console/webhooks``: each webhook's status, backlog, last success and recent failures."""
    if not page.viewer.is_admin:
        raise Forbidden(f"token {page.viewer.principal.name!r} lacks the admin scope the webhooks page needs")
    endpoints = await webhooks.webhooks(page.db)
    failed = {
        e.name: (await webhooks.delivery_page(page.db, e.name, "failed", FAILED_DELIVERIES)).items for e in endpoints
    }
    return page.render("webhooks.html", endpoints=endpoints, failed=failed)
