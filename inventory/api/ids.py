"""How the API names the inventory's objects (a leaf: it imports nothing of the API's domains): the
registry type as GraphQL spells it, and the node ids of images and repositories.
"""

from __future__ import annotations

import enum

import strawberry

from inventory.read.keys import ImageKey, RepositoryKey


@strawberry.enum
class RegistryType(enum.Enum):
    ECR = "ECR"
    ECR_PUBLIC = "ECR_PUBLIC"


def registry_type_of(config_type: str) -> RegistryType:
    return RegistryType.ECR_PUBLIC if config_type == "ecr-public" else RegistryType.ECR


def config_type_of(registry_type: RegistryType) -> str:
    """The config's (and the tables') spelling of ``registry_type``: "ecr" or "ecr-public"."""
    return "ecr-public" if registry_type is RegistryType.ECR_PUBLIC else "ecr"


PUBLIC_PREFIX = "ecr-public/"
"""Leads the node ids of ECR Public objects; a private one starts with its 12-digit registry id."""


def _prefix(registry_type: str) -> str:
    return PUBLIC_PREFIX if registry_type == "ecr-public" else ""


def _split_prefix(node_id: str) -> tuple[str, str]:
    """(registry type, the rest of the node id)."""
    if node_id.startswith(PUBLIC_PREFIX):
        return "ecr-public", node_id[len(PUBLIC_PREFIX) :]
    return "ecr", node_id


def image_node_id(registry_type: str, registry_id: str, region: str, repository_name: str, image_digest: str) -> str:
    """``[ecr-public/]registry/region/digest/repository``: the repository last, as its name may hold slashes."""
    return f"{_prefix(registry_type)}{registry_id}/{region}/{image_digest}/{repository_name}"


def split_image_node_id(node_id: str) -> ImageKey | None:
    """The image's identity (registry type, registry id, region, repository, digest); None if malformed."""
    registry_type, rest = _split_prefix(node_id)
    parts = rest.split("/", 3)
    if len(parts) != 4:
        return None
    registry_id, region, digest, repository = parts
    return registry_type, registry_id, region, repository, digest


def repository_node_id(registry_type: str, registry_id: str, region: str, repository_name: str) -> str:
    """``[ecr-public/]registry/region/repository``."""
    return f"{_prefix(registry_type)}{registry_id}/{region}/{repository_name}"


def split_repository_node_id(node_id: str) -> RepositoryKey | None:
    """The repository's identity (registry type, registry id, region, name); None if malformed."""
    registry_type, rest = _split_prefix(node_id)
    parts = rest.split("/", 2)
    if len(parts) != 3:
        return None
    registry_id, region, name = parts
    return registry_type, registry_id, region, name
