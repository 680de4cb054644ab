"""Webhooks: the change feed delivered to real HTTP receivers by a real worker, against the emulator.

Every body a receiver gets is verified with ``standardwebhooks.Webhook.verify`` and validated
against its JSON Schema in ``schema/webhooks/``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from dbview import DatabaseView
from sqlalchemy import Engine, text
from standardwebhooks import Webhook
from test_worker import wait_until

from inventory.db import create
from inventory.retention import prune_webhook_deliveries
from inventory.testing import AdminClient, Emulator
from inventory.testing.receiver import Received, Receiver, Reply
from inventory.webhooks import dispatch
from inventory.webhooks.delivery import Answer, Signer, attempt, client, next_attempt, parse_retry_after, proxy_for
from inventory.webhooks.payloads import MAX_PAYLOAD, TYPES
from inventory.worker.loop import Worker, WorkerOptions

ACCOUNT, OTHER, US = "111111111111", "222222222222", "us-east-1"
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
SECOND = "whsec_" + base64.b64encode(b"s" * 32).decode()
SCHEMAS = Path(__file__).parent.parent / "schema" / "webhooks"


def schema_of(type_: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{type_}.json").read_text())


def received_events(receiver: Receiver, secrets: tuple[str, ...] = (SECRET,)) -> list[dict[str, Any]]:
    """Every body received, each verified with every secret and valid against its type's schema."""
    found = []
    for request in receiver.snapshot():
        for secret in secrets:
            payload = Webhook(secret).verify(request.body, request.headers)
        jsonschema.validate(payload, schema_of(payload["type"]))
        found.append({**payload, "webhook-id": request.headers["webhook-id"]})
    return found


@dataclass
class Hooks(DatabaseView):
    """A worker (in this process) on a fresh database, the emulator it reads, and an inventory file."""

    engine: Engine
    admin: AdminClient
    endpoint: str
    config: Path
    monkeypatch: pytest.MonkeyPatch
    registries: list[tuple[str, str]] = field(default_factory=lambda: [("prod", ACCOUNT)])
    threads: list[tuple[threading.Thread, threading.Event, Worker]] = field(default_factory=list)

    def write(self, *webhooks: str) -> None:
        text = "".join(
            f'[[registries]]\nname = "{name}"\naccount_id = "{account}"\nregions = ["{US}"]\n'
            f'endpoint_url = "{self.endpoint}"\n'
            for name, account in self.registries
        )
        self.config.write_text(text + "".join(webhooks))

    def start(self, **options: Any) -> Worker:
        settings = {"interval": 1.0, "concurrency": 2, "lease": 5.0, "webhook_timeout": 2.0,
                    "webhook_retry_scale": 0.0002, **options}  # fmt: skip
        worker = Worker(self.engine, self.config, WorkerOptions(**settings), name=f"test:{len(self.threads)}")
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        self.threads.append((thread, stop, worker))
        return worker

    def stop(self) -> None:
        for _, stop, _ in self.threads:
            stop.set()
        for thread, _, _ in self.threads:
            thread.join(timeout=30)
        self.threads.clear()

    def aws_delete(self, digests: list[str], repository: str = "app/web") -> None:
        """Delete images through ECR's own API (BatchDeleteImage), as a user would."""
        ecr = boto3.client("ecr", endpoint_url=self.endpoint, region_name=US)
        ecr.batch_delete_image(
            registryId=ACCOUNT, repositoryName=repository, imageIds=[{"imageDigest": d} for d in digests]
        )

    def feed(self) -> list[Any]:
        return self.rows("SELECT id, type, image_digest, repository_name, backfill FROM image_events ORDER BY id")


def webhook(name: str, url: str, **keys: Any) -> str:
    lines = [f'[[webhooks]]\nname = "{name}"\nurl = "{url}"\nsecret_env = "HOOK_SECRET"\n']
    lines += [f"{key} = {json.dumps(value)}\n" for key, value in keys.items()]
    return "".join(lines)


