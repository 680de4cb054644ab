"""Helpers of the console's tests: a client of the app over the access tests' fleet, and its login."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app


def console_client(url: str, *, base_url: str = "http://testserver", **options: object) -> TestClient:
    """A client of the app of the database at ``url`` (use it as a context manager)."""
    return TestClient(create_app(async_engine(url), **options), base_url=base_url)  # type: ignore[arg-type]


def csrf_of(html: str) -> str:
    """The secret a page's form carries."""
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, html
    return found[1]


def login(client: TestClient, token: str) -> str:
    """Sign ``client`` in with ``token``; the session cookie's value."""
    form = client.get("/console/login")
    assert form.status_code == 200
    answer = client.post("/console/login", data={"token": token, "csrf": csrf_of(form.text)}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console"
    session = answer.cookies.get("inventory_session")
    assert session
    return session


def image_links(html: str) -> list[str]:
    return re.findall(r'href="(/console/image/[^"?]+)', html)
