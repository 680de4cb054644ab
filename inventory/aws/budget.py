"""A rate budget per account and region, shared by every thread that calls it.

Each HTTP attempt takes a token from its (account, region) budget before it is
sent (botocore's ``before-send`` event), so a worker's threads together never
call one account-region faster than the budget allows. A throttled answer halves
the rate (at most once per ``cooldown``); each answer that is not throttled
gives a little back, up to the configured ceiling (additive increase,
multiplicative decrease). Throttling thus slows that account-region down
instead of failing its scopes, and leaves every other budget alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from inventory.aws.errors import is_throttled


class RateBudget:
    """A token bucket of ``rate`` calls per second whose rate adapts to throttling."""

    def __init__(
        self,
        rate: float,
        *,
        floor: float = 0.5,
        cooldown: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"a rate budget needs a positive rate, got {rate}")
        self.ceiling = rate
        self.rate = rate
        self.floor = min(floor, rate)
        self.cooldown = cooldown
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = max(1.0, rate / 10)  # a small burst: a tenth of a second's worth
        self._burst = self._tokens
        self._stamp = clock()
        self._last_decrease = float("-inf")

    def acquire(self) -> float:
        """Take one token, waiting for it when the budget is spent; return the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1  # a reservation: later callers queue behind it
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def throttled(self) -> None:
        """The service said slow down: halve the rate (once per cooldown, however many threads saw it)."""
        with self._lock:
            now = self._clock()
            if now - self._last_decrease >= self.cooldown:
                self._last_decrease = now
                self.rate = max(self.floor, self.rate / 2)

    def succeeded(self) -> None:
        """An answer that was not throttled: give back a fiftieth of the ceiling."""
        with self._lock:
            if self.rate < self.ceiling:
                self.rate = min(self.ceiling, self.rate + self.ceiling / 50)


class Budgets:
    """The budgets of one process, one per (account, region), made on first use."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._budgets: dict[tuple[str, str], RateBudget] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: tuple[str, str]) -> RateBudget:
        with self._lock:
            if key not in self._budgets:
                self._budgets[key] = RateBudget(self.rate)
            return self._budgets[key]

    def items(self) -> list[tuple[tuple[str, str], RateBudget]]:
        with self._lock:
            return list(self._budgets.items())

    def attach(self, client: Any, account_id: str, region: str) -> None:
        """Make every HTTP attempt of ``client`` spend from the (account, region) budget."""
        budget = self[(account_id, region)]

        def before_send(**_: Any) -> None:
            budget.acquire()

        def answered(response: Any = None, **_: Any) -> None:
            if response is None:  # a connection error: not the service's verdict on our rate
                return
            if is_throttled(response):
                budget.throttled()
            else:
                budget.succeeded()

        client.meta.events.register("before-send", before_send)
        client.meta.events.register_first("needs-retry", answered)