@pytest.fixture
def hooks(
    admin: AdminClient, emulator: Emulator, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Hooks]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    engine = create(db_url)
    running = Hooks(engine, admin, emulator.url, tmp_path / "inventory.toml", monkeypatch)
    yield running
    running.stop()
    engine.dispose()


def push(hooks: Hooks, repository: str, *tags: str, account: str = ACCOUNT, **detail: Any) -> str:
    """A new image (a digest of its own), with ``tags`` and any other ImageDetail fields."""
    digest = "sha256:" + random.randbytes(32).hex()
    image = {"imageDigest": digest, "imageTags": list(tags), **detail}
    return hooks.admin.put_images(account, US, repository, [image])[0]


def test_a_first_sync_is_summarised_then_each_change_is_sent_signed(hooks: Hooks) -> None:
    for i in range(3):
        push(hooks, "app/web", f"v{i}")
    push(hooks, "app/api", "v0")
    with Receiver() as receiver:
        hooks.write(webhook("security", receiver.url))
        hooks.start()
        wait_until(lambda: len(receiver.snapshot()) >= 2, what="the backfill summaries")
        summaries = received_events(receiver)
        assert sorted((e["type"], e["data"]["repositoryName"], e["data"]["imagesAdded"]) for e in summaries) == [
            ("scope.backfilled", "app/api", 1),
            ("scope.backfilled", "app/web", 3),
        ]
        digest = push(hooks, "app/web", "v9")
        wait_until(lambda: any(e["type"] == "image.added" for e in received_events(receiver)), what="image.added")
        added = next(e for e in received_events(receiver) if e["type"] == "image.added")
        assert added["data"]["imageDigest"] == digest
        assert added["data"]["tagsAdded"] == ["v9"] and added["data"]["backfill"] is False
        assert added["data"]["image"]["imageTags"] == ["v9"] and added["data"]["image"]["imageDigest"] == digest
        event_id = int(base64.b64decode(added["webhook-id"]).decode().split(":")[1])
        assert hooks.scalar("SELECT type FROM image_events WHERE id = :id", id=event_id) == "image.added"


def test_an_event_held_back_by_an_older_transaction_is_sent_once_it_ends(hooks: Hooks) -> None:
    """The feed hides an event while an older transaction is in progress; that one's end notifies no one
    (it wrote no events), and no poll comes for an hour: the dispatcher's own re-reads find the event."""
    hooks.monkeypatch.setattr(dispatch, "POLL_SECONDS", 3600.0)
    push(hooks, "app/web", "v0")
    with Receiver() as receiver:
        hooks.write(webhook("held", receiver.url, types=["image.added"], backfill=True))
        hooks.start()
        wait_until(lambda: len(receiver.snapshot()) == 1, what="the first image")
        with hooks.engine.connect() as older, older.begin():
            older.execute(text("SELECT pg_current_xact_id()"))  # an xid older than the next sync's
            digest = push(hooks, "app/web", "v1")
            count = "SELECT count(*) FROM image_events WHERE image_digest = :digest"
            wait_until(lambda: hooks.scalar(count, digest=digest) == 1, what="the sync's event")
            time.sleep(0.5)  # the dispatcher was woken by the sync's commit, and read
            assert hooks.scalar("SELECT count(*) FROM webhook_deliveries") == 1  # hidden, so not yet written
        wait_until(lambda: len(receiver.snapshot()) == 2, what="the held-back event")
    assert received_events(receiver)[1]["data"]["imageDigest"] == digest


def deliveries(hooks: Hooks) -> list[Any]:
    return hooks.rows("SELECT id, type, state, attempts, message_id FROM webhook_deliveries ORDER BY id")


def image_event_ids(hooks: Hooks) -> set[str]:
    """The webhook-ids of every image event in the feed (GraphQL node ids)."""
    ids = hooks.rows("SELECT id FROM image_events WHERE image_digest IS NOT NULL")
    return {base64.b64encode(f"ImageEvent:{row.id}".encode()).decode() for row in ids}


