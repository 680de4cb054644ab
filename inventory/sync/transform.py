"""ImageDetail dicts (as boto3 returns them) to inventory values, and back to comparable form.

Pure functions. An image's values are a tuple aligned with ``FIELDS``; the same
tuple is what the database stores, what plans compare, and what apply writes.
Required keys are read as ``detail["imageDigest"]``: a malformed response fails
the sync of its scope rather than storing half an image.
"""

from __future__ import annotations

import marshal
from hashlib import blake2b
from typing import Any

FIELDS: tuple[str, ...] = (
    "image_tags",
    "image_size_in_bytes",
    "image_pushed_at",
    "image_scan_status",
    "image_scan_status_description",
    "image_scan_completed_at",
    "vulnerability_source_updated_at",
    "finding_severity_counts",
    "image_manifest_media_type",
    "artifact_media_type",
    "last_recorded_pull_time",
    "subject_manifest_digest",
    "image_status",
    "last_archived_at",
    "last_activated_at",
)
TIMESTAMP_FIELDS = frozenset(
    {
        "image_pushed_at",
        "image_scan_completed_at",
        "vulnerability_source_updated_at",
        "last_recorded_pull_time",
        "last_archived_at",
        "last_activated_at",
    }
)
TAGS = FIELDS.index("image_tags")
SEVERITY_COUNTS = FIELDS.index("finding_severity_counts")

Values = tuple[Any, ...]
_EMPTY: dict[str, Any] = {}


def image_values(detail: dict[str, Any]) -> tuple[str, Values]:
    """(image digest, values) of one ImageDetail; tags sorted, since ECR's order means nothing."""
    scan = detail.get("imageScanStatus") or _EMPTY
    findings = detail.get("imageScanFindingsSummary") or _EMPTY
    counts = findings.get("findingSeverityCounts")
    return detail["imageDigest"], (
        sorted(detail.get("imageTags") or ()),
        detail.get("imageSizeInBytes"),
        detail.get("imagePushedAt"),
        scan.get("status"),
        scan.get("description"),
        findings.get("imageScanCompletedAt"),
        findings.get("vulnerabilitySourceUpdatedAt"),
        dict(sorted(counts.items())) if counts is not None else None,
        detail.get("imageManifestMediaType"),
        detail.get("artifactMediaType"),
        detail.get("lastRecordedPullTime"),
        detail.get("subjectManifestDigest"),
        detail.get("imageStatus"),
        detail.get("lastArchivedAt"),
        detail.get("lastActivatedAt"),
    )


def comparable(values: Values) -> Values:
    """``values`` in a hashable form that is equal exactly when the images are equal."""
    tags, counts = values[TAGS], values[SEVERITY_COUNTS]
    return (
        tuple(sorted(tags)),
        *values[TAGS + 1 : SEVERITY_COUNTS],
        tuple(sorted(counts.items())) if counts else None,
        *values[SEVERITY_COUNTS + 1 :],
    )


_TIMESTAMP_INDEXES = tuple(i for i, name in enumerate(FIELDS) if name in TIMESTAMP_FIELDS)


def fingerprint(values: Values) -> bytes:
    """16 bytes that differ when ``values`` differ; stored with the image, so an unchanged
    image is recognised without reading its values back (timestamps as epoch seconds).
    """
    canonical = list(values)
    for i in _TIMESTAMP_INDEXES:
        if canonical[i] is not None:
            canonical[i] = canonical[i].timestamp()
    return blake2b(marshal.dumps(canonical), digest_size=16).digest()


def as_dict(values: Values) -> dict[str, Any]:
    return dict(zip(FIELDS, values, strict=True))


def changed_fields(before: Values, after: Values) -> dict[str, tuple[Any, Any]]:
    """The fields that differ, as ``{field: (before, after)}``."""
    old, new = comparable(before), comparable(after)
    return {field: (before[i], after[i]) for i, field in enumerate(FIELDS) if old[i] != new[i]}
