"""``describeImages``: ECR's DescribeImages answered from the inventory, with ECR's exact semantics.

Validation is ECR's own (``inventory.aws.semantics``, shared with the emulator).
Pages are keyset pages in push order (oldest first), 100 by default, and the
``nextToken`` is null on the last page. It answers private ECR, as ECR's own API
does, unless asked for ECR Public, whose DescribeImages takes no ``filter``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, and_, cast, func, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY

from inventory.api import cursors
from inventory.api.context import Context
from inventory.api.errors import from_ecr, invalid_parameter
from inventory.api.types import (
    DescribeImagesFilter,
    DescribeImagesResult,
    Image,
    ImageIdInput,
    RegistryType,
    config_type_of,
)
from inventory.aws import semantics
from inventory.aws.semantics import EcrError
from inventory.read import search

_NO_TIME = cast(literal("-infinity"), search.ORDERS["PUSHED_AT"].sql_type)


async def describe_images(
    context: Context,
    *,
    registry_type: RegistryType = RegistryType.ECR,
    registry_id: str | None,
    region: str,
    repository_name: str,
    image_ids: list[ImageIdInput] | None,
    filter: DescribeImagesFilter | None,
    max_results: int | None,
    next_token: str | None,
) -> DescribeImagesResult:
    params: dict[str, Any] = {
        "registryId": registry_id,
        "repositoryName": repository_name,
        "imageIds": None if image_ids is None else [{"imageDigest": i.image_digest, "imageTag": i.image_tag}
                                                    for i in image_ids],
        "filter": None if filter is None else {
            "tagStatus": filter.tag_status.value if filter.tag_status else None,
            "imageStatus": filter.image_status.value if filter.image_status else None,
        },
        "maxResults": max_results,
        "nextToken": next_token,
    }  # fmt: skip
    kind = config_type_of(registry_type)
    try:
        if kind == "ecr-public" and filter is not None:
            raise semantics.invalid("filter: ECR Public's DescribeImages takes no filter")
        name = semantics.repository_name_param(params)
        if registry_id is not None:
            semantics.registry_id_param(params, registry_id)
        limit = semantics.max_results_param(params)
        semantics.exclusive_with_paging(params, "imageIds")
        ids = semantics.list_param(params, "imageIds")
        wanted = [semantics.image_id_param(image_id) for image_id in ids or []]
        tag_status, image_status = semantics.filter_param(params)
        registry = await _registry_of(context, kind, registry_id, region, name)
        if ids is not None:
            return DescribeImagesResult(image_details=await _by_ids(context, kind, registry, region, name, wanted),
                                        next_token=None)  # fmt: skip
    except EcrError as exc:
        raise from_ecr(exc) from None

    f = search.ImageFilter(tag_status=tag_status, repository=(kind, registry, region, name))
    c = search.images.c
    conditions = search.image_conditions(f)
    if image_status != "ANY":
        conditions.append(func.coalesce(c.image_status, "ACTIVE") == image_status)
    sort = (func.coalesce(c.image_pushed_at, _NO_TIME), c.image_digest)
    bound_to = cursors.binding("describeImages", kind, registry, region, name, tag_status, image_status, context.scope)
    if next_token is not None:
        pushed, digest = cursors.decode(
            next_token, bound_to, [cursors.time_or_never, cursors.text], argument="nextToken"
        )
        conditions.append(tuple_(*sort) > tuple_(cast(literal(pushed), search.ORDERS["PUSHED_AT"].sql_type), digest))
    rows = await context.rows(select(*search.shown_images).where(and_(*conditions)).order_by(*sort).limit(limit + 1))
    page = rows[:limit]
    token = None
    if len(rows) > limit:
        last = page[-1]
        token = cursors.encode(bound_to, [search.ORDERS["PUSHED_AT"].key_of(last), last.image_digest])
    return DescribeImagesResult(image_details=Image.from_rows(page), next_token=token)


async def _registry_of(context: Context, kind: str, registry_id: str | None, region: str, name: str) -> str:
    """The registry (of type ``kind``) holding the repository: the one given, else the only one that holds it."""
    c = search.repositories.c
    conditions = [c.registry_type == kind, c.region == region, c.repository_name == name, c.removed_at.is_(None)]
    if registry_id is not None:
        conditions.append(c.registry_id == registry_id)
    if context.scope is not None:  # a repository the token may not see is one that does not exist
        conditions.append(c.registry_name.in_(context.scope))
    holders: list[str] = [row.registry_id for row in await context.rows(select(c.registry_id).where(*conditions))]
    if not holders:
        raise semantics.repository_not_found(name, registry_id or "(any in the inventory)")
    if len(holders) > 1:
        raise invalid_parameter(
            f"registryId: repository '{name}' exists in {region} in several registries "
            f"({', '.join(sorted(holders))}); say which"
        )
    return holders[0]


async def _by_ids(
    context: Context, kind: str, registry: str, region: str, name: str, wanted: list[tuple[str | None, str | None]]
) -> list[Image]:
    """The images named by digest or tag, in the order asked, in one query."""
    c = search.images.c
    digests = [digest for digest, _ in wanted if digest]
    tags = [tag for digest, tag in wanted if tag and not digest]
    rows = await context.rows(
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
        found.append(Image.from_row(row))
    return found