def test_a_receiver_down_then_up_gets_every_event(hooks: Hooks) -> None:
    for i in range(4):
        push(hooks, "app/web", f"v{i}")
    receiver = Receiver().reserve()  # its port, nobody listening yet
    hooks.write(webhook("all", receiver.url, backfill=True))
    hooks.start()
    wait_until(lambda: hooks.scalar("SELECT count(*) FROM webhook_attempts") >= 4, what="failed attempts")
    assert {row.state for row in deliveries(hooks)} == {"pending"}  # refused: retried, not lost
    errors = hooks.rows("SELECT status_code, error FROM webhook_attempts")
    assert all(status is None and "Connect" in error for status, error in errors), errors
    push(hooks, "app/web", "late")
    with receiver:
        wanted = image_event_ids(hooks)
        wait_until(lambda: {e["webhook-id"] for e in received_events(receiver)} >= image_event_ids(hooks),
                   what="every event")  # fmt: skip
    assert len(wanted) >= 4
    wait_until(lambda: {row.state for row in deliveries(hooks)} == {"delivered"}, what="the outcomes written")
    assert hooks.scalar("SELECT last_success_at IS NOT NULL AND failing_since IS NULL FROM webhook_endpoints")


def test_server_errors_are_retried_until_a_2xx(hooks: Hooks) -> None:
    push(hooks, "app/web", "v1")
    answers = iter([500, 503, 204])

    def answer(_: Received) -> Reply:
        return Reply(next(answers, 204))

    with Receiver(answer) as receiver:
        hooks.write(webhook("flaky", receiver.url, backfill=True, types=["image.added"]))
        hooks.start()
        wait_until(lambda: [row.state for row in deliveries(hooks)] == ["delivered"], what="the delivery")
    ids = {request.headers["webhook-id"] for request in receiver.snapshot()}
    assert len(receiver.snapshot()) == 3 and len(ids) == 1  # one message, the same webhook-id on each attempt
    attempts = hooks.rows("SELECT status_code, error FROM webhook_attempts ORDER BY id")
    assert [a.status_code for a in attempts] == [500, 503, 204]
    assert attempts[0].error.startswith("HTTP 500") and attempts[2].error is None
    assert hooks.scalar("SELECT retried_total FROM webhook_endpoints") == 2


def test_410_disables_the_endpoint(hooks: Hooks) -> None:
    push(hooks, "app/web", "v1")
    with Receiver(lambda _: Reply(410)) as receiver:
        hooks.write(webhook("gone", receiver.url, backfill=True))
        hooks.start()
        wait_until(lambda: hooks.rows("SELECT status FROM webhook_endpoints") == [("disabled",)], what="disabled")
        assert hooks.scalar("SELECT disabled_reason FROM webhook_endpoints") == "gone"
        seen = len(receiver.snapshot())
        push(hooks, "app/web", "v2")
        wait_until(lambda: hooks.scalar("SELECT count(*) FROM image_events WHERE type = 'image.added' "
                                        "AND NOT backfill") == 1, what="the next sync")  # fmt: skip
        threading.Event().wait(2)
        assert len(receiver.snapshot()) == seen  # nothing more after the 410 (but what was in flight with it)
        assert seen <= 2


def test_a_hung_receiver_times_out_and_is_retried(hooks: Hooks) -> None:
    push(hooks, "app/web", "v1")
    calls = Counter[str]()

    def answer(request: Received) -> Reply:
        calls["n"] += 1
        return Reply(204, delay=3.0 if calls["n"] == 1 else 0.0)

    with Receiver(answer) as receiver:
        hooks.write(webhook("slow", receiver.url, backfill=True, types=["image.added"]))
        hooks.start(webhook_timeout=1.0)
        wait_until(lambda: [row.state for row in deliveries(hooks)] == ["delivered"], what="the delivery")
    attempts = hooks.rows("SELECT status_code, error, duration_ms FROM webhook_attempts ORDER BY id")
    assert attempts[0].status_code is None and attempts[0].error == "no answer within 1s"
    assert attempts[0].duration_ms >= 900  # it waited the timeout out, no less
    assert attempts[-1].status_code == 204
    assert len(receiver.snapshot()) == 2


