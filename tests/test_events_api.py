"""The change feed over GraphQL: ``events``, ``ImageEvent``, ``Image.history`` and ``tagHistory``.

Synced from the emulator with the CLI (real sync, real PostgreSQL), read through the ASGI app.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from graphql_client import data, error
from sqlalchemy import Engine, event, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.cli import main
from inventory.db import create
from inventory.testing import AdminClient, Emulator

PROD, US, EU = "111111111111", "us-east-1", "eu-west-1"
W0, W1, W2, A0, E0, W3 = ("sha256:" + c * 64 for c in "abcdef")
"""app/web (us-east-1): W0 [prod v1], W1 [v2], W2 untagged; app/api: A0 [prod]; app/web (eu-west-1): E0 [v1].
W3 is pushed to eu-west-1 later. The public app/web holds W0 too, tagged [prod]."""

EVENT = (
    "id type occurredAt registryType registryId region repositoryName imageDigest backfill "
    "tagsAdded tagsRemoved changes { field before after }"
)
FEED = (
    "query($first: Int, $after: String, $filter: EventFilter) {"
    " events(first: $first, after: $after, filter: $filter) {"
    "  pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nextToken"
    "  edges { cursor node { " + EVENT + " } } nodes { id }"
    " }"
    "}"
)
NODE = "query($id: ID!) { node(id: $id) { id ... on ImageEvent { " + EVENT + " image { imageDigest } } } }"


def config_text(endpoint: str) -> str:
    return "\n".join(
        f'[[registries]]\nname = "{name}"\ntype = "{kind}"\naccount_id = "{PROD}"\nregions = {regions}\n'
        f'role_arn = "arn:aws:iam::{PROD}:role/reader"\nendpoint_url = "{endpoint}"\n'
        for name, kind, regions in (("prod", "ecr", f'["{US}", "{EU}"]'), ("public", "ecr-public", f'["{US}"]'))
    )


@dataclass
class World:
    """The emulator, the inventory synced from it, and the API on top."""

    admin: AdminClient
    aws: Any
    client: TestClient
    engine: Engine
    config: Path

    def apply(self) -> None:
        result = CliRunner().invoke(main, ["apply", "-c", str(self.config), "--auto-approve"], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def retag_delete_and_push(self) -> None:
        """``prod`` moves from W0 to W1, A0 is deleted, W3 is pushed to eu-west-1; then apply."""
        self.admin.set_image(PROD, US, "app/web", W1, imageTags=["prod", "v2"])
        self.aws("ecr", account=PROD).batch_delete_image(repositoryName="app/api", imageIds=[{"imageDigest": A0}])
        self.admin.put_images(PROD, EU, "app/web", [{"imageDigest": W3, "imageTags": ["v2"]}])
        self.apply()

    def delete_w1(self) -> None:
        self.aws("ecr", account=PROD).batch_delete_image(repositoryName="app/web", imageIds=[{"imageDigest": W1}])
        self.apply()


@pytest.fixture
def world(
    admin: AdminClient, emulator: Emulator, aws: Any, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    config = tmp_path / "inventory.toml"
    config.write_text(config_text(emulator.url))
    monkeypatch.setenv("INVENTORY_DATABASE_URL", db_url)
    admin.put_images(PROD, US, "app/web", [
        {"imageDigest": W0, "imageTags": ["prod", "v1"], "imagePushedAt": "2026-01-01T00:00:00Z"},
        {"imageDigest": W1, "imageTags": ["v2"], "imagePushedAt": "2026-01-02T00:00:00Z"},
        {"imageDigest": W2, "imageTags": [], "imagePushedAt": "2026-01-03T00:00:00Z"},
    ])  # fmt: skip
    admin.put_images(PROD, US, "app/api", [{"imageDigest": A0, "imageTags": ["prod"]}])
    admin.put_images(PROD, EU, "app/web", [{"imageDigest": E0, "imageTags": ["v1"]}])
    admin.put_images(PROD, US, "app/web", [{"imageDigest": W0, "imageTags": ["prod"]}], registry_type="ecr-public")
    engine = create(db_url)
    with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as client:
        found = World(admin, aws, client, engine, config)
        found.apply()
        yield found
    engine.dispose()


def page(client: TestClient, first: int | None = None, after: str | None = None, **filter: Any) -> dict[str, Any]:
    found: dict[str, Any] = data(client, FEED, first=first, after=after, filter=filter or None)["events"]
    return found


def read_feed(
    client: TestClient, first: int, after: str | None = None, **filter: Any
) -> tuple[list[dict[str, Any]], str | None]:
    """Every event after ``after``, page by page: (the events, the endCursor to resume from)."""
    events: list[dict[str, Any]] = []
    while True:
        found = page(client, first, after, **filter)
        nodes = [edge["node"] for edge in found["edges"]]
        assert [n["id"] for n in found["nodes"]] == [n["id"] for n in nodes]
        assert len(nodes) <= first
        events += nodes
        info = found["pageInfo"]
        assert found["nextToken"] == (info["endCursor"] if info["hasNextPage"] else None)
        if nodes:
            assert info["endCursor"] == found["edges"][-1]["cursor"]
            assert info["startCursor"] == found["edges"][0]["cursor"]
        else:
            assert info["endCursor"] == after and not info["hasNextPage"]
        after = info["endCursor"]
        if found["nextToken"] is None:
            return events, after


def global_id(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def forged(cursor: str, *key: Any) -> str:
    """``cursor``'s binding with another key."""
    bound_to = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))[0]
    return base64.urlsafe_b64encode(json.dumps([bound_to, *key]).encode()).decode().rstrip("=")


