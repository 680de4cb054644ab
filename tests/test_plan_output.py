"""What plan and apply print when scopes fail: each failure once, and a last line that says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from test_sync import PROD, STAGING, US, Inventory, last_line, seed
from test_sync import inventory as inventory  # the fixture

from inventory.sync.plan import Counts, ScopeFailure
from inventory.sync.render import applied_line, failures_phrase, summary_line

NO_CREDENTIALS = "NoCredentialsError: Unable to locate credentials"


def failure(code: str, repository_name: str | None = "app/web") -> ScopeFailure:
    return ScopeFailure("prod", PROD, US, repository_name, code, "it failed")


def test_the_summary_lines_say_how_many_scopes_failed_and_why() -> None:
    denied, stale, locked = failure("AccessDeniedException", None), failure("StalePlan"), failure("LockTimeout")
    assert summary_line(Counts()) == "No changes."
    assert summary_line(Counts(add=1)) == "Plan: 1 to add, 0 to change, 0 to remove."
    assert (
        summary_line(Counts(), [denied], 1) == "No changes in the observed scopes; 1 of 1 scope failed (not observed)."
    )
    assert summary_line(Counts(add=1), [denied], 3) == (
        "Plan: 1 to add, 0 to change, 0 to remove; 1 of 3 scopes failed (not observed)."
    )
    assert applied_line(Counts(change=2)) == "Apply complete: 0 added, 2 changed, 0 removed."
    assert (
        applied_line(Counts(), [stale], 2)
        == "Apply complete: 0 added, 0 changed, 0 removed; 1 of 2 scopes failed (stale plan)."
    )
    assert failures_phrase([denied, stale, locked, stale], 9) == (
        "4 of 9 scopes failed (1 not observed, 2 stale plan, 1 lock timeout)"
    )


def without_credentials(home: Path) -> dict[str, str]:
    """The test environment with no AWS credentials anywhere boto3 looks for them."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return env | {
        "HOME": str(home),
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.mark.parametrize("flags", [(), ("--detailed-exitcode",)], ids=["plain", "detailed-exitcode"])
def test_a_plan_without_credentials_says_nothing_was_observed(
    inventory: Inventory, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    inventory.write_config(staging=False, prod_regions=(US,))  # prod/us-east-1 and public/us-east-1
    result = subprocess.run(
        [sys.executable, "-m", "inventory", "plan", *flags], env=without_credentials(tmp_path),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    printed = result.stdout + result.stderr
    for region in ("prod/us-east-1", "public/us-east-1"):
        assert printed.count(region) == 1, printed
        assert f"Error: {region}: {NO_CREDENTIALS}\n" in result.stdout
    assert printed.count(NO_CREDENTIALS) == 2
    assert result.stdout.splitlines()[-1] == "No changes in the observed scopes; 2 of 2 scopes failed (not observed)."
    assert "No changes.\n" not in printed


def test_an_apply_without_credentials_says_so_in_its_last_line(inventory: Inventory, tmp_path: Path) -> None:
    inventory.write_config(staging=False, prod_regions=(US,))
    result = subprocess.run(
        [sys.executable, "-m", "inventory", "apply", "--auto-approve"], env=without_credentials(tmp_path),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    printed = result.stdout + result.stderr
    assert printed.count(NO_CREDENTIALS) == 2, printed
    assert result.stdout.splitlines()[-2:] == [
        "No changes in the observed scopes; 2 of 2 scopes failed (not observed).",
        "Apply complete: 0 added, 0 changed, 0 removed; 2 of 2 scopes failed (not observed).",
    ]


def once(result: Result, text: str) -> None:
    assert result.output.count(text) == 1, result.output


def test_a_plan_with_one_scope_failing_counts_the_others_changes(inventory: Inventory) -> None:
    inventory.write_config(prod_regions=(US,))  # public has no repositories: its region has no scope
    seed(inventory.admin, PROD, US, "app/web", 1)
    seed(inventory.admin, STAGING, US, "app/api", 1)
    inventory.admin.fault("deny", registryId=STAGING)
    for flags in ((), ("--detailed-exitcode",)):
        plan = inventory.run("plan", *flags)
        assert plan.exit_code == 1
        once(plan, "staging/us-east-1")
        assert "Error: staging/us-east-1: AccessDeniedException: " in plan.stdout
        assert last_line(plan) == "Plan: 1 to add, 0 to change, 0 to remove; 1 of 2 scopes failed (not observed)."
        assert "prod/us-east-1/app/web: +1 ~0 -0" in plan.stderr  # the progress of the scopes that did not fail

    applied = inventory.run("apply", "--auto-approve")
    assert applied.exit_code == 1
    once(applied, "staging/us-east-1")
    assert last_line(applied) == "Apply complete: 1 added, 0 changed, 0 removed; 1 of 2 scopes failed (not observed)."
    assert inventory.scalar("SELECT count(*) FROM images") == 1


def test_a_scope_that_fails_after_a_page_adds_nothing_to_the_totals(inventory: Inventory) -> None:
    inventory.write_config(staging=False, prod_regions=(US,))
    seed(inventory.admin, PROD, US, "app/web", 1001)  # two pages: the fault strikes between them
    seed(inventory.admin, PROD, US, "app/zzz", 1)
    inventory.admin.fault("delete_repository_after_page", registryId=PROD, region=US, repositoryName="app/web")
    applied = inventory.run("apply", "--auto-approve")
    assert applied.exit_code == 1
    once(applied, "prod/us-east-1/app/web")
    assert "Error: prod/us-east-1/app/web: RepositoryNotFoundException: " in applied.stderr
    assert last_line(applied) == "Apply complete: 1 added, 0 changed, 0 removed; 1 of 2 scopes failed (not observed)."
    assert inventory.scalar("SELECT count(*) FROM images") == 1


def test_a_stale_saved_plan_says_which_scopes_were_not_applied(inventory: Inventory, tmp_path: Path) -> None:
    inventory.write_config(prod_regions=(US,))
    seed(inventory.admin, PROD, US, "app/web", 1)
    seed(inventory.admin, STAGING, US, "app/api", 1)
    assert inventory.run("apply", "--auto-approve").exit_code == 0
    seed(inventory.admin, STAGING, US, "app/api", 2)
    saved = tmp_path / "saved.plan"
    assert last_line(inventory.run("plan", "--out", str(saved))) == "Plan: 1 to add, 0 to change, 0 to remove."
    assert inventory.run("apply", "--auto-approve").exit_code == 0  # the inventory moves on
    refused = inventory.run("apply", str(saved))
    assert refused.exit_code == 1
    once(refused, "StalePlan")  # the saved plan is shown again, its scope's entries with it
    assert "Error: staging/us-east-1/app/api: StalePlan: " in refused.stderr
    assert last_line(refused) == "Apply complete: 0 added, 0 changed, 0 removed; 1 of 2 scopes failed (stale plan)."
