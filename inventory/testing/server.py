"""The emulator's HTTP front: AWS's wire protocols, the admin API, and a runner.

Real clients talk to it with ``endpoint_url``: ECR (JSON 1.1, target prefix
``AmazonEC2ContainerRegistry_V20150921``), ECR Public (``SpencerFrontendService``),
SQS (JSON 1.0, ``AmazonSQS``) and STS (query protocol). The caller's account comes from the access key of the
SigV4 ``Authorization`` header (assumed-role keys act as the role's account);
the region from its credential scope. Signatures are not verified.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from inventory.aws.semantics import EcrError
from inventory.testing import admin, sqs, sts
from inventory.testing.client import AdminClient
from inventory.testing.ecr import OPERATIONS, Caller
from inventory.testing.store import RegistryType, Store

TARGET_PREFIXES: dict[str, RegistryType] = {
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
    "SpencerFrontendService": "ecr-public",
}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[0-9]{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_JSON = "application/x-amz-json-1.1"
_JSON_1_0 = "application/x-amz-json-1.0"
_SQS_PREFIX = "AmazonSQS"
LONG_POLL_STEP = 0.01
"""How often a long-polling receive looks at its queue again."""


def _signer(request: Request) -> tuple[str | None, str]:
    """(access key id, region) from the SigV4 Authorization header."""
    match = _CREDENTIAL.search(request.headers.get("authorization", ""))
    return (match[1], match[2]) if match else (None, "us-east-1")


def _aws_json(status: int, body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        media_type=_JSON,
        headers={"x-amzn-RequestId": secrets.token_hex(16)},
    )


def _check_faults(store: Store, operation: str, accounts: set[str]) -> None:
    if store.take_fault("throttle", operation):
        raise EcrError("ThrottlingException", "Rate exceeded")
    if store.take_fault("server_error", operation):
        raise EcrError("ServerException", "An internal error occurred (emulated fault)", 500)
    if store.faults.over_rate(accounts, time.monotonic()) is not None:
        raise EcrError("ThrottlingException", "Rate exceeded")
    denied = accounts & store.faults.denied_accounts
    if denied:
        raise EcrError(
            "AccessDeniedException",
            f"User: arn:aws:sts::{min(denied)}:assumed-role/inventory-reader/session is not "
            f"authorized to perform: ecr:{operation} (emulated fault)",
        )


_IDENTIFYING = {"imageDetails": "imageDigest", "repositories": "repositoryName"}


def _malform(answer: dict[str, Any], how: str) -> None:
    """The ``malformed`` fault: drop the identifying key of the answer's first item (``identity``),
    make that item a string (``shape``: botocore's parser cannot read it), or its size text (``type``)."""
    for key, identity in _IDENTIFYING.items():
        if answer.get(key):
            if how == "shape":
                answer[key][0] = "not an object"
            elif how == "type":
                answer[key][0]["imageSizeInBytes"] = "large"
            else:
                answer[key][0].pop(identity, None)


async def aws_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    access_key_id, region = _signer(request)
    body = await request.body()
    target = request.headers.get("x-amz-target")
    with store.locked():
        latency = store.faults.latency_seconds
    if latency:
        await asyncio.sleep(latency)
    if target is None:
        return _sts(store, access_key_id, dict(parse_qsl(body.decode())))

    prefix, _, operation = target.partition(".")
    if prefix == _SQS_PREFIX:
        return await _sqs(store, request, access_key_id, region, operation, body)
    registry_type = TARGET_PREFIXES.get(prefix)
    handler = OPERATIONS.get(operation)
    if registry_type is None or handler is None:
        return _aws_json(400, {"__type": "UnknownOperationException", "message": f"Unknown operation {target}"})
    try:
        params = json.loads(body or b"{}")
    except ValueError:
        return _aws_json(400, {"__type": "SerializationException", "message": "Invalid JSON"})
    with store.locked():
        caller = Caller(store.account_of(access_key_id), region, registry_type)
        store.calls[operation] = store.calls.get(operation, 0) + 1
        try:
            _check_faults(store, operation, {caller.account, str(params.get("registryId"))})
            answer = handler(store, caller, params)
            if store.take_fault("malformed", operation):
                _malform(answer, store.faults.malformed_how)
            return _aws_json(200, answer)
        except EcrError as exc:
            return _aws_json(exc.status, {"__type": exc.code, "message": exc.message})


def _sqs_json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        media_type=_JSON_1_0,
        headers={"x-amzn-RequestId": secrets.token_hex(16), **(headers or {})},
    )


