"""``inventory demo``: the seeded emulator, the embedded database, one apply, what it stored, and the API."""

from __future__ import annotations

import json
import os

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

from inventory.api.app import serve as serve_api
from inventory.config import Settings, load_config
from inventory.db import database_url, describe, open_inventory
from inventory.sync.render import render_applied, summary_line
from inventory.sync.runner import sync_fleet
from inventory.testing import Emulator
from inventory.testing.seed import demo_config, seed_demo

# The emulator accepts any credentials; these stand in when the machine has none.
_DEMO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"}

_SUMMARY = text(
    """
    SELECT r.registry_name, g.type, r.region,
           count(DISTINCT r.repository_name),
           count(i.image_digest),
           count(i.image_digest) FILTER (WHERE cardinality(i.image_tags) = 0),
           count(i.image_digest) FILTER (WHERE i.image_status = 'ARCHIVED'),
           count(i.image_digest) FILTER (WHERE (i.finding_severity_counts->>'CRITICAL')::int > 0)
    FROM repositories r
    JOIN registries g ON g.name = r.registry_name
    LEFT JOIN images i ON (i.registry_type, i.registry_id, i.region, i.repository_name)
                          = (r.registry_type, r.registry_id, r.region, r.repository_name)
                      AND i.removed_at IS NULL
    WHERE r.removed_at IS NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 3
    """
)


EXAMPLE = '{ images(first: 5, filter: {tags: ["latest"]}) { nodes { registryId region repositoryName imageTags } } }'


def run_demo(settings: Settings, *, serve: tuple[str, int] | None = None) -> None:
    """Start everything on embedded defaults, apply the demo fleet, print what was stored, then serve the API
    at ``serve`` (host, port) with the emulator still up, until interrupted."""
    console = Console()
    for key, value in _DEMO_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    with console.status("starting the inventory database"):
        engine = open_inventory(settings)
    console.print(f"inventory database ready: {describe(settings)}")
    with Emulator() as emulator:
        seed_demo(emulator.store)
        console.print(f"ECR emulator listening on {emulator.url}")
        settings.home.mkdir(parents=True, exist_ok=True)
        path = settings.home / "demo-inventory.toml"
        path.write_text(demo_config(emulator.url), encoding="utf-8")
        console.print(f"demo configuration written to {path}\n")
        config = load_config(path)
        result = sync_fleet(
            engine, config, aws_max_attempts=settings.aws_max_attempts, interactive=console.is_terminal,
            on_scope=lambda scope: render_applied(scope, console.print),
        )  # fmt: skip
        applied = result.counts
        console.print(f"\n{summary_line(applied)}")
        console.print(f"Apply complete: {applied.add} added, {applied.change} changed, {applied.remove} removed.\n")
        console.print(_summary(engine))
        engine.dispose()
        if serve is None:
            console.print("Run it again: the inventory has converged, so the plan says `No changes.`")
            return
        host, port = serve
        url = f"http://{host}:{port}/graphql"
        body = json.dumps({"query": EXAMPLE})
        console.print(
            f"GraphQL API on {url} (GraphiQL: open it in a browser), without authentication "
            "(--allow-anonymous: anyone who can reach it reads everything; `inventory serve` asks for tokens). Try:\n"
            f"  curl -s {url} -H 'content-type: application/json' -d '{body}'\n"
            "Keep it converged while you push and delete images in the emulator, in another terminal:\n"
            f"  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo inventory worker -c {path} --interval 10s\n"
            "Ctrl-C stops the demo (the inventory stays in .inventory/).",
            soft_wrap=True, highlight=False, markup=False,
        )  # fmt: skip
        serve_api(database_url(settings), host, port, graphiql=True, allow_anonymous=True)


def _summary(engine: Engine) -> Table:
    table = Table(title="The inventory")
    for column in ("registry", "type", "region"):
        table.add_column(column)
    for column in ("repositories", "images", "untagged", "archived", "critical findings"):
        table.add_column(column, justify="right")
    with engine.connect() as connection:
        for row in connection.execute(_SUMMARY):
            table.add_row(*map(str, row))
    return table
