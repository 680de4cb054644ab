"""``inventory demo``: the seeded emulator, the embedded database, one apply, what it stored, and the API."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

from inventory.api.app import listen
from inventory.api.app import serve as serve_api
from inventory.config import Settings, load_config
from inventory.db import database_url, describe, open_inventory
from inventory.sync.render import applied_line, render_applied, summary_line
from inventory.sync.runner import sync_fleet
from inventory.testing import Emulator, events
from inventory.testing.seed import DEMO_BIG_REPOSITORY, DEMO_QUEUE, demo_config, seed_demo

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
    sock = listen(*serve) if serve is not None else None  # a busy port fails first
    for key, value in _DEMO_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    with console.status("starting the inventory database"):
        engine = open_inventory(settings)
    console.print(f"inventory database ready: {describe(settings)}")
    with Emulator() as emulator:
        with emulator.store.locked() as store:
            seed_demo(store)
            events.subscribe(store, *DEMO_QUEUE)  # from now on its pushes, deletes, scans are announced
        console.print(f"ECR emulator listening on {emulator.url}")
        settings.home.mkdir(parents=True, exist_ok=True)
        path = settings.home / "demo-inventory.toml"
        path.write_text(demo_config(emulator.url, event_queue=True), encoding="utf-8")
        console.print(f"demo configuration written to {path}\n")
        config = load_config(path)
        # Each scope printed once, as applied: the live display (on a terminal) and never the log lines too.
        result = sync_fleet(
            engine,
            config,
            aws_max_attempts=settings.aws_max_attempts,
            interactive=True,
            on_scope=lambda scope: render_applied(scope, console.print),
        )
        for failure in result.failures:
            console.print(f"Error: {failure.label}: {failure.code}: {failure.message}", highlight=False, markup=False)
        summary = summary_line(result.counts, result.failures, result.scopes)
        console.print(f"\n{summary}" if result.counts.total or result.failures else summary)  # a blank line, once
        console.print(applied_line(result.counts, result.failures, result.scopes) + "\n")
        console.print(_summary(engine))
        engine.dispose()
        inventory = program()
        if serve is None:
            if not result.failures:  # the emulator is seeded alike each run: it holds what the inventory now does
                console.print(
                    f"Run it again (`{inventory} demo --no-serve`): the inventory has converged, "
                    "so it says `No changes.`",
                    soft_wrap=True,
                    highlight=False,
                    markup=False,
                )
            return
        host, port = serve
        assert sock is not None
        base = f"http://{host}:{port}"
        url = f"{base}/graphql"
        body = json.dumps({"query": EXAMPLE})
        console.print(
            f"Web console on http://{host}:{port}/console (open it in a browser), without a login",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
        console.print(
            f"GraphQL API on {url} (GraphiQL: open it in a browser), without authentication "
            f"(--allow-anonymous: anyone who can reach it reads everything; `{inventory} serve` asks for tokens). "
            f"Try:\n  curl -s {url} -H 'content-type: application/json' -d '{body}'\n"
            "Keep it converged while you push and delete images in the emulator (its ECR events reach the "
            "worker through its SQS queue: a push shows within about a second, though a full round runs only "
            "every hour), from another terminal in this "
            f"directory{' with the same INVENTORY_DATABASE_URL' if settings.database_url else ''}:\n"
            f"  {_worker(settings, inventory, path)}\n"
            f"ECR's own API on {base}/ecr, for the AWS CLI and boto3 (any key here; `{inventory} tokens create NAME "
            f"--aws` makes real ones):\n  {_ecr_example(base)}\n"
            f"Ctrl-C stops the demo; the inventory stays ({describe(settings)}).",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
        serve_api(database_url(settings), sock, graphiql=True, allow_anonymous=True)


def program() -> str:
    """The running program as a command to type in this directory: its path, relative when under it, since
    ``inventory`` is on PATH only where its virtualenv is activated (``make demo`` runs ``.venv/bin/inventory``)."""
    if Path(sys.argv[0]).name == "__main__.py":  # python -m inventory
        return f"{_typed(sys.executable)} -m inventory"
    return _typed(sys.argv[0])


def _typed(path: str) -> str:
    absolute = Path(os.path.abspath(path))  # not resolved: a virtualenv's python links out of it
    if not absolute.is_relative_to(Path.cwd()):
        return shlex.quote(str(absolute))
    relative = absolute.relative_to(Path.cwd())
    return shlex.quote(str(relative) if len(relative.parts) > 1 else f"./{relative}")


def _worker(settings: Settings, inventory: str, path: Path) -> str:
    """The worker's command line: against the emulator, on this inventory's database (its home said unless the
    default one)."""
    credentials = " ".join(f"{key}={value}" for key, value in _DEMO_CREDENTIALS.items())
    command = f"{credentials} {inventory} worker -c {shlex.quote(str(path))} --interval 1h"
    if settings.home != Settings.model_fields["home"].default:
        command = f"INVENTORY_HOME={shlex.quote(str(settings.home))} {command}"
    return command


def _ecr_example(base: str) -> str:
    account, region, repository, _ = DEMO_BIG_REPOSITORY
    credentials = " ".join(f"{key}={value}" for key, value in _DEMO_CREDENTIALS.items())
    return (
        f"{credentials} aws ecr describe-images --endpoint-url {base}/ecr --region {region} "
        f"--registry-id {account} --repository-name {repository} --max-items 3"
    )


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
