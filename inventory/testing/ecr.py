"""ECR and ECR Public operations, with the semantics of the AWS documentation.

Handlers take the store (already locked), the caller and the request's JSON, and
return the response's JSON or raise ``EcrError`` with ECR's exception name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from inventory.aws.semantics import (
    EcrError,
    exclusive_with_paging,
    filter_param,
    image_id_param,
    image_not_found,
    invalid,
    list_param,
    max_results_param,
    registry_id_param,
    repository_name_param,
    repository_not_found,
)
from inventory.testing import events
from inventory.testing.store import (
    PRIVATE_ONLY_FIELDS,
    TIMESTAMP_FIELDS,
    Image,
    RegistryType,
    Repository,
    Store,
    digest_of,
    utcnow,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Caller:
    """Who is calling, where: the account of the credentials and the signed region."""

    account: str
    region: str
    registry_type: RegistryType


# validation ---------------------------------------------------------------------


def registry_id_of(caller: Caller, params: dict[str, Any]) -> str:
    return registry_id_param(params, caller.account)


def require_repository(store: Store, caller: Caller, registry_id: str, name: str) -> Repository:
    repository = store.repository(caller.registry_type, registry_id, caller.region, name)
    if repository is None:
        raise repository_not_found(name, registry_id)
    return repository


# paging -------------------------------------------------------------------------


def page(
    store: Store,
    items: Sequence[T],
    seq: Callable[[T], int],
    params: dict[str, Any],
    binding: tuple[Any, ...],
) -> tuple[list[T], str | None]:
    """One page of ``items`` (in ``seq`` order) after the request's ``nextToken``."""
    limit = max_results_param(params)
    after = 0
    if "nextToken" in params:
        token = store.tokens.get(params["nextToken"])
        if token is None or token.binding != binding:
            raise invalid("Invalid parameter at 'nextToken': the token is not valid for this request")
        if token.expired:
            raise invalid("Invalid parameter at 'nextToken': the token has expired")
        after = token.after_seq
    remaining = [item for item in items if seq(item) > after]
    chosen = remaining[:limit]
    if len(remaining) <= limit:
        return chosen, None
    return chosen, store.issue_token(binding, seq(chosen[-1]))


# DescribeImages ---------------------------------------------------------------


def _epoch(value: Any) -> Any:
    return value.timestamp() if isinstance(value, datetime) else value


def image_detail(repository: Repository, image: Image) -> dict[str, Any]:
    """The ImageDetail of ``image``: ECR's field set, or ECR Public's smaller one."""
    detail: dict[str, Any] = {
        "registryId": repository.registry_id,
        "repositoryName": repository.name,
    }
    for key, value in image.detail.items():
        if value is None or (key == "imageTags" and not value):
            continue
        if repository.registry_type == "ecr-public" and key in PRIVATE_ONLY_FIELDS:
            continue
        if key == "imageScanFindingsSummary":
            value = {k: _epoch(v) if k in TIMESTAMP_FIELDS else v for k, v in value.items()}
        detail[key] = _epoch(value) if key in TIMESTAMP_FIELDS else value
    return detail


def _matches_filter(image: Image, tag_status: str, image_status: str) -> bool:
    if tag_status == "TAGGED" and not image.tags:
        return False
    if tag_status == "UNTAGGED" and image.tags:
        return False
    return image_status == "ANY" or image.status == image_status


def _find_image(repository: Repository, image_id: Any) -> Image:
    digest, tag = image_id_param(image_id)
    image = repository.images.get(digest) if digest else repository.image_by_tag(str(tag))
    if image is None or (tag and tag not in image.tags):
        raise image_not_found(digest, tag, repository.name, repository.registry_id)
    return image


