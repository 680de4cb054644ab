"""ECR's read operations answered from the inventory with ECR's exact semantics: DescribeImages (GraphQL's
``describeImages``, and the ECR-compatible endpoint's), DescribeRepositories and ListImages (the endpoint's).

Each request is ECR's own (``registryId``, ``repositoryName(s)``, ``imageIds``, ``filter``, ``maxResults``,
``nextToken``), validated as ECR validates it (``inventory.aws.semantics``, shared with the emulator).
Pages are keyset pages, 100 items by default, and the ``nextToken`` is None on the last page; tokens are
bound to the request and the reader's scope. Private ECR unless ``kind`` is ``ecr-public``, whose
DescribeImages takes no ``filter``. A repository the reader may not see is one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Text, and_, cast, func, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY

from inventory.aws import semantics
from inventory.aws.semantics import EcrError
from inventory.read import cursors, scope, search
from inventory.read.database import Database
from inventory.read.errors import from_ecr, invalid_parameter
from inventory.read.scope import Scope

_PUSHED_AT = search.ORDERS["PUSHED_AT"]


@dataclass(frozen=True)
class Described:
    """DescribeImages' answer: the images' rows (``search.shown_images``), and the token of the next page."""

    image_details: list[Row[Any]]
    next_token: str | None


async def describe_images(db: Database, reader: Scope, kind: str, region: str, params: dict[str, Any]) -> Described:
    """DescribeImages of ``params`` (ECR's request) in ``region``, of private ECR or ECR Public (``kind``)."""
    try:
        if kind == "ecr-public" and params.get("filter") is not None:
            raise semantics.invalid("filter: ECR Public's DescribeImages takes no filter")
        name = semantics.repository_name_param(params)
        registry_id = params.get("registryId")
        if registry_id is not None:
            semantics.registry_id_param(params, registry_id)
        limit = semantics.max_results_param(params)
        semantics.exclusive_with_paging(params, "imageIds")
        ids = semantics.list_param(params, "imageIds")
        wanted = [semantics.image_id_param(image_id) for image_id in ids or []]
        tag_status, image_status = semantics.filter_param(params)
        registry = await _registry_of(db, reader, kind, registry_id, region, name)
        if ids is not None:
            return Described(await _by_ids(db, kind, registry, region, name, wanted), None)
    except EcrError as exc:
        raise from_ecr(exc) from None

    f = search.ImageFilter(tag_status=tag_status, repository=(kind, registry, region, name))
    c = search.images.c
    conditions = search.image_conditions(f)
    if image_status != "ANY":
        conditions.append(_of_status(c, image_status))
    sort = (_PUSHED_AT.key(c), c.image_digest)  # as ix_images_live_by_repository_push spells it
    bound_to = cursors.binding("describeImages", kind, registry, region, name, tag_status, image_status, reader)
    next_token = semantics.next_token_param(params)
    if next_token is not None:
        pushed, digest = cursors.decode(
            next_token, bound_to, [cursors.time_or_never, cursors.text], argument="nextToken"
        )
        conditions.append(tuple_(*sort) > tuple_(cast(literal(pushed), _PUSHED_AT.sql_type), digest))
    rows = await db.rows(select(*search.shown_images).where(and_(*conditions)).order_by(*sort).limit(limit + 1))
    page = rows[:limit]
    token = None
    if len(rows) > limit:
        last = page[-1]
        token = cursors.encode(bound_to, [_PUSHED_AT.key_of(last), last.image_digest])
    return Described(page, token)


async def _registry_of(db: Database, reader: Scope, kind: str, registry_id: str | None, region: str, name: str) -> str:
    """The registry (of type ``kind``) holding the repository: the one given, else the only one that holds it."""
    c = search.repositories.c
    conditions = [c.registry_type == kind, c.region == region, c.repository_name == name, c.removed_at.is_(None)]
    if registry_id is not None:
        conditions.append(c.registry_id == registry_id)
    conditions += scope.registries(c.registry_name, reader)
    holders: list[str] = [row.registry_id for row in await db.rows(select(c.registry_id).where(*conditions))]
    if not holders:
        raise semantics.repository_not_found(name, registry_id or "(any in the inventory)")
    if len(holders) > 1:
        raise invalid_parameter(
            f"registryId: repository '{name}' exists in {region} in several registries "
            f"({', '.join(sorted(holders))}); say which"
        )
    return holders[0]


async def _by_ids(
    db: Database, kind: str, registry: str, region: str, name: str, wanted: list[tuple[str | None, str | None]]
) -> list[Row[Any]]:
    """The images named by digest or tag, in the order asked, in one query."""
    c = search.images.c
    digests = [digest for digest, _ in wanted if digest]
    tags = [tag for digest, tag in wanted if tag and not digest]
    rows = await db.rows(
        select(*search.shown_images).where(
            c.registry_type == kind, c.registry_id == registry, c.region == region, c.repository_name == name,
            c.removed_at.is_(None),
            or_(c.image_digest.in_(digests), c.image_tags.overlap(literal(tags, ARRAY(Text)))),
        )
    )  # fmt: skip
    by_digest = {row.image_digest: row for row in rows}
    by_tag = {tag: row for row in rows for tag in row.image_tags}
    found = []
    for digest, tag in wanted:
        row = by_digest.get(digest) if digest else by_tag.get(str(tag))
        if row is None or (tag and tag not in row.image_tags):
            raise semantics.image_not_found(digest, tag, name, registry)
        found.append(row)
    return found


def _of_status(c: Any, status: str) -> ColumnElement[bool]:
    """Images of ``status``; one that ECR named none is ACTIVE. Spelt on the bare column, whose statistics the
    planner knows (``coalesce(image_status, 'ACTIVE')`` it would guess at half a percent of the images,
    and plan a page as a sort of the whole repository)."""
    chosen: ColumnElement[bool] = c.image_status == status
    return or_(chosen, c.image_status.is_(None)) if status == "ACTIVE" else chosen


@dataclass(frozen=True)
class Repositories:
    """DescribeRepositories' answer: the repositories' rows, and the token of the next page."""

    repositories: list[Row[Any]]
    next_token: str | None


async def describe_repositories(
    db: Database, reader: Scope, kind: str, region: str, registry_id: str, params: dict[str, Any]
) -> Repositories:
    """DescribeRepositories of ``params`` in ``registry_id``'s ``region``: the repositories named (each must
    exist), or a page of all of them by name."""
    try:
        semantics.registry_id_param(params, registry_id)
        limit = semantics.max_results_param(params)
        semantics.exclusive_with_paging(params, "repositoryNames")
        names = semantics.list_param(params, "repositoryNames")
        wanted = [semantics.repository_name_param({"repositoryName": name}) for name in names or []]
    except EcrError as exc:
        raise from_ecr(exc) from None
    c = search.repositories.c
    conditions = [c.registry_type == kind, c.registry_id == registry_id, c.region == region, c.removed_at.is_(None),
                  *scope.registries(c.registry_name, reader)]  # fmt: skip
    if names is not None:
        rows = await db.rows(select(search.repositories).where(*conditions, c.repository_name.in_(wanted)))
        by_name = {row.repository_name: row for row in rows}
        missing = next((name for name in wanted if name not in by_name), None)
        if missing is not None:
            raise from_ecr(semantics.repository_not_found(missing, registry_id))
        return Repositories([by_name[name] for name in wanted], None)
    bound_to = cursors.binding("describeRepositories", kind, registry_id, region, reader)
    next_token = semantics.next_token_param(params)
    if next_token is not None:
        (after,) = cursors.decode(next_token, bound_to, [cursors.text], argument="nextToken")
        conditions.append(c.repository_name > after)
    statement = select(search.repositories).where(*conditions).order_by(c.repository_name).limit(limit + 1)
    rows = await db.rows(statement)
    token = cursors.encode(bound_to, [rows[limit - 1].repository_name]) if len(rows) > limit else None
    return Repositories(rows[:limit], token)


@dataclass(frozen=True)
class ImageIds:
    """ListImages' answer: (digest, tag or None) of each image's tags (an untagged image once, without a
    tag), and the token of the next page."""

    image_ids: list[tuple[str, str | None]]
    next_token: str | None


async def list_images(db: Database, reader: Scope, region: str, registry_id: str, params: dict[str, Any]) -> ImageIds:
    """ListImages of ``params`` (private ECR): the repository's image ids, by digest then tag."""
    try:
        semantics.registry_id_param(params, registry_id)
        name = semantics.repository_name_param(params)
        limit = semantics.max_results_param(params)
        tag_status, image_status = semantics.filter_param(params)
        await _registry_of(db, reader, "ecr", registry_id, region, name)
    except EcrError as exc:
        raise from_ecr(exc) from None
    f = search.ImageFilter(tag_status=tag_status, repository=("ecr", registry_id, region, name))
    c = search.images.c
    conditions = search.image_conditions(f)
    if image_status != "ANY":
        conditions.append(_of_status(c, image_status))
    # One row per tag, and one (tag '') for an untagged image: a tag is never empty.
    tag = func.unnest(func.coalesce(func.nullif(c.image_tags, literal([], ARRAY(Text))),
                                    literal([""], ARRAY(Text)))).label("tag")  # fmt: skip
    entries = select(c.image_digest, tag).where(and_(*conditions)).subquery("entries")
    e = entries.c
    statement = select(e.image_digest, e.tag)
    bound_to = cursors.binding("listImages", registry_id, region, name, tag_status, image_status, reader)
    next_token = semantics.next_token_param(params)
    if next_token is not None:
        digest, after_tag = cursors.decode(next_token, bound_to, [cursors.text, cursors.text], argument="nextToken")
        statement = statement.where(tuple_(e.image_digest, e.tag) > tuple_(digest, after_tag))
    rows = await db.rows(statement.order_by(e.image_digest, e.tag).limit(limit + 1))
    token = None
    if len(rows) > limit:
        last = rows[limit - 1]
        token = cursors.encode(bound_to, [last.image_digest, last.tag])
    return ImageIds([(row.image_digest, row.tag or None) for row in rows[:limit]], token)
