"""The console's pages of the inventory: the image search, an image, a repository.

Thin over ``inventory.read``: a page reads its parameters (``inventory.console.params``), calls the same
reads as GraphQL with the reader's scope, and renders their rows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.responses import Response

from inventory.api.ids import split_image_node_id, split_repository_node_id
from inventory.config import SEVERITIES
from inventory.console import params
from inventory.console.page import NotFound, Page, together
from inventory.console.table import image_rows
from inventory.read import history, inventory, search, sync
from inventory.read.bounds import check_globs
from inventory.read.errors import invalid_parameter
from inventory.read.keys import RepositoryKey
from inventory.read.scope import Scope

ORDERS = ("PUSHED_AT", "SIZE", "LAST_PULL")
IMAGE_STATUSES = ("ANY", "ACTIVE", "ARCHIVED", "ACTIVATING")
TAG_STATUSES = ("ANY", "TAGGED", "UNTAGGED")
SEARCH_PARAMETERS = (
    "tag",
    "digest",
    "repository",
    "registry",
    "region",
    "severity",
    "status",
    "removed",
    "as_of",
    "order",
)
"""The search's parameters (and ``after``, the next page's cursor)."""
TAG_HISTORY_SPANS = 10
"""Holders of a tag the image page shows (the newest)."""
ELSEWHERE = 50
"""Other places of the same digest the image page shows."""


def narrowed(reader: Scope, registry: str | None) -> Scope:
    """The reader's scope, narrowed to the registry named ``registry`` (nothing if the reader may not see it)."""
    if registry is None:
        return reader
    return (registry,) if reader is None or registry in reader else ()


async def search_page(page: Page) -> Response:
    """``GET /console/images``: the image search with the ``images`` query's filter, order and cursors."""
    request = page.request
    repository = params.text(request, "repository")
    if repository is not None:
        check_globs([repository], "repository")
    tag, digest, region = (params.text(request, n) for n in ("tag", "digest", "region"))
    registry = params.text(request, "registry")
    f = search.ImageFilter(
        regions=None if region is None else [region],
        repository_names=None if repository is None else [repository],
        tags=None if tag is None else [tag],
        digests=None if digest is None else [digest],
        image_status=params.choice(request, "status", IMAGE_STATUSES) or "ANY",
        min_severity=params.choice(request, "severity", SEVERITIES),
        include_removed=params.flag(request, "removed"),
    )
    order = search.ORDERS[params.choice(request, "order", ORDERS) or "PUSHED_AT"]
    at = await page.as_of()
    reader = narrowed(page.scope, registry)
    after = params.text(request, "after")
    registries, found, (total, lower_bound) = await together(
        inventory.registries(page.db, page.scope),
        inventory.image_page(page.db, reader, f, order, None, after, at),
        inventory.image_count(page.db, reader, f, at),
    )
    if registry is not None and registry not in {r.name for r in registries}:
        raise invalid_parameter(f"registry: no registry named {registry!r}")  # or none the reader may see
    given = {name: request.query_params.get(name, "") for name in SEARCH_PARAMETERS}
    rows = image_rows(found.items, await owners(page, found.items, at), given["as_of"] if at else "")
    return page.render(
        "search.html",
        rows=rows,
        next_token=found.next_token,
        total=total,
        lower_bound=lower_bound,
        at=at,
        given=given,
        registries=registries,
        orders=ORDERS,
        statuses=IMAGE_STATUSES,
        severities=SEVERITIES,
        first_page=after is None,
    )


async def owners(page: Page, images: list[Any], at: inventory.AsOf | None) -> dict[RepositoryKey, str]:
    """The registry (its name) of each image's repository (``inventory.console.owners``)."""
    keys = [(i.registry_type, i.registry_id, i.region, i.repository_name) for i in images]
    return await page.owners.of(page.db, page.scope, keys, at)


async def image_page(page: Page) -> Response:
    """``GET /console/image/{id}``: every field, its tags' histories, its own history, where else it lives."""
    key = split_image_node_id(page.request.path_params["image"])
    if key is None:
        raise NotFound("no such image")
    at = await page.as_of()
    image = (await inventory.images_by_key(page.db, page.scope, [key], at)).get(key)
    if image is None:
        raise NotFound("no such image" + ("" if at is None else " at that time") + ": " + " / ".join(key))
    repository = (key[0], key[1], key[2], key[3])
    names = sorted(image.image_tags)
    events, elsewhere, mine, *spans = await together(
        history.image_history(page.db, page.scope, key, first=50),
        inventory.image_page(page.db, page.scope, search.ImageFilter(digests=[key[4]]), first=ELSEWHERE, at=at),
        owners(page, [image], at),
        *(history.tag_history(page.db, page.scope, repository, tag, TAG_HISTORY_SPANS) for tag in names),
    )
    tags = list(zip(names, spans, strict=True))
    others = [row for row in elsewhere.items if _image_key(row) != key]
    registry = mine.get(repository, "")
    given = {"as_of": page.request.query_params.get("as_of", "")}
    return page.render(
        "image.html",
        image=image,
        tags=tags,
        events=events,
        elsewhere=others,
        at=at,
        repository=repository,
        given=given,
        registry=registry,
        owners=await owners(page, others, at),
    )


def _image_key(row: Any) -> tuple[str, str, str, str, str]:
    return (row.registry_type, row.registry_id, row.region, row.repository_name, row.image_digest)


async def repository_page(page: Page) -> Response:
    """``GET /console/repository/{id}``: its images (paged, by tag status), its tags, its last sync."""
    key = split_repository_node_id(page.request.path_params["repository"])
    if key is None:
        raise NotFound("no such repository")
    at = await page.as_of()
    row = (await inventory.repositories_by_key(page.db, page.scope, [key], at)).get(key)
    if row is None:
        raise NotFound("no such repository" + ("" if at is None else " at that time") + ": " + " / ".join(key))
    tag_status = params.choice(page.request, "tag_status", TAG_STATUSES) or "ANY"
    f = replace(search.ImageFilter(tag_status=tag_status), repository=key)
    after = params.text(page.request, "after")
    images, (total, lower_bound), tags, statuses = await together(
        inventory.image_page(page.db, page.scope, f, first=None, after=after, at=at),
        inventory.image_count(page.db, page.scope, f, at),
        inventory.repository_tags(page.db, page.scope, key, at),
        sync.region_statuses(page.db, page.scope, [row.registry_name]),
    )
    statuses = statuses[row.registry_name]
    region = next((s for s in statuses if s.region == key[2]), None)
    given = {
        "tag_status": page.request.query_params.get("tag_status", ""),
        "as_of": page.request.query_params.get("as_of", ""),
    }
    rows = image_rows(images.items, {key: row.registry_name}, given["as_of"] if at else "")
    return page.render(
        "repository.html",
        repository=row,
        rows=rows,
        next_token=images.next_token,
        total=total,
        lower_bound=lower_bound,
        tags=tags,
        region=region,
        at=at,
        given=given,
        tag_statuses=TAG_STATUSES,
        first_page=after is None,
    )
