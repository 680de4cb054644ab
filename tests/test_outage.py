"""Database outages met by the API and the worker (a proxy in front of the real PostgreSQL cuts it):
coded 503s with Retry-After meanwhile, never a 500 or a traceback per request, one log line when the
outage starts and one when it ends, the first request after it answered; and connect timeouts."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.testclient import TestClient
from tcp_proxy import Proxy

from inventory.api.app import async_engine, create_app
from inventory.api.auth import new_token, token_hash
from inventory.db import create, driver_connection
from inventory.ecr import keys
from inventory.tables import api_tokens
from inventory.worker import Worker, WorkerOptions
from inventory.worker.metrics import serve_metrics

QUERY = {"query": "{ registries { name } }"}


@pytest.fixture
def proxy(server_url: str) -> Iterator[Proxy]:
    running = Proxy(server_url)
    yield running
    running.close()


def make_token(db_url: str, name: str) -> dict[str, str]:
    token = new_token()
    engine = create(db_url)
    with engine.begin() as connection:
        api_tokens.create(name, token_hash(token), scopes=["read"], registries=None, expires_at=None,
                          connection=driver_connection(connection))  # fmt: skip
    engine.dispose()
    return {"Authorization": f"Bearer {token}"}


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"].isdigit()
    [error] = answer.json()["errors"]
    assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE", error


def test_graphql_answers_503_during_an_outage_and_the_first_request_after_it(
    db_url: str, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    cached, fresh = make_token(db_url, "cached"), make_token(db_url, "fresh")
    database = db_url.rsplit("/", 1)[1].split("?")[0]
    with caplog.at_level(logging.INFO), TestClient(create_app(async_engine(proxy.url(database)))) as client:
        assert client.post("/graphql", json=QUERY, headers=cached).status_code == 200  # its lookup now cached
        proxy.set("drop")
        for _ in range(3):
            assert_unavailable(client.post("/graphql", json=QUERY, headers=fresh))  # the token's lookup
            assert_unavailable(client.post("/graphql", json=QUERY, headers=cached))  # a resolver's read
        assert client.get("/metrics", headers=fresh).status_code == 503
        proxy.set("forward")
        answer = client.post("/graphql", json=QUERY, headers=fresh)  # pooled connections are all dead
        assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
        assert client.post("/graphql", json=QUERY, headers=cached).status_code == 200
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database is unavailable" in m for m in messages) == 1, messages
    assert sum("available again" in m for m in messages) == 1, messages
    assert not [r for r in caplog.records if r.exc_info], "no traceback for an outage"


def test_healthz_of_serve_says_503_while_the_database_is_down(db_url: str, proxy: Proxy) -> None:
    database = db_url.rsplit("/", 1)[1].split("?")[0]
    with TestClient(create_app(async_engine(proxy.url(database)))) as client:
        assert client.get("/healthz").status_code == 200
        proxy.set("drop")
        assert client.get("/healthz").status_code == 503
        proxy.set("forward")
        assert client.get("/healthz").status_code == 200


def test_worker_healthz_is_503_while_it_cannot_reach_the_database(
    db_url: str, proxy: Proxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "inventory.toml"
    config.write_text("")
    database = db_url.rsplit("/", 1)[1].split("?")[0]
    engine = create(proxy.url(database), pool_pre_ping=False)
    worker = Worker(engine, config, WorkerOptions(lease=3))
    server = serve_metrics("127.0.0.1", 0, engine, worker.metrics, healthy_within=30)
    healthz = "http://{}:{}/healthz".format(*server.server_address[:2])
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop,))
    with caplog.at_level(logging.INFO):
        running.start()
        try:
            wait_for_status(healthz, 200)
            proxy.set("drop")
            wait_for_status(healthz, 503)
            time.sleep(3)  # several turns, heartbeats and webhook turns meet it
            assert httpx.get(healthz).status_code == 503
            proxy.set("forward")
            wait_for_status(healthz, 200)
        finally:
            stop.set()
            running.join(30)
            server.shutdown()
            engine.dispose()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database is unavailable" in m for m in messages) == 1, messages
    assert sum("available again" in m for m in messages) == 1, messages
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


def wait_for_status(url: str, status: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (got := httpx.get(url).status_code) != status:
        assert time.monotonic() < deadline, f"{url} still answers {got}, not {status}"
        time.sleep(0.1)


def inventory(*args: str, url: str, timeout: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INVENTORY_DATABASE_URL": url, "INVENTORY_DATABASE_CONNECT_TIMEOUT": str(timeout)}
    return subprocess.run([sys.executable, "-m", "inventory", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=cwd)  # fmt: skip


@pytest.mark.parametrize("command", [["migrate"], ["tokens", "list"], ["events"]])
def test_a_command_gives_up_on_a_server_that_never_answers(proxy: Proxy, command: list[str], tmp_path: Path) -> None:
    (tmp_path / "inventory.toml").write_text("")
    proxy.set("hang")
    url = proxy.url("inventory").replace("@", ":s3cret@", 1)
    started = time.monotonic()
    result = inventory(*command, url=url, timeout=2, cwd=tmp_path)
    took = time.monotonic() - started
    assert result.returncode == 1, result
    [line] = result.stderr.strip().splitlines()
    assert "connection timeout expired" in line and f"127.0.0.1:{proxy.port}" in line, line
    assert "s3cret" not in line
    assert took < 30, f"gave up after {took:.0f}s"


def test_serve_waits_for_a_database_that_never_answers_and_starts_when_it_does(proxy: Proxy, db_url: str) -> None:
    proxy.set("hang")
    database = db_url.rsplit("/", 1)[1].split("?")[0]
    env = {**os.environ, "INVENTORY_DATABASE_URL": proxy.url(database), "INVENTORY_DATABASE_CONNECT_TIMEOUT": "1"}
    serve = subprocess.Popen([sys.executable, "-m", "inventory", "serve", "--port", "0"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert serve.stdout is not None
    lines = []
    try:
        for line in serve.stdout:
            lines.append(line)
            if "trying again in 2s" in line:  # the second attempt timed out too: backing off
                break
        assert "connection timeout expired" in lines[-1], lines
        proxy.set("forward")
        for line in serve.stdout:
            lines.append(line)
            if line.startswith("GraphQL API on"):
                break
        assert lines[-1].startswith("GraphQL API on"), lines
    finally:
        serve.terminate()
        serve.wait(30)


def test_the_ecr_endpoint_answers_ecrs_503_during_an_outage(
    db_url: str, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keys.SECRET_KEY_VARIABLE, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    access_key_id = keys.new_access_key_id()
    secret = keys.secret_for(keys.server_key(), access_key_id)
    engine = create(db_url)
    with engine.begin() as connection:
        api_tokens.create("aws", token_hash(secret), scopes=["read"], registries=None, expires_at=None,
                          connection=driver_connection(connection), aws_access_key_id=access_key_id)  # fmt: skip
    engine.dispose()

    def describe(client: TestClient) -> httpx.Response:
        body = json.dumps({"registryId": "111111111111"})
        request = AWSRequest(method="POST", url="http://testserver/ecr", data=body, headers={
            "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
            "Content-Type": "application/x-amz-json-1.1"})  # fmt: skip
        SigV4Auth(Credentials(access_key_id, secret), "ecr", "us-east-1").add_auth(request)
        return client.post("/ecr", content=body.encode(), headers=dict(request.headers))

    database = db_url.rsplit("/", 1)[1].split("?")[0]
    with TestClient(create_app(async_engine(proxy.url(database)))) as client:
        assert describe(client).status_code == 200
        proxy.set("drop")
        for _ in range(2):  # the key's lookup is cached: the read meets the outage
            answer = describe(client)
            assert answer.status_code == 503 and answer.headers["retry-after"].isdigit(), answer.text
            assert answer.json()["__type"] == "ServiceUnavailableException"
        proxy.set("forward")
        assert describe(client).status_code == 200
