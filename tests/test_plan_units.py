"""Pure parts of the sync: transform, diff, plan files, rendering, targets, durations (no database, no AWS)."""

from __future__ import annotations

import os
import pickle
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from inventory.config import RegistryConfig
from inventory.durations import parse_duration
from inventory.errors import PlanFileError, TargetError
from inventory.sync.plan import (
    Counts,
    Entry,
    PageDiff,
    RepositoryDescription,
    Scope,
    ScopeFailure,
    ScopeStats,
    StoredImage,
    change_entries,
)
from inventory.sync.planfile import PlanReader, PlanWriter
from inventory.sync.render import entry_lines, summary_line
from inventory.sync.runner import Target
from inventory.sync.transform import FIELDS, as_dict, changed_fields, fingerprint, image_values

PUSHED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DETAIL = {
    "registryId": "111111111111",
    "repositoryName": "app/web",
    "imageDigest": "sha256:" + "a" * 64,
    "imageTags": ["v2", "latest"],
    "imageSizeInBytes": 3_000_000_000,
    "imagePushedAt": PUSHED,
    "imageScanStatus": {"status": "COMPLETE", "description": "ok"},
    "imageScanFindingsSummary": {
        "imageScanCompletedAt": PUSHED,
        "vulnerabilitySourceUpdatedAt": PUSHED,
        "findingSeverityCounts": {"LOW": 3, "CRITICAL": 1},
    },
    "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactMediaType": "application/vnd.oci.image.config.v1+json",
    "lastRecordedPullTime": PUSHED,
    "subjectManifestDigest": "sha256:" + "b" * 64,
    "imageStatus": "ACTIVE",
    "lastArchivedAt": PUSHED,
    "lastActivatedAt": PUSHED,
}
SCOPE = Scope("prod", "ecr", "111111111111", "us-east-1", "app/web")


def test_image_values_read_every_field_and_sort_tags() -> None:
    digest, values = image_values(DETAIL)
    assert digest == DETAIL["imageDigest"]
    fields = as_dict(values)
    assert set(fields) == set(FIELDS)
    assert fields["image_tags"] == ["latest", "v2"]
    assert fields["finding_severity_counts"] == {"CRITICAL": 1, "LOW": 3}
    assert fields["image_scan_status_description"] == "ok"
    assert fields["subject_manifest_digest"] == "sha256:" + "b" * 64
    assert None not in values


def test_ecr_public_details_have_fewer_fields() -> None:
    public = {k: DETAIL[k] for k in ("registryId", "repositoryName", "imageDigest", "imageSizeInBytes",
                                      "imagePushedAt", "imageManifestMediaType")}  # fmt: skip
    _, values = image_values(public)
    fields = as_dict(values)
    assert fields["image_tags"] == []
    assert fields["image_status"] is None and fields["finding_severity_counts"] is None


def test_a_detail_without_a_digest_is_refused() -> None:
    with pytest.raises(KeyError):
        image_values({"imageTags": ["x"]})


def test_fingerprints_follow_values_not_time_zones() -> None:
    _, values = image_values(DETAIL)
    shifted = {**DETAIL, "imagePushedAt": PUSHED.astimezone(timezone(timedelta(hours=2)))}
    _, same = image_values(shifted)
    assert fingerprint(values) == fingerprint(same)
    assert changed_fields(values, same) == {}
    _, other = image_values({**DETAIL, "imageTags": ["v2"]})
    assert fingerprint(values) != fingerprint(other)
    assert changed_fields(values, other) == {"image_tags": (["latest", "v2"], ["v2"])}


def test_page_diff_classifies_new_candidates_and_gone() -> None:
    _, values = image_values(DETAIL)
    same, changed, removed, gone = (f"sha256:{c * 64}" for c in "1234")
    stored = {
        same: StoredImage(fingerprint(values), removed=False),
        changed: StoredImage(b"old", removed=False),
        removed: StoredImage(fingerprint(values), removed=True),
        gone: StoredImage(b"x", removed=False),
    }
    diff = PageDiff(stored)
    new = "sha256:" + "9" * 64
    added, candidates = diff.feed([(same, values), (changed, values), (removed, values), (new, values), (new, values)])
    assert [(e.symbol, e.image_digest) for e in added] == [("+", new)]
    assert [c[0] for c in candidates] == [changed, removed]
    assert diff.gone() == [gone]
    _, before = image_values({**DETAIL, "imageStatus": "ARCHIVED"})
    entries = list(change_entries(candidates, {changed: (before, False), removed: (values, True)}))
    assert [(e.symbol, e.restored) for e in entries] == [("~", False), ("+", True)]
    assert entries[0].changes == {"image_status": ("ARCHIVED", "ACTIVE")}
    # a candidate whose values are in fact equal yields nothing
    assert list(change_entries(candidates[:1], {changed: (values, False)})) == []