def describe_images(store: Store, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    registry_id = registry_id_of(caller, params)
    name = repository_name_param(params)
    max_results_param(params)
    exclusive_with_paging(params, "imageIds")
    image_ids = list_param(params, "imageIds")
    tag_status, image_status = filter_param(params) if caller.registry_type == "ecr" else ("ANY", "ACTIVE")
    repository = require_repository(store, caller, registry_id, name)

    if image_ids is not None:
        images = [_find_image(repository, image_id) for image_id in image_ids]
        return {"imageDetails": [image_detail(repository, image) for image in images]}

    matching = [
        image
        for image in sorted(repository.images.values(), key=lambda image: image.seq)
        if _matches_filter(image, tag_status, image_status)
    ]
    binding = ("DescribeImages", caller.registry_type, registry_id, caller.region, name, tag_status, image_status)
    chosen, next_token = page(store, matching, lambda image: image.seq, params, binding)
    response: dict[str, Any] = {"imageDetails": [image_detail(repository, i) for i in chosen]}
    if next_token is not None:
        response["nextToken"] = next_token
        key = (caller.registry_type, registry_id, repository.region, name)
        if key in store.faults.delete_after_page:
            store.faults.delete_after_page.discard(key)
            store.delete_repository(repository)
    return response


# repositories -------------------------------------------------------------------


def repository_description(repository: Repository) -> dict[str, Any]:
    description: dict[str, Any] = {
        "repositoryArn": repository.arn,
        "registryId": repository.registry_id,
        "repositoryName": repository.name,
        "repositoryUri": repository.uri,
        "createdAt": repository.created_at.timestamp(),
    }
    if repository.registry_type == "ecr":
        description |= {
            "imageTagMutability": "MUTABLE",
            "imageScanningConfiguration": {"scanOnPush": False},
            "encryptionConfiguration": {"encryptionType": "AES256"},
        }
    return description


def describe_repositories(store: Store, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    registry_id = registry_id_of(caller, params)
    max_results_param(params)
    exclusive_with_paging(params, "repositoryNames")
    names = list_param(params, "repositoryNames")
    if names is not None:
        found = [
            require_repository(store, caller, registry_id, repository_name_param({"repositoryName": n})) for n in names
        ]
        return {"repositories": [repository_description(r) for r in found]}
    repositories = store.repositories_of(caller.registry_type, registry_id, caller.region)
    binding = ("DescribeRepositories", caller.registry_type, registry_id, caller.region)
    chosen, next_token = page(store, repositories, lambda r: r.seq, params, binding)
    response: dict[str, Any] = {"repositories": [repository_description(r) for r in chosen]}
    if next_token is not None:
        response["nextToken"] = next_token
    return response


def create_repository(store: Store, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    registry_id = registry_id_of(caller, params)
    name = repository_name_param(params)
    if store.repository(caller.registry_type, registry_id, caller.region, name) is not None:
        raise EcrError(
            "RepositoryAlreadyExistsException",
            f"The repository with name '{name}' already exists in the registry with id '{registry_id}'",
        )
    repository = store.create_repository(caller.registry_type, registry_id, caller.region, name)
    return {"repository": repository_description(repository)}


def delete_repository(store: Store, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    registry_id = registry_id_of(caller, params)
    repository = require_repository(store, caller, registry_id, repository_name_param(params))
    if repository.images and not params.get("force"):
        raise EcrError(
            "RepositoryNotEmptyException",
            f"The repository with name '{repository.name}' in registry with id "
            f"'{registry_id}' cannot be deleted because it still contains images",
        )
    store.delete_repository(repository)
    return {"repository": repository_description(repository)}


# images -------------------------------------------------------------------------


def _manifest_size(manifest: str) -> int:
    """The image size a registry reports: config plus layers, or the manifest itself."""
    try:
        document = json.loads(manifest)
        parts = [document.get("config", {}), *document.get("layers", [])]
        return sum(int(part.get("size", 0)) for part in parts) or len(manifest)
    except (ValueError, AttributeError, TypeError):
        return len(manifest)


def put_image(store: Store, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    registry_id = registry_id_of(caller, params)
    repository = require_repository(store, caller, registry_id, repository_name_param(params))
    manifest = params.get("imageManifest")
    if not isinstance(manifest, str) or not manifest:
        raise invalid("Invalid parameter at 'imageManifest': an image manifest is required")
    digest = digest_of(manifest)
    if params.get("imageDigest") not in (None, digest):
        raise EcrError(
            "ImageDigestDoesNotMatchException",
            f"The specified image digest '{params['imageDigest']}' does not match the digest "
            f"of the manifest '{digest}'",
        )
    tag = params.get("imageTag")
    existing = repository.images.get(digest)
    if existing is not None and (tag is None or tag in existing.tags):
        raise EcrError(
            "ImageAlreadyExistsException",
            f"Image with digest '{digest}' and tag '{tag}' already exists in the repository "
            f"with name '{repository.name}' in registry with id '{registry_id}'",
        )
    media_type = params.get("imageManifestMediaType") or _media_type(manifest)
    if existing is not None:
        image = store.add_image(repository, {**existing.detail, "imageTags": [*existing.tags, tag]})
    else:
        image = store.add_image(
            repository,
            {
                "imageDigest": digest,
                "imageTags": [tag] if tag else [],
                "imageSizeInBytes": _manifest_size(manifest),
                "imagePushedAt": utcnow(),
                "imageManifestMediaType": media_type,
            },
        )
    events.pushed(store, repository, image, tag)
    image_id = {"imageDigest": digest} | ({"imageTag": tag} if tag else {})
    return {
        "image": {
            "registryId": registry_id,
            "repositoryName": repository.name,
            "imageId": image_id,
            "imageManifest": manifest,
            "imageManifestMediaType": media_type,
        }
    }


def _media_type(manifest: str) -> str:
    try:
        media_type = json.loads(manifest).get("mediaType")
    except (ValueError, AttributeError):
        media_type = None
    return str(media_type or "application/vnd.docker.distribution.manifest.v2+json")


def batch_delete_image(store: Store, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    """Delete by digest, or untag by tag (an image loses its last tag: it is deleted)."""
    registry_id = registry_id_of(caller, params)
    repository = require_repository(store, caller, registry_id, repository_name_param(params))
    deleted: list[dict[str, str]] = []
    failures: list[dict[str, Any]] = []
    for image_id in list_param(params, "imageIds") or []:
        try:
            image = _find_image(repository, image_id)
        except EcrError as exc:
            failures.append({"imageId": image_id, "failureCode": "ImageNotFound", "failureReason": exc.message})
            continue
        tag = image_id.get("imageTag")
        if tag and not image_id.get("imageDigest"):
            image.tags.remove(tag)
            if image.tags:
                deleted.append({"imageDigest": image.image_digest, "imageTag": tag})
                events.deleted(store, repository, image.image_digest, tag)
                continue
        del repository.images[image.image_digest]
        deleted.append({"imageDigest": image.image_digest} | ({"imageTag": tag} if tag else {}))
        events.deleted(store, repository, image.image_digest, tag)
    return {"imageIds": deleted, "failures": failures}


Handler = Callable[[Store, Caller, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Handler] = {
    "DescribeImages": describe_images,
    "DescribeRepositories": describe_repositories,
    "CreateRepository": create_repository,
    "DeleteRepository": delete_repository,
    "PutImage": put_image,
    "BatchDeleteImage": batch_delete_image,
}
