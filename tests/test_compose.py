"""docker-compose.yml: no container engine runs here, so the file is checked against the CLI it runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from inventory.api.app import async_engine, create_app
from inventory.cli import main
from inventory.config import load_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def parse_inventory_command(argv: list[str]) -> click.Context:
    """Parse ``inventory COMMAND ...`` as the CLI would, without running it: an unknown command or
    option, or a bad value, fails."""
    assert argv[0] == "inventory"
    group = click.Context(main, info_name="inventory")
    command = main.get_command(group, argv[1])
    assert command is not None, f"no command {argv[1]!r}"
    return command.make_context(argv[1], argv[2:], parent=group)


@pytest.mark.parametrize("service", ["api", "worker"])
def test_every_command_the_compose_file_runs_exists_in_the_cli(service: str) -> None:
    context = parse_inventory_command(SERVICES[service]["command"])
    assert context.command.name == {"api": "serve", "worker": "worker"}[service]
    if service == "worker":
        assert context.params["metrics_host"] == "0.0.0.0" and context.params["interval"] == 900


def test_services_are_wired_to_postgres_and_checked_for_health() -> None:
    postgres = SERVICES["postgres"]
    credentials = postgres["environment"]
    url = (
        f"postgresql://{credentials['POSTGRES_USER']}:{credentials['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{credentials['POSTGRES_DB']}"
    )
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    for name in ("api", "worker"):
        service = SERVICES[name]
        assert service["environment"]["INVENTORY_DATABASE_URL"] == url
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["build"] == "." and (ROOT / "Dockerfile").exists()
        assert "container_name" not in service  # `--scale worker=N` needs unnamed containers
    api_port = SERVICES["api"]["command"][SERVICES["api"]["command"].index("--port") + 1]
    assert f"127.0.0.1:{api_port}/healthz" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    api = create_app(async_engine("postgresql+psycopg://inventory@postgres/inventory"))  # connects lazily
    assert {"/healthz", "/metrics", "/graphql"} <= {getattr(route, "path", "") for route in api.routes}
    worker = SERVICES["worker"]
    metrics_port = worker["command"][worker["command"].index("--metrics-port") + 1]
    assert f"127.0.0.1:{metrics_port}/healthz" in " ".join(worker["healthcheck"]["test"])
    assert metrics_port in worker["expose"] and "ports" not in worker


def test_the_worker_reads_the_mounted_config_and_the_example_is_valid() -> None:
    worker = SERVICES["worker"]
    target = worker["environment"]["INVENTORY_CONFIG"]
    assert any(re.fullmatch(rf".+:{re.escape(target)}:ro", volume) for volume in worker["volumes"])
    assert load_config(ROOT / "inventory.example.toml").registries
    assert "inventory.example.toml" in (ROOT / "docker-compose.yml").read_text()
