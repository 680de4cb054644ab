"""Model test of history: random pushes, retags, deletes, archives and restores, and scans in the emulator,
synced at recorded times T0..Tn, against a model of what the registry held after each step.

For every Ti, ``images(asOf: Ti)`` is the model's state at Ti field by field; for every i < j,
``diff(Ti, Tj)`` is the difference of the two states; ``tagHistory`` is where each tag truly pointed,
step by step; and the feed holds each change between two syncs exactly once, with its type.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dbview import each_way_to_the_past
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, make_url, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.cli import main
from inventory.db import create
from inventory.sync.transform import FIELDS, TAGS, TIMESTAMP_FIELDS, image_values
from inventory.testing import Emulator
from inventory.testing.store import DOCKER_MANIFEST

ACCOUNT, REGION = "111111111111", "us-east-1"
REPOSITORIES = ("app", "lib")
DIGESTS = tuple("sha256:" + c * 64 for c in "ab")
IMAGES = tuple((repository, digest) for repository in REPOSITORIES for digest in DIGESTS)
TAG_NAMES = ("prod", "v1", "v2")
COUNTS: tuple[dict[str, int], ...] = ({"HIGH": 1}, {"CRITICAL": 2, "LOW": 1}, {})
BASE = datetime(2020, 1, 1, tzinfo=UTC)
"""Every time the emulator is given is after it and long past (an image pushed after T was not there at T)."""

Key = tuple[str, str]
"""(repository, digest)"""
State = dict[Key, dict[str, Any]]
"""The images of the registry: their ImageDetail fields, as the emulator holds them."""

IMAGE = (
    "registryType registryId region repositoryName imageDigest imageTags imageSizeInBytes imagePushedAt "
    "imageManifestMediaType artifactMediaType lastRecordedPullTime subjectManifestDigest imageStatus "
    "lastArchivedAt lastActivatedAt removedAt imageScanStatus { status description } "
    "imageScanFindingsSummary { imageScanCompletedAt vulnerabilitySourceUpdatedAt "
    "findingSeverityCounts { severity count } }"
)
AS_OF = "query($asOf: DateTime) { images(first: 1000, asOf: $asOf) { nextToken nodes { " + IMAGE + " } } }"
DIFF = (
    "query($from: DateTime!, $to: DateTime!) { diff(from: $from, to: $to, first: 1000) {"
    " nextToken nodes { registryType registryId region repositoryName imageDigest kind changes { field before after } }"
    " } }"
)
EVENTS = (
    "query { events(first: 1000) { nextToken nodes { type occurredAt repositoryName imageDigest backfill"
    " changes { field before after } } } }"
)
TAG_HISTORY = (
    "query($repository: String!, $tag: String!) { tagHistory(registryId: \"" + ACCOUNT + "\", region: \"" + REGION
    + "\", repositoryName: $repository, tag: $tag, first: 1000) { nextToken nodes { imageDigest from until } } }"
)  # fmt: skip

# the registry and its model -------------------------------------------------------------------------------


@dataclass
class Registry:
    """The emulator, and the model of what it holds; every operation is done to both."""

    emulator: Emulator
    ecr: Any
    state: State = field(default_factory=dict)
    repositories: set[str] = field(default_factory=set)
    deleted: set[Key] = field(default_factory=set)
    clock: int = 0

    def time(self) -> datetime:
        """A new time, given to the emulator as a value (archived at, scanned at, ...)."""
        self.clock += 1
        return BASE + timedelta(hours=self.clock)

    def do(self, kind: str, key: Key, argument: Any) -> None:
        """One operation. Made to count: one that needs an image takes another when ``key`` is not there
        (and pushes ``key`` when none is), and ``restore`` pushes back an image deleted earlier."""
        gone = sorted(self.deleted - self.state.keys())
        if kind == "restore" and gone:
            key = gone[0]
        elif kind not in ("push", "restore") and key not in self.state and self.state:
            key = min(self.state)
        repository, digest = key
        if kind in ("push", "restore") or key not in self.state:
            self._push(key, sorted(argument if isinstance(argument, set) else ()))
        elif kind == "retag":
            self._set(key, imageTags=sorted(argument))
        elif kind == "delete":
            self.ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageDigest": digest}])
            del self.state[key]
            self.deleted.add(key)
        elif kind == "archive":
            self._set(key, imageStatus="ARCHIVED", lastArchivedAt=self.time())
        elif kind == "activate":
            self._set(key, imageStatus="ACTIVE", lastActivatedAt=self.time())
        elif kind == "scan":
            summary = {"findingSeverityCounts": argument, "imageScanCompletedAt": self.time()}
            self._set(key, imageScanStatus={"status": "COMPLETE", "description": "done"},
                      imageScanFindingsSummary=summary)  # fmt: skip

    def _push(self, key: Key, tags: list[str]) -> None:
        """Push: a new image, or new tags on the one there (which keeps its other values)."""
        repository, digest = key
        fields = {"imageTags": tags, "imagePushedAt": BASE + timedelta(days=DIGESTS.index(digest)),
                  "imageSizeInBytes": 1000 + DIGESTS.index(digest)}  # fmt: skip
        self.emulator.admin.put_images(ACCOUNT, REGION, repository, [{"imageDigest": digest, **_json(fields)}])
        self.repositories.add(repository)
        base = {"imageManifestMediaType": DOCKER_MANIFEST, "imageStatus": "ACTIVE"}
        self._move_tags(key, tags)
        self.state[key] = {**self.state.get(key, base), **fields}

    def _set(self, key: Key, **fields: Any) -> None:
        repository, digest = key
        self.emulator.admin.set_image(ACCOUNT, REGION, repository, digest, **_json(fields))
        if "imageTags" in fields:
            self._move_tags(key, fields["imageTags"])
        self.state[key].update(fields)

    def _move_tags(self, key: Key, tags: list[str]) -> None:
        """A tag is on one image of a repository at most: putting it on one takes it off the other."""
        for other, detail in self.state.items():
            if other != key and other[0] == key[0]:
                detail["imageTags"] = [t for t in detail["imageTags"] if t not in tags]

    def held(self) -> State:
        """What the emulator holds, read with DescribeImages (checked against the model by the caller)."""
        found: State = {}
        for repository in self.repositories:
            pages = self.ecr.get_paginator("describe_images").paginate(
                repositoryName=repository, filter={"imageStatus": "ANY"}
            )
            for page in pages:
                for detail in page["imageDetails"]:
                    found[(repository, detail["imageDigest"])] = detail
        return found


def _json(fields: dict[str, Any]) -> dict[str, Any]:
    """Admin API input: times as ISO 8601."""
    return {k: _json(v) if isinstance(v, dict) else v.isoformat() if isinstance(v, datetime) else v
            for k, v in fields.items()}  # fmt: skip


Values = tuple[Any, ...]


def values_of(detail: dict[str, Any]) -> Values:
    """An ImageDetail as the inventory's values (aligned with ``FIELDS``), normalised: tags sorted, no counts
    as none, times in UTC."""
    _, found = image_values({"imageDigest": "-", **detail})
    return _normal(found)


def _normal(values: Values) -> Values:
    tags, counts = values[TAGS], values[FIELDS.index("finding_severity_counts")]
    out = [v.astimezone(UTC) if isinstance(v, datetime) else v for v in values]
    out[TAGS] = sorted(tags)
    out[FIELDS.index("finding_severity_counts")] = dict(counts) if counts else None
    return tuple(out)


NONE: Values = tuple([] if i == TAGS else None for i in range(len(FIELDS)))


def differences(before: Values, after: Values) -> dict[str, tuple[Any, Any]]:
    """field → [before, after] (JSON, as the API answers) of the fields that differ."""
    return {name: (_as_json(b), _as_json(a)) for name, b, a in zip(FIELDS, before, after, strict=True) if b != a}


def _as_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def api_values(node: dict[str, Any]) -> Values:
    """An Image of the API as the inventory's values."""
    scan = node["imageScanStatus"] or {}
    findings = node["imageScanFindingsSummary"] or {}
    counts = {c["severity"]: c["count"] for c in findings.get("findingSeverityCounts") or ()}
    by_name = {
        "image_tags": node["imageTags"],
        "image_size_in_bytes": node["imageSizeInBytes"],
        "image_pushed_at": _time(node["imagePushedAt"]),
        "image_scan_status": scan.get("status"),
        "image_scan_status_description": scan.get("description"),
        "image_scan_completed_at": _time(findings.get("imageScanCompletedAt")),
        "vulnerability_source_updated_at": _time(findings.get("vulnerabilitySourceUpdatedAt")),
        "finding_severity_counts": counts,
        "image_manifest_media_type": node["imageManifestMediaType"],
        "artifact_media_type": node["artifactMediaType"],
        "last_recorded_pull_time": _time(node["lastRecordedPullTime"]),
        "subject_manifest_digest": node["subjectManifestDigest"],
        "image_status": node["imageStatus"],
        "last_archived_at": _time(node["lastArchivedAt"]),
        "last_activated_at": _time(node["lastActivatedAt"]),
    }
    return _normal(tuple(by_name[name] for name in FIELDS))