def write_plan(path: Path) -> Counts:
    _, values = image_values(DETAIL)
    registry = RegistryConfig(name="prod", account_id="111111111111", regions=("us-east-1",))
    with PlanWriter(path, [registry]) as writer:
        writer.begin_scope(SCOPE, "3:2026", RepositoryDescription("arn", "uri"), False)
        writer.entries([Entry("+", "sha256:" + "1" * 64, values, fingerprint=b"f" * 16)])
        writer.entries([Entry("-", "sha256:" + "2" * 64, None, values)])
        writer.end_scope(ScopeStats(2, 1, 0))
        failed = Scope("prod", "ecr", "111111111111", "us-east-1", "app/broken")
        writer.begin_scope(failed, "0:-", RepositoryDescription(), True)
        writer.entries([Entry("+", "sha256:" + "3" * 64, values)])
        writer.end_scope(ScopeStats(), ScopeFailure.of(failed, "AccessDeniedException", "no"))
        writer.failure(ScopeFailure("prod", "111111111111", "eu-west-1", None, "ThrottlingException", "slow"))
        writer.close()
    return writer.counts


def test_plan_files_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "plan"
    assert write_plan(path).as_list() == [1, 0, 1]
    reader = PlanReader(path)
    assert reader.counts.as_list() == [1, 0, 1]
    assert [f.label for f in reader.failures] == ["prod/us-east-1/app/broken", "prod/eu-west-1"]
    assert [r.name for r in reader.registries] == ["prod"]
    (planned,) = list(reader.scopes(entries=False))  # the failed scope is skipped
    assert planned.scope == SCOPE and planned.counts.as_list() == [1, 0, 1]
    assert planned.stats == ScopeStats(2, 1, 0)
    assert planned.repository == RepositoryDescription("arn", "uri") and not planned.row_changed
    scopes = reader.scopes()
    planned = next(scopes)
    assert planned.counts.as_list() == [1, 0, 1]  # whole before its entries are read
    entries = list(planned.entries)  # read before asking for the next scope
    assert next(scopes, None) is None
    assert [(e.symbol, e.image_digest[-1]) for e in entries] == [("+", "1"), ("-", "2")]
    assert entries[0].after == image_values(DETAIL)[1]
    assert entries[0].fingerprint == b"f" * 16


def test_truncated_and_foreign_plan_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan"
    write_plan(path)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(PlanFileError, match="truncated"):
        PlanReader(truncated)
    with pytest.raises(PlanFileError, match="no such plan file"):
        PlanReader(tmp_path / "absent")
    text = tmp_path / "text"
    text.write_text("registries = []\n")
    with pytest.raises(PlanFileError):
        PlanReader(text)


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_plan_files_cannot_run_code(tmp_path: Path) -> None:
    path = tmp_path / "plan"
    write_plan(path)
    data = bytearray(path.read_bytes())
    payload = pickle.dumps((2, "now", [_Exploit()]), protocol=5)
    header_length = int.from_bytes(data[1:5], "little")
    forged = bytes([72]) + len(payload).to_bytes(4, "little") + payload + bytes(data[5 + header_length :])
    offset = int.from_bytes(data[-8:], "little") + len(payload) - header_length
    forged = forged[:-8] + offset.to_bytes(8, "little")
    (tmp_path / "forged").write_bytes(forged)
    with pytest.raises(PlanFileError):
        PlanReader(tmp_path / "forged")


def test_render_lines() -> None:
    _, values = image_values(DETAIL)
    _, archived = image_values({**DETAIL, "imageStatus": "ARCHIVED", "imageTags": []})
    digest = "sha256:" + "1" * 64
    assert entry_lines(Entry("+", digest, values)) == [
        f"  + {digest} image_tags=[latest, v2] image_size_in_bytes=3000000000 "
        "image_pushed_at=2026-03-01T12:00:00+00:00 image_status=ACTIVE"
    ]
    assert entry_lines(Entry("~", digest, archived, values)) == [
        f"  ~ {digest}",
        "      image_tags: [latest, v2] → []",
        "      image_status: ACTIVE → ARCHIVED",
    ]
    assert entry_lines(Entry("-", digest, None, values))[0].startswith(f"  - {digest} image_tags=[latest, v2]")
    assert summary_line(Counts()) == "No changes."
    assert summary_line(Counts(1, 2, 3)) == "Plan: 1 to add, 2 to change, 3 to remove."


def test_targets() -> None:
    assert Target.parse("prod") == Target("prod")
    assert Target.parse("prod/us-east-1/team/app/api") == Target("prod", "us-east-1", "team/app/api")
    target = Target.parse("prod/us-east-1")
    assert target.covers("prod", "us-east-1", "any/repo")
    assert not target.covers("prod", "eu-west-1")
    with pytest.raises(TargetError):
        Target.parse("prod//x")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("1h30m", 5400),
                                               ("500ms", 0.5), ("2d", 172800)])  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "5 minutes", "1x", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
