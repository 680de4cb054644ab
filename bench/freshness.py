"""Freshness benchmark: ECR's events through SQS vs polling only, on the emulator (as a process of its own).

    python bench/freshness.py [--repositories 1000] [--pushes 40] [--polling-pushes 8] [--polling-window 180]

What a user runs: ``inventory worker`` (which also delivers the webhooks) and ``inventory serve`` as
processes, an inventory file declaring the registry, the emulator's queue of ECR events and a webhook
whose secret is in the worker's environment (``FRESHNESS_WEBHOOK_SECRET``, made up unless set), and a
receiver in this process that checks each request's Standard Webhooks signature with that secret.

1. Events: one worker at ``--interval 1h`` reading the queue. ``--pushes`` pushes (``PutImage`` of a new
   image tagged ``latest``, one repository each), one at a time. For each, from the moment the push
   returned (its event is then in the queue): the image seen through ``/graphql`` by a client asking
   ``image(…)`` every 10 ms with a read token, and its ``image.added`` webhook received with a valid
   signature.
2. Polling only: a second database, and a worker without the queue at ``--interval 60s``; ``--polling-pushes``
   pushes, one at a random moment of each equal slice of ``--polling-window`` seconds (a few intervals),
   seen the same two ways (``--polling-pushes 0`` skips it).

Prints:

    push -> visible in GraphQL, p50 / p99, with events                              (goal p99 <= 2 s)
    push -> verified webhook receipt, p50 / p99, with events                        (goal p99 <= 3 s)
    the same two with polling only at --interval 60s (measured)
    a full round's AWS calls, counted for --repositories, per operation, and scaled to 10,000
    repositories (DescribeImages one per repository, DescribeRepositories one per 1,000)
    an applied event's AWS calls, counted, per operation (its ReceiveMessage included)
    the idle long poll, counted: the time between two ReceiveMessage of the idle worker
    AWS calls per hour for 10,000 repositories with 1 % of them changing per hour: 100 applied events,
    the idle long polls of a whole hour (an upper bound: each event's own receive is counted with the
    event), and a 6 h reconcile, divided by polling every 15 min                    (goal <= 0.05)
    the longest reconcile interval that goal leaves room for
    worker CPU per applied event (user + system, the idle worker's CPU over as long subtracted)

Uses INVENTORY_DATABASE_URL's server, else an embedded one in a temporary home.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import psutil
from scratch import Scratch, free_port, read_token, scratch_database, wait_healthy
from sqlalchemy import Engine, text
from standardwebhooks import Webhook, WebhookVerificationError

from inventory.db import create
from inventory.testing import AdminClient

ACCOUNT, REGION = "111111111111", "us-east-1"
FLEET, CHANGING, RECONCILE, POLL = 10_000, 0.01, 6 * 3600, 15 * 60
REPOSITORIES_PAGE = 1000
"""Repositories per DescribeRepositories page (the sync's page size)."""
SECRET_VARIABLE = "FRESHNESS_WEBHOOK_SECRET"
BENCH_OPERATIONS = {"PutImage"}
"""The bench's own calls: not the worker's."""
SQS_OPERATIONS = {"ReceiveMessage", "DeleteMessageBatch", "DeleteMessage"}
IMAGE = """query($repository: String!, $digest: String!) {
  image(registryId: "111111111111", region: "us-east-1", repositoryName: $repository, imageDigest: $digest) {
    imageDigest } }"""


@contextmanager
def emulator() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory", "emulator", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    match = re.search(r"listening on (\S+)", process.stdout.readline())
    assert match, "the emulator did not start"
    try:
        yield match[1]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait()


@dataclass
class Receiver:
    """A webhook endpoint in this process: the first verified ``image.added`` of each digest, when it came."""

    secret: str
    received: dict[str, float] = field(default_factory=dict)
    rejected: int = 0
    condition: threading.Condition = field(default_factory=threading.Condition)

    def accept(self, body: bytes, headers: dict[str, str]) -> bool:
        at = time.monotonic()
        try:
            event = Webhook(self.secret).verify(body, headers)
        except (WebhookVerificationError, ValueError):
            with self.condition:
                self.rejected += 1
            return False
        if event["type"] == "image.added":
            with self.condition:
                self.received.setdefault(event["data"]["imageDigest"], at)
                self.condition.notify_all()
        return True

    def wait(self, digest: str, timeout: float) -> float:
        """When ``digest``'s webhook came (``time.monotonic()``)."""
        with self.condition:
            if not self.condition.wait_for(lambda: digest in self.received, timeout):
                raise TimeoutError(f"no webhook for {digest} within {timeout:g} s")
            return self.received[digest]


@contextmanager
def receiving(receiver: Receiver) -> Iterator[str]:
    """``receiver`` served on a local port (a thread per request); its URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the dispatcher expects
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(204 if receiver.accept(body, dict(self.headers)) else 401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def process(arguments: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``inventory ARGUMENTS`` as a process; SIGTERM at the end."""
    started = subprocess.Popen(
        [sys.executable, "-m", "inventory", *arguments], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield started
    finally:
        started.send_signal(signal.SIGTERM)
        started.wait(timeout=120)


@contextmanager
def graphql(scratch: Scratch, env: dict[str, str]) -> Iterator[httpx.Client]:
    """``inventory serve`` on ``scratch``, and a client of its /graphql holding a read token."""
    engine = create(scratch.url)
    token = read_token(engine, "freshness")
    engine.dispose()
    url = f"http://127.0.0.1:{free_port()}"
    with (
        process(["serve", "--port", url.rsplit(":", 1)[1]], env),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client,
    ):
        wait_healthy(url)
        yield client


def visible(client: httpx.Client, repository: str, digest: str) -> bool:
    answer = client.post("/graphql", json={"query": IMAGE, "variables": {"repository": repository, "digest": digest}})
    answer.raise_for_status()
    return answer.json()["data"]["image"] is not None


def write_config(path: Path, emulator_url: str, webhook_url: str, queue: str | None) -> None:
    config = (
        f'[[registries]]\nname = "prod"\naccount_id = "{ACCOUNT}"\nregions = ["{REGION}"]\n'
        f'endpoint_url = "{emulator_url}"\n\n'
        f'[[webhooks]]\nname = "freshness"\nurl = "{webhook_url}"\nsecret_env = "{SECRET_VARIABLE}"\n'
        'types = ["image.added"]\n'
    )
    if queue is not None:
        config += f'\n[[event_queues]]\nname = "ecr-events"\nurl = "{queue}"\nregion = "{REGION}"\n'
        config += f'endpoint_url = "{emulator_url}"\n'
    path.write_text(config)


def wait_for_round(engine: Engine) -> None:
    with engine.connect() as connection:
        while not connection.execute(text("SELECT 1 FROM region_status WHERE last_round_at IS NOT NULL")).first():
            time.sleep(0.2)
            connection.commit()


def cpu(worker: psutil.Process) -> float:
    times = worker.cpu_times()
    return float(times.user + times.system)


def worker_calls(before: dict[str, int], after: dict[str, int], *, sqs: bool = True) -> dict[str, int]:
    """The worker's calls between two counts, per operation (SQS's left out unless ``sqs``)."""
    left_out = BENCH_OPERATIONS | (set() if sqs else SQS_OPERATIONS)
    spent = {op: n - before.get(op, 0) for op, n in after.items() if op not in left_out}
    return {op: n for op, n in sorted(spent.items()) if n}


def idle_poll(admin: AdminClient, worker: psutil.Process, polls: int = 2) -> tuple[float, float]:
    """Seconds between the idle worker's ReceiveMessage calls, over ``polls`` of them, and its CPU per second
    meanwhile."""
    stamps: list[tuple[float, float]] = []
    last = admin.calls().get("ReceiveMessage", 0)
    while len(stamps) <= polls:
        time.sleep(0.05)
        count = admin.calls().get("ReceiveMessage", 0)
        if count != last:
            stamps.append((time.monotonic(), cpu(worker)))
            last = count
    (started, cpu_started), (ended, cpu_ended) = stamps[0], stamps[-1]
    return (ended - started) / polls, (cpu_ended - cpu_started) / (ended - started)


def push(ecr: Any, repository: str, n: int) -> str:
    manifest = json.dumps({"schemaVersion": 2, "bench": "freshness", "n": n})
    answer = ecr.put_image(registryId=ACCOUNT, repositoryName=repository, imageManifest=manifest, imageTag="latest")
    return str(answer["image"]["imageId"]["imageDigest"])


@dataclass
class Leg:
    """What one way of keeping fresh measured."""

    visible: list[float] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    round_calls: dict[str, int] = field(default_factory=dict)
    event_calls: dict[str, int] = field(default_factory=dict)
    poll_seconds: float = 0.0
    cpu_per_event: float = 0.0


def events_leg(args: argparse.Namespace, url: str, home: Path, receiver: Receiver, webhook_url: str) -> Leg:
    admin, leg = AdminClient(url), Leg()
    queue = admin.event_queue(REGION, "ecr-events")
    config = home / "events.toml"
    write_config(config, url, webhook_url, queue)
    with scratch_database("inventory_freshness_bench") as scratch:
        env = environment(scratch)
        engine = create(scratch.url)
        before = admin.calls()
        with (
            process(["worker", "-c", str(config), "--interval", "1h"], env) as worker,
            graphql(scratch, env) as client,
        ):
            wait_for_round(engine)
            leg.round_calls = worker_calls(before, admin.calls(), sqs=False)
            measured = psutil.Process(worker.pid)
            leg.poll_seconds, idle_cpu = idle_poll(admin, measured)
            ecr = boto3.client("ecr", endpoint_url=url, region_name=REGION, aws_access_key_id="bench",
                               aws_secret_access_key="bench")  # fmt: skip
            calls_before, cpu_before, started = admin.calls(), cpu(measured), time.monotonic()
            for n in range(args.pushes):
                repository = f"team/repo-{n % args.repositories}"
                digest = push(ecr, repository, n)
                pushed_at = time.monotonic()  # its event is in the queue
                while not visible(client, repository, digest):
                    time.sleep(0.01)
                leg.visible.append(time.monotonic() - pushed_at)
                leg.received.append(receiver.wait(digest, timeout=30) - pushed_at)
            spent = cpu(measured) - cpu_before - idle_cpu * (time.monotonic() - started)
            leg.event_calls = worker_calls(calls_before, admin.calls())
            leg.cpu_per_event = spent / args.pushes
        engine.dispose()
    return leg


def polling_leg(args: argparse.Namespace, url: str, home: Path, receiver: Receiver, webhook_url: str) -> Leg:
    leg, rng = Leg(), random.Random(22)
    config = home / "polling.toml"
    write_config(config, url, webhook_url, None)
    # One push in each of polling-pushes equal slices of the window, at a random moment of it: spread over the
    # rounds' phases (the window spans a few intervals) without two pushes falling together by chance.
    spacing = args.polling_window / args.polling_pushes
    moments = [(k + rng.random()) * spacing for k in range(args.polling_pushes)]
    with scratch_database("inventory_freshness_polling_bench") as scratch:
        env = environment(scratch)
        engine = create(scratch.url)
        with process(["worker", "-c", str(config), "--interval", "60s"], env), graphql(scratch, env) as client:
            wait_for_round(engine)
            ecr = boto3.client("ecr", endpoint_url=url, region_name=REGION, aws_access_key_id="bench",
                               aws_secret_access_key="bench")  # fmt: skip
            pending: dict[str, tuple[str, float]] = {}
            pushed: dict[str, float] = {}
            started = time.monotonic()
            deadline = started + args.polling_window + 300
            while len(pushed) < len(moments) or pending:
                if len(pushed) < len(moments) and time.monotonic() - started >= moments[len(pushed)]:
                    n = args.pushes + len(pushed)
                    repository = f"team/repo-{n % args.repositories}"
                    digest = push(ecr, repository, n)
                    pushed[digest] = time.monotonic()
                    pending[digest] = repository, pushed[digest]
                    continue
                for digest, (repository, pushed_at) in list(pending.items()):
                    if visible(client, repository, digest):
                        leg.visible.append(time.monotonic() - pushed_at)
                        del pending[digest]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(pending)} pushes not visible after {deadline - started:.0f} s")
                time.sleep(0.01)
            leg.received = [receiver.wait(digest, timeout=120) - at for digest, at in pushed.items()]
        engine.dispose()
    return leg


def environment(scratch: Scratch) -> dict[str, str]:
    return {**os.environ, "INVENTORY_DATABASE_URL": scratch.url, "INVENTORY_HOME": str(scratch.home),
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}  # fmt: skip


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.2f} s, p99 {p99:.2f} s"


