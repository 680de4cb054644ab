"""The commands ``inventory demo`` prints name the program as it can be run from where it ran."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from inventory.demo import program


@pytest.mark.parametrize(
    ("argv0", "printed"),
    [
        (".venv/bin/inventory", ".venv/bin/inventory"),  # `make demo`: not on PATH unless activated
        ("{cwd}/.venv/bin/inventory", ".venv/bin/inventory"),  # found on PATH: the kernel passes its full path
        ("/opt/tools/bin/inventory", "/opt/tools/bin/inventory"),
        ("inventory", "./inventory"),
        ("/opt/my tools/inventory", "'/opt/my tools/inventory'"),
    ],
)
def test_the_program_is_its_path_relative_when_under_the_directory(
    argv0: str, printed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [argv0.format(cwd=tmp_path), "demo"])
    assert program() == printed


def test_python_dash_m_inventory_is_printed_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(Path(__file__).parent.parent / "inventory" / "__main__.py"), "demo"])
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    assert program() == ".venv/bin/python -m inventory"
