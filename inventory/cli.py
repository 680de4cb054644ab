"""The ``inventory`` command line."""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from inventory import __version__
from inventory.config import InventoryConfig, Settings, load_config
from inventory.errors import ConfigError, InventoryError

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The inventory file (default: $INVENTORY_CONFIG, else ./inventory.toml).",
)


def reports_errors(command: F) -> F:
    """Report ``InventoryError`` as clear lines on stderr and exit with code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            raise SystemExit(1) from None
        except InventoryError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]


def read_config(config_file: Path | None) -> InventoryConfig:
    return load_config(Settings().config_path(config_file))


@click.group()
@click.version_option(__version__, prog_name="inventory")
def main() -> None:
    """ECR Inventory: a declarative inventory of container images across ECR registries."""


@main.command()
@config_option
@reports_errors
def validate(config_file: Path | None) -> None:
    """Check the inventory file and report every problem at once."""
    path = Settings().config_path(config_file)
    config = load_config(path)
    regions = sum(len(registry.regions) for registry in config.registries)
    click.echo(f"{path}: valid ({len(config.registries)} registries, {regions} regions)")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--seed", type=click.Choice(["demo", "empty"]), default="empty", show_default=True)
def emulator(host: str, port: int, seed: str) -> None:
    """Serve the ECR emulator (ECR, ECR Public, STS and an admin API) until stopped."""
    from inventory.testing import Emulator
    from inventory.testing.seed import SEEDS

    server = Emulator(host, port)
    SEEDS[seed](server.store)
    server.start()
    click.echo(f"ECR emulator listening on {server.url}")
    _wait_for_signal()
    server.stop()


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


@main.command()
@reports_errors
def migrate() -> None:
    """Create or upgrade the inventory database schema (every command does it on start)."""
    from inventory.db import describe, open_inventory

    settings = Settings()
    open_inventory(settings).dispose()
    click.echo(f"inventory database at the latest schema: {describe(settings)}")


@main.command()
@reports_errors
def demo() -> None:
    """Start the seeded emulator and the inventory database, and show what they hold."""
    from inventory.demo import run_demo

    run_demo(Settings())