def test_filters_choose_what_each_webhook_is_sent(hooks: Hooks) -> None:
    hooks.registries = [("prod", ACCOUNT), ("staging", OTHER)]
    push(hooks, "payments/api", "v1")
    push(hooks, "web/site", "v1")
    push(hooks, "payments/api", "v1", account=OTHER)
    receivers = {name: Receiver().start() for name in ("types", "registries", "repositories", "severity")}
    try:
        hooks.write(
            webhook("types", receivers["types"].url, types=["image.removed"], backfill=True),
            webhook("registries", receivers["registries"].url, registries=["staging"], backfill=True,
                    types=["image.added"]),
            webhook("repositories", receivers["repositories"].url, repositories=["payments/*"], backfill=True,
                    types=["image.added"]),
            webhook("severity", receivers["severity"].url, min_severity="HIGH", backfill=True, types=["image.added"]),
        )  # fmt: skip
        hooks.start()
        critical = push(hooks, "web/site", "bad", imageScanFindingsSummary={"findingSeverityCounts": {"CRITICAL": 1}})
        push(hooks, "web/site", "fine", imageScanFindingsSummary={"findingSeverityCounts": {"LOW": 3}})
        wait_until(lambda: hooks.scalar("SELECT count(*) FROM image_events WHERE type = 'image.added'") == 5,
                   what="the second sync")  # fmt: skip
        wait_until(lambda: hooks.scalar("SELECT count(*) FROM webhook_endpoints w WHERE cursor_xid >= "
                                        "(SELECT max(xid::text::bigint) FROM image_events)") == 4,
                   what="every webhook past the feed's end")  # fmt: skip
        wait_until(lambda: hooks.scalar("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'") == 0,
                   what="every delivery")  # fmt: skip

        def got(name: str) -> set[tuple[str, str, str]]:
            return {(e["type"], e["data"]["registryId"], e["data"]["repositoryName"])
                    for e in received_events(receivers[name])}  # fmt: skip

        assert got("types") == set()
        assert got("registries") == {("image.added", OTHER, "payments/api")}
        assert got("repositories") == {("image.added", ACCOUNT, "payments/api"), ("image.added", OTHER, "payments/api")}
        assert {e["data"]["imageDigest"] for e in received_events(receivers["severity"])} == {critical}
    finally:
        for receiver in receivers.values():
            receiver.stop()


def test_each_image_s_events_arrive_in_feed_order_under_concurrency(hooks: Hooks) -> None:
    digests = [push(hooks, "app/web", f"v{i}") for i in range(12)]

    def answer(_: Received) -> Reply:
        return Reply(204, delay=random.uniform(0, 0.03))

    with Receiver(answer) as receiver:
        hooks.write(webhook("ordered", receiver.url, backfill=True, concurrency=8))
        hooks.start()
        wait_until(lambda: hooks.scalar("SELECT count(*) FROM image_events WHERE type = 'image.added'") == 12,
                   what="the first sync")  # fmt: skip
        for round_ in range(3):  # each image: added, then retagged twice, then removed
            for i, digest in enumerate(digests):
                hooks.admin.set_image(ACCOUNT, US, "app/web", digest, imageTags=[f"v{i}-r{round_}"])
            wait_until(lambda r=round_: hooks.scalar("SELECT count(*) FROM image_events WHERE type = 'image.changed'")
                       >= 12 * (r + 1), what=f"round {round_}")  # fmt: skip
        hooks.aws_delete(digests)
        wait_until(lambda: hooks.scalar("SELECT count(*) FROM image_events WHERE type = 'image.removed'") == 12,
                   what="the removals")  # fmt: skip
        wait_until(lambda: {e["webhook-id"] for e in received_events(receiver)} >= image_event_ids(hooks),
                   what="every event")  # fmt: skip
    order = {row.id: n for n, row in enumerate(hooks.feed())}
    first_seen: dict[str, list[int]] = {}
    seen: set[str] = set()
    for event in received_events(receiver):
        if event["webhook-id"] in seen or event["data"]["imageDigest"] is None:
            continue
        seen.add(event["webhook-id"])
        first_seen.setdefault(event["data"]["imageDigest"], []).append(order[event["data"]["position"][1]])
    assert set(first_seen) == set(digests)
    for digest, positions in first_seen.items():
        assert positions == sorted(positions), digest  # added, changed, changed, changed, removed: in feed order
        assert len(positions) == 5


