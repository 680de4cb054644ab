"""A TCP proxy in front of the test PostgreSQL that a test can cut, hang and restore: a database that
dies (every connection dropped, new ones closed at once), one that accepts and never answers, and
its return, without touching the server the rest of the suite uses."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Literal

from sqlalchemy import make_url

Mode = Literal["forward", "drop", "hang"]


def _target(server_url: str) -> tuple[int, str | tuple[str, int]]:
    """The address family and address of the server of ``server_url`` (a Unix socket or TCP)."""
    url = make_url(server_url)
    port = url.port or 5432
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return socket.AF_UNIX, f"{socket_dir}/.s.PGSQL.{port}"
    return socket.AF_INET, (url.host or "127.0.0.1", port)


class Proxy:
    """Listens on 127.0.0.1 (``port``); ``url(database)`` is a URL of the server through it."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.family, self.address = _target(server_url)
        self.mode: Mode = "forward"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, database: str) -> str:
        url = make_url(self.server_url).set(host="127.0.0.1", port=self.port, database=database)
        return url.difference_update_query(["host"]).render_as_string(hide_password=False)

    def set(self, mode: Mode) -> None:
        """``drop``: close every connection and each new one; ``hang``: accept and never answer."""
        self.mode = mode
        if mode != "forward":
            with self._lock:
                open_, self._open = self._open, set()
            for sock in open_:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.set("drop")
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "drop":
                client.close()
                continue
            with self._lock:
                self._open.add(client)
            if self.mode == "hang":
                continue  # held open, never answered
            server = socket.socket(self.family, socket.SOCK_STREAM)
            try:
                server.connect(self.address)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.add(server)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
