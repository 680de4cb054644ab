"""Paging ``DescribeRepositories`` and ``DescribeImages``: raw API-shaped dicts, page by page.

Pages are yielded as they arrive, so callers hold one page at a time. Private
ECR is always asked for ``tagStatus=ANY, imageStatus=ANY``: without it the API
lists ACTIVE images only, and archived images belong in the inventory.

This is where responses are read, so this is where they are checked: a page
without its list, or an item without the key that identifies it, is a
``MalformedResponse`` (the scope is skipped, its rows kept), never a ``KeyError``
further in. AWS and network errors become ``ScopeUnobservable`` here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from inventory.aws.errors import aws_calls
from inventory.config import RegistryConfig
from inventory.errors import MalformedResponse

PAGE_SIZE = 1000
IMAGE_IDS = 100
"""Image ids one ``DescribeImages`` call takes at most."""
REPOSITORY_NOT_FOUND = "RepositoryNotFoundException"
IMAGE_NOT_FOUND = "ImageNotFoundException"
EVERY_IMAGE = {"tagStatus": "ANY", "imageStatus": "ANY"}

_LISTS = {
    "describe_repositories": ("repositories", "repositoryName"),
    "describe_images": ("imageDetails", "imageDigest"),
}
_TYPES: dict[str, type] = {
    "imageTags": list,
    "imageSizeInBytes": int,
    "imageScanStatus": dict,
    "imageScanFindingsSummary": dict,
}


def _pages(client: Any, operation: str, **options: Any) -> Iterator[list[dict[str, Any]]]:
    """The operation's items, a page at a time, each checked to carry its identifying key."""
    pages = iter(client.get_paginator(operation).paginate(**options))
    while True:
        with aws_calls():
            try:
                page = next(pages, None)
            except (ResponseParserError, AttributeError, TypeError, ValueError) as exc:
                # botocore's parser (and its timestamp parser) meeting a body of the wrong shape
                raise MalformedResponse(f"{operation}: the response does not parse: {exc}") from exc
        if page is None:
            return
        yield _checked(operation, page)


def _checked(operation: str, page: Any) -> list[dict[str, Any]]:
    """The page's items, each checked to carry its identifying key and fields of the documented types."""
    key, identity = _LISTS[operation]
    items = page.get(key) if isinstance(page, dict) else None
    if not isinstance(items, list):
        raise MalformedResponse(f"{operation}: the response has no {key} list")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get(identity), str):
            raise MalformedResponse(f"{operation}: an item of {key} has no {identity}")
        _check_fields(operation, item, item[identity])
    return items


def _check_fields(operation: str, item: dict[str, Any], name: str) -> None:
    """The fields the inventory stores have the types the API documents."""
    for field, kind in _TYPES.items():
        value = item.get(field)
        if value is not None and not isinstance(value, kind):
            raise MalformedResponse(f"{operation}: {field} of {name} is not a {kind.__name__}")
    tags = item.get("imageTags") or ()
    if not all(isinstance(tag, str) for tag in tags):
        raise MalformedResponse(f"{operation}: imageTags of {name} holds a value that is not a string")
    counts = (item.get("imageScanFindingsSummary") or {}).get("findingSeverityCounts") or {}
    if not isinstance(counts, dict) or not all(isinstance(n, int) for n in counts.values()):
        raise MalformedResponse(f"{operation}: findingSeverityCounts of {name} is not a map of counts")


def repository_pages(client: Any, registry: RegistryConfig) -> Iterator[list[dict[str, Any]]]:
    """Pages of the repositories that ``registry``'s include/exclude globs cover."""
    for page in _pages(
        client, "describe_repositories", registryId=registry.account_id, PaginationConfig={"PageSize": PAGE_SIZE}
    ):
        yield [r for r in page if registry.covers(r["repositoryName"])]


def image_pages(client: Any, registry: RegistryConfig, repository_name: str) -> Iterator[list[dict[str, Any]]]:
    """Pages of ImageDetail dicts of one repository, archived images included."""
    options: dict[str, Any] = {
        "registryId": registry.account_id,
        "repositoryName": repository_name,
        "PaginationConfig": {"PageSize": PAGE_SIZE},
    }
    if registry.type == "ecr":
        options["filter"] = EVERY_IMAGE
    yield from _pages(client, "describe_images", **options)


def image_details(
    client: Any, registry: RegistryConfig, repository_name: str, digests: Sequence[str]
) -> list[dict[str, Any]]:
    """The ImageDetail of each of ``digests`` the repository holds (archived ones too), by
    ``DescribeImages(imageIds=…)`` in calls of up to 100 ids. ECR refuses a whole call with
    ``ImageNotFoundException`` when any id is missing, so such a call is split in halves until
    each missing digest is alone (and left out): a digest deleted costs about log2(100) calls more."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(digests), IMAGE_IDS):
        found.extend(_described(client, registry, repository_name, digests[start : start + IMAGE_IDS]))
    return found


def _described(client: Any, registry: RegistryConfig, repository_name: str, digests: Sequence[str]) -> list[Any]:
    options: dict[str, Any] = {
        "registryId": registry.account_id,
        "repositoryName": repository_name,
        "imageIds": [{"imageDigest": digest} for digest in digests],
    }
    if registry.type == "ecr":
        options["filter"] = EVERY_IMAGE
    with aws_calls():
        try:
            page = client.describe_images(**options)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != IMAGE_NOT_FOUND:
                raise
            if len(digests) == 1:
                return []
            half = len(digests) // 2
            return [
                *_described(client, registry, repository_name, digests[:half]),
                *_described(client, registry, repository_name, digests[half:]),
            ]
        except (ResponseParserError, AttributeError, TypeError, ValueError) as exc:
            raise MalformedResponse(f"describe_images: the response does not parse: {exc}") from exc
    return _checked("describe_images", page)


def repository_description(client: Any, registry: RegistryConfig, repository_name: str) -> dict[str, Any] | None:
    """``DescribeRepositories`` of one repository; None when the registry holds no such repository."""
    with aws_calls():
        try:
            page = client.describe_repositories(registryId=registry.account_id, repositoryNames=[repository_name])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == REPOSITORY_NOT_FOUND:
                return None
            raise
        except (ResponseParserError, AttributeError, TypeError, ValueError) as exc:
            raise MalformedResponse(f"describe_repositories: the response does not parse: {exc}") from exc
    found = _checked("describe_repositories", page)
    return next((r for r in found if r["repositoryName"] == repository_name), None)
