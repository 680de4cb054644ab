"""The lease fence: a worker writes a region's repositories only while its lease on the region is live
(``sync_scopes.hold``, the last step of each repository's transaction); otherwise the scope fails with
``LeaseLost`` and its transaction rolls back. ``apply`` takes no lease and is not fenced."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine
from test_sync import PROD, US, Inventory, seed
from test_sync import inventory as inventory  # the fixture
from test_worker import wait_until

from inventory.aws.clients import ClientFactory
from inventory.config import InventoryConfig, load_config
from inventory.db import autocommit, driver_connection
from inventory.sync.engine import RegionSync
from inventory.tables import registries, sync_scopes
from inventory.tables.sync_scopes import Lease
from inventory.worker.region import RegionPool, RegionResult

PROD_US = Lease("prod", US)
_LEASE = "SELECT owner, lease_expires_at FROM sync_scopes WHERE registry_name = 'prod' AND region = 'us-east-1'"
_EXPIRE = "UPDATE sync_scopes SET lease_expires_at = now() - interval '1 s' WHERE registry_name = 'prod'"


def declare(inventory: Inventory) -> InventoryConfig:
    """prod and public, us-east-1 only, declared as a worker does (their ``sync_scopes`` rows due now)."""
    inventory.write_config(staging=False, prod_regions=(US,))
    config = load_config(inventory.config)
    with autocommit(inventory.engine) as connection:
        registries.upsert(config.registries, connection=connection)
        sync_scopes.reconcile(config, connection=connection)
    return config


def claim(engine: Engine, owner: str, lease_seconds: float = 60) -> list[Lease]:
    with autocommit(engine) as connection:
        return sync_scopes.claim(owner, 10, lease_seconds, connection=connection)


def sync_region(inventory: Inventory, config: InventoryConfig, worker: str) -> RegionResult:
    """prod/us-east-1 synced as ``worker``'s loop does: on a ``RegionPool`` of its ``RegionSync``."""
    with ThreadPoolExecutor(2) as pool:
        sync = RegionSync(inventory.engine, ClientFactory(2), worker=worker)
        return RegionPool(sync, pool, report=lambda _: None).run(PROD_US, config, threading.Event())


def written(inventory: Inventory) -> dict[str, int]:
    return {
        table: inventory.scalar(f"SELECT count(*) FROM {table}") for table in ("images", "repositories", "image_events")
    }


# a worker's sync ------------------------------------------------------------------


def test_a_worker_with_a_live_lease_writes_the_region(inventory: Inventory) -> None:
    config = declare(inventory)
    seed(inventory.admin, PROD, US, "app/web", 2)
    assert PROD_US in claim(inventory.engine, "w1")
    result = sync_region(inventory, config, "w1")
    assert result.failures == [] and result.counts.add == 2
    assert written(inventory) == {"images": 2, "repositories": 1, "image_events": 3}  # repository.added, 2 added
    assert inventory.rows("SELECT repository_name, status, worker FROM sync_runs") == [("app/web", "succeeded", "w1")]


@pytest.mark.parametrize("taken_over", [False, True], ids=["lapsed", "lapsed and claimed by another worker"])
def test_a_worker_whose_lease_lapsed_writes_nothing(inventory: Inventory, taken_over: bool) -> None:
    config = declare(inventory)
    seed(inventory.admin, PROD, US, "app/web", 2)
    seed(inventory.admin, PROD, US, "app/api", 1)
    assert PROD_US in claim(inventory.engine, "w1")
    with autocommit(inventory.engine) as connection:
        connection.execute(_EXPIRE)  # e.g. not renewed through a database outage
    if taken_over:
        assert claim(inventory.engine, "w2") == [PROD_US]
    lease = inventory.rows(_LEASE)

    result = sync_region(inventory, config, "w1")
    assert sorted((f.repository_name, f.code) for f in result.failures) == [
        ("app/api", "LeaseLost"),
        ("app/web", "LeaseLost"),
    ]
    assert written(inventory) == {"images": 0, "repositories": 0, "image_events": 0}  # rolled back
    # nor is the region's round recorded: its runs and status are the lease holder's to write
    assert inventory.rows("SELECT repository_name FROM sync_runs") == []
    assert inventory.rows("SELECT registry_name FROM region_status WHERE last_error_at IS NOT NULL") == []
    assert inventory.rows(_LEASE) == lease  # w2's claim (or w1's lapsed lease) untouched
    if taken_over:
        assert lease[0].owner == "w2"


def test_apply_takes_no_lease_and_writes_whoever_holds_one(inventory: Inventory) -> None:
    declare(inventory)
    seed(inventory.admin, PROD, US, "app/web", 2)
    assert PROD_US in claim(inventory.engine, "w2")
    result = inventory.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert inventory.scalar("SELECT count(*) FROM images") == 2


# hold itself ----------------------------------------------------------------------


@pytest.fixture
def scope(engine: Engine) -> Engine:
    """One scope, prod/us-east-1, due now and leased by nobody."""
    with autocommit(engine) as connection:
        connection.execute("INSERT INTO sync_scopes (registry_name, region) VALUES ('prod', 'us-east-1')")
    return engine


def test_hold_is_true_for_the_live_owner_only(scope: Engine) -> None:
    with autocommit(scope) as connection:
        assert not sync_scopes.hold("w1", "prod", US, connection=connection)  # not claimed yet
        assert sync_scopes.claim("w1", 1, 60, connection=connection) == [PROD_US]
        assert sync_scopes.hold("w1", "prod", US, connection=connection)
        assert not sync_scopes.hold("w2", "prod", US, connection=connection)
        assert not sync_scopes.hold("w1", "prod", "eu-west-1", connection=connection)
        connection.execute(_EXPIRE)
        assert not sync_scopes.hold("w1", "prod", US, connection=connection)


def test_a_held_scope_is_skipped_by_another_worker_s_claim_even_once_expired(scope: Engine) -> None:
    assert claim(scope, "w1", lease_seconds=1) == [PROD_US]
    with scope.connect() as holder, autocommit(scope) as other:
        other.execute("SET lock_timeout = '2s'")  # a claim that waited on the lock would fail, not hang
        with holder.begin():
            assert sync_scopes.hold("w1", "prod", US, connection=driver_connection(holder))
            wait_until(
                lambda: other.execute("SELECT lease_expires_at < now() FROM sync_scopes").fetchone() == (True,),
                timeout=10,
                what="w1's lease expired",
            )
            assert sync_scopes.claim("w2", 1, 60, connection=other) == []  # skipped, at once
            assert other.execute(_LEASE).fetchone()[0] == "w1"  # type: ignore[index]
        assert sync_scopes.claim("w2", 1, 60, connection=other) == [PROD_US]  # the lock gone, it is due to w2


def test_hold_is_false_once_the_lease_lapsed_during_the_transaction(scope: Engine) -> None:
    assert claim(scope, "w1") == [PROD_US]
    with scope.begin() as transaction, autocommit(scope) as other:
        writer = driver_connection(transaction)
        writer.execute("SELECT 1")  # the scope's transaction has begun (now() is fixed from here)
        other.execute("UPDATE sync_scopes SET lease_expires_at = now()")  # lapses after that start
        assert other.execute("SELECT lease_expires_at < clock_timestamp() FROM sync_scopes").fetchone() == (True,)
        assert not sync_scopes.hold("w1", "prod", US, connection=writer)
