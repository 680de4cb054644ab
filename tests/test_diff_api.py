"""``diff(from, to)``: the net change per image between two synced times.

Synced from the emulator with the CLI (real sync, real PostgreSQL), read through the ASGI app.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from graphql_client import gql
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.cli import main
from inventory.db import create
from inventory.testing import AdminClient, Emulator

PROD, US, EU = "111111111111", "us-east-1", "eu-west-1"
W0, W1, W2, A0, E0, W3, X, Y = ("sha256:" + c * 64 for c in "abcdef01")
PUSHED = "2026-01-01T00:00:00Z"
DIFF = (
    "query($from: DateTime!, $to: DateTime!, $first: Int, $after: String, $filter: ImageFilter) {"
    " diff(from: $from, to: $to, first: $first, after: $after, filter: $filter) {"
    "  pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nextToken"
    "  edges { cursor node { imageDigest } }"
    "  nodes { registryType registryId region repositoryName imageDigest kind changes { field before after } }"
    " }"
    "}"
)


def image(digest: str, *tags: str, **fields: Any) -> dict[str, Any]:
    """An image with every value given, so that pushing it again after a delete restores it as it was."""
    return {"imageDigest": digest, "imageTags": list(tags), "imagePushedAt": PUSHED, "imageSizeInBytes": 1000,
            **fields}  # fmt: skip


@dataclass
class World:
    """The emulator, the inventory synced from it, the API on top, and the times of the syncs."""

    admin: AdminClient
    aws: Any
    client: TestClient
    engine: Engine
    config: Path
    times: list[str]

    def apply(self) -> None:
        """Sync, then record the database's time: every change of this sync is before it, the next sync's after."""
        result = CliRunner().invoke(main, ["apply", "-c", str(self.config), "--auto-approve"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        with self.engine.connect() as connection:
            self.times.append(connection.execute(text("SELECT now()")).scalar_one().isoformat())

    def delete(self, region: str, repository: str, digest: str) -> None:
        client = self.aws("ecr", account=PROD, region=region)
        client.batch_delete_image(repositoryName=repository, imageIds=[{"imageDigest": digest}])


@pytest.fixture
def world(
    admin: AdminClient, emulator: Emulator, aws: Any, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """T0: app/web (us-east-1) W0 [prod v1], W1 [v2], W2 []; app/api A0 [prod]; app/web (eu-west-1) E0 [v1];
    the public app/web W0 [prod].

    T1: ``prod`` moves from W0 to W1, W2 is scanned, A0 is deleted, W3 is pushed to eu-west-1.
    T2: W2 is deleted, E0 is deleted, X is pushed, Y is pushed.
    T3: W2 is pushed again as it was, Y is deleted, X is archived."""
    config = tmp_path / "inventory.toml"
    config.write_text(
        "\n".join(
            f'[[registries]]\nname = "{name}"\ntype = "{kind}"\naccount_id = "{PROD}"\nregions = {regions}\n'
            f'role_arn = "arn:aws:iam::{PROD}:role/reader"\nendpoint_url = "{emulator.url}"\n'
            for name, kind, regions in (("prod", "ecr", f'["{US}", "{EU}"]'), ("public", "ecr-public", f'["{US}"]'))
        )
    )
    monkeypatch.setenv("INVENTORY_DATABASE_URL", db_url)
    admin.put_images(PROD, US, "app/web", [image(W0, "prod", "v1"), image(W1, "v2"), image(W2)])
    admin.put_images(PROD, US, "app/api", [image(A0, "prod")])
    admin.put_images(PROD, EU, "app/web", [image(E0, "v1")])
    admin.put_images(PROD, US, "app/web", [image(W0, "prod")], registry_type="ecr-public")
    engine = create(db_url)
    with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as client:
        world = World(admin, aws, client, engine, config, [])
        world.apply()

        admin.set_image(PROD, US, "app/web", W1, imageTags=["prod", "v2"])
        admin.set_image(PROD, US, "app/web", W2, imageScanStatus={"status": "COMPLETE", "description": "done"},
                        imageScanFindingsSummary={"findingSeverityCounts": {"HIGH": 2}})  # fmt: skip
        world.delete(US, "app/api", A0)
        admin.put_images(PROD, EU, "app/web", [image(W3, "v2")])
        world.apply()

        world.delete(US, "app/web", W2)
        world.delete(EU, "app/web", E0)
        admin.put_images(PROD, US, "app/web", [image(X, "v3"), image(Y, "tmp")])
        world.apply()

        admin.put_images(PROD, US, "app/web", [image(W2, imageScanStatus={"status": "COMPLETE", "description": "done"},
                         imageScanFindingsSummary={"findingSeverityCounts": {"HIGH": 2}})])  # fmt: skip
        world.delete(US, "app/web", Y)
        admin.set_image(PROD, US, "app/web", X, imageStatus="ARCHIVED", lastArchivedAt="2026-06-01T00:00:00Z")
        world.apply()
        yield world
    engine.dispose()


def diff(world: World, since: str, until: str, first: int | None = None, after: str | None = None,
         **filter: Any) -> dict[str, Any]:  # fmt: skip
    body = gql(world.client, DIFF, **{"from": since, "to": until}, first=first, after=after, filter=filter or None)
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["diff"]
    return found


def error(world: World, since: str, until: str, **variables: Any) -> tuple[str, str]:
    body = gql(world.client, DIFF, **{"from": since, "to": until}, **variables)
    assert body.get("errors"), body
    first = body["errors"][0]
    assert first["message"]
    return str(first["extensions"]["code"]), str(first["message"])


def kinds(found: dict[str, Any]) -> dict[tuple[str, str, str, str], str]:
    return {(n["registryType"], n["region"], n["repositoryName"], n["imageDigest"]): n["kind"] for n in found["nodes"]}


def changes(found: dict[str, Any], digest: str, region: str = US) -> dict[str, list[Any]]:
    (node,) = [n for n in found["nodes"] if n["imageDigest"] == digest and n["region"] == region]
    return {c["field"]: [c["before"], c["after"]] for c in node["changes"]}


def test_a_diff_is_the_net_change_of_each_image(world: World) -> None:
    t0, _, _, t3 = world.times
    found = diff(world, t0, t3)
    assert kinds(found) == {
        ("ECR", US, "app/web", W0): "CHANGED",
        ("ECR", US, "app/web", W1): "CHANGED",
        ("ECR", US, "app/web", W2): "CHANGED",  # scanned, deleted and restored: only the scan remains
        ("ECR", US, "app/api", A0): "REMOVED",
        ("ECR", EU, "app/web", W3): "ADDED",
        ("ECR", EU, "app/web", E0): "REMOVED",
        ("ECR", US, "app/web", X): "ADDED",
    }  # Y came and went inside the window; the public W0 never changed
    assert changes(found, W0) == {"image_tags": [["prod", "v1"], ["v1"]]}
    assert changes(found, W1) == {"image_tags": [["v2"], ["prod", "v2"]]}
    assert changes(found, W2) == {
        "image_scan_status": [None, "COMPLETE"],
        "image_scan_status_description": [None, "done"],
        "finding_severity_counts": [None, {"HIGH": 2}],
    }
    assert changes(found, A0) == {
        "image_tags": [["prod"], None],
        "image_size_in_bytes": [1000, None],
        "image_pushed_at": ["2026-01-01T00:00:00+00:00", None],
        "image_manifest_media_type": ["application/vnd.docker.distribution.manifest.v2+json", None],
        "image_status": ["ACTIVE", None],
    }
    added = changes(found, X)
    assert added["image_tags"] == [None, ["v3"]]
    assert added["image_status"] == [None, "ARCHIVED"]
    assert added["last_archived_at"] == [None, "2026-06-01T00:00:00+00:00"]
    assert all(before is None for before, _ in added.values())
    # In identity order: the registry type, the registry id, the region, the repository, the digest.
    order = [(n["registryType"], n["registryId"], n["region"], n["repositoryName"], n["imageDigest"])
             for n in found["nodes"]]  # fmt: skip
    assert order == sorted(order)


def test_a_window_sees_only_what_changed_inside_it(world: World) -> None:
    t0, t1, t2, t3 = world.times
    assert kinds(diff(world, t1, t2)) == {
        ("ECR", US, "app/web", W2): "REMOVED",
        ("ECR", EU, "app/web", E0): "REMOVED",
        ("ECR", US, "app/web", X): "ADDED",
        ("ECR", US, "app/web", Y): "ADDED",
    }
    # W2 deleted and restored as it was, Y added and removed: neither is a net change.
    found = diff(world, t1, t3)
    assert kinds(found) == {
        ("ECR", EU, "app/web", E0): "REMOVED",
        ("ECR", US, "app/web", X): "ADDED",
    }
    assert kinds(diff(world, t0, t1)) == {
        ("ECR", US, "app/web", W0): "CHANGED",
        ("ECR", US, "app/web", W1): "CHANGED",
        ("ECR", US, "app/web", W2): "CHANGED",
        ("ECR", US, "app/api", A0): "REMOVED",
        ("ECR", EU, "app/web", W3): "ADDED",
    }
    assert changes(diff(world, t2, t3), X) == {
        "image_status": ["ACTIVE", "ARCHIVED"],
        "last_archived_at": [None, "2026-06-01T00:00:00+00:00"],
    }
    # Between two times with no sync in between, nothing changed.
    later = (datetime.fromisoformat(t3) + timedelta(microseconds=1)).isoformat()
    assert diff(world, t3, later)["nodes"] == []


def test_the_filter_applies_at_either_time(world: World) -> None:
    t0, _, _, t3 = world.times
    # W0 lost prod and W1 gained it; A0 had it when it was removed.
    assert set(kinds(diff(world, t0, t3, tags=["prod"]))) == {
        ("ECR", US, "app/web", W0),
        ("ECR", US, "app/web", W1),
        ("ECR", US, "app/api", A0),
    }
    assert set(kinds(diff(world, t0, t3, regions=[EU]))) == {("ECR", EU, "app/web", W3), ("ECR", EU, "app/web", E0)}
    assert set(kinds(diff(world, t0, t3, repositoryNames=["app/a*"]))) == {("ECR", US, "app/api", A0)}
    assert set(kinds(diff(world, t0, t3, imageStatus="ARCHIVED"))) == {("ECR", US, "app/web", X)}
    assert set(kinds(diff(world, t0, t3, minSeverity="HIGH"))) == {("ECR", US, "app/web", W2)}
    assert diff(world, t0, t3, registryTypes=["ECR_PUBLIC"])["nodes"] == []


def test_a_diff_pages_by_identity(world: World) -> None:
    t0, _, _, t3 = world.times
    whole = diff(world, t0, t3)
    assert whole["nextToken"] is None and not whole["pageInfo"]["hasNextPage"]
    seen: list[str] = []
    after = None
    while True:
        found = diff(world, t0, t3, first=2, after=after)
        assert len(found["nodes"]) <= 2
        seen += [n["imageDigest"] for n in found["nodes"]]
        assert [e["node"]["imageDigest"] for e in found["edges"]] == [n["imageDigest"] for n in found["nodes"]]
        info = found["pageInfo"]
        assert info["hasPreviousPage"] is (after is not None)
        assert found["nextToken"] == (info["endCursor"] if info["hasNextPage"] else None)
        assert info["endCursor"] == found["edges"][-1]["cursor"]
        after = found["nextToken"]
        if after is None:
            break
    assert seen == [n["imageDigest"] for n in whole["nodes"]]

    # A cursor is bound to the two times and the filter.
    cursor = diff(world, t0, t3, first=1)["nextToken"]
    assert cursor is not None
    for since, until, filter in ((t0, t3, {"tags": ["prod"]}), (world.times[1], t3, None), (t0, world.times[2], None)):
        code, message = error(world, since, until, first=1, after=cursor, filter=filter)
        assert code == "InvalidParameterException" and "another query" in message
    code, _ = error(world, t0, t3, after="not-a-cursor")
    assert code == "InvalidParameterException"


def test_every_validation_error_has_a_code_and_a_message(world: World) -> None:
    t0, t1, _, t3 = world.times
    assert error(world, t3, t0)[0] == "InvalidParameterException"
    assert error(world, t1, t1)[0] == "InvalidParameterException"
    future = (datetime.fromisoformat(t3) + timedelta(days=1)).isoformat()
    code, message = error(world, t0, future)
    assert code == "InvalidParameterException" and "future" in message
    code, message = error(world, t0[:19], t3)  # no offset: which time is meant is not known
    assert code == "InvalidParameterException" and message.startswith("from:")
    for first in (0, 1001):
        assert error(world, t0, t3, first=first)[0] == "InvalidParameterException"
    with world.engine.begin() as connection:
        connection.execute(text("UPDATE history_horizon SET since = :t"), {"t": t1})
    code, message = error(world, t0, t3)
    assert code == "HistoryNotRetained"
    assert t1[:10] in message
    assert diff(world, t1, t3)["nodes"]  # from the horizon on, the past is known
