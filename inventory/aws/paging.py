"""Paging ``DescribeRepositories`` and ``DescribeImages``: raw API-shaped dicts, page by page.

Pages are yielded as they arrive, so callers hold one page at a time. Private
ECR is always asked for ``tagStatus=ANY, imageStatus=ANY``: without it the API
lists ACTIVE images only, and archived images belong in the inventory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from inventory.config import RegistryConfig

PAGE_SIZE = 1000
EVERY_IMAGE = {"tagStatus": "ANY", "imageStatus": "ANY"}


def repository_pages(client: Any, registry: RegistryConfig) -> Iterator[list[dict[str, Any]]]:
    """Pages of the repositories that ``registry``'s include/exclude globs cover."""
    for page in client.get_paginator("describe_repositories").paginate(
        registryId=registry.account_id, PaginationConfig={"PageSize": PAGE_SIZE}
    ):
        yield [r for r in page["repositories"] if registry.covers(r["repositoryName"])]


def image_pages(client: Any, registry: RegistryConfig, repository_name: str) -> Iterator[list[dict[str, Any]]]:
    """Pages of ImageDetail dicts of one repository, archived images included."""
    options: dict[str, Any] = {
        "registryId": registry.account_id,
        "repositoryName": repository_name,
        "PaginationConfig": {"PageSize": PAGE_SIZE},
    }
    if registry.type == "ecr":
        options["filter"] = EVERY_IMAGE
    for page in client.get_paginator("describe_images").paginate(**options):
        yield page["imageDetails"]
