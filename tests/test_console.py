"""The console's pages over the multi-registry fleet (``auth_fleet``): what they show, to whom, and how
they refuse."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from auth_fleet import PROD, STAGING, Fleet
from console_client import console_client, image_links, login
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from inventory.console import inventory as console_inventory


@pytest.fixture
def client(fleet: Fleet) -> Iterator[TestClient]:
    with console_client(fleet.url) as test_client:
        yield test_client


def _image_rows(html: str) -> list[str]:
    return re.findall(r"<tr(?: class=\"removed\")?>\s*<td>.*?</tr>", html, re.S)


def test_every_page_renders(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None, scopes=["admin"]))
    for path, query in [("/console", {}), ("/console/images", {}), ("/console/images", {"tag": "latest"}),
                        ("/console/status", {}), ("/console/events", {}), ("/console/webhooks", {}),
                        ("/console/events", {"from": fleet.between.isoformat()}),
                        ("/console/events", {"from": fleet.between.isoformat(), "to": fleet.between.isoformat()
                                             .replace("+00:00", "Z")[:-8] + "Z"})]:  # fmt: skip
        page = client.get(path, params=query)
        assert page.status_code in (200, 400), (path, page.text)
        assert "Traceback" not in page.text
    assert "<svg" in client.get("/console").text


def test_search_by_tag_and_the_image_page(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None))
    search = client.get("/console/images", params={"tag": "prod"})
    assert search.status_code == 200
    assert 'id="total">1 image' in search.text
    (link,) = image_links(search.text)
    assert "/app/web" in link and PROD in link
    image = client.get(link)
    assert image.status_code == 200
    for field in ["imageDigest", "imageTags", "imageSizeInBytes", "imagePushedAt", "imageScanStatus",
                  "lastRecordedPullTime", "imageStatus", "firstSeenAt"]:  # fmt: skip
        assert f"<dt>{field}</dt>" in image.text
    # the tag history of `latest`: this image holds it now; the earlier holder links to its page
    spans = re.search(r'<table class="spans" data-tag="latest">(.*?)</table>', image.text, re.S)
    assert spans and "<strong>now</strong>" in spans[1]
    (earlier,) = re.findall(r'class="digest holder" href="([^"]+)"', spans[1])
    assert client.get(earlier).status_code == 200
    assert "image.changed" in image.text  # its own history: the tags it gained


def test_search_parameters_narrow_and_page(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None))
    staging = client.get("/console/images", params={"registry": "staging"})
    assert STAGING in staging.text and PROD not in unquote(staging.text.split('id="total"')[1])
    tools = client.get("/console/images", params={"repository": "tools/*"}).text
    owners = re.findall(r"<tr><td title=\"account \d+\">([a-z-]+)", tools)
    assert set(owners) == {"prod-tools", "public"}  # the registry of each image's repository, not its account's
    assert "eu-west-1" not in client.get("/console/images", params={"region": "us-east-1"}).text.split('id="total"')[1]
    first = client.get("/console/images", params={"order": "size"})
    assert 'id="next"' not in first.text  # under 100 images: one page
    assert client.get("/console/images", params={"digest": "sha256:" + "0" * 64}).text.count("No images match") == 1


def test_search_pages_with_after(fleet: Fleet, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    login(client, fleet.token(None))
    original = console_inventory.inventory.image_page

    async def pages_of_five(*args: object, **kwargs: object) -> object:
        return await original(*args[:4], 5, *args[5:], **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(console_inventory.inventory, "image_page", pages_of_five)
    seen: list[str] = []
    page = client.get("/console/images", params={"order": "pushed_at"})
    while True:
        seen += image_links(page.text)
        found = re.search(r'id="next" href="([^"]+)"', page.text)
        if not found:
            break
        page = client.get(found[1].replace("&amp;", "&"))
        assert page.status_code == 200
    assert len(seen) == len(set(seen)) == fleet.present


def test_a_scoped_session_sees_only_its_registries(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(["staging"]))
    search = client.get("/console/images")
    links = image_links(search.text)
    assert links and all(f"/{STAGING}/" in link for link in links)
    assert f'id="total">{sum(1 for owner in fleet.owner.values() if owner == "staging") and len(links)} images' in (
        search.text
    )
    # a prod image by its address looks exactly like a missing one
    with_admin = console_client(fleet.url)
    with with_admin:
        login(with_admin, fleet.token(None))
        prod_link = next(link for link in image_links(with_admin.get("/console/images").text) if PROD in link)
    assert client.get(prod_link).status_code == 404
    missing = prod_link[:-3] + "zzz"
    assert client.get(missing).status_code == 404
    assert client.get("/console/images", params={"registry": "prod"}).status_code == 400
    assert PROD not in client.get("/console/events").text.split("<h2>Feed")[1]
    assert "prod" not in client.get("/console/status").text.split('id="freshness"')[1]
    assert client.get("/console/images", params={"digest": prod_link.split("/")[5]}).text.count("No images match")


def test_webhooks_page_is_for_admin_tokens(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None, scopes=["read"]))
    assert client.get("/console/webhooks").status_code == 403
    assert "/console/webhooks" not in client.get("/console").text
    login(client, fleet.token(None, scopes=["admin"]))
    assert client.get("/console/webhooks").status_code == 200


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"order": "bogus"}, "order:"),
        ({"status": "gone"}, "status:"),
        ({"severity": "awful"}, "severity:"),
        ({"removed": "maybe"}, "removed:"),
        ({"as_of": "yesterday"}, "as_of:"),
        ({"as_of": "2999-01-01T00:00:00Z"}, "as_of:"),
        ({"repository": "app/[z-a]"}, "repository:"),
        ({"after": "garbage"}, "after:"),
        ({"registry": "nope"}, "registry:"),
        ({"tag": "x" * 3000}, "tag:"),
    ],
)
def test_bad_parameters_are_a_400_page_naming_them(
    fleet: Fleet, client: TestClient, query: dict[str, str], names: str
) -> None:
    login(client, fleet.token(None))
    page = client.get("/console/images", params=query)
    assert page.status_code == 400, page.text
    assert names in page.text and "Traceback" not in page.text


def test_bad_parameters_of_other_pages(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None))
    for path, query, name in [("/console/events", {"type": "image.exploded"}, "type:"),
                              ("/console/events", {"since": "2026-02-01", "until": "2026-01-01"}, "since:"),
                              ("/console/events", {"to": "2026-01-01"}, "from:"),
                              ("/console/repository/x/y/z", {"tag_status": "half"}, "")]:  # fmt: skip
        page = client.get(path, params=query)
        assert page.status_code in (400, 404), (path, page.text)
        assert name in page.text


def test_unknown_image_and_repository_are_404_pages(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None))
    for path in ["/console/image/nope", f"/console/image/{PROD}/us-east-1/sha256:00/app/web",
                 f"/console/repository/{PROD}/us-east-1/none"]:  # fmt: skip
        page = client.get(path)
        assert page.status_code == 404 and "Not found" in page.text


def test_as_of_shows_the_past_with_a_banner(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None))
    now = client.get("/console/images", params={"tag": "prod"})
    assert 'id="as-of-banner"' not in now.text
    then = client.get("/console/images", params={"tag": "prod", "as_of": fleet.between.isoformat()})
    assert then.status_code == 200 and 'id="as-of-banner"' in then.text
    assert "No images match" in then.text  # `prod` was given after that time
    link = image_links(now.text)[0]
    past = client.get(link, params={"as_of": fleet.between.isoformat()})
    assert past.status_code == 200 and 'id="as-of-banner"' in past.text
    assert '<span class="tag">prod</span>' not in past.text.split('id="fields"')[1].split("</dl>")[0]


def test_history_not_retained_is_said(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None))
    engine = create_engine(fleet.url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE history_horizon SET since = now() - interval '1 minute'"))
    engine.dispose()
    page = client.get("/console/images", params={"as_of": "2020-01-01T00:00:00Z"})
    assert page.status_code == 400
    assert "History not retained" in page.text and "history is kept since" in page.text


def test_repository_page(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None))
    page = client.get(f"/console/repository/{PROD}/us-east-1/app/web")
    assert page.status_code == 200
    tags = page.text.split('id="repository-tags"')[1].split("</p>")[0]
    assert ">latest<" in tags and ">prod<" in tags
    assert 'id="last-sync">20' in page.text
    untagged = client.get(f"/console/repository/{PROD}/us-east-1/app/web", params={"tag_status": "untagged"})
    assert "No images match" in untagged.text


def test_an_unexpected_failure_is_a_page_without_a_traceback(
    fleet: Fleet, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, fleet.token(None))

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(console_inventory.inventory, "image_page", broken)
    page = client.get("/console/images")
    assert page.status_code == 500
    assert "secret internals" not in page.text and "Traceback" not in page.text and "request" in page.text


def test_no_page_loads_anything_from_another_host(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None, scopes=["admin"]))
    link = image_links(client.get("/console/images").text)[0]
    for path in ["/console", "/console/images", link, "/console/status", "/console/events", "/console/webhooks",
                 "/console/login"]:  # fmt: skip
        html = client.get(path).text
        assert not re.search(r'(src|href)="(https?:)?//', html), path
    assert client.get("/console/static/console.css").status_code == 200


def test_graphiql_assets_are_the_pinned_files() -> None:
    from inventory.console.assets import ASSETS, DIRECTORY, licence_name, local_name, sri

    for asset in ASSETS:
        for path, integrity in asset.files.items():
            assert sri((DIRECTORY / local_name(asset, path)).read_bytes()) == integrity, path
        assert (DIRECTORY / licence_name(asset)).read_text().count("MIT") >= 1


def test_the_graphiql_page_loads_nothing_from_a_cdn(fleet: Fleet) -> None:
    with console_client(fleet.url, graphiql=True) as client:
        page = client.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
        assert page.text.count('integrity="sha384-') == 6
        for source in [s for s in sources if s.startswith("/console/static/")]:
            assert client.get(source).status_code == 200, source


def test_the_freshness_page_shows_stale_regions_first(fleet: Fleet, client: TestClient) -> None:
    login(client, fleet.token(None))
    engine = create_engine(fleet.url)
    with engine.begin() as connection:
        connection.execute(text(
            "UPDATE region_status SET failing_since = now(), last_error_at = now(), "
            "last_error_code = 'AccessDeniedException', last_error_message = 'no access to <the account>' "
            "WHERE registry_name = 'staging'"
        ))  # fmt: skip
    engine.dispose()
    page = client.get("/console/status")
    rows = re.findall(r"<tr class=\"(\w+)\">\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>", page.text)
    assert rows[0] == ("stale", "staging", "us-east-1")
    assert {row[0] for row in rows[1:]} == {"fresh"} and len(rows) == 5
    assert "AccessDeniedException" in page.text and "no access to &lt;the account&gt;" in page.text  # escaped
    assert "1 stale" in client.get("/console").text


def test_the_owners_memory_never_hands_back_a_name_out_of_scope(fleet: Fleet) -> None:
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    from inventory.console.owners import Owners
    from inventory.read.database import Engine

    keys = list(fleet.owner)

    async def go() -> tuple[dict[object, str], dict[object, str]]:
        engine = create_async_engine(fleet.url)
        try:
            owners = Owners()
            everything = await owners.of(Engine(engine), None, keys)
            return everything, await owners.of(Engine(engine), ("staging",), keys)  # from its memory
        finally:
            await engine.dispose()

    everything, staging = asyncio.run(go())
    assert everything == fleet.owner
    assert set(staging.values()) == {"staging"} and len(staging) == list(fleet.owner.values()).count("staging")


def test_the_image_table_escapes_what_it_shows() -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from inventory.console.table import image_rows

    row = SimpleNamespace(registry_type="ecr", registry_id="111111111111", region="us-east-1",
                          repository_name='a"<b>', image_digest="sha256:" + "0" * 64, image_tags=["<script>"],
                          removed_at=None, image_status="ACTIVE", image_pushed_at=datetime.now(UTC),
                          image_size_in_bytes=1, finding_severity_counts=None, image_scan_status=None)  # fmt: skip
    html = str(image_rows([row], {("ecr", "111111111111", "us-east-1", 'a"<b>'): "<i>"}))
    assert "<script>" not in html and "<i>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "a&quot;&lt;b&gt;" in html and "a%22%3Cb%3E" in html
