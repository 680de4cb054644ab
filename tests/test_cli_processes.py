"""Acceptance: `inventory emulator` and the real AWS CLI, `inventory demo`, as processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty, Queue

import boto3
import httpx
import pytest

from inventory.testing import AdminClient

PROD = "111111111111"
"""The demo's prod account."""

ROOT = Path(__file__).resolve().parent.parent
AWS_CLI = Path(os.environ.get("INVENTORY_TEST_AWS_CLI", ROOT / ".venv-awscli" / "bin" / "aws"))


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[str]:
    """`inventory emulator --seed demo` on a free port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory", "emulator", "--port", "0", "--seed", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    match = re.fullmatch(r"ECR emulator listening on (http://127\.0\.0\.1:(\d+))", line)
    assert match, f"unexpected first line {line!r}; stderr: {process.stderr.read() if process.stderr else ''}"
    yield match[1]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def aws_cli(url: str, *args: str, account: str | None = None) -> dict[str, object]:
    assert AWS_CLI.exists(), f"the AWS CLI is missing at {AWS_CLI}: `make test` installs it"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    if account is not None:
        role = aws_cli(url, "sts", "assume-role", "--role-arn", f"arn:aws:iam::{account}:role/reader",
                       "--role-session-name", "cli")["Credentials"]  # fmt: skip
        assert isinstance(role, dict)
        env |= {
            "AWS_ACCESS_KEY_ID": role["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": role["SecretAccessKey"],
            "AWS_SESSION_TOKEN": role["SessionToken"],
        }
    result = subprocess.run(
        [str(AWS_CLI), *args, "--endpoint-url", url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_aws_cli_pages_with_starting_token(emulator_process: str) -> None:
    def page(*extra: str) -> dict[str, object]:
        return aws_cli(emulator_process, "ecr", "describe-images", "--repository-name", "platform/base",
                       "--page-size", "2", "--max-items", "3", *extra, account="111111111111")  # fmt: skip

    first = page()
    second = page("--starting-token", str(first["NextToken"]))
    first_digests = [d["imageDigest"] for d in first["imageDetails"]]  # type: ignore[attr-defined]
    second_digests = [d["imageDigest"] for d in second["imageDetails"]]  # type: ignore[attr-defined]
    assert len(first_digests) == 3 and len(second_digests) == 3
    assert not set(first_digests) & set(second_digests)
    everything = aws_cli(emulator_process, "ecr", "describe-images", "--repository-name", "platform/base",
                         "--page-size", "1000", account="111111111111")  # fmt: skip
    all_digests = [d["imageDigest"] for d in everything["imageDetails"]]  # type: ignore[attr-defined]
    assert all_digests[:6] == first_digests + second_digests
    assert "NextToken" not in everything
    assert 1000 < len(all_digests) <= 1200  # ACTIVE images only, by default


def test_emulator_process_serves_the_demo_seed(emulator_process: str) -> None:
    summary = AdminClient(emulator_process).summary()["registries"]
    assert summary["ecr/111111111111/us-east-1"]["repositories"] == 9
    assert sum(entry["images"] for entry in summary.values()) == 2940
    assert summary["ecr-public/111111111111/us-east-1"]["repositories"] == 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_until(
    command: str,
    wanted: str,
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float = 60,
    then: list[tuple[str, Callable[[], None]]] | None = None,
) -> str:
    """Run a shell command line until a line of its output holds ``wanted`` (or it exits, or ``timeout``),
    then SIGINT it; its output. ``then``: (a line's text, what to do once a line holds it), in turn."""
    process = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    assert process.stdout is not None
    lines: Queue[str] = Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()
    output, deadline = [], time.monotonic() + timeout
    while not any(wanted in line for line in output) and time.monotonic() < deadline:
        with contextlib.suppress(Empty):
            output.append(lines.get(timeout=0.5))
            if then and then[0][0] in output[-1]:
                then.pop(0)[1]()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    return "".join(output)


def test_demo_applies_the_fleet_and_serves_the_api(inventory_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory", "demo", "--port", str(port)],
        cwd=tmp_path,
        env={**inventory_env, "COLUMNS": "120"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            if line.startswith(f"GraphQL API on http://127.0.0.1:{port}/graphql"):
                break
        shown = "".join(output)
        assert "Plan: 2824 to add, 0 to change, 0 to remove." in shown, shown  # tmp/* excluded
        assert "Apply complete: 2824 added, 0 changed, 0 removed." in shown
        assert re.search(r"prod\s+│ ecr\s+│ us-east-1\s+│\s+9 │\s+1664 │", shown), shown
        assert re.search(r"public\s+│ ecr-public │ us-east-1\s+│\s+4 │\s+232 │", shown)
        assert (tmp_path / "home" / "demo-inventory.toml").exists()
        # stdout and stderr together: each repository once (not again as a progress log line)
        repositories = re.findall(r"^(\w+/[a-z]+-[a-z]+-\d/\S+): ", shown, re.MULTILINE)
        assert len(repositories) == len(set(repositories)) == 29, shown
        curl, keep, worker = (process.stdout.readline().strip() for _ in range(3))
        assert curl.startswith("curl ") and keep.endswith("with the same INVENTORY_DATABASE_URL:"), (curl, keep)
        # as printed: this run's home (not the default), the program that runs (`inventory` is not on PATH)
        assert worker == (
            f"INVENTORY_HOME={tmp_path / 'home'} AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo "
            f"{sys.executable} -m inventory worker -c {tmp_path / 'home' / 'demo-inventory.toml'} --interval 1h"
        )
        ecr_hint, ecr_command = (process.stdout.readline().strip() for _ in range(2))
        assert ecr_hint.startswith(f"ECR's own API on http://127.0.0.1:{port}/ecr"), ecr_hint
        assert ecr_command.startswith("AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo aws ecr describe-images "
                                      f"--endpoint-url http://127.0.0.1:{port}/ecr "), ecr_command  # fmt: skip
        # A push into the demo emulator, then its delete, reach the worker as ECR events (its round is an hour away).
        emulator = re.search(r'endpoint_url = "([^"]+)"', (tmp_path / "home" / "demo-inventory.toml").read_text())
        assert emulator is not None
        admin, digest = AdminClient(emulator[1]), "sha256:" + "d" * 64
        ecr = boto3.client("ecr", endpoint_url=emulator[1], region_name="us-east-1", aws_access_key_id="demo",
                           aws_secret_access_key="demo")  # fmt: skip
        steps = [
            ("prod/us-east-1: region synced", lambda: admin.put_images(PROD, "us-east-1", "payments/api",
                                                       [{"imageDigest": digest, "imageTags": ["pushed"]}])),
            ("events applied: +1", lambda: ecr.batch_delete_image(registryId=PROD, repositoryName="payments/api",
                                                                   imageIds=[{"imageDigest": digest}])),
        ]  # fmt: skip
        log = run_until(worker, "events applied: +0 ~0 -1", cwd=tmp_path, env=inventory_env, then=steps)
        assert "prod/us-east-1/payments/api: 1 events applied: +1 ~0 -0" in log, log
        assert "prod/us-east-1/payments/api: 1 events applied: +0 ~0 -1" in log, log
        query = json.loads(curl.split(" -d ", 1)[1].strip("'"))
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):  # uvicorn binds just after the banner
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        nodes = httpx.post(f"{url}/graphql", json=query).json()["data"]["images"]["nodes"]
        assert len(nodes) == 5 and all("latest" in node["imageTags"] for node in nodes)
        option = dict(re.findall(r"--([a-z-]+) (\S+)", ecr_command))
        endpoint = boto3.client("ecr", endpoint_url=option["endpoint-url"], region_name=option["region"],
                                aws_access_key_id="demo", aws_secret_access_key="demo")  # fmt: skip
        described = endpoint.describe_images(registryId=option["registry-id"], repositoryName=option["repository-name"])
        assert described["imageDetails"] and described["nextToken"]  # the demo's big repository: several pages
        graphiql = httpx.get(f"{url}/graphql", headers={"accept": "text/html"})
        assert graphiql.status_code == 200 and "graphiql" in graphiql.text.lower()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    again = subprocess.run(
        [sys.executable, "-m", "inventory", "demo", "--no-serve"], cwd=tmp_path, env=inventory_env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "\nNo changes.\n" in again.stdout  # the emulator is seeded alike each run
    assert f"Run it again (`{sys.executable} -m inventory demo --no-serve`)" in again.stdout