def test_two_secrets_while_rotating_sign_twice(hooks: Hooks) -> None:
    hooks.monkeypatch.setenv("HOOK_SECRET", f"{SECOND} {SECRET}")
    push(hooks, "app/web", "v1")
    with Receiver() as receiver:
        hooks.write(webhook("rotating", receiver.url))
        hooks.start()
        wait_until(lambda: receiver.snapshot(), what="a delivery")
        request = receiver.snapshot()[0]
        assert len(request.headers["webhook-signature"].split()) == 2
        for secret in (SECRET, SECOND):  # a receiver that knows either one verifies
            assert Webhook(secret).verify(request.body, request.headers)["type"] == "scope.backfilled"
        third = "whsec_" + base64.b64encode(b"t" * 32).decode()
        with pytest.raises(Exception, match="No matching signature"):
            Webhook(third).verify(request.body, request.headers)


WEBHOOKS_QUERY = """query($outcome: DeliveryOutcome) { webhooks { name url status backlog lastSuccessAt failingSince
  deliveries(first: 10, filter: {outcome: $outcome}) { nodes { eventId messageId type outcome
    attempts { at statusCode durationMs error } } } } }"""


def test_operators_see_failures_recover_them_and_ping(hooks: Hooks, db_url: str) -> None:
    from click.testing import CliRunner
    from graphql_client import data
    from starlette.testclient import TestClient

    from inventory.api.app import async_engine, create_app
    from inventory.cli import main

    hooks.monkeypatch.setenv("INVENTORY_DATABASE_URL", db_url)
    push(hooks, "app/web", "v1")
    failing = True

    def answer(_: Received) -> Reply:
        return Reply(500 if failing else 204)

    runner = CliRunner(env={"COLUMNS": "200"})

    def cli(*args: str) -> Any:
        return runner.invoke(main, [*args[:2], "-c", str(hooks.config), *args[2:]])

    with Receiver(answer) as receiver:
        hooks.write(webhook("security", receiver.url, types=["image.added"], backfill=True))
        hooks.start(webhook_retry_scale=0.00001)  # the ten attempts within 3 s
        wait_until(lambda: [r.state for r in deliveries(hooks)] == ["failed"], what="the delivery given up")
        assert deliveries(hooks)[0].attempts == 10 and len(receiver.snapshot()) == 10

        listed = cli("webhooks", "list")
        assert listed.exit_code == 0, listed.output
        assert "security" in listed.output and "failing" in listed.output

        with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as client:
            [found] = data(client, WEBHOOKS_QUERY, outcome="FAILED")["webhooks"]
            assert found["name"] == "security" and found["status"] == "FAILING" and found["backlog"] == 0
            [delivery] = found["deliveries"]["nodes"]
            assert delivery["type"] == "image.added" and delivery["outcome"] == "FAILED"
            assert delivery["eventId"] == delivery["messageId"]
            assert [a["statusCode"] for a in delivery["attempts"]] == [500] * 10
            assert data(client, WEBHOOKS_QUERY, outcome="DELIVERED")["webhooks"][0]["deliveries"]["nodes"] == []
            metrics = client.get("/metrics").text
            assert 'inventory_webhook_deliveries_total{outcome="failed",webhook="security"} 1.0' in metrics
            assert 'inventory_webhook_deliveries_total{outcome="retried",webhook="security"} 9.0' in metrics
            assert 'inventory_webhook_backlog{webhook="security"} 0.0' in metrics

            failing = False
            recovered = cli("webhooks", "recover", "security", "--since", "1h")
            assert recovered.exit_code == 0, recovered.output
            assert (
                recovered.output.strip() == "security: 0 waiting for a retry sent now, 1 failed delivery queued again"
            )
            wait_until(lambda: [r.state for r in deliveries(hooks)] == ["delivered"], what="the recovered delivery")
            [found] = data(client, WEBHOOKS_QUERY, outcome=None)["webhooks"]
            assert found["status"] == "ENABLED" and found["failingSince"] is None and found["lastSuccessAt"]

        pinged = cli("webhooks", "test", "security")
        assert pinged.exit_code == 0, pinged.output
        assert pinged.output.startswith("security: HTTP 204 in ")
        ping = received_events(receiver)[-1]
        assert ping["type"] == "webhook.ping" and ping["data"] == {"webhook": "security"}

        unknown = cli("webhooks", "enable", "nope")
        assert unknown.exit_code == 1
        assert "'nope': no such webhook in the inventory file (webhooks: security)" in unknown.output

    hooks.stop()
    attempts = hooks.scalar("SELECT count(*) FROM webhook_attempts")
    assert prune_webhook_deliveries(hooks.engine, 0.001) == attempts + 2  # retention: every attempt, both deliveries
    assert hooks.scalar("SELECT count(*) FROM webhook_deliveries") == 0


