"""The web console's routes under ``/console``: login and logout, the pages, their static files.

Every page goes through ``_page``: the reader's session (or a redirect to the login form), then the
handler; a refusal becomes a page (400 naming the parameter, 403, 404, 503), never a traceback. Every
answer forbids framing and loading anything from another origin (``Content-Security-Policy``).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, quote

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, request_response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from inventory.api.auth import Authenticator, AuthError
from inventory.console import fleet, history, inventory
from inventory.console.owners import Owners
from inventory.console.page import Forbidden, NotFound, Page
from inventory.console.params import BadParameter
from inventory.console.render import TEMPLATES
from inventory.console.sessions import (
    COOKIE,
    LOGIN_COOKIE,
    SESSION_SECONDS,
    Sessions,
    Viewer,
    clear_cookie,
    same_origin,
    same_secret,
    set_cookie,
)
from inventory.read.database import Engine
from inventory.read.errors import ReadError, Unavailable

log = logging.getLogger("inventory.console")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Handler = Callable[[Page], Awaitable[Response]]


class _Headers:
    """Adds ``SECURITY_HEADERS`` to every answer of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                present = {name.lower() for name, _ in headers}
                headers += [
                    (k.lower().encode(), v.encode())
                    for k, v in SECURITY_HEADERS.items()
                    if k.lower().encode() not in present
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)  # type: ignore[arg-type]


