"""The ECR-compatible endpoint fuzzed from its own schema: botocore's models of ECR and ECR Public. Requests of
every served operation (and of operations that write), their members drawn from the input shapes, mostly of
their types and bounds and now and then not, signed by an access key limited to one registry.

No answer may be an HTTP 5xx; every error is ECR-shaped (``__type`` and ``message``); every answer is of its
operation's output shape, and nothing of a registry outside the key's scope appears in it.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from auth_fleet import PROD, STAGING, Fleet
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient
from test_ecr_endpoint import _conforms

from inventory.api.app import async_engine, create_app
from inventory.api.auth import token_hash
from inventory.db import driver_connection
from inventory.ecr import keys
from inventory.ecr.endpoint import TARGETS
from inventory.tables import api_tokens

OPERATIONS = {
    "ecr": ["DescribeImages", "DescribeRepositories", "ListImages", "PutImage", "BatchDeleteImage"],
    "ecr-public": ["DescribeImages", "DescribeRepositories", "DeleteRepository"],
}
PREFIX = {service: prefix for prefix, service in TARGETS.items()}
MODELS = {service: botocore.session.get_session().get_service_model(service) for service in OPERATIONS}
HOSTILE = st.sampled_from(["", "a\x00b", "\ud800", "x" * 3000, "app/web", "tools/cli", "latest", PROD, STAGING,
                           "sha256:" + "0" * 64, "ANY", "UNTAGGED"])  # fmt: skip


LIKELY = {
    "registryId": st.sampled_from([STAGING, STAGING, STAGING, PROD]),
    "repositoryName": st.sampled_from(["app/web", "app/web", "tools/cli"]),
    "repositoryNames": st.lists(st.sampled_from(["app/web", "tools/cli"]), min_size=1, max_size=2),
    "nextToken": st.none(),
    "maxResults": st.sampled_from([1, 2, 100, 1000]),
    "imageIds": st.lists(st.sampled_from([{"imageTag": "latest"}, {"imageTag": "stg-1"}]), min_size=1, max_size=2),
    "filter": st.fixed_dictionaries({}, optional={"tagStatus": st.sampled_from(["TAGGED", "UNTAGGED", "ANY"])}),
}
"""Members mostly given values that name something, so that answers, not only refusals, are fuzzed."""


def _member(name: str, shape: Any) -> st.SearchStrategy[Any]:
    likely = LIKELY.get(name)
    return _value(shape) if likely is None else st.one_of(likely, likely, likely, _value(shape))


def _value(shape: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """JSON for ``shape``: mostly of its type and bounds, sometimes not."""
    kind = shape.type_name
    junk = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2))
    if kind == "structure":
        if depth > 3:
            return st.just({})
        members = {name: _value(member, depth + 1) for name, member in shape.members.items()}
        return st.one_of(*[st.fixed_dictionaries({}, optional=members)] * 6, junk)
    if kind == "list":
        item = _value(shape.member, depth + 1)
        return st.one_of(*[st.lists(item, max_size=4)] * 4, st.lists(item, min_size=101, max_size=102), junk)
    if kind == "string":
        if shape.enum:
            return st.one_of(*[st.sampled_from(shape.enum)] * 4, HOSTILE)
        return st.one_of(HOSTILE, st.text(max_size=30))
    if kind in ("integer", "long"):
        return st.one_of(*[st.sampled_from([1, 2, 100, 1000])] * 3, st.integers(), junk)
    if kind == "boolean":
        return st.booleans() | junk
    return junk


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    service = draw(st.sampled_from(["ecr", "ecr", "ecr", "ecr-public"]))
    operation = draw(st.sampled_from(OPERATIONS[service]))
    shape = MODELS[service].operation_model(operation).input_shape
    params = draw(st.fixed_dictionaries({}, optional={n: _member(n, m) for n, m in shape.members.items()}))
    return service, operation, params


@pytest.fixture
def scoped(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Credentials, list[str]]]:
    """A client, an access key limited to staging, and what must never show: the other registries' digests
    and their account."""
    monkeypatch.setenv(keys.SECRET_KEY_VARIABLE, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    access_key_id = keys.new_access_key_id()
    secret = keys.secret_for(keys.server_key(), access_key_id)
    engine = create_engine(fleet.url)
    with engine.begin() as connection:
        api_tokens.create("fuzz", token_hash(secret), scopes=["read"], registries=["staging"], expires_at=None,
                          connection=driver_connection(connection), aws_access_key_id=access_key_id)  # fmt: skip
        hidden = [r[0] for r in connection.execute(text("SELECT image_digest FROM images WHERE registry_id <> :a"),
                                                   {"a": STAGING})]  # fmt: skip
    engine.dispose()
    with TestClient(create_app(async_engine(fleet.url)), raise_server_exceptions=False) as client:
        yield client, Credentials(access_key_id, secret), [*hidden, PROD]


def test_no_generated_request_fails_on_our_side_or_shows_another_registry(
    scoped: tuple[TestClient, Credentials, list[str]], request: pytest.FixtureRequest
) -> None:
    client, credentials, hidden = scoped

    @settings(max_examples=request.config.getoption("fuzz_examples"), deadline=None,
              suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
    @given(requests())
    def run(asked: tuple[str, str, dict[str, Any]]) -> None:
        service, operation, params = asked
        body = json.dumps(params)
        signed = AWSRequest(method="POST", url="http://testserver/ecr", data=body,
                            headers={"X-Amz-Target": f"{PREFIX[service]}.{operation}",
                                     "Content-Type": "application/x-amz-json-1.1"})  # fmt: skip
        SigV4Auth(credentials, service, "us-east-1").add_auth(signed)
        answer = client.post("/ecr", content=body.encode(), headers=dict(signed.headers))
        assert answer.status_code < 500, (service, operation, params, answer.text)
        assert answer.headers["content-type"] == "application/x-amz-json-1.1"
        found = answer.json()
        if answer.status_code != 200:
            assert set(found) == {"__type", "message"} and found["__type"] and found["message"], found
            return
        _conforms(found, MODELS[service].operation_model(operation).output_shape, operation)
        shown = json.dumps(found)
        assert not [secret for secret in hidden if secret in shown], (service, operation, params, shown)

    run()
