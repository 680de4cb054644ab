"""Access control over HTTP: bearer tokens, 401/403, revocation and expiry, query cost, the statement
timeout, the audit log, and ``inventory tokens``."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from auth_fleet import Fleet
from click.testing import CliRunner
from graphql_client import data
from sqlalchemy import create_engine, event, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.api.auth import CACHE_SECONDS
from inventory.api.cost import MAX_COST
from inventory.cli import main
from inventory.logs import JsonFormatter

QUERY = "query Listing { images(first: 5) { totalCount nodes { registryId repositoryName } } }"


def post(client: TestClient, query: str, token: str | None = None, **variables: Any) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


@pytest.fixture
def client(fleet: Fleet) -> Iterator[TestClient]:
    with TestClient(create_app(async_engine(fleet.url))) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "header",
    [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer inv_madeup", "Bearer not-even-ours"],
)
def test_graphql_refuses_requests_without_a_valid_token(client: TestClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = client.post("/graphql", json={"query": QUERY}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"]


def test_a_valid_token_reads_healthz_is_open_and_metrics_needs_its_scope(fleet: Fleet, client: TestClient) -> None:
    reader = fleet.token(None)
    assert post(client, QUERY, reader).json()["data"]["images"]["totalCount"] == fleet.present
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 401
    refused = client.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403 and refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    scraper = fleet.token(None, scopes=["metrics"])
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
    assert scraped.status_code == 200 and "inventory_images" in scraped.text
    only_metrics = post(client, QUERY, scraper)
    assert only_metrics.status_code == 403
    assert only_metrics.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    admin = fleet.token(None, scopes=["admin"])
    assert post(client, QUERY, admin).status_code == 200  # admin reads what read reads


def test_anonymous_mode_serves_everything(fleet: Fleet) -> None:
    with TestClient(create_app(async_engine(fleet.url), allow_anonymous=True)) as anonymous:
        assert data(anonymous, QUERY)["images"]["totalCount"] == fleet.present
        assert anonymous.get("/metrics").status_code == 200


def _refused_within(clients: list[TestClient], token: str, seconds: float) -> float:
    """How long until every client refuses ``token`` (failing past ``seconds``)."""
    start = time.monotonic()
    pending = list(clients)
    while pending:
        pending = [c for c in pending if post(c, QUERY, token).status_code != 401]
        elapsed = time.monotonic() - start
        assert elapsed <= seconds, f"still accepted after {elapsed:.1f}s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_a_revoked_token_is_refused_by_every_process_within_5_seconds(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVENTORY_DATABASE_URL", fleet.url)
    token = fleet.token(None, name="portal")
    with (
        TestClient(create_app(async_engine(fleet.url))) as one,
        TestClient(create_app(async_engine(fleet.url))) as other,
    ):
        assert post(one, QUERY, token).status_code == 200 and post(other, QUERY, token).status_code == 200
        result = CliRunner().invoke(main, ["tokens", "revoke", "portal"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        _refused_within([one, other], token, 5.0)


def test_an_expired_token_is_refused_at_once(fleet: Fleet, client: TestClient) -> None:
    token = fleet.token(None, expires_at=datetime.now(UTC) + timedelta(seconds=1.5))
    assert post(client, QUERY, token).status_code == 200
    time.sleep(1.6)
    assert post(client, QUERY, token).status_code == 401


def test_last_used_is_written_once_per_interval_not_per_request(fleet: Fleet, client: TestClient) -> None:
    token = fleet.token(None, name="busy")
    writes = []
    engine = create_engine(fleet.url)
    with engine.connect() as connection:
        before = connection.execute(text("SELECT last_used_at FROM api_tokens WHERE name = 'busy'")).scalar_one()
    assert before is None
    start = time.monotonic()
    for _ in range(10):
        assert post(client, QUERY, token).status_code == 200
    with engine.connect() as connection:
        writes.append(connection.execute(text("SELECT last_used_at FROM api_tokens WHERE name = 'busy'")).scalar_one())
    if time.monotonic() - start < CACHE_SECONDS:  # all ten within one interval: one lookup, one write
        with engine.connect() as connection:
            xmin = connection.execute(text("SELECT xmin::text::bigint FROM api_tokens WHERE name = 'busy'")).scalar()
        assert post(client, QUERY, token).status_code == 200
        with engine.connect() as connection:
            again = connection.execute(text("SELECT xmin::text::bigint FROM api_tokens WHERE name = 'busy'")).scalar()
        assert again == xmin  # not written again within the interval
    engine.dispose()
    assert writes[0] is not None


def test_the_tokens_commands_store_only_a_hash(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_DATABASE_URL", fleet.url)
    runner = CliRunner()
    created = runner.invoke(
        main, ["tokens", "create", "team-a", "--registries", "staging", "--scope", "read", "--expires", "90d"],
        catch_exceptions=False,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("inv_") and len(token) == 4 + 43
    engine = create_engine(fleet.url)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM api_tokens WHERE name = 'team-a'")).one()
    engine.dispose()
    assert token not in repr(tuple(row)) and token[4:] not in repr(tuple(row))
    assert row.scopes == ["read"] and row.registries == ["staging"]
    assert timedelta(days=89) < row.expires_at - datetime.now(UTC) <= timedelta(days=90)

    again = runner.invoke(main, ["tokens", "create", "team-a"])
    assert again.exit_code == 1 and "exists already" in again.output
    unknown = runner.invoke(main, ["tokens", "create", "team-b", "--registries", "nope"])
    assert unknown.exit_code == 1 and "'nope'" in unknown.output and "staging" in unknown.output

    with TestClient(create_app(async_engine(fleet.url))) as client:
        found = post(client, QUERY, token).json()["data"]["images"]
        assert found["totalCount"] == 3 and {n["registryId"] for n in found["nodes"]} == {"222222222222"}

    listed = runner.invoke(main, ["tokens", "list"], catch_exceptions=False)
    header, line = listed.output.splitlines()
    assert header.split("\t") == ["name", "scopes", "registries", "created", "expires", "last used", "state"]
    assert line.split("\t")[:3] == ["team-a", "read", "staging"] and line.endswith("\tlive")
    assert token not in listed.output
    revoked = runner.invoke(main, ["tokens", "revoke", "team-a"], catch_exceptions=False)
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(main, ["tokens", "list"], catch_exceptions=False).output
    assert runner.invoke(main, ["tokens", "revoke", "team-a"]).exit_code == 1


COSTLY = """query Deep($n: Int = 1000) {
  repositories(first: 1000) { nodes { ...Images } }
}
fragment Images on Repository { images(first: $n) { nodes { history(first: 1) { nodes { id } } } } }"""


def _counting(url: str) -> tuple[Any, list[str]]:
    engine = async_engine(url)
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return engine, statements


def test_a_costly_query_is_refused_before_any_sql_runs(fleet: Fleet) -> None:
    engine, statements = _counting(fleet.url)
    with TestClient(create_app(engine, allow_anonymous=True)) as client:
        body = post(client, COSTLY).json()
        error = body["errors"][0]
        assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
        cost = 1000 + 1000 * 1000 + 1000 * 1000 * 1
        assert f"{cost:,}" in error["message"] and f"{MAX_COST:,}" in error["message"]
        assert body["data"] is None and statements == []
        small = post(client, COSTLY, n=10).json()  # 1000 + 10,000 + 10,000: allowed
        assert "errors" not in small and statements


def test_a_query_past_the_statement_timeout_fails_with_query_timeout(fleet: Fleet) -> None:
    locker = create_engine(fleet.url)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with locker.connect() as connection, connection.begin():
            connection.execute(text("LOCK TABLE images IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        with TestClient(create_app(async_engine(fleet.url, statement_timeout=0.3), allow_anonymous=True)) as client:
            error = post(client, QUERY).json()["errors"][0]
            assert error["extensions"]["code"] == "QUERY_TIMEOUT"  # not the lock's release, 10 s later
    finally:
        release.set()
        holder.join()
        locker.dispose()


def test_each_request_is_audited_by_token_name_never_by_token(
    fleet: Fleet, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = fleet.token(["staging"], name="portal-staging")
    with caplog.at_level(logging.INFO):
        assert post(client, QUERY, token).status_code == 200
        assert post(client, QUERY, "inv_" + "x" * 43).status_code == 401
    audits = [r for r in caplog.records if r.name == "inventory.api.audit"]
    assert len(audits) == 1
    record = audits[0]
    assert (record.token_name, record.operation, record.cost) == ("portal-staging", "Listing", 5)  # type: ignore[attr-defined]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["token_name"] == "portal-staging" and entry["operation"] == "Listing" and entry["cost"] == 5
    everything = caplog.text + "".join(JsonFormatter().format(r) for r in caplog.records)
    assert token not in everything and token[4:20] not in everything and "x" * 43 not in everything


def test_webhooks_need_the_admin_scope(fleet: Fleet, client: TestClient) -> None:
    query = "{ webhooks { name status backlog } }"
    refused = post(client, query, fleet.token(None)).json()
    assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "admin" in refused["errors"][0]["message"]
    assert post(client, query, fleet.token(None, scopes=("admin",))).json() == {"data": {"webhooks": []}}


def test_the_graphiql_page_loads_without_a_token_but_its_queries_need_one(fleet: Fleet) -> None:
    with TestClient(create_app(async_engine(fleet.url), graphiql=True)) as dev:
        page = dev.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        by_get = dev.get("/graphql", params={"query": QUERY}, headers={"accept": "text/html"})
        assert by_get.status_code == 401
        assert post(dev, QUERY).status_code == 401
        assert post(dev, QUERY, fleet.token(None)).status_code == 200
