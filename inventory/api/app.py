"""The API server: ``/graphql`` (strawberry on starlette), ``/healthz`` and ``/metrics``.

``/graphql`` and ``/metrics`` answer bearer tokens only (``inventory.api.auth``) unless the app is
made with ``allow_anonymous``; ``/healthz`` is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

from cross_web import HTTPException
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

from inventory.api.auth import READS_INVENTORY, Authenticator, AuthError, Principal
from inventory.api.context import Context
from inventory.api.offloop import OffLoop, encode_json
from inventory.api.schema import build_schema
from inventory.api.turns import Turns
from inventory.console.app import Console
from inventory.console.graphiql import page as graphiql_page
from inventory.console.sessions import SESSION_SECONDS
from inventory.ecr.endpoint import Endpoint
from inventory.errors import InventoryError
from inventory.metrics import CONTENT_TYPE, exposition, fleet_metrics, queries
from inventory.outage import quiet
from inventory.read import database
from inventory.read.errors import RETRY_AFTER_SECONDS, Unavailable
from inventory.redact import AccessLogFilter

MAX_BODY_BYTES = 64 * 1024
STATEMENT_TIMEOUT = 10.0
"""Seconds a statement of the API may run (``--statement-timeout``); past it the query fails with QUERY_TIMEOUT."""
PRINCIPAL = "inventory.principal"
"""The ASGI scope key under which ``Authenticated`` leaves the request's ``Principal``."""
CONTEXT = "inventory.context"
"""The ASGI scope key under which the GraphQL view leaves the request's ``Context``."""

log = logging.getLogger("inventory.api")


class _GraphQL(GraphQL):
    """strawberry's view; every request it sees went through ``Authenticated``.

    A request that is not a GraphQL request (a body that is not a JSON object, a ``query`` that is
    not a string, ...) is answered HTTP 400 with a GraphQL-shaped error, code ``BAD_REQUEST``."""

    def __init__(self, engine: AsyncEngine, **options: Any) -> None:
        super().__init__(**options)
        self.engine = engine

    def encode_json(self, data: object) -> str:
        return encode_json(data)

    async def get_context(self, request: Any, response: Any) -> Context:  # type: ignore[override]
        context = Context(self.engine, request, request.scope[PRINCIPAL])
        request.scope[CONTEXT] = context
        return context

    async def parse_http_body(self, request: Any) -> Any:
        if request.method == "POST" and "json" in (request.content_type or ""):
            try:
                body = json.loads(await request.get_body())
            except ValueError:
                raise HTTPException(400, "the request body is not JSON") from None
            if not isinstance(body, dict):
                raise HTTPException(400, f"the request body must be a JSON object, got {_json_kind(body)}")
            name = body.get("operationName")
            if not isinstance(name, str | None):
                raise HTTPException(400, f"operationName must be a string or null, got {_json_kind(name)}")
        return await super().parse_http_body(request)

    async def execute_single(self, *args: Any, **kwargs: Any) -> Any:
        context, request_data = kwargs["context"], kwargs["request_data"]
        if isinstance(context, Context):
            context.operation_name = request_data.operation_name
        return await super().execute_single(*args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope, receive=receive))
        except HTTPException as refused:
            response = bad_request(refused.reason, refused.status_code)
        context = scope.get(CONTEXT)
        if isinstance(context, Context) and context.unavailable:  # a resolver met an outage: DATABASE_UNAVAILABLE
            response.status_code = 503
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        await response(scope, receive, send)


