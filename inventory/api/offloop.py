"""GraphQL off the server's event loop: the loop that answers ``/healthz`` never runs a query.

uvicorn runs one event loop. A query is CPU work (parsing, resolving a thousand nodes, encoding
megabytes of JSON) between its SQL statements, and on that loop it would hold every other request
back for as long (seconds, for the costliest query the limits allow). ``OffLoop`` runs an ASGI
app on an event loop of its own, in a thread of its own; the server's loop only relays the
request's messages to it and its answer back. Python threads share one interpreter, so the two
still take turns, but in slices of the interpreter's switch interval: ``/healthz`` waits
milliseconds, not seconds. Every database call of the wrapped app must be made from its loop
(its engine's connections belong to it): the server's own loop uses an engine of its own.

Encoding a large answer is one C call that holds the interpreter; ``encode_json`` encodes it in
pieces (a list's items, an object's members, down to ``_DEPTH``) so that it takes turns as well.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")
_DEPTH = 4
"""Levels a JSON answer is split into (data, alias, connection's field, nodes): below, one call each."""
_ITEMS = 50
"""List items encoded by one call (50 image nodes: a tenth of a millisecond)."""
_encode = json.JSONEncoder(separators=(",", ":")).encode
"""One encoder for every piece (``json.dumps`` with ``separators`` makes one per call)."""


class OffLoop:
    """An event loop of its own (started on first use; ``close`` stops it) for the apps it ``runs``."""

    def __init__(self, name: str = "graphql") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=self.name, daemon=True).start()
                self._loop = loop
            return self._loop

    def submit(self, work: Awaitable[T]) -> Future[T]:
        """Run ``work`` (a coroutine) on the app's loop."""
        return asyncio.run_coroutine_threadsafe(work, self._running())  # type: ignore[arg-type]

    def runs(self, app: ASGIApp) -> ASGIApp:
        """``app`` as an ASGI app of the server's loop that runs it on this one."""
        return _Relayed(self, app)

    async def relay(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run ``app`` on this loop for a request of the server's loop, relaying its messages.

        Each crossing between the loops costs a wake-up of the other thread: the request's body is read
        here before the app starts, the answer's start goes with its first body message, and its last body
        message (most answers' only one) is sent here once the app has returned. (So an app's work after its
        last message, a starlette background task say, would hold its answer back: these apps have none.)"""
        server = asyncio.get_running_loop()
        received: list[Message] = []
        while not received or (received[-1]["type"] == "http.request" and received[-1].get("more_body")):
            received.append(await receive())

        def on_server(call: Callable[[], Awaitable[T]]) -> Awaitable[T]:
            async def relayed() -> T:
                return await call()

            return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(relayed(), server))

        async def relayed_receive() -> Message:
            return received.pop(0) if received else await on_server(receive)

        held: list[Message] = []

        async def sends() -> None:
            for message in held:
                await send(message)

        async def relayed_send(message: Message) -> None:
            held.append(message)
            if message["type"] == "http.response.start" or not message.get("more_body", False):
                return  # the start goes with the first body; the last body once the app is done
            try:
                await on_server(sends)
            finally:
                held.clear()

        try:
            await asyncio.wrap_future(self.submit(app(scope, relayed_receive, relayed_send)))
        finally:
            if held and held[-1]["type"] != "http.response.start":  # a whole answer, even if the app failed after
                await sends()

    def close(self, last: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Run ``last`` (say, disposing of the app's engine) on the app's loop, then stop it."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if last is not None:
            asyncio.run_coroutine_threadsafe(last(), loop).result(timeout=30)  # type: ignore[arg-type]
        loop.call_soon_threadsafe(loop.stop)


class _Relayed:
    """An ASGI app (not a function: starlette's ``Route`` would take a function for an endpoint)."""

    def __init__(self, offloop: OffLoop, app: ASGIApp) -> None:
        self.offloop = offloop
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.offloop.relay(self.app, scope, receive, send)


def encode_json(value: Any) -> str:
    """``json.dumps(value)``, in pieces: below the top ``_DEPTH`` levels, each object member and each run of
    ``_ITEMS`` list items is one call, so that no call holds the interpreter for long."""
    return _encoded(value, _DEPTH)


def _encoded(value: Any, depth: int) -> str:
    if depth == 0:
        return _encode(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encoded(v, depth - 1)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        if depth == 1:  # the items (a page's nodes, say) in runs: a call per item costs more than encoding it
            runs = (_encode(value[i : i + _ITEMS])[1:-1] for i in range(0, len(value), _ITEMS))
            return "[" + ",".join(runs) + "]"
        return "[" + ",".join(_encoded(item, depth - 1) for item in value) + "]"
    return _encode(value)
