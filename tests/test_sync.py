"""plan / apply against the emulator over HTTP, on real PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from dbview import DatabaseView
from sqlalchemy import Engine, text

from inventory.cli import main
from inventory.db import create
from inventory.testing import AdminClient, Emulator

PROD, STAGING = "111111111111", "222222222222"
US, EU = "us-east-1", "eu-west-1"


def registries_toml(endpoint: str, *, staging: bool = True, prod_regions: tuple[str, ...] = (US, EU)) -> str:
    blocks = [
        f'[[registries]]\nname = "prod"\naccount_id = "{PROD}"\nregions = {list(prod_regions)!r}\n'
        f'role_arn = "arn:aws:iam::{PROD}:role/reader"\nexclude = ["tmp/*"]\nendpoint_url = "{endpoint}"\n',
        f'[[registries]]\nname = "public"\ntype = "ecr-public"\naccount_id = "{PROD}"\n'
        f'regions = ["us-east-1"]\nrole_arn = "arn:aws:iam::{PROD}:role/reader"\n'
        f'endpoint_url = "{endpoint}"\n',
    ]
    if staging:
        blocks.append(
            f'[[registries]]\nname = "staging"\naccount_id = "{STAGING}"\nregions = ["us-east-1"]\n'
            f'role_arn = "arn:aws:iam::{STAGING}:role/reader"\nendpoint_url = "{endpoint}"\n'
        )
    return "\n".join(blocks).replace("'", '"')


@dataclass
class Inventory(DatabaseView):
    """The CLI on a fresh database, the emulator it reads, and a view of the rows."""

    config: Path
    engine: Engine
    admin: AdminClient
    endpoint: str

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, [*args], input=input, catch_exceptions=False)

    def write_config(self, **options: Any) -> None:
        self.config.write_text(registries_toml(self.endpoint, **options))

    def image_versions(self) -> list[Any]:
        return self.rows("SELECT image_digest, xmin::text FROM images ORDER BY 1")


@pytest.fixture
def inventory(
    admin: AdminClient, emulator: Emulator, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Inventory]:
    config = tmp_path / "inventory.toml"
    monkeypatch.setenv("INVENTORY_DATABASE_URL", db_url)
    monkeypatch.setenv("INVENTORY_CONFIG", str(config))
    monkeypatch.setenv("INVENTORY_AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    engine = create(db_url)
    fleet = Inventory(config, engine, admin, emulator.url)
    fleet.write_config()
    yield fleet
    engine.dispose()


def seed(
    admin: AdminClient,
    account: str,
    region: str,
    repository: str,
    n: int,
    registry_type: str = "ecr",
    **fields: Any,
) -> list[str]:
    """``n`` images tagged ``<repository>-<i>``; the same call again yields the same digests."""
    images = [{"imageTags": [f"{repository.replace('/', '-')}-{i}"], **fields} for i in range(n)]
    return admin.put_images(account, region, repository, images, registry_type=registry_type)


def last_line(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def fleet(inventory: Inventory) -> Inventory:
    """prod: two regions, staging: one, public: one repository; applied once."""
    seed(inventory.admin, PROD, US, "app/web", 3)
    seed(inventory.admin, PROD, EU, "app/web", 2)
    seed(inventory.admin, PROD, US, "tmp/scratch", 2)  # excluded by the config
    seed(inventory.admin, STAGING, US, "app/api", 2)
    seed(inventory.admin, PROD, US, "tools/cli", 2, registry_type="ecr-public")
    result = inventory.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete: 9 added, 0 changed, 0 removed." in result.stdout
    return inventory


def test_apply_converges_and_a_second_apply_writes_no_image_rows(fleet: Inventory) -> None:
    assert fleet.scalar("SELECT count(*) FROM images") == 9
    assert fleet.scalar("SELECT count(*) FROM images WHERE repository_name = 'tmp/scratch'") == 0
    before, events = fleet.image_versions(), fleet.scalar("SELECT count(*) FROM image_events")
    plan = fleet.run("plan")
    assert last_line(plan) == "No changes."
    again = fleet.run("apply", "--auto-approve")
    assert again.exit_code == 0
    assert "No changes." in again.stdout
    assert fleet.image_versions() == before
    assert fleet.scalar("SELECT count(*) FROM image_events") == events
    assert fleet.scalar("SELECT count(DISTINCT sync_run_id) FROM image_events") == 4
    assert fleet.scalar("SELECT count(*) FROM sync_runs WHERE status = 'succeeded'") == 8  # 4 scopes x 2


def test_every_kind_of_change_is_planned_with_its_symbol_and_values(fleet: Inventory) -> None:
    admin = fleet.admin
    web = [r[0] for r in fleet.rows("SELECT image_digest FROM images WHERE region = 'us-east-1' "
                                    "AND repository_name = 'app/web' ORDER BY image_pushed_at")]  # fmt: skip
    (new,) = seed(admin, PROD, US, "app/web", 1, imageDigest="sha256:" + "f" * 64)
    admin.set_image(PROD, US, "app/web", web[1], imageTags=["app-web-0"])  # the tag moves from web[0]
    admin.set_image(PROD, US, "app/web", web[2], imageStatus="ARCHIVED", lastArchivedAt="2026-06-01T00:00:00Z")
    (eu,) = fleet.rows("SELECT image_digest FROM images WHERE region = 'eu-west-1'")[0]
    admin.set_image(PROD, EU, "app/web", eu,
                    imageScanStatus={"status": "COMPLETE", "description": "done"},
                    imageScanFindingsSummary={"findingSeverityCounts": {"CRITICAL": 3}})  # fmt: skip
    (gone,) = [r[0] for r in fleet.rows("SELECT image_digest FROM images WHERE registry_id = :a", a=STAGING)][:1]
    fleet.admin.set_image(STAGING, US, "app/api", gone, imageTags=[])  # untag one...
    staging = aws_client(fleet, "ecr", STAGING)
    other = [d for d in fleet.rows("SELECT image_digest FROM images WHERE registry_id = :a", a=STAGING) if d[0] != gone]
    staging.batch_delete_image(repositoryName="app/api", imageIds=[{"imageDigest": other[0][0]}])  # ...remove one

    plan = fleet.run("plan", "--detailed-exitcode")
    out = plan.stdout
    assert plan.exit_code == 2
    assert f"  + {new} image_tags=[app-web-0]" not in out  # the new image has no tag of its own
    assert f"  + {new}" in out
    assert re.search(rf"  ~ {web[0]}\n      image_tags: \[app-web-0\] → \[\]", out)
    assert re.search(rf"  ~ {web[1]}\n      image_tags: \[app-web-1\] → \[app-web-0\]", out)
    assert "      image_status: ACTIVE → ARCHIVED" in out
    assert "      last_archived_at: null → 2026-06-01T00:00:00+00:00" in out
    assert "      image_scan_status: null → COMPLETE" in out
    assert "      finding_severity_counts: null → {CRITICAL: 3}" in out
    assert re.search(rf"  ~ {gone}\n      image_tags: \[app-api-0\] → \[\]", out)
    assert f"  - {other[0][0]} image_tags=[app-api-1]" in out
    assert last_line(plan) == "Plan: 1 to add, 5 to change, 1 to remove."

    applied = fleet.run("apply", "--auto-approve")
    assert applied.exit_code == 0
    assert fleet.scalar("SELECT removed_at IS NOT NULL FROM images WHERE image_digest = :d", d=other[0][0])
    assert fleet.scalar("SELECT image_status FROM images WHERE image_digest = :d", d=web[2]) == "ARCHIVED"
    tag_move = fleet.scalar(
        "SELECT changes FROM image_events WHERE image_digest = :d AND type = 'image.changed'", d=web[1]
    )
    assert tag_move == {"image_tags": [["app-web-1"], ["app-web-0"]]}
    assert last_line(fleet.run("plan")) == "No changes."


def aws_client(fleet: Inventory, service: str, account: str, region: str = US) -> Any:
    import boto3

    sts = boto3.client("sts", endpoint_url=fleet.endpoint, region_name=region)
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/r", RoleSessionName="tests")["Credentials"]
    return boto3.client(
        service, endpoint_url=fleet.endpoint, region_name=region,
        aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )  # fmt: skip


def test_a_removed_image_that_reappears_is_restored(fleet: Inventory) -> None:
    digest = fleet.rows("SELECT image_digest FROM images WHERE registry_id = :a", a=STAGING)[0][0]
    staging = aws_client(fleet, "ecr", STAGING)
    staging.batch_delete_image(repositoryName="app/api", imageIds=[{"imageDigest": digest}])
    fleet.run("apply", "--auto-approve")
    first_seen = fleet.scalar("SELECT first_seen_at FROM images WHERE image_digest = :d", d=digest)
    fleet.admin.put_images(STAGING, US, "app/api", [{"imageDigest": digest, "imageTags": ["back"]}])
    plan = fleet.run("plan")
    assert f"  + {digest} (restored)" in plan.stdout
    assert last_line(plan) == "Plan: 1 to add, 0 to change, 0 to remove."
    fleet.run("apply", "--auto-approve")
    row = fleet.rows("SELECT removed_at, first_seen_at, image_tags FROM images WHERE image_digest = :d", d=digest)[0]
    assert row == (None, first_seen, ["back"])
    # Its event brings its tags back as an addition does: the feed and a tag's history see them arrive.
    event = fleet.rows("SELECT changes -> 'image_tags' FROM image_events WHERE image_digest = :d "
                       "AND type = 'image.restored'", d=digest)  # fmt: skip
    assert event == [([None, ["back"]],)]


def test_a_repository_of_2500_images_is_paged_at_1000(inventory: Inventory) -> None:
    seed(inventory.admin, PROD, US, "big/repo", 2500)
    inventory.write_config(staging=False, prod_regions=(US,))
    result = inventory.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "big/repo: 2500 to add" in result.stdout  # long plans are summarised per repository
    assert inventory.scalar("SELECT count(*) FROM images WHERE repository_name = 'big/repo'") == 2500
    calls = inventory.scalar("SELECT api_calls FROM sync_runs WHERE repository_name = 'big/repo'")
    assert calls == 3  # DescribeImages at maxResults=1000: 1000 + 1000 + 500
    assert inventory.scalar("SELECT images_seen FROM sync_runs WHERE repository_name = 'big/repo'") == 2500
    verbose = inventory.run("plan", "--verbose")
    assert last_line(verbose) == "No changes."


FAULTS = {
    "throttled past the retries": (
        {"fault": "throttle", "operation": "DescribeImages", "count": 2},
        "ThrottlingException",
    ),
    "server exception": ({"fault": "server_error", "operation": "DescribeImages", "count": 2}, "ServerException"),
    "expired nextToken": ({"fault": "expire_next_token"}, "InvalidParameterException"),
    "deleted between pages": (
        {"fault": "delete_repository_after_page", "registryId": PROD, "region": US,
         "repositoryName": "app/web"},
        "RepositoryNotFoundException",
    ),
}  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_a_fault_leaves_its_scope_untouched_while_others_apply(
    inventory: Inventory, fault: tuple[dict[str, Any], str]
) -> None:
    options, code = fault
    inventory.write_config(staging=False, prod_regions=(US,))
    seed(inventory.admin, PROD, US, "app/web", 1001)  # two pages, so that faults between pages happen
    seed(inventory.admin, PROD, US, "app/zzz", 1)
    assert inventory.run("apply", "--auto-approve").exit_code == 0
    before = inventory.image_versions()
    seed(inventory.admin, PROD, US, "app/web", 1002)  # one image more, the first 1001 unchanged
    seed(inventory.admin, PROD, US, "app/zzz", 2)
    inventory.admin.fault(**options)
    result = inventory.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert f"Error: prod/us-east-1/app/web: {code}: " in result.output
    web = inventory.rows("SELECT image_digest, xmin::text FROM images WHERE repository_name = 'app/web' ORDER BY 1")
    assert web == [row for row in before if row in web] and len(web) == 1001  # untouched
    assert inventory.scalar("SELECT count(*) FROM images WHERE repository_name = 'app/zzz'") == 2  # applied
    failed = inventory.rows("SELECT repository_name, error_code FROM sync_runs WHERE status = 'failed'")
    assert failed == [("app/web", code)]


def test_a_registry_that_fails_is_never_emptied(fleet: Inventory) -> None:
    before = fleet.image_versions()
    fleet.admin.fault("deny", registryId=STAGING)
    aws_client(fleet, "ecr", PROD).batch_delete_image(repositoryName="app/web", imageIds=[{"imageTag": "app-web-0"}])
    result = fleet.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "Error: staging/us-east-1: AccessDeniedException: " in result.output
    assert last_line(result) == "Apply complete: 0 added, 0 changed, 1 removed; 1 of 4 scopes failed (not observed)."
    staging = [row for row in fleet.image_versions() if row in before]
    assert len(staging) == len(before) - 1  # only prod's removal was written
    assert fleet.scalar("SELECT count(*) FROM images WHERE registry_id = :a AND removed_at IS NULL", a=STAGING) == 2
    failed = fleet.rows(
        "SELECT registry_name, region, repository_name, error_code FROM sync_runs WHERE status = 'failed'"
    )
    assert failed == [("staging", US, None, "AccessDeniedException")]


def test_a_registry_removed_from_the_config_is_planned_for_removal(fleet: Inventory) -> None:
    fleet.write_config(staging=False)
    plan = fleet.run("plan")
    assert "staging/us-east-1/app/api:\n  - sha256:" in plan.stdout
    assert last_line(plan) == "Plan: 0 to add, 0 to change, 2 to remove."
    assert fleet.run("apply", "--auto-approve").exit_code == 0
    assert fleet.scalar("SELECT count(*) FROM images WHERE registry_id = :a AND removed_at IS NULL", a=STAGING) == 0
    assert fleet.scalar("SELECT removed_at IS NOT NULL FROM repositories WHERE registry_id = :a", a=STAGING)
    fleet.write_config(staging=False, prod_regions=(US,))  # a region dropped from a registry
    assert last_line(fleet.run("plan")) == "Plan: 0 to add, 0 to change, 2 to remove."


def test_a_saved_plan_applies_what_it_showed_and_is_refused_once_stale(fleet: Inventory, tmp_path: Path) -> None:
    seed(fleet.admin, STAGING, US, "app/api", 3)  # one new image
    saved = tmp_path / "saved.plan"
    plan = fleet.run("plan", "--out", str(saved))
    assert last_line(plan) == "Plan: 1 to add, 0 to change, 0 to remove."
    seed(fleet.admin, STAGING, US, "app/api", 4)  # after the plan: not part of it
    applied = fleet.run("apply", str(saved))
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 1 added, 0 changed, 0 removed." in applied.stdout
    assert fleet.scalar("SELECT count(*) FROM images WHERE registry_id = :a", a=STAGING) == 3

    stale = tmp_path / "stale.plan"
    fleet.run("plan", "--out", str(stale))
    assert fleet.run("apply", "--auto-approve").exit_code == 0  # the inventory moves on
    refused = fleet.run("apply", str(stale))
    assert refused.exit_code == 1
    assert (
        "Error: staging/us-east-1/app/api: StalePlan: the inventory changed since this plan was made" in refused.output
    )

    truncated = tmp_path / "truncated.plan"
    truncated.write_bytes(saved.read_bytes()[:-20])
    broken = fleet.run("apply", str(truncated))
    assert broken.exit_code == 1
    assert "not a plan file" in broken.output or "truncated" in broken.output


def test_apply_refuses_to_run_unattended_without_auto_approve(inventory: Inventory) -> None:
    seed(inventory.admin, STAGING, US, "app/api", 1)
    result = inventory.run("apply")
    assert result.exit_code == 1
    assert "refusing to apply unattended" in result.output
    assert inventory.scalar("SELECT count(*) FROM images") == 0


def test_targets_limit_the_plan(fleet: Inventory) -> None:
    for account, region, repository in (
        (PROD, US, "app/web"),
        (PROD, EU, "app/web"),
        (STAGING, US, "app/api"),
    ):
        seed(fleet.admin, account, region, repository, 5)

    def planned(*targets: str) -> str:
        args = [arg for target in targets for arg in ("--target", target)]
        return last_line(fleet.run("plan", *args))

    assert planned() == "Plan: 8 to add, 0 to change, 0 to remove."
    assert planned("prod") == "Plan: 5 to add, 0 to change, 0 to remove."
    assert planned("prod/eu-west-1") == "Plan: 3 to add, 0 to change, 0 to remove."
    assert planned("prod/us-east-1/app/web", "staging") == "Plan: 5 to add, 0 to change, 0 to remove."
    assert planned("prod/us-east-1/other/repo") == "No changes."
    fleet.write_config(staging=False)
    assert planned("prod") == "Plan: 5 to add, 0 to change, 0 to remove."  # staging's removal not targeted
    assert planned("staging") == "Plan: 0 to add, 0 to change, 2 to remove."
    unknown = fleet.run("plan", "--target", "nope")
    assert unknown.exit_code == 1
    assert "--target 'nope': no such registry" in unknown.output
    wrong_region = fleet.run("plan", "--target", "prod/ap-south-1")
    assert wrong_region.exit_code == 1


def test_detailed_exitcode(fleet: Inventory) -> None:
    assert fleet.run("plan", "--detailed-exitcode").exit_code == 0
    seed(fleet.admin, STAGING, US, "app/api", 3)
    assert fleet.run("plan", "--detailed-exitcode").exit_code == 2
    assert fleet.run("plan").exit_code == 0
    fleet.admin.fault("deny", registryId=STAGING)
    assert fleet.run("plan", "--detailed-exitcode").exit_code == 1


def test_two_concurrent_applies_never_interleave_on_a_scope(fleet: Inventory) -> None:
    from sqlalchemy import create_engine as make_engine

    seed(fleet.admin, STAGING, US, "app/api", 4)
    holder = make_engine(fleet.engine.url)
    with holder.connect() as connection:  # another apply holds staging/us-east-1/app/api
        connection.execute(
            text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"),
            {"k": f"inventory-scope/ecr/{STAGING}/{US}/app/api"},
        )
        blocked = fleet.run("apply", "--auto-approve", "--lock-timeout", "1s")
        connection.execute(text("SELECT pg_advisory_unlock_all()"))
    holder.dispose()
    assert blocked.exit_code == 1
    assert "Error: staging/us-east-1/app/api: LockTimeout: another apply holds this scope; gave up after 1s" in (
        blocked.output
    )
    assert fleet.scalar("SELECT count(*) FROM images WHERE registry_id = :a", a=STAGING) == 2

    seed(fleet.admin, STAGING, US, "app/api", 6)
    # two processes (the CLI runner's captured streams are not thread-safe)
    processes = [
        subprocess.Popen([sys.executable, "-m", "inventory", "apply", "--auto-approve"], env=dict(os.environ),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [(process.wait(timeout=120), process.stdout.read() if process.stdout else "") for process in processes]
    assert fleet.scalar("SELECT count(*) FROM images WHERE registry_id = :a", a=STAGING) == 6
    added = fleet.scalar("SELECT count(*) FROM image_events WHERE registry_id = :a AND type = 'image.added'", a=STAGING)
    assert added == 6  # 2 + 4: each image added exactly once
    assert any(code == 0 for code, _ in outputs), outputs
    assert all("StalePlan" in output for code, output in outputs if code != 0), outputs