WAITING = (
    "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending' AND attempts = 1 "
    "AND next_attempt_at > now() + interval '5 minutes'"
)
"""Deliveries waiting for a retry at least 5 minutes away, after one failed attempt."""


def three_in_backoff(hooks: Hooks, receiver: Receiver) -> None:
    """Three deliveries refused once, each waiting minutes for its retry; the first written 2 hours ago."""
    push(hooks, "app/web", "v0")
    hooks.write(webhook("security", receiver.url, types=["image.added"], backfill=True))
    hooks.start(webhook_retry_scale=120.0)  # after one failure, the next attempt in 8 to 12 minutes
    wait_until(lambda: hooks.scalar(WAITING) == 1, what="the first delivery in backoff")
    with hooks.engine.begin() as connection:  # before the window of --since 1h
        connection.execute(text("UPDATE webhook_deliveries SET created_at = now() - interval '2 hours'"))
    for tag in ("v1", "v2"):
        push(hooks, "app/web", tag)
    wait_until(lambda: hooks.scalar(WAITING) == 3, what="three deliveries in backoff")
    assert len(receiver.snapshot()) == 3


def sent_twice_but_the_first(hooks: Hooks, receiver: Receiver) -> bool:
    """The two in the window delivered (each sent again after its refusal), the first not sent again."""
    first, *recovered = deliveries(hooks)
    sent = Counter(request.headers["webhook-id"] for request in receiver.snapshot())
    return (
        [r.state for r in recovered] == ["delivered", "delivered"]
        and all(sent[r.message_id] >= 2 for r in recovered)
        and (first.state, sent[first.message_id]) == ("pending", 1)
    )


def recover_cli(hooks: Hooks, db_url: str, *args: str) -> str:
    from click.testing import CliRunner

    from inventory.cli import main

    hooks.monkeypatch.setenv("INVENTORY_DATABASE_URL", db_url)
    recovered = CliRunner().invoke(main, ["webhooks", "recover", "-c", str(hooks.config), *args])
    assert recovered.exit_code == 0, recovered.output
    return str(recovered.output.strip())


def test_recover_sends_now_what_waits_for_a_retry(hooks: Hooks, db_url: str) -> None:
    """After an outage, deliveries in backoff are sent at once by ``webhooks recover``, by the worker
    running; the one written before ``--since`` keeps its schedule."""
    failing = True
    with Receiver(lambda _: Reply(500 if failing else 204)) as receiver:
        three_in_backoff(hooks, receiver)
        failing = False
        started = time.monotonic()
        line = recover_cli(hooks, db_url, "security", "--since", "1h")
        assert line == "security: 2 waiting for a retry sent now, 0 failed deliveries queued again"
        wait_until(lambda: sent_twice_but_the_first(hooks, receiver), timeout=20, what="the two sent now")
        assert time.monotonic() - started < 20  # not at their retry, 8 minutes away at least
        assert hooks.scalar(WAITING) == 1  # the first keeps its schedule


