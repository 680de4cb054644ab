"""ECR's request rules, from the AWS documentation of DescribeImages (``shared/spec``).

Shared by the emulator, which enforces them as AWS does, and by the GraphQL
``describeImages``, which answers from the inventory with the same semantics.
Parameters are read from a dict with ECR's own (camelCase) names.
"""

from __future__ import annotations

import re
from typing import Any

REPOSITORY_NAME = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
REGISTRY_ID = re.compile(r"[0-9]{12}")
TAG_STATUSES = ("TAGGED", "UNTAGGED", "ANY")
IMAGE_STATUSES = ("ACTIVE", "ARCHIVED", "ACTIVATING", "ANY")
DEFAULT_MAX_RESULTS = 100
MAX_RESULTS = 1000
MAX_IMAGE_IDS = 100


class EcrError(Exception):
    """An error as ECR names it: the exception name (``code``), a message, an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def invalid(message: str) -> EcrError:
    return EcrError("InvalidParameterException", message)


def constraint(name: str, value: object, rule: str) -> EcrError:
    return invalid(f"Invalid parameter at '{name}' failed to satisfy constraint: '{rule}' (value: {value!r})")


def registry_id_param(params: dict[str, Any], default: str) -> str:
    registry_id = params.get("registryId")
    if registry_id is None:
        return default
    if not isinstance(registry_id, str) or not REGISTRY_ID.fullmatch(registry_id):
        raise constraint("registryId", registry_id, "must satisfy regular expression '[0-9]{12}'")
    return registry_id


def repository_name_param(params: dict[str, Any]) -> str:
    name = params.get("repositoryName")
    if name is None:
        raise invalid("Invalid parameter at 'repositoryName': a repository name is required")
    if not (isinstance(name, str) and 2 <= len(name) <= 256 and REPOSITORY_NAME.fullmatch(name)):
        raise constraint(
            "repositoryName",
            name,
            "must have length 2..256 and satisfy regular expression "
            "'(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*'",
        )
    return name


def max_results_param(params: dict[str, Any], name: str = "maxResults") -> int:
    value = params.get(name)
    if value is None:
        return DEFAULT_MAX_RESULTS
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_RESULTS:
        raise constraint(name, value, f"Member must have value between 1 and {MAX_RESULTS}")
    return value


def exclusive_with_paging(params: dict[str, Any], key: str) -> None:
    """``key`` (imageIds, repositoryNames) cannot be combined with maxResults or nextToken."""
    if params.get(key) is not None and (params.get("maxResults") is not None or params.get("nextToken") is not None):
        raise invalid(f"Invalid parameter: {key} cannot be used together with maxResults or nextToken")


def list_param(params: dict[str, Any], key: str) -> list[Any] | None:
    values = params.get(key)
    if values is None:
        return None
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_IMAGE_IDS:
        raise constraint(key, values, f"Member must have length between 1 and {MAX_IMAGE_IDS}")
    return values


def image_id_param(image_id: Any) -> tuple[str | None, str | None]:
    """(digest, tag) of one ImageIdentifier; at least one is needed."""
    if not isinstance(image_id, dict) or not (image_id.get("imageDigest") or image_id.get("imageTag")):
        raise invalid("Invalid parameter at 'imageIds': each image id needs imageDigest or imageTag")
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    for name, value in (("imageDigest", digest), ("imageTag", tag)):
        if value is not None and not isinstance(value, str):
            raise constraint(f"imageIds.{name}", value, "Member must be a string")
    return digest, tag


def next_token_param(params: dict[str, Any]) -> str | None:
    token = params.get("nextToken")
    if token is not None and not isinstance(token, str):
        raise constraint("nextToken", token, "Member must be a string")
    return token


def filter_param(params: dict[str, Any]) -> tuple[str, str]:
    """(tagStatus, imageStatus) of a DescribeImagesFilter; defaults ANY and ACTIVE."""
    filter_ = params.get("filter") or {}
    if not isinstance(filter_, dict):
        raise constraint("filter", filter_, "Member must be a structure")
    tag_status = filter_.get("tagStatus") or "ANY"
    image_status = filter_.get("imageStatus") or "ACTIVE"
    if tag_status not in TAG_STATUSES:
        raise constraint("filter.tagStatus", tag_status, f"one of {', '.join(TAG_STATUSES)}")
    if image_status not in IMAGE_STATUSES:
        raise constraint("filter.imageStatus", image_status, f"one of {', '.join(IMAGE_STATUSES)}")
    return tag_status, image_status


def repository_not_found(name: str, registry_id: str) -> EcrError:
    return EcrError(
        "RepositoryNotFoundException",
        f"The repository with name '{name}' does not exist in the registry with id '{registry_id}'",
    )


def image_not_found(digest: str | None, tag: str | None, name: str, registry_id: str) -> EcrError:
    return EcrError(
        "ImageNotFoundException",
        f"The image with imageId {{imageDigest:'{digest}', imageTag:'{tag}'}} does not exist within the "
        f"repository with name '{name}' in the registry with id '{registry_id}'",
    )
