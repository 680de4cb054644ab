"""The command line's lifecycle, without a database: what a command imports, its option types' bounds,
the inventory file read before any database is opened, and the engine disposed on every way out."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from inventory.cli import Duration, EventType, inventory_engine, main, patient_engine

SMALL = """\
[[registries]]
name = "prod"
account_id = "111111111111"
regions = ["us-east-1"]
role_arn = "arn:aws:iam::111111111111:role/inventory-reader"
"""

# What neither `inventory --help` nor `inventory validate` needs: the database, the sync engine, AWS, the API.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "psycopg",
    "sqlmodel",
    "boto3",
    "botocore",
    "strawberry",
    "starlette",
    "rich",
    "inventory.db",
    "inventory.models",
    "inventory.sync",
    "inventory.tables",
    "inventory.api",
)


def modules_after(*args: str, cwd: Path) -> set[str]:
    """The modules loaded once ``inventory ARGS`` has run, in a fresh process."""
    code = (
        "import sys\n"
        f"sys.argv = ['inventory', *{list(args)!r}]\n"
        "from inventory.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stderr.split())


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == name or m.startswith(f"{name}.") for name in names))


def test_help_imports_neither_the_database_nor_the_config(tmp_path: Path) -> None:
    modules = modules_after("--help", cwd=tmp_path)
    assert loaded(modules, (*HEAVY, "pydantic", "pydantic_settings", "inventory.config")) == []


def test_validate_imports_the_config_and_nothing_of_the_database(tmp_path: Path) -> None:
    (tmp_path / "inventory.toml").write_text(SMALL)
    modules = modules_after("validate", "-c", str(tmp_path / "inventory.toml"), cwd=tmp_path)
    assert "inventory.config" in modules
    assert loaded(modules, HEAVY) == []


def bounded(kind: click.ParamType[Any], value: str) -> Result:
    """``--wait VALUE`` of ``kind``: prints what it got."""

    @click.command()
    @click.option("--wait", type=kind)
    def command(wait: Any) -> None:
        click.echo(repr(wait))

    return CliRunner().invoke(command, ["--wait", value])


@pytest.mark.parametrize(
    ("kind", "value", "output"),
    [
        (Duration(minimum=1), "1s", "1.0"),
        (Duration(minimum=1), "500ms", "Invalid value for --wait: must be at least 1s, got 0.5s"),
        (Duration(minimum=0.001), "0s", "Invalid value for --wait: must be at least 1ms, got 0s"),
        (Duration(minimum=0, min_open=True), "0s", "Invalid value for --wait: must be longer than zero, got 0s"),
        (Duration(minimum=0, min_open=True), "1ms", "0.001"),
        (Duration(maximum=86400), "1d", "86400.0"),
        (Duration(maximum=86400), "25h", "Invalid value for '--wait': at most 1d, got 25h"),
        (Duration(), "soon", "Invalid value for '--wait': not a duration: 'soon'"),
    ],
)
def test_duration_bounds(kind: Duration, value: str, output: str) -> None:
    result = bounded(kind, value)
    assert output in result.output, result.output
    assert result.exit_code == (2 if output.startswith("Invalid") else 0)


def test_event_types_are_the_feeds() -> None:
    from inventory.config import EVENT_TYPES

    assert EventType().choices == EVENT_TYPES
    assert bounded(EventType(), "image.added").output == "'image.added'\n"
    refused = bounded(EventType(), "image.exploded")
    assert refused.exit_code == 2 and "'image.exploded' is not one of 'image.added'" in refused.output


@pytest.mark.parametrize(
    "args",
    [
        ["plan"],
        ["apply"],
        ["apply", "--auto-approve"],
        ["status"],
        ["events"],
        ["history", "prod/us-east-1/app:latest"],
        ["webhooks", "list"],
        ["webhooks", "test", "hook"],
        ["webhooks", "recover", "hook", "--since", "1h"],
        ["webhooks", "enable", "hook"],
        ["worker"],
    ],
)
def test_a_missing_file_is_reported_before_any_database_opens(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_database(*_: Any, **__: Any) -> Any:
        raise AssertionError("a database was opened")

    monkeypatch.setattr("inventory.db.open_inventory", no_database)
    monkeypatch.setattr("inventory.db.open_patiently", no_database)
    missing = tmp_path / "missing.toml"
    command, rest = (args[:2], args[2:]) if args[0] == "webhooks" else (args[:1], args[1:])
    result = CliRunner().invoke(main, [*command, "-c", str(missing), *rest])
    assert result.exit_code == 1, result.output
    assert f"error: {missing}: no such file" in result.output


class FakeEngine:
    disposed = 0

    def dispose(self) -> None:
        self.disposed += 1


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEngine]:
    fake = FakeEngine()
    monkeypatch.setattr("inventory.db.open_inventory", lambda settings, **options: fake)
    monkeypatch.setattr("inventory.db.open_patiently", lambda settings, stop, **options: fake)
    yield fake


def test_the_engine_is_disposed_on_every_way_out(engine: FakeEngine) -> None:
    with inventory_engine(Any) as opened:  # type: ignore[arg-type]
        assert opened is engine and engine.disposed == 0
    assert engine.disposed == 1
    with pytest.raises(SystemExit), inventory_engine(Any):  # type: ignore[arg-type]
        raise SystemExit(1)
    assert engine.disposed == 2
    with pytest.raises(KeyboardInterrupt), patient_engine(Any, threading.Event()):  # type: ignore[arg-type]
        raise KeyboardInterrupt
    assert engine.disposed == 3


def test_a_patient_engine_stopped_before_it_opened_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("inventory.db.open_patiently", lambda settings, stop, **options: None)
    with patient_engine(Any, threading.Event()) as opened:  # type: ignore[arg-type]
        assert opened is None
