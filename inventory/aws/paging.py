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

from inventory.aws.errors import aws_calls
from inventory.config import RegistryConfig
from inventory.errors import MalformedResponse

PAGE_SIZE = 1000
EVERY_IMAGE = {"tagStatus": "ANY", "imageStatus": "ANY"}

_LISTS = {
    "describe_repositories": ("repositories", "repositoryName"),
    "describe_images": ("imageDetails", "imageDigest"),
}
_OPTIONAL_TYPES = {"imageTags": list, "imageScanStatus": dict, "imageScanFindingsSummary": dict}


def _pages(client: Any, operation: str, **options: Any) -> Iterator[list[dict[str, Any]]]:
    """The operation's items, a page at a time, each checked to carry its identifying key."""
    key, identity = _LISTS[operation]
    pages = iter(client.get_paginator(operation).paginate(**options))
    while True:
        with aws_calls():
            page = next(pages, None)
        if page is None:
            return
        items = page.get(key)
        if not isinstance(items, list):
            raise MalformedResponse(f"{operation}: the response has no {key} list")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get(identity), str):
                raise MalformedResponse(f"{operation}: an item of {key} has no {identity}")
            for name, kind in _OPTIONAL_TYPES.items():
                if item.get(name) is not None and not isinstance(item[name], kind):
                    raise MalformedResponse(f"{operation}: {name} of {item[identity]} is not a {kind.__name__}")
        yield items


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
