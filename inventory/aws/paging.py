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

from collections.abc import Iterator
from typing import Any

from botocore.parsers import ResponseParserError

from inventory.aws.errors import aws_calls
from inventory.config import RegistryConfig
from inventory.errors import MalformedResponse

PAGE_SIZE = 1000
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
    key, identity = _LISTS[operation]
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
        items = page.get(key)
        if not isinstance(items, list):
            raise MalformedResponse(f"{operation}: the response has no {key} list")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get(identity), str):
                raise MalformedResponse(f"{operation}: an item of {key} has no {identity}")
            _check_fields(operation, item, item[identity])
        yield items


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
