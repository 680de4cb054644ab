"""The API server: ``/graphql`` (strawberry on starlette), ``/healthz`` and ``/metrics``.

``/graphql`` and ``/metrics`` answer bearer tokens only (``inventory.api.auth``) unless the app is
made with ``allow_anonymous``; ``/healthz`` is open.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

from inventory.api.auth import READS_INVENTORY, Authenticator, AuthError, Principal
from inventory.api.context import Context
from inventory.api.schema import build_schema
from inventory.metrics import CONTENT_TYPE, QUERIES, exposition, fleet_metrics

MAX_BODY_BYTES = 64 * 1024
STATEMENT_TIMEOUT = 10.0
"""Seconds a statement of the API may run (``--statement-timeout``); past it the query fails with QUERY_TIMEOUT."""
PRINCIPAL = "inventory.principal"
"""The ASGI scope key under which ``Authenticated`` leaves the request's ``Principal``."""

log = logging.getLogger("inventory.api")

_PAGE = Principal("graphiql page", frozenset(), registries=())


class _GraphQL(GraphQL):
    def __init__(self, engine: AsyncEngine, **options: Any) -> None:
        super().__init__(**options)
        self.engine = engine

    async def get_context(self, request: Any, response: Any) -> Context:  # type: ignore[override]
        # Only the GraphiQL page comes without a principal (``Authenticated``): strawberry asks for a
        # context before it renders the page; one that may read nothing.
        return Context(self.engine, request, request.scope.get(PRINCIPAL, _PAGE))


class Authenticated:
    """Lets through only requests whose bearer may do one of ``needs``; their ``Principal`` goes in the scope.

    With ``open_page``, a browser's GET of the GraphiQL page itself (HTML, no query) is let through: it
    holds no data, and a browser cannot send a token to load it; its queries need one (GraphiQL's
    headers editor: ``{"Authorization": "Bearer inv_…"}``)."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, needs: frozenset[str], *,
                 open_page: bool = False) -> None:  # fmt: skip
        self.app = app
        self.authenticator = authenticator
        self.needs = needs
        self.open_page = open_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.open_page and _ide_page(scope):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.authenticator.principal(Headers(scope=scope), self.needs)
        except AuthError as refused:
            log.info("refused %s %s: %s", scope.get("method"), scope.get("path"), refused.code,
                     extra={"status": refused.status, "code": refused.code})  # fmt: skip
            await refused.response()(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)


def _ide_page(scope: Scope) -> bool:
    """A GET for the GraphiQL page: HTML wanted, no query in the URL."""
    accept = Headers(scope=scope).get("accept", "")
    return scope.get("method") == "GET" and "text/html" in accept and b"query=" not in scope.get("query_string", b"")


def principal_of(request: Request) -> Principal:
    """The bearer of a request that went through ``Authenticated``."""
    principal: Principal = request.scope[PRINCIPAL]
    return principal


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
async def _disposing(engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    await engine.dispose()


def async_engine(url: str, *, statement_timeout: float = STATEMENT_TIMEOUT) -> AsyncEngine:
    """The API's engine: asyncio psycopg, sessions in UTC like the rest of the program.

    Reads only, one statement at a time: in autocommit (no BEGIN/ROLLBACK round trips), and
    without a ping per checkout; a connection the server dropped is replaced by ``Context.rows``.
    Without JIT or parallel workers: a page reads a few hundred rows through indexes, and compiling
    its plan or starting workers (which the planner decides on from estimated costs, large when a
    history's tables are) took longer than running it. Each statement runs under ``statement_timeout``
    seconds (the request's query fails with QUERY_TIMEOUT past it).
    """
    timeout = max(1, round(statement_timeout * 1000))
    options = f"-c timezone=UTC -c jit=off -c max_parallel_workers_per_gather=0 -c statement_timeout={timeout}"
    return create_async_engine(url, isolation_level="AUTOCOMMIT", connect_args={"options": options})


def create_app(
    engine: AsyncEngine,
    *,
    graphiql: bool = False,
    introspection: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
    allow_anonymous: bool = False,
    authenticator: Authenticator | None = None,
) -> Starlette:
    """The ASGI application; GraphiQL on GET only when ``graphiql``.

    Requests need a bearer token unless ``allow_anonymous`` (then everyone may read everything)."""
    auth = authenticator or Authenticator(engine, allow_anonymous=allow_anonymous)
    graphql = _GraphQL(
        engine,
        schema=build_schema(introspection=introspection),
        graphql_ide="graphiql" if graphiql else None,
        allow_queries_via_get=graphiql,
    )

    async def healthz(request: Request) -> Response:
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not healthy; say which
            return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, 503)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        try:
            await auth.principal(request.headers, frozenset({"metrics"}))
        except AuthError as refused:
            return refused.response()
        async with engine.connect() as connection:
            rows = {name: list(await connection.execute(query)) for name, query in QUERIES.items()}
        return Response(exposition(fleet_metrics(rows)), media_type=CONTENT_TYPE)

    app = Starlette(
        routes=[
            Route(
                "/graphql", Authenticated(graphql, auth, READS_INVENTORY, open_page=graphiql), methods=["GET", "POST"]
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lambda _: _disposing(engine),
    )
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


def serve(
    url: str,
    host: str,
    port: int,
    *,
    graphiql: bool,
    introspection: bool = True,
    own_logging: bool = True,
    allow_anonymous: bool = False,
    statement_timeout: float = STATEMENT_TIMEOUT,
) -> None:
    """Serve the API with uvicorn until SIGINT or SIGTERM, then shut down gracefully.

    ``own_logging=False`` leaves logging as the caller configured it (``--log-format``)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    if allow_anonymous:
        log.warning("serving without authentication (--allow-anonymous): anyone who can reach the API reads "
                    "every registry's inventory and /metrics")  # fmt: skip
    engine = async_engine(url, statement_timeout=statement_timeout)
    app = create_app(engine, graphiql=graphiql, introspection=introspection, allow_anonymous=allow_anonymous)
    uvicorn.run(
        app, host=host, port=port, log_level="info", timeout_graceful_shutdown=10,
        log_config=LOGGING_CONFIG if own_logging else None,
    )  # fmt: skip