def test_recover_makes_what_waits_for_a_retry_due_now(hooks: Hooks, db_url: str) -> None:
    """The same while no worker runs: recover counts and makes due the deliveries in backoff written in
    the window (not the older one, nor again), and the next worker sends them at once."""
    failing = True
    with Receiver(lambda _: Reply(500 if failing else 204)) as receiver:
        three_in_backoff(hooks, receiver)
        hooks.stop()
        failing = False
        line = recover_cli(hooks, db_url, "security", "--since", "1h")
        assert line == "security: 2 waiting for a retry sent now, 0 failed deliveries queued again"
        due = "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= now()"
        assert hooks.scalar(due) == 2 and hooks.scalar(WAITING) == 1
        assert [r.attempts for r in deliveries(hooks)] == [1, 1, 1]  # their schedule goes on from there
        line = recover_cli(hooks, db_url, "security", "--since", "1h")
        assert line == "security: 0 waiting for a retry sent now, 0 failed deliveries queued again"
        started = time.monotonic()
        hooks.start(webhook_retry_scale=120.0)
        wait_until(lambda: sent_twice_but_the_first(hooks, receiver), timeout=20, what="the two sent now")
        assert time.monotonic() - started < 20
        assert hooks.scalar(WAITING) == 1


def test_a_killed_worker_s_webhook_is_taken_over_after_its_lease(
    hooks: Hooks, inventory_env: dict[str, str], tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    for i in range(30):
        push(hooks, "app/web", f"v{i}")
    with Receiver(lambda _: Reply(204, delay=0.15)) as receiver:
        hooks.write(webhook("slow", receiver.url, backfill=True, concurrency=1))
        env = {**inventory_env, "HOOK_SECRET": SECRET, "INVENTORY_WEBHOOK_RETRY_SCALE": "0.001"}
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "inventory", "worker", "-c", str(hooks.config), "--lease", "3s"], env=env,
                stdout=(tmp_path / f"worker-{n}.log").open("w"), stderr=subprocess.STDOUT,
            )
            for n in range(2)
        ]  # fmt: skip
        try:
            wait_until(lambda: len(receiver.snapshot()) >= 5, what="deliveries under way")
            owner = hooks.scalar("SELECT owner FROM webhook_endpoints")
            killed = next(w for w in workers if owner.endswith(f":{w.pid}"))
            killed.send_signal(signal.SIGKILL)
            killed.wait()
            wait_until(lambda: {e["webhook-id"] for e in received_events(receiver)} >= image_event_ids(hooks),
                       timeout=90, what="the rest, from the other worker")  # fmt: skip
            taker = hooks.scalar("SELECT owner FROM webhook_endpoints")
            assert taker != owner
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()
    assert len(image_event_ids(hooks)) == 30


def test_every_type_has_a_valid_schema() -> None:
    assert sorted(p.stem for p in SCHEMAS.glob("*.json")) == sorted(TYPES)
    for type_ in TYPES:
        jsonschema.Draft202012Validator.check_schema(schema_of(type_))


def test_an_event_too_large_is_sent_without_its_changes_under_64_kb(hooks: Hooks) -> None:
    push(hooks, "app/web", "v1")
    huge = [f"{n:04d}-" + "t" * 120 for n in range(600)]  # ~75 kB of tags, twice (before and after) in changes
    with Receiver() as receiver:
        hooks.write(webhook("big", receiver.url, types=["image.added"]))
        hooks.start()
        wait_until(lambda: hooks.scalar("SELECT count(*) FROM image_events") >= 2, what="the first sync")
        digest = push(hooks, "app/web", *huge)
        wait_until(lambda: receiver.snapshot(), what="the large event")
    [request] = receiver.snapshot()
    assert len(request.body) < MAX_PAYLOAD
    [event] = received_events(receiver)
    data = event["data"]
    assert data["truncated"] is True and data["imageDigest"] == digest
    assert "changes" not in data and "image" not in data  # read it whole with GraphQL node(id: data.id)
    assert data["id"] == event["webhook-id"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("0", 0.0), ("999999", 86400.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)],
)
def test_retry_after_is_read_as_seconds_or_a_date(header: str, seconds: float | None) -> None:
    assert parse_retry_after(header, datetime.now(UTC)) == seconds


