"""The operations the endpoint serves, in ECR's shapes: each takes the request's JSON and answers the
response's JSON, read by the read layer (``inventory.read.describe``) for the caller's scope.

Timestamps are epoch seconds, as ECR's JSON protocol sends them; a value the inventory does not hold is
left out, as ECR leaves it out. ECR Public's ImageDetail has fewer fields than private ECR's. A
repository's settings that the syncs do not record (tag mutability, scanning, encryption) are not
answered: the inventory does not know them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
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


_DETAIL = (
    ("imageSizeInBytes", "image_size_in_bytes", False),
    ("imagePushedAt", "image_pushed_at", True),
    ("imageManifestMediaType", "image_manifest_media_type", False),
    ("artifactMediaType", "artifact_media_type", False),
    ("lastRecordedPullTime", "last_recorded_pull_time", True),
    ("subjectManifestDigest", "subject_manifest_digest", False),
    ("imageStatus", "image_status", False),
    ("lastArchivedAt", "last_archived_at", True),
    ("lastActivatedAt", "last_activated_at", True),
)
"""(ImageDetail field, column, whether a timestamp) of the plain fields, in ECR's order."""


def image_details(rows: Sequence[Any], kind: str) -> list[dict[str, Any]]:
    """The images' ImageDetails, as ECR (or ECR Public) answers them."""
    return _details_of(rows[0]._fields, kind)(rows) if rows else []


@functools.cache
def _details_of(columns: tuple[str, ...], kind: str) -> Callable[[Sequence[Any]], list[dict[str, Any]]]:
    """What makes ImageDetails of rows with ``columns``: a page holds up to 1,000, so each row's values are
    read by position."""
    at = {name: i for i, name in enumerate(columns)}
    public = kind == "ecr-public"
    plain = [
        (field, at[column], stamp) for field, column, stamp in _DETAIL if not public or field in PUBLIC_IMAGE_FIELDS
    ]
    account, repository, digest, tags = (
        at[n] for n in ("registry_id", "repository_name", "image_digest", "image_tags")
    )
    status, description, counts, completed, updated = (
        at[n] for n in ("image_scan_status", "image_scan_status_description", "finding_severity_counts",
                        "image_scan_completed_at", "vulnerability_source_updated_at")
    )  # fmt: skip

    def details(rows: Sequence[Any]) -> list[dict[str, Any]]:
        made = []
        for row in rows:
            detail: dict[str, Any] = {"registryId": row[account], "repositoryName": row[repository],
                                      "imageDigest": row[digest]}  # fmt: skip
            if row[tags]:
                detail["imageTags"] = list(row[tags])
            for field, i, stamp in plain:
                value = row[i]
                if value is not None:
                    detail[field] = value.timestamp() if stamp else value
            if not public:
                scan = _present({"status": row[status], "description": row[description]})
                if scan:
                    detail["imageScanStatus"] = scan
                findings = _present({
                    "imageScanCompletedAt": _epoch(row[completed]),
                    "vulnerabilitySourceUpdatedAt": _epoch(row[updated]),
                    "findingSeverityCounts": row[counts],
                })  # fmt: skip
                if findings:
                    detail["imageScanFindingsSummary"] = findings
            made.append(detail)
        return made

    return details


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
    details = image_details(found.image_details, caller.kind)
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
