"""``/ecr``: ECR's JSON 1.1 protocol, answered from the inventory.

A request is ``POST`` with ``X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>`` (private ECR)
or ``SpencerFrontendService.<Operation>`` (ECR Public) and a JSON object for a body, signed with SigV4 by an
inventory AWS access key (``inventory tokens create --aws``). The region asked about is the one the request
was signed for, as each of ECR's regional endpoints serves its own. The answer is
``application/x-amz-json-1.1`` with an ``x-amzn-RequestId``; an error is ``{"__type", "message"}`` with
ECR's HTTP status. Operations that write are refused (``AccessDeniedException``), others not served are
``UnknownOperationException``; nothing is ever written.

The key's registries limit every answer as a GraphQL token's do (out of scope reads as missing), a request
costs its page (``operations.page_cost``, held to GraphQL's limit) and its statements run under the API's
statement timeout; each request leaves one audit line (key name, operation, cost).
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from inventory.api.auth import ANONYMOUS, READS_INVENTORY, Authenticator, Principal
from inventory.api.cost import MAX_COST
from inventory.aws import semantics
from inventory.aws.semantics import EcrError
from inventory.ecr import keys, operations, sigv4
from inventory.ecr.operations import Caller
from inventory.errors import InventoryError
from inventory.read import database, inventory
from inventory.read.bounds import check_list, check_text
from inventory.read.errors import RETRY_AFTER_SECONDS, Unavailable

TARGETS = {"AmazonEC2ContainerRegistry_V20150921": "ecr", "SpencerFrontendService": "ecr-public"}
"""The ``X-Amz-Target`` prefixes: which service a request is for (its SigV4 signing name)."""
CONTENT_TYPE = "application/x-amz-json-1.1"
_READS = ("Describe", "List", "Get", "BatchGet", "BatchCheck")
"""How the names of the services' reading operations begin; every other operation writes."""

log = logging.getLogger("inventory.api")
audit = logging.getLogger("inventory.api.audit")


@functools.cache
def _operations(service: str) -> frozenset[str]:
    """Every operation of ``service``, from botocore's model of it (loaded once, when first needed)."""
    import botocore.session

    return frozenset(botocore.session.get_session().get_service_model(service).operation_names)


def _refused_operation(service: str, name: str) -> EcrError:
    if name in _operations(service) and not name.startswith(_READS):
        return EcrError("AccessDeniedException", f"{name} writes: the inventory's ECR endpoint is read-only")
    served = ", ".join(sorted(op for kind, op in operations.SERVED if kind == service))
    return EcrError("UnknownOperationException", f"{name!r} is not served here (served: {served})")


def _answer(body: dict[str, Any], status: int = 200, request_id: str = "", **headers: str) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status,
        headers={"x-amzn-RequestId": request_id, **headers},
        media_type=CONTENT_TYPE,
    )


