"""The console in a real browser: Debian's chromium, headless, through chromium-driver (``make setup``
installs both), against ``inventory serve`` run as a process, with every other host unreachable."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from auth_fleet import PROD, STAGING, Fleet
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
"""A directory to save each page's screenshot in (to look at them), if set."""


def _browser() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "the browser tests need chromium and chromium-driver: run `make setup`"
    return chromium, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = _browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     # the network is cut off: every host but the server's is unreachable
                     "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                     "--disable-background-networking", "--no-first-run"]:  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    with webdriver.Chrome(options=options, service=Service(driver)) as running:
        yield running


@pytest.fixture
def server(fleet: Fleet, tmp_path: Path) -> Iterator[str]:
    """``inventory serve`` on a free port over the fleet's database: its base URL."""
    env = {**os.environ, "INVENTORY_DATABASE_URL": fleet.url, "INVENTORY_HOME": str(tmp_path / "home")}
    process = subprocess.Popen([sys.executable, "-m", "inventory", "serve", "--port", "0", "--dev"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert process.stdout is not None
    try:
        for line in process.stdout:
            found = re.match(r"Web console on (http://127\.0\.0\.1:\d+)/console", line)
            if found:
                break
        else:
            raise AssertionError("inventory serve did not start")
        for _ in range(100):  # the banner comes just before the server accepts connections
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(found[1] + "/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        yield found[1]
    finally:
        process.terminate()
        process.wait(30)


def _requests(browser: WebDriver) -> list[str]:
    """The URLs the browser requested since last asked."""
    urls = []
    for entry in browser.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _shot(browser: WebDriver, name: str) -> None:
    if SHOTS:
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1400, min(max(height + 40, 700), 2400))
        browser.save_screenshot(str(Path(SHOTS) / f"{name}.png"))
        browser.set_window_size(1400, 1000)


def _login(browser: WebDriver, server: str, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(server + "/console")
    assert browser.current_url.startswith(server + "/console/login")
    _shot(browser, "login")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, 10).until(lambda b: b.current_url == server + "/console")


def test_a_session_in_the_browser(fleet: Fleet, server: str, browser: WebDriver) -> None:
    _requests(browser)
    _login(browser, server, fleet.token(None))
    _shot(browser, "overview")
    # search by tag
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/console/images']").click()
    WebDriverWait(browser, 10).until(
        lambda b: b.current_url.startswith(server + "/console/images") and b.find_elements(By.NAME, "tag")
    )
    field = browser.find_element(By.NAME, "tag")
    field.send_keys("latest")
    field.submit()
    WebDriverWait(browser, 10).until(
        lambda b: "tag=latest" in b.current_url and b.find_elements(By.CSS_SELECTOR, "table.images tbody tr")
    )
    assert "tag=latest" in browser.current_url
    rows = browser.find_elements(By.CSS_SELECTOR, "table.images tbody tr")
    assert rows and all("latest" in row.text for row in rows)
    _shot(browser, "search")
    # open the image of app/web tagged latest in prod's us-east-1
    row = next(r for r in rows if "app/web" in r.text and "prod" in r.text and "us-east-1" in r.text)
    row.find_element(By.CSS_SELECTOR, "a.digest").click()
    WebDriverWait(browser, 10).until(lambda b: "/console/image/" in b.current_url and b.find_elements(By.ID, "fields"))
    assert "/console/image/" in browser.current_url and "prod" in browser.find_element(By.ID, "fields").text
    _shot(browser, "image")
    # follow the tag's earlier holder
    latest = browser.find_element(By.CSS_SELECTOR, "table.spans[data-tag='latest']")
    holder = latest.find_element(By.CSS_SELECTOR, "a.holder")
    earlier = holder.get_attribute("href")
    holder.click()
    WebDriverWait(browser, 10).until(lambda b: b.current_url == earlier)
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("app/web@")
    # the freshness page
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/console/status']").click()
    WebDriverWait(browser, 10).until(
        lambda b: b.current_url == server + "/console/status" and b.find_elements(By.ID, "freshness")
    )
    regions = browser.find_elements(By.CSS_SELECTOR, "#freshness tbody tr")
    assert len(regions) == 5  # prod: 2 regions, prod-tools, staging, public
    _shot(browser, "status")
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/console/events']").click()
    WebDriverWait(browser, 10).until(lambda b: b.current_url.startswith(server + "/console/events"))
    _shot(browser, "events")
    # log out: the pages ask for a login again
    browser.find_element(By.ID, "logout").click()
    WebDriverWait(browser, 10).until(lambda b: b.current_url == server + "/console/login")
    browser.get(server + "/console/images")
    assert browser.current_url.startswith(server + "/console/login")
    hosts = {urlparse(url).netloc for url in _requests(browser) if not url.startswith("data:")}
    assert hosts == {urlparse(server).netloc}, hosts


def test_a_scoped_session_never_shows_another_registrys_image(fleet: Fleet, server: str, browser: WebDriver) -> None:
    _login(browser, server, fleet.token(["staging"]))
    browser.get(server + "/console/images")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.images tbody tr")
    assert rows
    for row in rows:
        assert row.text.startswith("staging")
        assert STAGING in row.find_element(By.CSS_SELECTOR, "a.digest").get_attribute("href")  # type: ignore[operator]
    browser.get(server + "/console/images?tag=latest&registry=prod")
    assert "registry:" in browser.find_element(By.ID, "error").text
    browser.get(server + "/console/events")
    assert PROD not in browser.find_element(By.TAG_NAME, "main").text.split("Feed", 1)[1]


def test_a_wrong_token_stays_on_the_form(fleet: Fleet, server: str, browser: WebDriver) -> None:
    browser.delete_all_cookies()
    browser.get(server + "/console/login")
    browser.find_element(By.ID, "token").send_keys("inv_wrong")
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "login-error"))  # the form, answered
    assert "not valid" in browser.find_element(By.ID, "login-error").text
    assert browser.get_cookie("inventory_session") is None


def test_graphiql_renders_from_the_servers_files_only(fleet: Fleet, server: str, browser: WebDriver) -> None:
    _requests(browser)
    browser.get(server + "/graphql")
    WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".graphiql-container"))
    assert browser.find_elements(By.CSS_SELECTOR, ".graphiql-editors")
    _shot(browser, "graphiql")
    hosts = {urlparse(url).netloc for url in _requests(browser) if url.startswith("http")}
    assert hosts == {urlparse(server).netloc}, hosts
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[no-untyped-call]
    assert not [e for e in errors if "integrity" in e["message"].lower()], errors
