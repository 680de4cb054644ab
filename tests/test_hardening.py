"""The API handed to a portal it cannot trust: bounded arguments, one authentication decision, secrets
never shown, every bad input a coded error, and no traceback for anything a client sent."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth_fleet import Fleet
from click.testing import CliRunner
from graphql import parse
from graphql_client import data, error, gql
from starlette.testclient import TestClient
from test_cli_processes import free_port

from inventory import redact
from inventory.api.app import async_engine, create_app
from inventory.api.context import Context
from inventory.api.cost import query_cost
from inventory.api.schema import build_schema, schema
from inventory.api.turns import COSTLY, Turns
from inventory.cli import main
from inventory.db import mask_password
from inventory.globs import InvalidGlob, glob_regex
from inventory.logs import TextFormatter
from inventory.read import cursors
from inventory.read import inventory as read_inventory
from inventory.read.bounds import MAX_LIST_ITEMS

INVALID = "InvalidParameterException"


@pytest.fixture
def client(fleet: Fleet) -> Iterator[TestClient]:
    with TestClient(create_app(async_engine(fleet.url)), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {fleet.token(None)}"
        yield test_client


# 1. bounded work -------------------------------------------------------------------------


def test_a_list_argument_longer_than_100_is_refused_naming_it(client: TestClient) -> None:
    events = "query($tags: [String!]) { events(filter: {tags: $tags}) { nodes { id } } }"
    code, message = error(client, events, tags=[""] * 20_000)
    assert code == INVALID and "filter.tags" in message and "100" in message
    images = 'query($d: [String!]) { images(asOf: "2026-01-01T00:00:00Z", filter: {digests: $d}) { nodes { id } } }'
    code, message = error(client, images, d=[""] * 20_500)
    assert code == INVALID and "filter.digests" in message
    assert data(client, events, tags=[f"t{i}" for i in range(MAX_LIST_ITEMS)])["events"]["nodes"] == []


def test_list_arguments_count_in_the_query_cost() -> None:
    document = schema._schema  # the served schema
    plain = parse("{ events(first: 10) { nodes { id } } }")
    listed = parse('{ events(first: 10, filter: {tags: ["a", "b", "c"]}) { nodes { id } } }')
    nested = parse("{ images(first: 5) { nodes { history(first: 2) { nodes { id } } } } }")
    assert query_cost(document, plain) == 10
    assert query_cost(document, listed) == 13
    assert query_cost(document, nested) == 5 + 5 * 2


def test_costly_queries_take_turns_and_cheap_ones_never_wait(fleet: Fleet) -> None:
    """Above COSTLY nodes a query waits for one of the lanes (here one) before it runs, and is SERVER_BUSY past
    the wait; a cheaper one runs meanwhile; the lane is given back however the query ends."""
    costly = "{ a: images(first: 600) { nodes { id } } b: images(first: 600) { nodes { id } } }"
    failing = '{ a: images(first: 600, after: "nonsense") { nodes { id } } b: images(first: 600) { nodes { id } } }'
    cheap = "{ images(first: 600) { nodes { id } } }"
    assert query_cost(schema._schema, parse(costly)) > COSTLY >= query_cost(schema._schema, parse(cheap))
    engine = async_engine(fleet.url)
    turns = Turns(1, wait_seconds=0.2)
    served = build_schema(turns=turns)

    async def go() -> None:
        def run(query: str) -> Any:
            return served.execute(query, context_value=Context(engine))

        assert await turns.take(COSTLY + 1)  # the only lane, held
        started = time.monotonic()
        busy = await run(costly)
        assert busy.data is None and [e.extensions["code"] for e in busy.errors or []] == ["SERVER_BUSY"]
        assert time.monotonic() - started >= 0.2
        assert (await run(cheap)).data["images"]["nodes"]
        assert not await turns.take(COSTLY)  # not costly: no lane taken
        turns.give_back()
        for query in (costly, failing, costly):  # each gives the lane back, the failing one too
            result = await run(query)
            assert (result.errors is None) == (query == costly), result.errors
        assert await turns.take(COSTLY + 1)
        turns.give_back()
        await engine.dispose()

    asyncio.run(go())


# 2. one authentication decision ----------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/graphql?%71uery=%7Bregistries%7Bname%7D%7D",
        "/graphql?%71%75%65%72%79=%7Bregistries%7Bname%7D%7D",
        "/graphql?query=%7Bregistries%7Bname%7D%7D",
        "/graphql?Query=%7Bregistries%7Bname%7D%7D",
        "/graphql?QUERY=%7Bregistries%7Bname%7D%7D",
        "/graphql?x=1&%71uery=%7Bregistries%7Bname%7D%7D",
        "/graphql?query",
    ],
)
def test_no_spelling_of_a_get_runs_a_query_without_a_token(fleet: Fleet, target: str) -> None:
    with TestClient(create_app(async_engine(fleet.url), graphiql=True)) as anonymous:
        for accept in ("text/html", "TEXT/HTML", "text/html, */*", "*/*"):
            answer = anonymous.get(target, headers={"accept": accept})
            assert answer.status_code == 401, (target, accept, answer.text)
            assert answer.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        page = anonymous.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()


# 3. secrets never shown ------------------------------------------------------------------


def test_webhook_and_database_urls_are_shown_without_their_credentials() -> None:
    assert redact.url("http://user:pass@host/in?apikey=k1&v=2") == "http://***@host/in?apikey=***&v=***"
    assert redact.url("https://hooks.example.com/in") == "https://hooks.example.com/in"
    masked = mask_password("postgresql+psycopg://me:hunter2@db:5432/inv?password=hunter3&sslmode=require")
    assert "hunter" not in masked and "sslmode=require" in masked and masked.startswith("postgresql+psycopg://me:")
    assert redact.path("/graphql?access_token=inv_abc&x=1") == "/graphql?access_token=***&x=1"
    assert redact.path("/graphql?q=inv_abc") == "/graphql?q=***"
    assert redact.path("/graphql?api%5Fkey=1&Secret=2&PASSWORD=3&page=4") == (
        "/graphql?api%5Fkey=***&Secret=***&PASSWORD=***&page=4"
    )


def test_the_access_log_never_holds_a_token(fleet: Fleet, inventory_env: dict[str, str], tmp_path: Path) -> None:
    token = fleet.token(None)
    port = free_port()
    env = {**inventory_env, "INVENTORY_DATABASE_URL": fleet.url}
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        httpx.get(f"{url}/graphql?access_token={token}&page=2")
        httpx.get(f"{url}/graphql?password=hunter2")
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert "/graphql?access_token=***&page=2" in output, output
    assert token not in output and "hunter2" not in output


def test_webhooks_show_their_url_redacted(fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hooks.toml"
    config.write_text(
        '[[registries]]\nname = "prod"\naccount_id = "111111111111"\nregions = ["us-east-1"]\n'
        '[[webhooks]]\nname = "audit"\nurl = "http://user:pass@127.0.0.1:9/in?apikey=k1"\nsecret_env = "HOOK"\n'
    )
    monkeypatch.setenv("INVENTORY_DATABASE_URL", fleet.url)
    monkeypatch.setenv("HOOK", "whsec_" + base64.b64encode(b"k" * 32).decode())
    listed = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["webhooks", "list", "-c", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "http://***@127.0.0.1:9/in?apikey=***" in listed.output and "pass" not in listed.output
    with TestClient(create_app(async_engine(fleet.url))) as admin:
        admin.headers["Authorization"] = f"Bearer {fleet.token(None, scopes=('admin',))}"
        [hook] = data(admin, "{ webhooks { name url } }")["webhooks"]
    assert hook == {"name": "audit", "url": "http://***@127.0.0.1:9/in?apikey=***"}
    invalid = tmp_path / "invalid.toml"
    invalid.write_text(config.read_text().replace("http://user", "ftp://user"))
    refused = CliRunner().invoke(main, ["validate", "-c", str(invalid)])
    assert refused.exit_code != 0 and "ftp://***@" in refused.output and "pass" not in refused.output


def test_a_database_url_s_password_is_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("INVENTORY_DATABASE_URL", f"postgresql://me:hunter2@127.0.0.1:{port}/x?password=hunter3")
    result = CliRunner().invoke(main, ["tokens", "list"])
    assert result.exit_code == 1
    assert "cannot connect" in result.output and "hunter" not in result.output, result.output


def test_token_names_and_lifetimes_are_bounded(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_DATABASE_URL", fleet.url)
    runner = CliRunner()
    for name in ("ci\nINFO forged line", "", "x" * 65, "a b", "tök"):
        result = runner.invoke(main, ["tokens", "create", name])
        assert result.exit_code == 2 and "A-Z a-z 0-9 . _ -" in result.output, result.output
    result = runner.invoke(main, ["tokens", "create", "ci", "--expires", "99999999d"])
    assert result.exit_code == 2 and "at most 36500d" in result.output and "Traceback" not in result.output
    assert runner.invoke(main, ["tokens", "create", "ci.bot-1_x", "--expires", "30d"]).exit_code == 0


def test_the_text_log_keeps_one_record_on_one_line() -> None:
    record = logging.makeLogRecord({"msg": "token=%s", "args": ("ci\n2026-01-01 INFO forged\r\x1b[2J\ud800",)})
    line = TextFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\\n2026-01-01 INFO forged" in line
    line.encode()  # writable as UTF-8


# 4. /metrics honours the registries --------------------------------------------------------


def test_metrics_of_a_token_limited_to_registries_show_only_theirs(fleet: Fleet) -> None:
    with TestClient(create_app(async_engine(fleet.url))) as metrics:
        metrics.headers["Authorization"] = f"Bearer {fleet.token(['staging'], scopes=('metrics',))}"
        scoped = metrics.get("/metrics").text
        metrics.headers["Authorization"] = f"Bearer {fleet.token(None, scopes=('metrics',))}"
        every = metrics.get("/metrics").text
    assert 'registry="staging"' in scoped and 'inventory_images{region="us-east-1",registry="staging"}' in scoped
    for other in ("prod", "prod-tools", "public"):
        assert f'registry="{other}"' not in scoped and f'registry="{other}"' in every


# 5. cursors bound to the token's scope ------------------------------------------------------

TAG_HISTORY = """query($after: String) { tagHistory(registryId: "111111111111", region: "us-east-1",
  repositoryName: "app/web", tag: "latest", first: 1, after: $after) {
    pageInfo { endCursor } nodes { imageDigest } } }"""
DESCRIBE = """query($token: String) { describeImages(registryId: "111111111111", region: "us-east-1",
  repositoryName: "app/web", maxResults: 1, nextToken: $token) { nextToken imageDetails { imageDigest } } }"""


def test_tag_history_and_describe_images_cursors_are_bound_to_the_token_s_registries(
    fleet: Fleet, client: TestClient
) -> None:
    after = data(client, TAG_HISTORY)["tagHistory"]["pageInfo"]["endCursor"]
    token = data(client, DESCRIBE)["describeImages"]["nextToken"]
    assert after and token
    assert data(client, TAG_HISTORY, after=after)["tagHistory"]["nodes"]
    assert data(client, DESCRIBE, token=token)["describeImages"]["imageDetails"]
    client.headers["Authorization"] = f"Bearer {fleet.token(['prod'])}"  # sees app/web too
    assert data(client, TAG_HISTORY)["tagHistory"]["nodes"]
    for query, variables in ((TAG_HISTORY, {"after": after}), (DESCRIBE, {"token": token})):
        code, message = error(client, query, **variables)
        assert code == INVALID and "another query" in message


# 6. a coded error for every bad input -------------------------------------------------------

REPOSITORY = """query($name: String!) { repository(registryId: "111111111111", region: "us-east-1",
  repositoryName: $name) { repositoryName } }"""
IMAGES_AFTER = "query($after: String) { images(first: 2, after: $after) { pageInfo { endCursor } nodes { id } } }"


@pytest.mark.parametrize(
    ("query", "variables", "named"),
    [
        (REPOSITORY, {"name": "app/\x00web"}, "repositoryName"),
        (REPOSITORY, {"name": "app/\ud800"}, "repositoryName"),
        ('query($g: [String!]) { images(filter: {repositoryNames: $g}) { nodes { id } } }', {"g": ["[z-a]"]},
         "filter.repositoryNames"),
        ('query($g: [String!]) { repositories(filter: {repositoryNames: $g}) { nodes { id } } }', {"g": ["[!]"]},
         "filter.repositoryNames"),
        ('query($g: [String!]) { events(filter: {repositoryNames: $g}) { nodes { id } } }', {"g": ["a[!]"]},
         "filter.repositoryNames"),
        ('{ images(asOf: "0001-01-01T00:00:00+05:00") { nodes { id } } }', {}, "asOf"),
        ('{ events(filter: {until: "0001-01-01T00:00:00+05:00"}) { nodes { id } } }', {}, "filter.until"),
        ('{ diff(from: "0001-01-01T00:00:00+05:00", to: "2026-01-01T00:00:00Z") { nodes { __typename } } }', {},
         "from"),
    ],
)  # fmt: skip
def test_bad_strings_globs_and_times_are_invalid_parameters(
    client: TestClient, query: str, variables: dict[str, Any], named: str
) -> None:
    code, message = error(client, query, **variables)
    assert code == INVALID and named in message, message


def test_a_cursor_with_a_valid_prefix_and_a_wrong_value_is_an_invalid_parameter(client: TestClient) -> None:
    cursor = data(client, IMAGES_AFTER)["images"]["pageInfo"]["endCursor"]
    bound_to, *key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for forged in ([12345, *key[1:]], [key[0], 7, *key[2:]], [key[0], "a\x00", *key[2:]], key[:-1], [*key, "x"],
                   [{"$gt": 1}, *key[1:]], ["not a time", *key[1:]]):  # fmt: skip
        code, message = error(client, IMAGES_AFTER, after=cursors.encode(bound_to, forged))
        assert (code, message) == (INVALID, "after: not a cursor of this API"), forged
    sync_runs = "query($after: String) { syncRuns(first: 1, after: $after) { pageInfo { endCursor } } }"
    run_cursor = data(client, sync_runs)["syncRuns"]["pageInfo"]["endCursor"]
    run_binding = json.loads(base64.urlsafe_b64decode(run_cursor + "=" * (-len(run_cursor) % 4)))[0]
    code, _ = error(client, sync_runs, after=cursors.encode(run_binding, [2**70]))
    assert code == INVALID


def test_a_node_id_of_a_huge_number_is_no_node(client: TestClient) -> None:
    node = "query($id: ID!) { node(id: $id) { id } }"
    for raw in ("ImageEvent:99999999999999999999999", "ImageEvent:9223372036854775808", "ImageEvent:²"):
        assert data(client, node, id=base64.b64encode(raw.encode()).decode())["node"] is None
    code, _ = error(client, node, id=base64.b64encode(b"Registry:a\x00b").decode())
    assert code == INVALID


@pytest.mark.parametrize(
    "body",
    [
        "42",
        "null",
        "[]",
        '"query"',
        "[{}]",
        '{"query": 1}',
        '{"query": "{ registries { name } }", "operationName": 7}',
        "{",
    ],
)
def test_a_body_that_is_not_a_graphql_request_is_a_json_400(client: TestClient, body: str) -> None:
    answer = client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_syntax_errors_and_unchosen_operations_have_codes(client: TestClient) -> None:
    assert error(client, "{ registries { name }")[0] == "GRAPHQL_PARSE_FAILED"
    assert error(client, "query { registries { name } } query")[0] == "GRAPHQL_PARSE_FAILED"
    two = "query A { registries { name } } query B { registries { type } }"
    code, message = error(client, two)
    assert code == "OPERATION_RESOLUTION_FAILURE" and "operationName" in message
    unknown = client.post("/graphql", json={"query": two, "operationName": "C"})
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert '"C"' in unknown.json()["errors"][0]["message"]
    chosen = client.post("/graphql", json={"query": two, "operationName": "B"}).json()
    assert "errors" not in chosen and chosen["data"]["registries"][0]["type"]


def test_only_our_own_defects_are_internal_errors_and_they_carry_a_logged_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(db: Any, reader: Any) -> Any:
        raise RuntimeError("a defect of ours")

    monkeypatch.setattr(read_inventory, "registries", broken)
    with caplog.at_level(logging.ERROR, logger="inventory.api"):
        body = gql(client, "{ registries { name } }")
    [failure] = body["errors"]
    assert failure["message"] == "Unexpected error."
    request_id = failure["extensions"]["requestId"]
    assert failure["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and len(request_id) == 12
    [logged] = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged.exc_info and "a defect of ours" in str(logged.exc_info[1])


def test_globs_that_are_not_globs_are_refused_and_the_rest_are_valid_regular_expressions() -> None:
    import re

    for glob in ("[z-a]", "[!]", "app/[!]x"):
        with pytest.raises(InvalidGlob):
            glob_regex(glob)
    for glob, name, matches in (("app/*", "app/web", True), ("[!a]pp", "bpp", True), ("[a-c]x", "dx", False),
                                ("a[]b", "a[]b", True), ("[", "[", True), ("x[\\]", "x\\", True),
                                ("[^-]", "-", True), ("[^-]", "a", False)):  # fmt: skip
        assert bool(re.match(glob_regex(glob), name)) == matches, glob