class Console:
    """The console of one API process: its sessions and the database its pages read."""

    def __init__(
        self,
        engine: AsyncEngine,
        authenticator: Authenticator,
        *,
        session_seconds: int = SESSION_SECONDS,
        graphiql: bool = False,
    ) -> None:
        self.sessions = Sessions(engine, authenticator, seconds=session_seconds)
        self.db = Engine(engine)
        self.owners = Owners()
        self.graphiql = graphiql

    def routes(self, wrap: Callable[[ASGIApp], ASGIApp] = lambda app: app) -> list[BaseRoute]:
        """The console's routes; ``wrap`` runs each (``OffLoop.runs``: on the loop of the API's engine)."""

        def route(path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str]) -> Route:
            return Route(path, wrap(_Headers(request_response(endpoint))), methods=methods)

        static = StaticFiles(packages=[("inventory.console", "static")])
        return [
            route("/console", self._page(fleet.home_page), ["GET"]),
            route("/console/login", self.login_form, ["GET"]),
            route("/console/login", self.login, ["POST"]),
            route("/console/logout", self.logout, ["POST"]),
            route("/console/images", self._page(inventory.search_page), ["GET"]),
            route("/console/image/{image:path}", self._page(inventory.image_page), ["GET"]),
            route("/console/repository/{repository:path}", self._page(inventory.repository_page), ["GET"]),
            route("/console/status", self._page(fleet.status_page), ["GET"]),
            route("/console/events", self._page(history.events_page), ["GET"]),
            route("/console/webhooks", self._page(fleet.webhooks_page), ["GET"]),
            Mount("/console/static", app=_Headers(static), name="console-static"),
        ]

    def _page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            viewer: Viewer | None = None
            try:
                viewer = await self.sessions.viewer(request)
                if viewer is None:
                    return RedirectResponse("/console/login?next=" + quote(_target(request), safe=""), 303)
                return await handler(Page(request, viewer, self.db, self.owners, self.graphiql))
            except Exception as exc:  # every failure is a page, never a traceback
                return self._refusal(request, viewer, exc)

        return endpoint

    def _refusal(self, request: Request, viewer: Viewer | None, exc: Exception) -> Response:
        if isinstance(exc, BadParameter):
            status, title, message = 400, "Bad parameter", str(exc)
        elif isinstance(exc, NotFound):
            status, title, message = 404, "Not found", str(exc)
        elif isinstance(exc, Forbidden):
            status, title, message = 403, "Forbidden", str(exc)
        elif isinstance(exc, Unavailable):
            status, title, message = 503, "Database unavailable", str(exc)
        elif isinstance(exc, ReadError):
            status, message = exc.status, exc.message
            title = "History not retained" if exc.code == "HistoryNotRetained" else "Bad parameter"
            if status >= 500:
                title = "The query failed"
        else:
            request_id = uuid.uuid4().hex[:12]
            log.exception("console %s %s failed (request %s)", request.method, request.url.path, request_id)
            status, title, message = (
                500,
                "Internal error",
                f"the page failed; the server's log says why (request {request_id})",
            )
        response = TEMPLATES.TemplateResponse(
            request,
            "error.html",
            {
                "viewer": viewer,
                "graphiql": self.graphiql,
                "path": request.url.path,
                "title": title,
                "message": message,
                "status": status,
            },
            status_code=status,
        )
        if status == 503:
            response.headers["Retry-After"] = "5"
        return response

    # login and logout ------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """``GET /console/login``: the token form (with its double-submit secret); anonymous: no login."""
        if self.sessions.anonymous:
            return RedirectResponse("/console", 303)
        return self._login_page(request, None, 200)

    def _login_page(self, request: Request, message: str | None, status: int) -> Response:
        secret = secrets.token_urlsafe(32)
        response = TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {
                "viewer": None,
                "graphiql": self.graphiql,
                "path": request.url.path,
                "csrf": secret,
                "next": _safe_next(request.query_params.get("next")),
                "message": message,
            },
            status_code=status,
        )
        set_cookie(response, request, LOGIN_COOKIE, secret, max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        """``POST /console/login`` (form field ``token``): a session cookie and 303 to /console, or the form again."""
        if self.sessions.anonymous:
            return RedirectResponse("/console", 303)
        form = await _form(request)
        if not same_origin(request) or not same_secret(_field(form.get("csrf")), request.cookies.get(LOGIN_COOKIE)):
            return self._login_page(request, "The form expired or came from another site: sign in again.", 403)
        token = (_field(form.get("token")) or "").strip()
        try:
            opened = await self.sessions.open(token)
        except AuthError as refused:
            message = (
                "That token lacks the read or admin scope the console needs."
                if refused.status == 403
                else "That token is not valid: unknown, revoked or expired."
            )
            return self._login_page(request, message, refused.status)
        except Unavailable as exc:
            return self._refusal(request, None, exc)
        if opened is None:
            return self._login_page(request, "That token is not valid: unknown, revoked or expired.", 401)
        session_id, seconds = opened
        response = RedirectResponse(_safe_next(_field(form.get("next"))), 303)
        set_cookie(response, request, COOKIE, session_id, max_age=seconds)
        clear_cookie(response, request, LOGIN_COOKIE)
        return response

    async def logout(self, request: Request) -> Response:
        """``POST /console/logout`` (form field ``csrf``): end the session; 303 to the login form."""
        try:
            viewer = await self.sessions.viewer(request)
            form = await _form(request)
            if viewer is None or viewer.anonymous:
                return RedirectResponse("/console/login" if viewer is None else "/console", 303)
            if not same_origin(request) or not same_secret(_field(form.get("csrf")), viewer.csrf):
                return self._refusal(request, viewer, Forbidden("the logout form expired or came from another site"))
            await self.sessions.close(request)
        except Unavailable as exc:
            return self._refusal(request, None, exc)
        response = RedirectResponse("/console/login", 303)
        clear_cookie(response, request, COOKIE)
        return response


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the console's forms are; the body is bounded by the app's ``BodyLimit``),
    the first of each name; anything else is no field at all."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    try:
        fields = parse_qsl((await request.body()).decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    found: dict[str, str] = {}
    for name, value in fields:
        found.setdefault(name, value)
    return found


def _field(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _target(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _safe_next(target: str | None) -> str:
    """Where to go after login: a console path of this server only (never another host)."""
    if not target or not target.startswith("/console") or target.startswith("//") or "\\" in target:
        return "/console"
    return target
