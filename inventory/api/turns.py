"""Costly queries take turns: at most ``Turns.lanes`` of them run at once; cheaper ones never wait.

A query of the most nodes the limits allow keeps the machine busy for seconds: its resolvers on the
API's thread, its statements in Postgres, one after the other. Several at once overlap the two, and
take every core: everything else the machine runs (``/healthz``, the server's loop, Postgres'
other sessions) then waits its turn for one. With one lane per core but one (one on two cores), a
core stays free. A query waits for its lane after it is validated and costed, before it runs
(holding no connection), and gives it back when its resolvers are done; one that waits longer than
``wait_seconds`` is answered ``SERVER_BUSY`` (retry later) without running.
"""

from __future__ import annotations

import asyncio
import os

from strawberry.extensions import SchemaExtension

from inventory.api.errors import ApiError

COSTLY = 1_000
"""A query of more nodes than this (``inventory.api.cost``) takes turns: ten default pages, or one of 1,000."""
WAIT_SECONDS = 30.0
"""The longest a costly query waits for its lane."""


def default_lanes() -> int:
    """One lane per core the process may use (per core, where the system cannot say), but one (at least one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


class Turns:
    """The lanes of one API (its event loop's: a lane is taken and given back on that loop)."""

    def __init__(self, lanes: int | None = None, *, wait_seconds: float = WAIT_SECONDS) -> None:
        self.lanes = lanes or default_lanes()
        self.wait_seconds = wait_seconds
        self._free = asyncio.Semaphore(self.lanes)

    async def take(self, cost: int) -> bool:
        """Wait for a lane if ``cost`` is costly; whether one was taken (``give_back`` it then).
        ``SERVER_BUSY`` past ``wait_seconds``."""
        if cost <= COSTLY:
            return False
        try:
            await asyncio.wait_for(self._free.acquire(), self.wait_seconds)
        except TimeoutError:
            raise ApiError(
                "SERVER_BUSY",
                f"{self.lanes} costlier queries (over {COSTLY:,} nodes) are running and this one waited "
                f"{self.wait_seconds:g}s for its turn; retry later, or ask for smaller pages",
            ) from None
        return True

    def give_back(self) -> None:
        self._free.release()


class TakesTurns(SchemaExtension):
    """Last of the validation steps: a costly query (``Context.cost``) takes its lane of ``turns`` before it
    runs, and gives it back once the operation is over."""

    def __init__(self, turns: Turns, *, execution_context: object = None) -> None:
        self.turns = turns
        self.taken = False

    async def on_operation(self):  # type: ignore[no-untyped-def]
        try:
            yield
        finally:
            if self.taken:
                self.taken = False
                self.turns.give_back()

    async def on_validate(self):  # type: ignore[no-untyped-def]
        # Before the yield, after ``QueryCost``'s: strawberry checks for errors before the hooks' ends run.
        ec = self.execution_context
        cost = getattr(ec.context, "cost", None)
        if not ec.pre_execution_errors and cost is not None:
            try:
                self.taken = await self.turns.take(cost)
            except ApiError as busy:
                ec.pre_execution_errors = [busy]
        yield