def _json_kind(value: object) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def bad_request(message: str, status: int = 400) -> Response:
    """A request that is not a GraphQL request: HTTP ``status``, a GraphQL-shaped error, code BAD_REQUEST."""
    return JSONResponse({"data": None, "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}, status)


class Authenticated:
    """Lets through only requests whose bearer may do one of ``needs``; their ``Principal`` goes in the scope.

    With ``page``, a browser's GET of the GraphiQL page itself (HTML, no query) is answered here with
    that page, without a token: it holds no data, and a browser cannot send a token to load it; its
    queries need one (GraphiQL's headers editor: ``{"Authorization": "Bearer inv_…"}``). Nothing else
    reaches ``app`` without a token: the page is never served by ``app``, so no spelling of a request
    (``%71uery=``, ...) can be both a page for this check and a query for ``app``."""

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, needs: frozenset[str], *, page: str | None = None
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.needs = needs
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.page is not None and _ide_page(scope):
            await HTMLResponse(self.page)(scope, receive, send)
            return
        try:
            principal = await self.authenticator.principal(Headers(scope=scope), self.needs)
        except AuthError as refused:
            log.info(
                "refused %s %s: %s",
                scope.get("method"),
                scope.get("path"),
                refused.code,
                extra={"status": refused.status, "code": refused.code},
            )
            await refused.response()(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)


def _ide_page(scope: Scope) -> bool:
    """A GET for the GraphiQL page: HTML wanted, no parameter in the URL (as decoded)."""
    request = Request(scope)
    return request.method == "GET" and "text/html" in request.headers.get("accept", "") and not request.query_params


def principal_of(request: Request) -> Principal:
    """The bearer of a request that went through ``Authenticated``."""
    principal: Principal = request.scope[PRINCIPAL]
    return principal


class AnswersOutages:
    """A request that meets a database outage before its answer starts (its token's lookup, say) is
    answered HTTP 503, code DATABASE_UNAVAILABLE, with ``Retry-After``; the outage is logged once
    (``inventory.read.database``), not with a traceback per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Unavailable as exc:
            body = {"data": None, "errors": [{"message": str(exc), "extensions": {"code": "DATABASE_UNAVAILABLE"}}]}
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            await JSONResponse(body, 503, headers=headers)(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(self.limit)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> Response:
    message = f"request body larger than {limit} bytes"
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": "REQUEST_TOO_LARGE"}}]}, 413)


@contextlib.asynccontextmanager
async def _closing(offloop: OffLoop, engine: AsyncEngine, own: AsyncEngine) -> AsyncIterator[None]:
    yield
    await own.dispose()
    await asyncio.to_thread(offloop.close, engine.dispose)


def async_engine(url: str, *, statement_timeout: float = STATEMENT_TIMEOUT) -> AsyncEngine:
    """The API's engine: asyncio psycopg, sessions in UTC like the rest of the program.

    Reads only, one statement at a time: in autocommit (no BEGIN/ROLLBACK round trips), and
    without a ping per checkout; a connection the server dropped is replaced by ``Context.rows``.
    JSON values are decoded from the UTF-8 Postgres sends (``json.loads`` of bytes first detects their
    encoding: it took longer than decoding an image's severity counts), flat ones once (``_json_loads``).
    Without JIT or parallel workers: a page reads a few hundred rows through indexes, and compiling
    its plan or starting workers (which the planner decides on from estimated costs, large when a
    history's tables are) took longer than running it. Each statement runs under ``statement_timeout``
    seconds (the request's query fails with QUERY_TIMEOUT past it). (A connection gives up after the
    URL's ``connect_timeout``, ``inventory.db.database_url``; the request is then answered 503.)
    """
    timeout = max(1, round(statement_timeout * 1000))
    options = f"-c timezone=UTC -c jit=off -c max_parallel_workers_per_gather=0 -c statement_timeout={timeout}"
    engine = create_async_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"options": options}, json_deserializer=_json_loads
    )
    quiet(engine.sync_engine.pool)
    return engine


_decode_json = json.JSONDecoder().decode
_FLAT: dict[bytes, dict[str, Any]] = {}
"""Flat JSON objects decoded before, by their text (an image's severity counts come in a few shapes)."""
_FLAT_HELD, _FLAT_LONGEST = 4096, 256


def _json_loads(document: bytes) -> Any:
    """A JSON value of the database: a flat object seen before is a copy of its decoding (a tenth of the cost)."""
    flat = _FLAT.get(document)
    if flat is not None:
        return flat.copy()
    value = _decode_json(document.decode())
    if (
        type(value) is dict
        and len(document) <= _FLAT_LONGEST
        and len(_FLAT) < _FLAT_HELD
        and not any(isinstance(item, dict | list) for item in value.values())
    ):
        _FLAT[document] = value.copy()
    return value


def create_app(
    engine: AsyncEngine,
    *,
    graphiql: bool = False,
    introspection: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
    allow_anonymous: bool = False,
    authenticator: Authenticator | None = None,
    console_session: int = SESSION_SECONDS,
    turns: Turns | None = None,
) -> Starlette:
    """The ASGI application; GraphiQL on GET only when ``graphiql``; the web console under ``/console``
    (``inventory.console``; its sessions last ``console_session`` seconds). Costly queries take turns
    in ``turns``' lanes (``inventory.api.turns``; by default one per core but one).

    Requests need a bearer token unless ``allow_anonymous`` (then everyone may read everything)."""
    auth = authenticator or Authenticator(engine, allow_anonymous=allow_anonymous)
    # GraphQL and /metrics (and their token lookups) run on a loop of their own, with ``engine``; the
    # server's loop, which answers /healthz, reads with an engine of its own (``inventory.api.offloop``).
    offloop = OffLoop()
    own = create_async_engine(engine.url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=2)
    quiet(own.sync_engine.pool)
    graphql = _GraphQL(
        engine,
        schema=build_schema(introspection=introspection, turns=turns or Turns()),
        graphql_ide="graphiql" if graphiql else None,
        allow_queries_via_get=graphiql,
    )

    ecr = Endpoint(engine, auth)

    async def healthz(request: Request) -> Response:
        try:
            async with own.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not healthy; say which
            return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, 503)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        try:
            principal = await auth.principal(request.headers, frozenset({"metrics"}))
        except AuthError as refused:
            return refused.response()
        rows = {name: await database.rows(engine, query) for name, query in queries(principal.registries).items()}
        return Response(exposition(fleet_metrics(rows)), media_type=CONTENT_TYPE)

    page = graphiql_page() if graphiql else None  # from the package's files, not strawberry's CDN page
    app = Starlette(
        routes=[
            Route(
                "/graphql",
                offloop.runs(AnswersOutages(Authenticated(graphql, auth, READS_INVENTORY, page=page))),
                methods=["GET", "POST"],
            ),
            *(Route(path, offloop.runs(ecr), methods=None) for path in ("/ecr", "/ecr/")),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", offloop.runs(AnswersOutages(request_response(metrics))), methods=["GET"]),
            *Console(engine, auth, session_seconds=console_session, graphiql=graphiql).routes(offloop.runs),
        ],
        lifespan=lambda _: _closing(offloop, engine, own),
    )
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``, for ``serve``: a busy port fails here, before anything is
    announced (``InventoryError`` naming the address)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(info[0], info[1], info[2])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as exc:
        raise InventoryError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(
    url: str,
    sock: socket.socket,
    *,
    graphiql: bool,
    introspection: bool = True,
    own_logging: bool = True,
    allow_anonymous: bool = False,
    statement_timeout: float = STATEMENT_TIMEOUT,
    console_session: int = SESSION_SECONDS,
) -> None:
    """Serve the API on ``sock`` (``listen``) with uvicorn until SIGINT or SIGTERM, then shut down gracefully.

    ``own_logging=False`` leaves logging as the caller configured it (``--log-format``)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    if allow_anonymous:
        log.warning(
            "serving without authentication (--allow-anonymous): anyone who can reach the API reads "
            "every registry's inventory and /metrics"
        )
    # GraphQL takes turns with the server's loop (``inventory.api.offloop``) in slices of this: 1 ms, not
    # Python's 5 ms, so that /healthz and new connections wait little behind the costliest query.
    sys.setswitchinterval(0.001)
    # The access log writes each request's target: its query string never with a credential in it.
    logging.getLogger("uvicorn.access").addFilter(AccessLogFilter())
    engine = async_engine(url, statement_timeout=statement_timeout)
    app = create_app(
        engine,
        graphiql=graphiql,
        introspection=introspection,
        allow_anonymous=allow_anonymous,
        console_session=console_session,
    )
    # Objects made so far (modules, the schema) live as long as the process: a full collection need not
    # scan them, and it stops every thread meanwhile (~100 ms per full collection without this).
    gc.freeze()
    config = uvicorn.Config(
        app, log_level="info", timeout_graceful_shutdown=10, log_config=LOGGING_CONFIG if own_logging else None
    )
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT, raised again once the server has shut down
        server.run(sockets=[sock])
    if not server.started:
        raise InventoryError("the API server did not start (its log above says why)")
