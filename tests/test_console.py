"""The web console over the multi-registry fleet (``auth_fleet``): login, sessions, pages, refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from auth_fleet import PROD, Fleet
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app


@pytest.fixture
def client(fleet: Fleet) -> Iterator[TestClient]:
    with TestClient(create_app(async_engine(fleet.url)), base_url="http://testserver") as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found[1]


def login(client: TestClient, token: str) -> None:
    form = client.get("/console/login")
    assert form.status_code == 200
    answer = client.post("/console/login", data={"token": token, "csrf": csrf_of(form.text)}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console"


def test_pages_render(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None, scopes=["admin"]))
    for path, query in [("/console", {}), ("/console/images", {}), ("/console/images", {"tag": "latest"}),
                        ("/console/status", {}), ("/console/events", {}), ("/console/webhooks", {}),
                        ("/console/events", {"from": fleet.between.isoformat()})]:  # fmt: skip
        page = client.get(path, params=query)
        assert page.status_code == 200, (path, page.text)
    search = client.get("/console/images", params={"tag": "latest"})
    links = re.findall(r'href="(/console/image/[^"]+)"', search.text)
    assert links
    image = client.get(links[0])
    assert image.status_code == 200, image.text
    repo = re.findall(r'href="(/console/repository/[^"?]+)', search.text)[0]
    assert client.get(repo).status_code == 200
    assert PROD in search.text