def test_the_retry_schedule_is_the_standard_one() -> None:
    failed = Answer(at=datetime.now(UTC), status_code=500, duration_ms=1, error="HTTP 500")
    delays = [next_attempt(n, failed) for n in range(1, 11)]
    expected = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    assert all(0.8 * e <= d <= 1.2 * e for d, e in zip(delays, expected, strict=False) if d is not None)
    assert delays[-1] is None  # the tenth failure gives up
    throttled = Answer(at=datetime.now(UTC), status_code=429, duration_ms=1, error="HTTP 429", retry_after=30.0)
    assert next_attempt(1, throttled) == 30.0


def test_deliveries_go_through_the_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    target = "http://hooks.invalid/inventory"
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for(target) is None

    async def post_once() -> Answer:
        async with client(target, 1) as http:
            return await attempt(http, target, Signer((SECRET,)), "msg_proxied", "{}", 5)

    with Receiver() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/hooks"))
        answer = asyncio.run(post_once())
    assert answer.status_code == 204, answer
    [request] = proxy.snapshot()  # the proxy got it, for the webhook's host
    assert request.headers["host"] == "hooks.invalid" and request.headers["webhook-id"] == "msg_proxied"
    monkeypatch.setenv("NO_PROXY", "example.com,hooks.invalid")
    assert proxy_for(target) is None and proxy_for("http://hooks.example.org/x") == proxy.url.removesuffix("/hooks")


def test_retry_after_is_honoured(hooks: Hooks) -> None:
    push(hooks, "app/web", "v1")
    answers = iter([Reply(429, {"Retry-After": "2"}), Reply(503, {"Retry-After": "1"})])
    with Receiver(lambda _: next(answers, Reply(204))) as receiver:
        hooks.write(webhook("throttled", receiver.url, types=["image.added"], backfill=True))
        hooks.start()  # its schedule compressed to milliseconds: only Retry-After spaces the attempts
        wait_until(lambda: len(receiver.snapshot()) == 3, what="three attempts")
    first, second, third = (request.at for request in receiver.snapshot())
    assert second - first >= 1.9 and third - second >= 0.9


def test_an_endpoint_failing_for_five_days_is_disabled(hooks: Hooks) -> None:
    push(hooks, "app/web", "v0")
    with Receiver(lambda _: Reply(500)) as receiver:
        hooks.write(webhook("broken", receiver.url, types=["image.added"], backfill=True))
        hooks.start(webhook_retry_scale=0.00001)  # five days are 4.3 s; the whole schedule 2.7 s
        for i in range(1, 40):  # new events keep coming while it keeps failing
            if hooks.rows("SELECT status FROM webhook_endpoints") == [("disabled",)]:
                break
            push(hooks, "app/web", f"v{i}")
            threading.Event().wait(0.5)
        wait_until(lambda: hooks.rows("SELECT status, disabled_reason FROM webhook_endpoints")
                   == [("disabled", "failing")], what="disabled")  # fmt: skip
        failing_since, disabled_at = hooks.rows("SELECT failing_since, disabled_at FROM webhook_endpoints")[0]
        assert (disabled_at - failing_since).total_seconds() >= 4.3
        assert hooks.scalar("SELECT last_success_at FROM webhook_endpoints") is None
        attempts = len(receiver.snapshot())
        threading.Event().wait(2)
        assert len(receiver.snapshot()) == attempts  # nothing more is sent