async def _sqs(
    store: Store, request: Request, access_key_id: str | None, region: str, operation: str, body: bytes
) -> Response:
    """One SQS call; a ``ReceiveMessage`` that finds nothing waits (off the lock) up to its wait time."""
    handler = sqs.OPERATIONS.get(operation)
    try:
        if handler is None:
            raise sqs.SqsError("UnsupportedOperation", f"Unknown operation AmazonSQS.{operation}")
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise sqs.SqsError("InvalidParameterValue", "The request body is not valid JSON") from None
        deadline = None
        while True:
            with store.locked():
                caller = sqs.Caller(store.account_of(access_key_id), region, str(request.base_url))
                if deadline is None:
                    store.calls[operation] = store.calls.get(operation, 0) + 1
                    if store.take_fault("throttle", operation):
                        raise sqs.SqsError("RequestThrottled", "Request is throttled.")
                    if store.take_fault("server_error", operation):
                        raise sqs.SqsError("InternalError", "We encountered an internal error.", 500)
                    wait = sqs.wait_seconds(store.queues, caller, params) if operation == "ReceiveMessage" else 0
                    deadline = time.monotonic() + wait
                answer = handler(store.queues, caller, params)
            if answer or time.monotonic() >= deadline or operation != "ReceiveMessage":
                return _sqs_json(200, answer)
            await asyncio.sleep(LONG_POLL_STEP)
    except sqs.SqsError as exc:
        return _sqs_json(
            exc.status,
            {"__type": f"com.amazonaws.sqs#{exc.code}", "message": exc.message},
            {"x-amzn-query-error": exc.query_error},
        )


def _sts(store: Store, access_key_id: str | None, params: dict[str, str]) -> Response:
    action = params.get("Action", "")
    handler = sts.ACTIONS.get(action)
    with store.locked():
        store.calls[action] = store.calls.get(action, 0) + 1
        try:
            if handler is None:
                raise EcrError("InvalidAction", f"Could not find operation {action}")
            if store.take_fault("throttle", action):
                raise EcrError("Throttling", "Rate exceeded")
            xml = handler(store, store.account_of(access_key_id), params)
            return Response(xml, media_type="text/xml")
        except EcrError as exc:
            return Response(sts.error_xml(exc), status_code=exc.status, media_type="text/xml")


def create_app(store: Store | None = None) -> Starlette:
    """The emulator as an ASGI application."""
    app = Starlette(routes=[*admin.routes, Route("/", aws_endpoint, methods=["POST"])])
    app.state.store = store or Store()
    return app


class _NoDelayH11(H11Protocol):
    """HTTP/1.1 with TCP_NODELAY on every connection.

    uvicorn writes a response's headers and body in two sends; with Nagle on, the
    body waits for the client to acknowledge the headers, which Linux delays by
    40 ms, so every call on a kept-alive connection would take 40 ms on loopback.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


class Emulator:
    """The emulator served by uvicorn on a background thread (tests, the demo, the CLI)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, store: Store | None = None) -> None:
        self.store = store or Store()
        self._socket = socket.create_server((host, port), reuse_port=False)
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            create_app(self.store), log_level="warning", lifespan="off", access_log=False, http=_NoDelayH11
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin(self) -> AdminClient:
        return AdminClient(self.url)

    def start(self) -> Emulator:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the ECR emulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