def event_id(node_id: str) -> int:
    kind, _, value = base64.b64decode(node_id).decode().partition(":")
    assert kind == "ImageEvent"
    return int(value)


def summary(events: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    """What each event is about: (type, registry type, region, repository, digest)."""
    return Counter((e["type"], e["registryType"], e["region"], e["repositoryName"], e["imageDigest"]) for e in events)


FIRST_SYNC = Counter({
    ("repository.added", "ECR", US, "app/web", None): 1,
    ("repository.added", "ECR", US, "app/api", None): 1,
    ("repository.added", "ECR", EU, "app/web", None): 1,
    ("repository.added", "ECR_PUBLIC", US, "app/web", None): 1,
    ("image.added", "ECR", US, "app/web", W0): 1,
    ("image.added", "ECR", US, "app/web", W1): 1,
    ("image.added", "ECR", US, "app/web", W2): 1,
    ("image.added", "ECR", US, "app/api", A0): 1,
    ("image.added", "ECR", EU, "app/web", E0): 1,
    ("image.added", "ECR_PUBLIC", US, "app/web", W0): 1,
})  # fmt: skip
SECOND_SYNC = Counter({
    ("image.changed", "ECR", US, "app/web", W0): 1,
    ("image.changed", "ECR", US, "app/web", W1): 1,
    ("image.removed", "ECR", US, "app/api", A0): 1,
    ("image.added", "ECR", EU, "app/web", W3): 1,
})  # fmt: skip


# the feed ------------------------------------------------------------------------


def test_the_feed_pages_through_every_event_oldest_first_exactly_once(world: World) -> None:
    events, end = read_feed(world.client, first=3)
    ids = [event_id(e["id"]) for e in events]
    assert ids == [row[0] for row in world.rows("SELECT id FROM image_events ORDER BY xid, id")]
    assert len(set(ids)) == len(ids) == 10
    assert summary(events) == FIRST_SYNC
    assert all(e["backfill"] for e in events)
    assert end is not None

    # The last page: no nextToken, but its endCursor is a place to resume from; an empty poll keeps it.
    last = page(world.client, 100)
    assert last["nextToken"] is None and last["pageInfo"]["hasNextPage"] is False
    assert last["pageInfo"]["endCursor"] == end
    assert last["pageInfo"]["hasPreviousPage"] is False
    empty = page(world.client, 5, end)
    assert empty["nodes"] == [] and empty["nextToken"] is None
    assert empty["pageInfo"]["endCursor"] == end and empty["pageInfo"]["startCursor"] is None
    assert page(world.client)["nodes"] == last["nodes"]  # first: 100 by default

    # A feed that has never had an event (here: a filter nothing matches) has no position yet.
    nothing = page(world.client, 10, types=["repository.removed"])
    assert nothing["nodes"] == [] and nothing["pageInfo"]["endCursor"] is None and nothing["nextToken"] is None


def test_resuming_from_the_end_cursor_returns_exactly_the_new_events(world: World) -> None:
    before, end = read_feed(world.client, first=4)
    world.retag_delete_and_push()
    new, end2 = read_feed(world.client, first=1, after=end)
    assert summary(new) == SECOND_SYNC
    assert not any(e["backfill"] for e in new)
    assert {e["id"] for e in new}.isdisjoint(e["id"] for e in before)
    assert read_feed(world.client, first=2, after=end2) == ([], end2)

    world.delete_w1()
    (removed,), _ = read_feed(world.client, first=10, after=end2)
    assert (removed["type"], removed["imageDigest"], removed["tagsRemoved"]) == ("image.removed", W1, ["prod", "v2"])
    everything, _ = read_feed(world.client, first=1000)
    assert [e["id"] for e in everything] == [e["id"] for e in before + new + [removed]]


def test_each_filter_narrows_the_feed(world: World) -> None:
    world.retag_delete_and_push()
    everything, _ = read_feed(world.client, first=1000)
    assert summary(everything) == FIRST_SYNC + SECOND_SYNC

    def only(**filter: Any) -> Counter[tuple[Any, ...]]:
        events, _ = read_feed(world.client, first=2, **filter)
        assert [e["id"] for e in events] == [e["id"] for e in everything if e in events]  # still oldest first
        return summary(events)

    assert only(types=["image.changed"]) == Counter({k: 1 for k in SECOND_SYNC if k[0] == "image.changed"})
    assert only(types=["repository.added", "image.removed"]) == Counter(
        {k: 1 for k in FIRST_SYNC + SECOND_SYNC if k[0] in ("repository.added", "image.removed")}
    )
    # tags: events whose tags held one of them, before or after
    assert only(tags=["prod"]) == Counter({
        ("image.added", "ECR", US, "app/web", W0): 1,
        ("image.added", "ECR", US, "app/api", A0): 1,
        ("image.added", "ECR_PUBLIC", US, "app/web", W0): 1,
        ("image.changed", "ECR", US, "app/web", W0): 1,  # prod left it
        ("image.changed", "ECR", US, "app/web", W1): 1,  # prod came to it
        ("image.removed", "ECR", US, "app/api", A0): 1,  # it had prod
    })  # fmt: skip
    assert only(tags=["v2", "nope"]) == Counter({
        ("image.added", "ECR", US, "app/web", W1): 1,
        ("image.changed", "ECR", US, "app/web", W1): 1,
        ("image.added", "ECR", EU, "app/web", W3): 1,
    })  # fmt: skip
    assert set(only(repositoryNames=["app/a*"])) == {k for k in FIRST_SYNC + SECOND_SYNC if k[3] == "app/api"}
    assert set(only(repositoryNames=["app/*"])) == set(FIRST_SYNC + SECOND_SYNC)
    assert only(repositoryNames=["app"]) == Counter()
    assert set(only(imageDigests=[W0])) == {
        ("image.added", "ECR", US, "app/web", W0),
        ("image.added", "ECR_PUBLIC", US, "app/web", W0),
        ("image.changed", "ECR", US, "app/web", W0),
    }
    assert set(only(regions=[EU])) == {k for k in FIRST_SYNC + SECOND_SYNC if k[2] == EU}
    assert set(only(registryIds=[PROD])) == set(FIRST_SYNC + SECOND_SYNC)
    assert only(registryIds=["999999999999"]) == Counter()
    assert only(backfill=True) == FIRST_SYNC
    assert only(backfill=False) == SECOND_SYNC
    assert only(backfill=True, types=["image.added"], regions=[EU]) == Counter(
        {("image.added", "ECR", EU, "app/web", E0): 1}
    )

    second = min(e["occurredAt"] for e in everything if not e["backfill"])
    assert only(since=second) == SECOND_SYNC
    assert only(until=second) == FIRST_SYNC
    assert only(since=second.replace("+00:00", ""), types=["image.removed"]) == Counter(
        {("image.removed", "ECR", US, "app/api", A0): 1}
    )  # a time without an offset is UTC


# the events' fields ------------------------------------------------------------------


def test_an_event_tells_what_changed_and_links_its_sync_run_and_image(world: World) -> None:
    world.retag_delete_and_push()
    found = data(
        world.client,
        FEED.replace(
            "nodes { id }",
            "nodes { id type imageDigest syncRun { id status repositoryName region } "
            "image { registryType imageDigest imageTags removedAt } }",
        ),
        first=10,
        filter={"types": ["image.changed", "image.removed"]},
    )["events"]
    by_digest = {e["node"]["imageDigest"]: e["node"] for e in found["edges"]}
    linked = {n["imageDigest"]: n for n in found["nodes"]}

    gained, lost = by_digest[W1], by_digest[W0]
    assert (gained["tagsAdded"], gained["tagsRemoved"]) == (["prod"], [])
    assert (lost["tagsAdded"], lost["tagsRemoved"]) == ([], ["prod"])
    assert {c["field"]: (c["before"], c["after"]) for c in gained["changes"]}["image_tags"] == (["v2"], ["prod", "v2"])
    assert (gained["registryType"], gained["registryId"], gained["region"]) == ("ECR", PROD, US)
    assert gained["backfill"] is False

    run = linked[W1]["syncRun"]
    assert (run["status"], run["repositoryName"], run["region"]) == ("SUCCEEDED", "app/web", US)
    assert linked[W0]["syncRun"] == run  # one sync of app/web wrote both
    assert linked[W1]["image"] == {"registryType": "ECR", "imageDigest": W1, "imageTags": ["prod", "v2"],
                                   "removedAt": None}  # fmt: skip
    removed = linked[A0]["image"]
    assert removed["imageDigest"] == A0 and removed["removedAt"] is not None
    assert by_digest[A0]["changes"] == [{"field": "image_tags", "before": ["prod"], "after": None}]
    assert by_digest[A0]["tagsRemoved"] == ["prod"]

    # The public image of the same digest is its own: the event's image is that of its registry type.
    public = data(
        world.client,
        FEED.replace("nodes { id }", "nodes { registryType image { registryType imageTags } }"),
        filter={"imageDigests": [W0], "types": ["image.added"]},
    )["events"]["nodes"]
    assert sorted((n["registryType"], n["image"]["registryType"], n["image"]["imageTags"]) for n in public) == [
        ("ECR", "ECR", ["v1"]),
        ("ECR_PUBLIC", "ECR_PUBLIC", ["prod"]),
    ]

    # A repository event has no image; node(id) finds an event again.
    repo = page(world.client, 1, types=["repository.added"])["edges"][0]["node"]
    assert data(world.client, NODE, id=repo["id"])["node"] == {**repo, "image": None}
    assert data(world.client, NODE, id=global_id("ImageEvent:999999"))["node"] is None
    assert data(world.client, NODE, id=global_id("ImageEvent:x"))["node"] is None

    # Once retention pruned its sync run, an event has no syncRun.
    with world.engine.begin() as connection:
        connection.execute(text("DELETE FROM sync_runs WHERE id = :id"), {"id": int(run["id"])})
    again = data(
        world.client,
        FEED.replace("nodes { id }", "nodes { syncRun { id } }"),
        filter={"imageDigests": [W1], "backfill": False},
    )
    assert again["events"]["nodes"] == [{"syncRun": None}]
    assert data(world.client, "{ syncRuns(first: 100) { nodes { id } } }")["syncRuns"]["nodes"]  # the others stay


def test_an_events_page_costs_one_statement_per_kind_of_object(world: World, db_url: str) -> None:
    world.retag_delete_and_push()
    statements: list[str] = []
    counting = async_engine(db_url)
    event.listen(counting.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with TestClient(create_app(counting, allow_anonymous=True)) as counted:
        found = data(counted, "{ events { nodes { syncRun { id } image { imageDigest repository { region } } } } }")
    assert len(found["events"]["nodes"]) == 14
    assert len({n["syncRun"]["id"] for n in found["events"]["nodes"]}) > 1
    assert len(statements) <= 4, statements  # the page, the runs, the images, their repositories


# histories ---------------------------------------------------------------------------

HISTORY = """query($digest: String!, $first: Int, $after: String) {
  image(registryId: "REGISTRY", region: "REGION", repositoryName: "app/web", imageDigest: $digest) {
    history(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor } nextToken nodes { type imageDigest tagsAdded tagsRemoved }
    }
  }
}""".replace("REGISTRY", PROD).replace("REGION", US)


def image_history(world: World, digest: str, first: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = None
    while True:
        found = data(world.client, HISTORY, digest=digest, first=first, after=after)["image"]["history"]
        events += found["nodes"]
        after = found["nextToken"]
        if after is None:
            return events


def test_an_images_history_is_newest_first(world: World) -> None:
    world.retag_delete_and_push()
    world.delete_w1()
    w1 = image_history(world, W1, first=1)
    assert [(e["type"], e["tagsAdded"], e["tagsRemoved"]) for e in w1] == [
        ("image.removed", [], ["prod", "v2"]),
        ("image.changed", ["prod"], []),
        ("image.added", ["v2"], []),
    ]
    assert {e["imageDigest"] for e in w1} == {W1}
    assert [e["type"] for e in image_history(world, W0, first=100)] == ["image.changed", "image.added"]
    assert image_history(world, W2, first=2) == [{"type": "image.added", "imageDigest": W2, "tagsAdded": [],
                                                  "tagsRemoved": []}]  # fmt: skip

    # A history's cursor is its image's: another image's history refuses it, as does the feed.
    cursor = data(world.client, HISTORY, digest=W1, first=1)["image"]["history"]["nextToken"]
    assert error(world.client, HISTORY, digest=W0, first=1, after=cursor)[0] == "InvalidParameterException"
    assert error(world.client, FEED, first=1, after=cursor)[0] == "InvalidParameterException"


TAG_HISTORY = """query($repository: String!, $tag: String!, $first: Int, $after: String, $type: RegistryType!) {
  tagHistory(registryId: "REGISTRY", region: "REGION", repositoryName: $repository, tag: $tag, first: $first,
             after: $after, registryType: $type) {
    pageInfo { hasNextPage endCursor } nextToken
    edges { cursor node { imageDigest from until image { imageDigest removedAt } } }
  }
}""".replace("REGISTRY", PROD).replace("REGION", US)


def tag_history(
    world: World, tag: str, repository: str = "app/web", first: int = 1, type: str = "ECR"
) -> list[dict[str, Any]]:
    assignments: list[dict[str, Any]] = []
    after = None
    while True:
        found = data(world.client, TAG_HISTORY, repository=repository, tag=tag, first=first, after=after, type=type)
        connection = found["tagHistory"]
        assignments += [edge["node"] for edge in connection["edges"]]
        after = connection["nextToken"]
        if after is None:
            return assignments


def test_tag_history_follows_a_tag_from_digest_to_digest(world: World) -> None:
    ((start,),) = world.rows(
        "SELECT occurred_at FROM image_events WHERE image_digest = :d AND registry_type = 'ecr'", d=W0
    )
    assert [(a["imageDigest"], a["until"]) for a in tag_history(world, "prod")] == [(W0, None)]

    world.retag_delete_and_push()
    (moved,) = world.rows("SELECT occurred_at FROM image_events WHERE image_digest = :d AND type = 'image.changed' "
                          "AND registry_type = 'ecr'", d=W0)  # fmt: skip
    prod = tag_history(world, "prod")
    assert [(a["imageDigest"], a["from"], a["until"]) for a in prod] == [
        (W1, moved[0].isoformat(), None),
        (W0, start.isoformat(), moved[0].isoformat()),
    ]
    assert [a["image"]["imageDigest"] for a in prod] == [W1, W0]
    assert tag_history(world, "prod", first=100) == prod

    # The tagged image is deleted: its assignment ends then, and nothing holds the tag.
    world.delete_w1()
    (deleted,) = world.rows("SELECT occurred_at FROM image_events WHERE image_digest = :d AND type = 'image.removed'",
                            d=W1)  # fmt: skip
    after_delete = tag_history(world, "prod")
    assert [(a["imageDigest"], a["until"]) for a in after_delete] == [
        (W1, deleted[0].isoformat()),
        (W0, moved[0].isoformat()),
    ]
    assert after_delete[0]["image"]["removedAt"] is not None

    # Other repositories and registry types keep their own tags.
    assert [(a["imageDigest"], a["until"] is None) for a in tag_history(world, "prod", "app/api")] == [(A0, False)]
    assert [(a["imageDigest"], a["until"]) for a in tag_history(world, "prod", type="ECR_PUBLIC")] == [(W0, None)]
    assert tag_history(world, "never") == []
    assert tag_history(world, "prod", "no/such") == []


# validation ------------------------------------------------------------------------


def test_every_validation_error_has_a_code_and_a_message(world: World) -> None:
    client = world.client
    for first in (0, 1001, -1):
        code, message = error(client, FEED, first=first)
        assert code == "InvalidParameterException" and "first" in message
        code, message = error(client, HISTORY, digest=W0, first=first)
        assert code == "InvalidParameterException" and "first" in message
        code, message = error(client, TAG_HISTORY, repository="app/web", tag="prod", first=first, type="ECR")
        assert code == "InvalidParameterException" and "first" in message
    assert page(client, 1000)["nodes"]

    cursor = page(client, 1)["nextToken"]
    code, message = error(client, FEED, first=1, after=cursor, filter={"types": ["image.added"]})
    assert code == "InvalidParameterException" and "another" in message
    code, _ = error(client, FEED, first=1, after="not-a-cursor")
    assert code == "InvalidParameterException"
    code, _ = error(client, TAG_HISTORY, repository="app/web", tag="prod", first=1, after=cursor, type="ECR")
    assert code == "InvalidParameterException"
    tag_cursor = data(client, TAG_HISTORY, repository="app/web", tag="prod", first=1, type="ECR")["tagHistory"][
        "edges"
    ][0]["cursor"]
    code, _ = error(client, TAG_HISTORY, repository="app/web", tag="v1", first=1, after=tag_cursor, type="ECR")
    assert code == "InvalidParameterException"

    # forged keys under a genuine binding: refused, never a server error
    assert error(client, FEED, first=1, after=forged(cursor, -1, 5))[0] == "InvalidParameterException"
    assert error(client, FEED, first=1, after=forged(cursor, 2**64, 5))[0] == "InvalidParameterException"
    assert error(client, FEED, first=1, after=forged(cursor, "1", 5))[0] == "InvalidParameterException"
    naive = forged(tag_cursor, "2026-01-01T00:00:00", W0)
    assert error(client, TAG_HISTORY, repository="app/web", tag="prod", after=naive, type="ECR")[0] == (
        "InvalidParameterException"
    )

    code, message = error(client, FEED, filter={"since": "2026-02-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"})
    assert code == "InvalidParameterException" and "since" in message and "until" in message
    code, message = error(client, FEED, filter={"types": ["image.added", "image.pushed"]})
    assert code == "InvalidParameterException" and "image.pushed" in message
    code, message = error(client, NODE, id=global_id("Nothing:1"))
    assert code == "InvalidParameterException" and message
