"""The console's login, sessions and forgery defences (``inventory.console.sessions``)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from auth_fleet import Fleet
from console_client import console_client, csrf_of, login
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from inventory.api.auth import CACHE_SECONDS


@pytest.fixture
def client(fleet: Fleet) -> Iterator[TestClient]:
    with console_client(fleet.url) as test_client:
        yield test_client


def _sql(fleet: Fleet, statement: str, **parameters: object) -> list[object]:
    engine = create_engine(fleet.url)
    with engine.begin() as connection:
        result = connection.execute(text(statement), parameters)
        rows = list(result) if result.returns_rows else []
    engine.dispose()
    return rows


def _set_cookie(response: object, name: str) -> str:
    headers = [v for k, v in response.headers.multi_items() if k == "set-cookie"]  # type: ignore[attr-defined]
    found = [h for h in headers if h.startswith(name + "=")]
    assert found, headers
    return found[0]


def test_pages_need_a_session(client: TestClient) -> None:
    for path in ["/console", "/console/images?tag=latest", "/console/status", "/console/events", "/console/webhooks"]:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login?next=%2Fconsole")


def test_login_sets_a_strict_http_only_cookie_holding_a_random_id(fleet: Fleet, client: TestClient) -> None:
    token = fleet.token(None)
    form = client.get("/console/login")
    assert 'name="token"' in form.text and 'method="post"' in form.text
    answer = client.post("/console/login", data={"token": token, "csrf": csrf_of(form.text)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    cookie = _set_cookie(answer, "inventory_session")
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/console" in attributes
    assert "secure" not in attributes  # plain HTTP
    assert "max-age=43200" in attributes  # 12 h
    session_id = answer.cookies["inventory_session"]
    assert token not in cookie and len(session_id) >= 40
    (stored,) = _sql(fleet, "SELECT session_hash, expires_at - now() AS left FROM console_sessions")
    assert bytes(stored[0]) == hashlib.sha256(session_id.encode()).digest()  # type: ignore[index]
    assert timedelta(hours=11, minutes=59) < stored[1] <= timedelta(hours=12)  # type: ignore[index]
    page = client.get("/console")
    assert page.status_code == 200 and 'id="logout"' in page.text


def test_a_second_login_gets_another_session_id(fleet: Fleet, client: TestClient) -> None:
    token = fleet.token(None)
    assert login(client, token) != login(client, token)


@pytest.mark.parametrize("forwarded", [{"x-forwarded-proto": "https"}, {"forwarded": "for=10.0.0.1;proto=https"}])
def test_the_cookie_is_secure_behind_an_https_proxy(
    fleet: Fleet, client: TestClient, forwarded: dict[str, str]
) -> None:
    form = client.get("/console/login", headers=forwarded)
    secret = _set_cookie(form, "inventory_login").split(";")[0].split("=", 1)[1]
    client.cookies.set("inventory_login", secret, path="/console")  # a Secure cookie: the browser is on HTTPS
    answer = client.post("/console/login", data={"token": fleet.token(None), "csrf": csrf_of(form.text)},
                         headers=forwarded, follow_redirects=False)  # fmt: skip
    assert "secure" in [p.strip().lower() for p in _set_cookie(answer, "inventory_session").split(";")]


def test_the_cookie_is_secure_over_https(fleet: Fleet) -> None:
    with console_client(fleet.url, base_url="https://testserver") as client:
        form = client.get("/console/login")
        assert "secure" in [p.strip().lower() for p in _set_cookie(form, "inventory_login").split(";")]
        answer = client.post("/console/login", data={"token": fleet.token(None), "csrf": csrf_of(form.text)},
                             follow_redirects=False)  # fmt: skip
        assert "secure" in [p.strip().lower() for p in _set_cookie(answer, "inventory_session").split(";")]


@pytest.mark.parametrize("wrong", ["", "inv_nope", "not-a-token"])
def test_a_wrong_token_is_refused_with_a_message_and_no_cookie(client: TestClient, wrong: str) -> None:
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"token": wrong, "csrf": csrf_of(form.text)}, follow_redirects=False)
    assert answer.status_code == 401
    assert "not valid" in answer.text and 'id="login-error"' in answer.text
    assert "inventory_session" not in answer.headers.get("set-cookie", "")


def test_a_token_without_read_or_admin_is_refused(fleet: Fleet, client: TestClient) -> None:
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"token": fleet.token(None, scopes=["metrics"]),
                                                 "csrf": csrf_of(form.text)}, follow_redirects=False)  # fmt: skip
    assert answer.status_code == 403 and "lacks the read or admin scope" in answer.text
    assert "inventory_session" not in answer.headers.get("set-cookie", "")


def test_login_is_protected_against_forgery(fleet: Fleet, client: TestClient) -> None:
    token = fleet.token(None)
    form = client.get("/console/login")
    secret = csrf_of(form.text)
    for data, headers in [
        ({"token": token}, {}),  # no secret
        ({"token": token, "csrf": "guess"}, {}),  # not the login cookie's
        ({"token": token, "csrf": secret}, {"origin": "https://evil.example"}),  # another site's form
    ]:
        answer = client.post("/console/login", data=data, headers=headers, follow_redirects=False)
        assert answer.status_code == 403, answer.text
        assert "inventory_session" not in answer.headers.get("set-cookie", "")
    client.cookies.clear()
    answer = client.post("/console/login", data={"token": token, "csrf": secret}, follow_redirects=False)
    assert answer.status_code == 403  # the secret without its cookie


def test_logout_needs_the_sessions_secret_and_ends_the_session(fleet: Fleet, client: TestClient) -> None:
    session = login(client, fleet.token(None))
    assert client.post("/console/logout", data={"csrf": "guess"}, follow_redirects=False).status_code == 403
    page = client.get("/console")
    assert page.status_code == 200  # a forged logout ended nothing
    cross_site = client.post("/console/logout", data={"csrf": csrf_of(page.text)},
                             headers={"origin": "http://evil.example"}, follow_redirects=False)  # fmt: skip
    assert cross_site.status_code == 403
    answer = client.post("/console/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    assert 'inventory_session=""' in _set_cookie(answer, "inventory_session")
    assert _sql(fleet, "SELECT count(*) FROM console_sessions")[0][0] == 0  # type: ignore[index]
    client.cookies.set("inventory_session", session, path="/console")  # the old cookie, kept
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_logout_is_a_post(client: TestClient) -> None:
    assert client.get("/console/logout", follow_redirects=False).status_code == 405


def test_revoking_the_token_ends_its_sessions(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None, name="console-user"))
    assert client.get("/console").status_code == 200
    _sql(fleet, "UPDATE api_tokens SET revoked_at = now() WHERE name = 'console-user'")
    time.sleep(CACHE_SECONDS)  # what a process learnt of a session, it trusts that long (as of a token)
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_the_session_ends_when_its_token_expires(fleet: Fleet, client: TestClient) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    login(client, fleet.token(None, name="short", expires_at=expires))
    (left,) = _sql(fleet, "SELECT expires_at FROM console_sessions")
    assert abs((left[0] - expires).total_seconds()) < 1  # type: ignore[index]  # never past the token's expiry
    _sql(fleet, "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'short'")
    time.sleep(CACHE_SECONDS)  # moved back in the database: a process learns it at its next lookup
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_sessions_expire(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None))
    _sql(fleet, "UPDATE console_sessions SET expires_at = now() - interval '1 second'")
    time.sleep(CACHE_SECONDS)
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_the_session_length_is_configurable(fleet: Fleet) -> None:
    with console_client(fleet.url, console_session=600) as client:
        login(client, fleet.token(None))
        (left,) = _sql(fleet, "SELECT expires_at - now() FROM console_sessions")
        assert timedelta(minutes=9) < left[0] <= timedelta(minutes=10)  # type: ignore[index]


def test_login_goes_back_to_a_console_page_only(fleet: Fleet, client: TestClient) -> None:
    token = fleet.token(None)
    for target, expected in [("/console/status", "/console/status"), ("//evil.example/console", "/console"),
                             ("https://evil.example/", "/console"), ("/console\\@evil", "/console")]:  # fmt: skip
        form = client.get("/console/login", params={"next": target})
        answer = client.post("/console/login", data={"token": token, "csrf": csrf_of(form.text), "next": target},
                             follow_redirects=False)  # fmt: skip
        assert answer.headers["location"] == expected


def test_anonymous_console_opens_without_login_and_says_so(fleet: Fleet) -> None:
    with console_client(fleet.url, allow_anonymous=True) as client:
        for path in ["/console", "/console/images", "/console/status", "/console/events", "/console/webhooks"]:
            page = client.get(path)
            assert page.status_code == 200, path
            assert 'id="anonymous-banner"' in page.text
        assert client.get("/console/login", follow_redirects=False).headers["location"] == "/console"


def test_pages_forbid_framing_and_other_origins(fleet: Fleet, client: TestClient) -> None:
    for answer in [client.get("/console/login"), client.get("/console/static/console.css")]:
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_a_sessions_expiry_is_exact_whatever_the_cache(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None, name="soon", expires_at=datetime.now(UTC) + timedelta(seconds=1.5)))
    assert client.get("/console").status_code == 200  # looked up, and cached for CACHE_SECONDS
    time.sleep(1.6)
    assert client.get("/console", follow_redirects=False).status_code == 303  # past the token's expiry