def _normal_changes(changes: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The API's changes, tags sorted and times in one spelling (the model's)."""
    out = {}
    for change in changes:
        pair = [change["before"], change["after"]]
        if change["field"] == "image_tags":
            pair = [None if p is None else sorted(p) for p in pair]
        elif change["field"] == "finding_severity_counts":
            pair = [p or None for p in pair]
        elif change["field"] in TIMESTAMP_FIELDS:
            pair = [_as_json(_time(p)) for p in pair]
        out[change["field"]] = pair
    return out


# the inventory under test ---------------------------------------------------------------------------------


@dataclass
class Inventory:
    """A fresh database, synced by the CLI, read through the API."""

    config: Path
    engine: Engine
    client: TestClient
    times: list[datetime] = field(default_factory=list)

    def apply(self) -> None:
        result = CliRunner().invoke(main, ["apply", "-c", str(self.config), "--auto-approve"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        with self.engine.connect() as connection:
            self.times.append(connection.execute(text("SELECT now()")).scalar_one())

    def query(self, query: str, **variables: Any) -> dict[str, Any]:
        body = self.client.post("/graphql", json={"query": query, "variables": variables}).json()
        assert "errors" not in body, body
        found: dict[str, Any] = body["data"]
        return found

    def step_of(self, moment: datetime) -> int:
        """The sync that wrote at ``moment``: the first whose recorded time is not before it."""
        return next(i for i, t in enumerate(self.times) if moment <= t)


@contextmanager
def fresh_inventory(
    server_url: str, admin_engine: Engine, template: str, config: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Inventory]:
    """A database cloned from the migrated template for one example (the db_url fixture is per test)."""
    name = f"{template}_model"
    with admin_engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    url = url_of(server_url, name)
    monkeypatch.setenv("INVENTORY_DATABASE_URL", url)
    engine = create(url)
    try:
        with TestClient(create_app(async_engine(url), allow_anonymous=True)) as client:
            yield Inventory(config, engine, client)
    finally:
        engine.dispose()
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def url_of(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


# the checks -----------------------------------------------------------------------------------------------


def check_as_of(inventory: Inventory, states: list[State]) -> None:
    for way in each_way_to_the_past():
        for at, state in zip(inventory.times, states, strict=True):
            found = inventory.query(AS_OF, asOf=at.isoformat())["images"]
            assert found["nextToken"] is None
            seen = {}
            for node in found["nodes"]:
                assert (node["registryType"], node["registryId"], node["region"]) == ("ECR", ACCOUNT, REGION)
                assert node["removedAt"] is None
                seen[(node["repositoryName"], node["imageDigest"])] = api_values(node)
            assert seen == {key: values_of(detail) for key, detail in state.items()}, (at, way)


def expected_diff(before: State, after: State) -> dict[Key, tuple[str, dict[str, list[Any]]]]:
    found = {}
    for key in before.keys() | after.keys():
        old = values_of(before[key]) if key in before else NONE
        new = values_of(after[key]) if key in after else NONE
        kind = "ADDED" if key not in before else "REMOVED" if key not in after else "CHANGED"
        changes = {
            name: [None if key not in before else b, None if key not in after else a]
            for name, (b, a) in differences(old, new).items()
        }
        if kind != "CHANGED" or changes:
            found[key] = (kind, changes)
    return found


def check_diffs(inventory: Inventory, states: list[State]) -> None:
    times = inventory.times
    for way in each_way_to_the_past():
        for i, j in combinations(range(len(times)), 2):
            found = inventory.query(DIFF, **{"from": times[i].isoformat(), "to": times[j].isoformat()})["diff"]
            assert found["nextToken"] is None
            nodes = found["nodes"]
            keys = [(n["registryType"], n["registryId"], n["region"], n["repositoryName"], n["imageDigest"])
                    for n in nodes]  # fmt: skip
            assert keys == sorted(keys)
            got = {(n["repositoryName"], n["imageDigest"]): (n["kind"], _normal_changes(n["changes"])) for n in nodes}
            assert got == expected_diff(states[i], states[j]), (i, j, way)


def expected_events(states: list[State], repositories: list[set[str]]) -> list[Counter[tuple[Any, ...]]]:
    """Per sync: (type, repository, digest, backfill) of each event it must write, once."""
    per_sync = []
    ever: set[Key] = set()
    for i, state in enumerate(states):
        before = states[i - 1] if i else {}
        new_repositories = repositories[i] - (repositories[i - 1] if i else set())
        events: Counter[tuple[Any, ...]] = Counter(("repository.added", name, None, True) for name in new_repositories)
        for key in before.keys() | state.keys():
            backfill = key[0] in new_repositories
            if key not in before:
                events[("image.restored" if key in ever else "image.added", *key, backfill)] += 1
            elif key not in state:
                events[("image.removed", *key, backfill)] += 1
            elif differences(values_of(before[key]), values_of(state[key])):
                events[("image.changed", *key, backfill)] += 1
        ever |= state.keys()
        per_sync.append(events)
    return per_sync


def check_feed(inventory: Inventory, states: list[State], repositories: list[set[str]]) -> None:
    found = inventory.query(EVENTS)["events"]
    assert found["nextToken"] is None
    per_sync: list[Counter[tuple[Any, ...]]] = [Counter() for _ in states]
    for entry in found["nodes"]:
        step = inventory.step_of(datetime.fromisoformat(entry["occurredAt"]))
        per_sync[step][(entry["type"], entry["repositoryName"], entry["imageDigest"], entry["backfill"])] += 1
        if entry["type"] == "image.changed":  # what changed is what the model says changed
            key = (entry["repositoryName"], entry["imageDigest"])
            pairs = differences(values_of(states[step - 1][key]), values_of(states[step][key]))
            assert _normal_changes(entry["changes"]) == {name: list(pair) for name, pair in pairs.items()}
    expected = expected_events(states, repositories)
    assert per_sync == expected
    for kind in sorted({e[0] for sync in expected for e in sync}):
        event(kind)  # how often each kind of change is exercised (--hypothesis-show-statistics)


def check_tag_history(inventory: Inventory, states: list[State]) -> None:
    for repository in REPOSITORIES:
        for tag in TAG_NAMES:
            holders = [
                next((d for (r, d), detail in state.items() if r == repository and tag in detail["imageTags"]), None)
                for state in states
            ]
            expected = []
            for step, holder in enumerate(holders):
                if holder is not None and (step == 0 or holders[step - 1] != holder):
                    end = next((s for s in range(step + 1, len(holders)) if holders[s] != holder), None)
                    expected.append((holder, step, end))
            found = inventory.query(TAG_HISTORY, repository=repository, tag=tag)["tagHistory"]
            assert found["nextToken"] is None
            got = [
                (n["imageDigest"], inventory.step_of(datetime.fromisoformat(n["from"])),
                 None if n["until"] is None else inventory.step_of(datetime.fromisoformat(n["until"])))
                for n in found["nodes"]
            ]  # fmt: skip
            assert got == sorted(expected, key=lambda a: (a[1], a[0]), reverse=True), (repository, tag)


# the test -------------------------------------------------------------------------------------------------

keys = st.sampled_from(IMAGES)
tag_sets = st.sets(st.sampled_from(TAG_NAMES), max_size=2)
KINDS = ("push", "retag", "delete", "restore", "archive", "activate", "scan")
operations = st.builds(
    lambda kind, key, tags, counts: (kind, key, counts if kind == "scan" else tags if kind != "delete" else None),
    st.sampled_from(KINDS),
    keys,
    tag_sets,
    st.sampled_from(COUNTS),
)
histories = st.lists(st.lists(operations, min_size=1, max_size=3), min_size=2, max_size=6)
"""Steps of a few operations each, a sync after every step (a step of no-ops: a sync that changes nothing)."""


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no explain phase: minutes per failure
)
@given(history=histories)
def test_history_is_what_the_registry_held_at_every_sync(
    history: list[list[tuple[str, Key, Any]]],
    emulator: Emulator,
    aws: Any,
    server_url: str,
    admin_engine: Engine,
    template_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "inventory.toml"
    config.write_text(
        f'[[registries]]\nname = "prod"\naccount_id = "{ACCOUNT}"\nregions = ["{REGION}"]\n'
        f'role_arn = "arn:aws:iam::{ACCOUNT}:role/reader"\nendpoint_url = "{emulator.url}"\n'
    )
    emulator.admin.reset()
    registry = Registry(emulator, aws("ecr", account=ACCOUNT, region=REGION))
    states: list[State] = []
    repositories: list[set[str]] = []
    with fresh_inventory(server_url, admin_engine, template_database, config, monkeypatch) as inventory:
        for step in history:
            for kind, key, argument in step:
                registry.do(kind, key, argument)
            held = registry.held()
            assert {k: values_of(v) for k, v in held.items()} == {k: values_of(v) for k, v in registry.state.items()}
            inventory.apply()
            states.append(copy.deepcopy(registry.state))
            repositories.append(set(registry.repositories))
        check_as_of(inventory, states)
        check_diffs(inventory, states)
        check_feed(inventory, states, repositories)
        check_tag_history(inventory, states)
