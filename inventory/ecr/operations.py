"""The operations the endpoint serves, in ECR's shapes: each takes the request's JSON and answers the
response's JSON, read by the read layer (``inventory.read.describe``) for the caller's scope.

Timestamps are epoch seconds, as ECR's JSON protocol sends them; a value the inventory does not hold is
left out, as ECR leaves it out. ECR Public's ImageDetail has fewer fields than private ECR's. A
repository's settings that the syncs do not record (tag mutability, scanning, encryption) are not
answered: the inventory does not know them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inventory.read import describe
from inventory.read.database import Database
from inventory.read.scope import Scope

PUBLIC_IMAGE_FIELDS = frozenset(
    {"registryId", "repositoryName", "imageDigest", "imageTags", "imageSizeInBytes", "imagePushedAt",
     "imageManifestMediaType", "artifactMediaType"}
)  # fmt: skip
"""ECR Public's ImageDetail (its service model's members)."""


@dataclass(frozen=True)
class Caller:
    """Who asks, where: the key's scope, the service (``ecr`` or ``ecr-public``), the signed region, and the
    registry the request is about (its ``registryId``, or the key's one account in the region)."""

    db: Database
    scope: Scope
    kind: str
    region: str
    registry_id: str


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def image_detail(row: Any, kind: str) -> dict[str, Any]:
    """An image's ImageDetail, as ECR (or ECR Public) answers it."""
    scan = _present({"status": row.image_scan_status, "description": row.image_scan_status_description})
    findings = _present({
        "imageScanCompletedAt": _epoch(row.image_scan_completed_at),
        "vulnerabilitySourceUpdatedAt": _epoch(row.vulnerability_source_updated_at),
        "findingSeverityCounts": row.finding_severity_counts,
    })  # fmt: skip
    detail = _present({
        "registryId": row.registry_id,
        "repositoryName": row.repository_name,
        "imageDigest": row.image_digest,
        "imageTags": list(row.image_tags) or None,
        "imageSizeInBytes": row.image_size_in_bytes,
        "imagePushedAt": _epoch(row.image_pushed_at),
        "imageScanStatus": scan or None,
        "imageScanFindingsSummary": findings or None,
        "imageManifestMediaType": row.image_manifest_media_type,
        "artifactMediaType": row.artifact_media_type,
        "lastRecordedPullTime": _epoch(row.last_recorded_pull_time),
        "subjectManifestDigest": row.subject_manifest_digest,
        "imageStatus": row.image_status,
        "lastArchivedAt": _epoch(row.last_archived_at),
        "lastActivatedAt": _epoch(row.last_activated_at),
    })  # fmt: skip
    return {k: v for k, v in detail.items() if k in PUBLIC_IMAGE_FIELDS} if kind == "ecr-public" else detail


def repository_description(row: Any) -> dict[str, Any]:
    """A repository as DescribeRepositories answers it (what the inventory records of it)."""
    return _present({
        "repositoryArn": row.repository_arn,
        "registryId": row.registry_id,
        "repositoryName": row.repository_name,
        "repositoryUri": row.repository_uri,
        "createdAt": _epoch(row.created_at),
    })  # fmt: skip


def _with_token(answer: dict[str, Any], token: str | None) -> dict[str, Any]:
    return answer if token is None else answer | {"nextToken": token}


async def describe_images(caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    found = await describe.describe_images(
        caller.db, caller.scope, caller.kind, caller.region, params | {"registryId": caller.registry_id}
    )
    details = [image_detail(row, caller.kind) for row in found.image_details]
    return _with_token({"imageDetails": details}, found.next_token)


async def describe_repositories(caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    found = await describe.describe_repositories(
        caller.db, caller.scope, caller.kind, caller.region, caller.registry_id, params
    )
    return _with_token({"repositories": [repository_description(r) for r in found.repositories]}, found.next_token)


async def list_images(caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
    found = await describe.list_images(caller.db, caller.scope, caller.region, caller.registry_id, params)
    ids = [{"imageDigest": digest} | ({"imageTag": tag} if tag else {}) for digest, tag in found.image_ids]
    return _with_token({"imageIds": ids}, found.next_token)


Operation = Callable[[Caller, dict[str, Any]], Awaitable[dict[str, Any]]]

SERVED: dict[tuple[str, str], Operation] = {
    ("ecr", "DescribeImages"): describe_images,
    ("ecr", "DescribeRepositories"): describe_repositories,
    ("ecr", "ListImages"): list_images,
    ("ecr-public", "DescribeImages"): describe_images,
    ("ecr-public", "DescribeRepositories"): describe_repositories,
}
"""(service, operation) -> its handler."""


def page_cost(params: dict[str, Any]) -> int:
    """What a request costs, as a GraphQL page does: the items it may answer (``maxResults``, 100 by default,
    or the ids it names)."""
    named = params.get("imageIds") or params.get("repositoryNames")
    if isinstance(named, list):
        return len(named)
    size = params.get("maxResults")
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 100
