"""The embedded PostgreSQL's lifecycle, with real processes and real signals: every command leaves it on
every exit path, the last one out stops it, a dead user's handle is never trusted, a long-running
``serve`` and ``worker`` start it again when it dies, and what was stored survives."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from inventory.embedded import EmbeddedServer

EMBEDDED_ENV = {k: v for k, v in os.environ.items() if k != "INVENTORY_DATABASE_URL"}


def postgres_of(home: Path) -> list[psutil.Process]:
    """The postmaster running on ``home``'s data directory, if any."""
    pgdata = str((home / "pgdata").resolve())
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and "-D" in cmdline and pgdata in cmdline:
            found.append(process)
    return found


def eventually(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.1)


class Process:
    """An ``inventory`` command as a process; its merged output read on demand."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "inventory", *args],
            env={**EMBEDDED_ENV, "INVENTORY_HOME": str(home), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=home.parent,
        )
        self.lines: list[str] = []

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.popen.stdout:
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.output}"
        raise AssertionError(f"exited ({self.popen.wait()}) without {pattern!r}:\n{self.output}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        self.popen.send_signal(signum)
        out, _ = self.popen.communicate(timeout=timeout)
        self.lines.append(out)
        return self.popen.returncode

    @property
    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    for process in postgres_of(home):  # whatever a failed test left behind
        with contextlib.suppress(psutil.Error):
            process.kill()


def inventory(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inventory", *args], env={**EMBEDDED_ENV, "INVENTORY_HOME": str(home)},
        capture_output=True, text=True, timeout=120, cwd=home.parent,
    )  # fmt: skip


def token(home: Path) -> str:
    created = inventory(home, "tokens", "create", "probe")
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def test_a_command_leaves_the_server_it_started(home: Path) -> None:
    result = inventory(home, "migrate")
    assert result.returncode == 0, result.stderr
    assert postgres_of(home) == []
    assert json.loads((home / "pgdata.users.json").read_text()) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stopped_by_a_signal_leaves_no_server(home: Path, signum: int) -> None:
    serve = Process(home, "serve", "--port", "0")
    serve.wait_for(r"GraphQL API on http://127\.0\.0\.1:\d+/graphql")
    assert len(postgres_of(home)) == 1
    code = serve.stop(signum)
    assert code in (128 + signum, 1, 0), serve.output  # SIGTERM: 143 as before; SIGINT: uvicorn's clean exit
    assert postgres_of(home) == [], serve.output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_worker_stopped_by_a_signal_leaves_no_server(home: Path, tmp_path: Path, signum: int) -> None:
    config = tmp_path / "inventory.toml"
    config.write_text("")
    worker = Process(home, "worker", "-c", str(config), "--interval", "1h")
    worker.wait_for(r"worker \S+ started")
    assert len(postgres_of(home)) == 1
    assert worker.stop(signum) == 0, worker.output
    assert postgres_of(home) == [], worker.output


def test_the_last_user_out_stops_the_server(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "inventory.toml"
    config.write_text("")
    serve = Process(home, "serve", "--port", "0")
    serve.wait_for(r"GraphQL API on")
    worker = Process(home, "worker", "-c", str(config))
    worker.wait_for(r"worker \S+ started")
    assert inventory(home, "migrate").returncode == 0  # joins and leaves: the others still use it
    assert len(postgres_of(home)) == 1
    serve.stop()
    assert len(postgres_of(home)) == 1, "the worker still uses it"
    worker.stop()
    assert postgres_of(home) == []


def test_a_killed_users_handle_is_pruned_not_trusted(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "inventory.toml"
    config.write_text("")
    worker = Process(home, "worker", "-c", str(config))
    worker.wait_for(r"worker \S+ started")
    assert EmbeddedServer(home).users() == [worker.popen.pid]
    worker.popen.kill()  # no exit hook runs: its handle stays in the list
    worker.popen.wait()
    assert len(postgres_of(home)) == 1
    assert EmbeddedServer(home).users() == []  # a dead pid is not a user
    assert inventory(home, "migrate").returncode == 0
    assert postgres_of(home) == [], "the last live user stopped it despite the stale handle"


def test_killed_postmaster_comes_back_under_serve_and_worker(home: Path, tmp_path: Path) -> None:
    """kill -9 of the postmaster: 503 DATABASE_UNAVAILABLE meanwhile, never a 500; the server started
    again by one of them; the first request after answered; nothing stored lost; nothing left at the end."""
    bearer = {"Authorization": f"Bearer {token(home)}"}
    config = tmp_path / "inventory.toml"
    config.write_text("")
    serve = Process(home, "serve", "--port", "0")
    url = serve.wait_for(r"GraphQL API on (http://127\.0\.0\.1:\d+)/graphql")[1]
    worker = Process(home, "worker", "-c", str(config), "--metrics-port", "0")
    metrics = worker.wait_for(r"metrics on (http://127\.0\.0\.1:\d+)/metrics")[1]
    query = {"query": "{ registries { name } }"}
    assert httpx.post(f"{url}/graphql", json=query, headers=bearer).status_code in (200,)

    [postmaster] = postgres_of(home)
    statuses: list[int] = []
    postmaster.kill()
    postmaster.wait(10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until it is back: every answer meanwhile coded
        answer = httpx.post(f"{url}/graphql", json=query, headers=bearer, timeout=30)
        statuses.append(answer.status_code)
        if answer.status_code == 200:
            break
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"].isdigit()
        assert answer.json()["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"
        time.sleep(0.05)
    assert statuses[-1] == 200, statuses
    assert "errors" not in answer.json(), answer.text
    assert [p.pid for p in postgres_of(home)] != [postmaster.pid]
    eventually(lambda: httpx.get(f"{metrics}/healthz").status_code == 200, what="the worker healthy again")
    # the token made before the kill is still there, and both processes said so once
    assert inventory(home, "tokens", "list").stdout.count("probe") == 1
    serve.stop()
    worker.stop()
    restarted = serve.output.count("started it again") + worker.output.count("started it again")
    assert restarted == 1, serve.output + worker.output
    assert "Traceback" not in serve.output and "Traceback" not in worker.output, serve.output + worker.output
    assert serve.output.count("the inventory database is unavailable") <= 1
    assert postgres_of(home) == []


def test_a_command_that_fails_after_joining_leaves_too(home: Path) -> None:
    result = inventory(home, "tokens", "create", "t", "--registries", "no-such-registry")
    assert result.returncode == 1 and "no-such-registry" in result.stderr, result.stderr
    assert postgres_of(home) == []


def test_serve_on_a_busy_port_fails_before_announcing_it(home: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = inventory(home, "serve", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "GraphQL API on" not in result.stdout
    assert postgres_of(home) == []


def test_a_command_right_after_the_postmaster_was_killed_starts_it_again(home: Path) -> None:
    holder = subprocess.Popen(  # a user that does not watch the server, as any short command
        [sys.executable, "-c", f"from inventory.embedded import server; from pathlib import Path; "
         f"server(Path({str(home)!r})).join(); print('joined', flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=EMBEDDED_ENV,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "joined"
    [postmaster] = postgres_of(home)
    postmaster.kill()  # its parent may take a while to reap it: a command must not take it for a running one
    result = inventory(home, "tokens", "list")
    assert result.returncode == 0, result.stderr
    holder.communicate("\n", timeout=60)
    assert postgres_of(home) == []