def _error(error: EcrError, request_id: str) -> Response:
    if isinstance(error, Unavailable):
        return _answer(
            {"__type": "ServiceUnavailableException", "message": error.message},
            503,
            request_id,
            **{"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return _answer({"__type": error.code, "message": error.message}, error.status, request_id)


class Endpoint:
    """The ASGI app of ``/ecr``; one per API process (``auth`` is the API's, so keys are cached as tokens)."""

    def __init__(self, engine: Any, auth: Authenticator) -> None:
        self.db = database.Engine(engine)
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = str(uuid.uuid4())
        name, principal, cost = None, None, None
        try:
            service, name = self._target(request)
            body = await request.body()
            signed = sigv4.signed(request.headers)
            principal = await self._principal(request, signed, service, body)
            params = _params(body)
            cost = operations.page_cost(params)
            if cost > MAX_COST:
                raise semantics.invalid(f"the request's cost {cost:,} exceeds the limit of {MAX_COST:,}")
            handle = operations.SERVED.get((service, name))
            if handle is None:
                raise _refused_operation(service, name)
            registry_id = await self._registry_id(principal, service, signed.region, params)
            caller = Caller(self.db, principal.registries, service, signed.region, registry_id)
            response = _answer(await handle(caller, params), request_id=request_id)
        except EcrError as refused:
            response = _error(refused, request_id)
        except Exception:  # a defect of ours: logged with the request id the client is given
            log.exception("unexpected error (request %s)", request_id, extra={"request_id": request_id})
            message = f"An internal error occurred (request {request_id})"
            response = _answer({"__type": "ServerException", "message": message}, 500, request_id)
        token = principal.name if principal is not None else None
        audit.info(
            "ecr request=%s token=%s operation=%s cost=%s",
            request_id,
            token,
            name,
            cost,
            extra={"request_id": request_id, "token_name": token, "operation": name, "cost": cost},
        )
        await response(scope, receive, send)

    def _target(self, request: Request) -> tuple[str, str]:
        """(service, operation) of the request's ``X-Amz-Target``."""
        if request.method != "POST":
            raise EcrError("UnknownOperationException", "ECR's API takes POST requests with an X-Amz-Target", 404)
        prefix, _, name = (request.headers.get("x-amz-target") or "").partition(".")
        if prefix not in TARGETS or not name:
            known = " or ".join(f"{p}.<Operation>" for p in TARGETS)
            raise EcrError("UnknownOperationException", f"X-Amz-Target must be {known}")
        return TARGETS[prefix], name

    async def _principal(self, request: Request, signed: sigv4.Signed, service: str, body: bytes) -> Principal:
        """The key that signed the request, if it is live, may read, and the signature is its own."""
        if signed.service != service:
            raise EcrError("InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'")
        if self.auth.allow_anonymous:
            return ANONYMOUS
        found = (
            await self.auth.access_key(signed.access_key_id) if keys.is_access_key_id(signed.access_key_id) else None
        )
        if found is None:
            raise EcrError("UnrecognizedClientException", "The security token included in the request is invalid.")
        try:
            server_key = keys.server_key()
        except InventoryError:  # `serve` said so when it started (a malformed one stopped it)
            raise EcrError(
                "ServerException",
                f"the server cannot verify access keys: it has no valid {keys.SECRET_KEY_VARIABLE}",
                500,
            ) from None
        secret = keys.secret_for(server_key, signed.access_key_id)
        sigv4.verify(
            signed, secret, method=request.method, url=_url(request), headers=request.headers.items(), body=body
        )
        if not any(found.may(scope) for scope in READS_INVENTORY):
            raise EcrError("AccessDeniedException", f"key {found.name!r} lacks the read scope")
        return found

    async def _registry_id(self, principal: Principal, service: str, region: str, params: dict[str, Any]) -> str:
        """The request's ``registryId``; without one, the key's one account in the region."""
        if params.get("registryId") is not None:
            return semantics.registry_id_param(params, "")
        found = await inventory.accounts(self.db, principal.registries, service, region)
        if len(found) != 1:
            covered = f"{len(found)} accounts" if found else "no account"
            raise semantics.invalid(f"registryId is required: this key covers {covered} in {region}")
        return found[0]


def _url(request: Request) -> str:
    """The URL as the client addressed it (its raw path and query): what it signed."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    host = request.headers.get("host", "")
    path = raw_path.decode("latin-1")
    return f"{request.url.scheme}://{host}{path}" + (f"?{query.decode('latin-1')}" if query else "")


def _params(body: bytes) -> dict[str, Any]:
    """The request's JSON object (an empty body is an empty request, as botocore sends none)."""
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except (ValueError, RecursionError):
        raise EcrError("SerializationException", "the request body is not JSON") from None
    if not isinstance(params, dict):
        raise EcrError("SerializationException", "the request body must be a JSON object")
    _check(params, "")
    return params


_DEPTH = 8
"""Levels a request may nest (ECR's deepest, an imageId in imageIds, is 3)."""


def _check(value: Any, name: str, depth: int = 0) -> None:
    """Every string of the request can be taken as text and every list holds at most ``MAX_LIST_ITEMS``
    (InvalidParameterException naming the member otherwise), whatever member it is in."""
    if depth > _DEPTH:
        raise semantics.invalid(f"Invalid parameter at '{name}': nested too deep")
    if isinstance(value, str):
        check_text(value, name or "request")
    elif isinstance(value, list):
        check_list(value, name)
        for item in value:
            _check(item, name, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, name or "request")
            _check(item, f"{name}.{key}" if name else key, depth + 1)
