"""The per-account/region rate budget, on a fake clock (pure), and on a real botocore client."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config

from inventory.aws.budget import Budgets, RateBudget
from inventory.testing import AdminClient


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_budget_spaces_calls_at_its_rate_after_a_small_burst() -> None:
    clock = FakeClock()
    budget = RateBudget(10, clock=clock, sleep=clock.sleep)
    waits = [budget.acquire() for _ in range(21)]
    assert waits[0] == 0  # the burst: a tenth of a second's worth
    assert sum(waits) == pytest.approx(2.0)  # then 10 a second
    assert clock.now == pytest.approx(2.0)


def test_throttling_halves_the_rate_once_per_cooldown_and_successes_give_it_back() -> None:
    clock = FakeClock()
    budget = RateBudget(40, clock=clock, sleep=clock.sleep, cooldown=0.5)
    for _ in range(8):  # eight threads throttled at once count as one signal
        budget.throttled()
    assert budget.rate == 20
    clock.now += 0.6
    budget.throttled()
    assert budget.rate == 10
    for _ in range(100):
        budget.succeeded()
    assert budget.rate == 40  # never above the ceiling
    for _ in range(20):
        clock.now += 1
        budget.throttled()
    assert budget.rate == budget.floor == 0.5


def test_budgets_are_per_account_and_region() -> None:
    budgets = Budgets(20)
    budgets[("111111111111", "us-east-1")].throttled()
    assert budgets[("111111111111", "us-east-1")].rate == 10
    assert budgets[("111111111111", "eu-west-1")].rate == 20
    assert budgets[("222222222222", "us-east-1")].rate == 20
    with pytest.raises(ValueError, match="positive rate"):
        RateBudget(0)


def test_a_client_spends_from_its_budget_and_throttling_lowers_it(aws: Any, admin: AdminClient) -> None:
    admin.put_images("111111111111", "us-east-1", "app/web", [{"imageTags": ["v1"]}])
    ecr = aws("ecr", config=Config(retries={"mode": "standard", "total_max_attempts": 5}))
    budgets = Budgets(50)
    budgets.attach(ecr, "111111111111", "us-east-1")
    admin.fault("throttle", operation="DescribeImages", count=2)
    details = ecr.describe_images(registryId="111111111111", repositoryName="app/web")["imageDetails"]
    assert len(details) == 1  # retried through the throttling
    budget = budgets[("111111111111", "us-east-1")]
    assert budget.rate < 50  # halved by the throttled answers, a little given back by the success