def spelled(calls: dict[str, int], per: int | None = None) -> str:
    """``Op n, …``; with ``per``, each count divided by it."""
    return ", ".join(f"{op} {n:,}" if per is None else f"{op} {n / per:.2f}" for op, n in calls.items())


def report(args: argparse.Namespace, events: Leg, polling: Leg | None, rejected: int) -> None:
    n = len(events.visible)
    print(f"push -> visible in GraphQL, events: {percentiles(events.visible)} over {n} pushes (goal p99 <= 2 s)")
    print(f"push -> verified webhook receipt, events: {percentiles(events.received)} (goal p99 <= 3 s)")
    if polling is None:
        print("polling only at --interval 60s: skipped (--polling-pushes 0)")
    else:
        print(f"polling only at --interval 60s (measured, {len(polling.visible)} pushes at random moments over "
              f"{args.polling_window:g} s): visible in GraphQL {percentiles(polling.visible)}; "
              f"verified webhook receipt {percentiles(polling.received)}")  # fmt: skip
    if rejected:
        print(f"webhook requests whose signature did not verify: {rejected}")
    images = events.round_calls.get("DescribeImages", 0) / args.repositories * FLEET
    listings = math.ceil(FLEET / REPOSITORIES_PAGE) * events.round_calls.get("DescribeRepositories", 0)
    listings /= max(1, math.ceil(args.repositories / REPOSITORIES_PAGE))
    others = sum(n for op, n in events.round_calls.items() if op not in ("DescribeImages", "DescribeRepositories"))
    per_round = images + listings + others
    print(f"a full round: {sum(events.round_calls.values()):,} calls for {args.repositories:,} repositories "
          f"({spelled(events.round_calls)}) -> {per_round:,.0f} for {FLEET:,}")  # fmt: skip
    per_event = sum(events.event_calls.values()) / args.pushes
    print(f"an applied event: {per_event:.2f} calls ({spelled(events.event_calls, args.pushes)})")
    idle_polls = 3600 / events.poll_seconds
    print(f"the idle worker: a ReceiveMessage every {events.poll_seconds:.1f} s -> {idle_polls:,.0f} an hour")
    events_per_hour = FLEET * CHANGING
    reconcile = per_round * 3600 / RECONCILE
    with_events = events_per_hour * per_event + idle_polls + reconcile
    polling_calls = per_round * 3600 / POLL
    print(f"calls per hour for {FLEET:,} repositories, 1 % changing: {events_per_hour:.0f} events "
          f"{events_per_hour * per_event:,.0f} + idle polls {idle_polls:,.0f} + 6 h reconcile {reconcile:,.0f} "
          f"= {with_events:,.0f} / polling every 15 min {polling_calls:,.0f} = {with_events / polling_calls:.3f} "
          f"(goal <= 0.05; the reconcile alone {reconcile / polling_calls:.3f})")  # fmt: skip
    room = 0.05 * polling_calls - events_per_hour * per_event - idle_polls  # what the goal leaves the reconcile
    needed = f"a reconcile every {per_round / room:.1f} h or longer" if room > 0 else "no reconcile at all"
    print(f"the goal of 0.05 takes {needed}, these events and idle polls unchanged")
    print(f"worker CPU per applied event: {events.cpu_per_event * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--pushes", type=int, default=40)
    parser.add_argument("--polling-pushes", type=int, default=8, help="pushes of the polling-only leg (0: skip it)")
    parser.add_argument("--polling-window", type=float, default=180.0, help="seconds the polling pushes spread over")
    args = parser.parse_args()
    os.environ.setdefault(SECRET_VARIABLE, "whsec_" + base64.b64encode(os.urandom(32)).decode())
    receiver = Receiver(os.environ[SECRET_VARIABLE].split()[0])
    with emulator() as url, tempfile.TemporaryDirectory() as d, receiving(receiver) as webhook_url:
        admin = AdminClient(url)
        for n in range(args.repositories):
            admin.put_images(ACCOUNT, REGION, f"team/repo-{n}", [{"imageTags": ["latest"]}])
        events = events_leg(args, url, Path(d), receiver, webhook_url)
        polling = polling_leg(args, url, Path(d), receiver, webhook_url) if args.polling_pushes else None
    report(args, events, polling, receiver.rejected)


if __name__ == "__main__":
    main()
