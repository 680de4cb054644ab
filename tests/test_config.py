"""The declarative inventory file: every key, every problem at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inventory.config import RegistryConfig, Settings, load_config
from inventory.errors import ConfigError

FULL = """
[[registries]]
name = "prod"
type = "ecr"
account_id = "111111111111"
regions = ["us-east-1", "eu-west-1"]
role_arn = "arn:aws:iam::111111111111:role/inventory-reader"
external_id = "s3cr3t-id"
repositories = ["*"]
exclude = ["tmp/*"]
endpoint_url = "http://127.0.0.1:5000"

[[registries]]
name = "public"
type = "ecr-public"
account_id = "111111111111"
regions = ["us-east-1"]
"""

BROKEN = """
colour = "blue"

[[registries]]
name = "prod"
account_id = "1234"
regions = ["us-east-1"]
flavour = "vanilla"

[[registries]]
name = "prod"
type = "ecr-public"
account_id = "222222222222"
regions = ["eu-west-1"]

[[registries]]
name = "third"
type = "gcr"
regions = ["moon-1"]
role_arn = "not-an-arn"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return path


def test_every_key_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    prod, public = config.registries
    assert prod == RegistryConfig(
        name="prod",
        type="ecr",
        account_id="111111111111",
        regions=("us-east-1", "eu-west-1"),
        role_arn="arn:aws:iam::111111111111:role/inventory-reader",
        external_id="s3cr3t-id",
        repositories=("*",),
        exclude=("tmp/*",),
        endpoint_url="http://127.0.0.1:5000",
    )
    assert public.type == "ecr-public"
    assert public.repositories == ("*",)
    assert public.exclude == ()
    assert public.role_arn is None
    assert config.registry("public") is public


def test_models_are_frozen(tmp_path: Path) -> None:
    prod = load_config(write(tmp_path, FULL)).registries[0]
    with pytest.raises(ValueError, match="frozen"):
        prod.name = "other"  # type: ignore[misc]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    problems = exc.value.problems
    expected = [
        "unknown key 'colour'",
        "registries[0] ('prod'): account_id: must be a string of 12 digits, got '1234'",
        "registries[0] ('prod'): flavour: unknown key",
        "registries[1] ('prod'): regions: ECR Public exists only in us-east-1",
        "registries[2] ('third'): type: must be one of 'ecr', 'ecr-public', got 'gcr'",
        "registries[2] ('third'): account_id: required key is missing",
        "registries[2] ('third'): regions: Value error, not an AWS region: 'moon-1'",
        "registries[2] ('third'): role_arn: not an IAM role ARN",
        "registries: name 'prod' is used by 2 registries",
    ]
    for fragment in expected:
        matching = [p for p in problems if fragment.replace("Value error, ", "") in p]
        assert matching, f"no problem mentions {fragment!r} in {problems}"
        assert all(p.startswith(f"{path}: ") for p in matching)
    assert len(problems) == len(expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("registries = [", "not valid TOML"),
        ("registries = 3", "must be an array of tables"),
        ('[[registries]]\nname="a"\naccount_id="111111111111"\nregions=[]', "regions: must not be empty"),
        (
            '[[registries]]\nname="a"\naccount_id="111111111111"\nregions=["us-east-1","us-east-1"]',
            "listed more than once",
        ),
        (
            '[[registries]]\nname="a"\naccount_id="111111111111"\nregions=["us-east-1"]\nexternal_id="xy"',
            "external_id: only meaningful together with role_arn",
        ),
        (
            '[[registries]]\nname="a"\naccount_id="111111111111"\nregions=["us-east-1"]\nexclude=[""]',
            "exclude.0: Value error, a glob must not be empty",
        ),
        (
            '[[registries]]\nname="a"\naccount_id=111111111111\nregions=["us-east-1"]',
            "account_id: must be a string of 12 digits",
        ),
        (
            '[[registries]]\nname="a"\naccount_id="111111111111"\nregions=["us-east-1"]\nendpoint_url="ftp://x"',
            "endpoint_url: not an http(s) URL",
        ),
    ],
)
def test_single_problems(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert any(fragment.replace("Value error, ", "") in p for p in exc.value.problems), exc.value.problems


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_include_and_exclude_globs() -> None:
    registry = RegistryConfig(
        name="r",
        account_id="111111111111",
        regions=("us-east-1",),
        repositories=("team-*/*", "base"),
        exclude=("team-b/*", "*/tmp-*"),
    )
    assert registry.covers("team-a/api")
    assert registry.covers("base")
    assert not registry.covers("team-b/api")
    assert not registry.covers("team-a/tmp-1")
    assert not registry.covers("other/api")


def test_config_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVENTORY_CONFIG", raising=False)
    assert Settings().config_path() == Path("inventory.toml")
    monkeypatch.setenv("INVENTORY_CONFIG", str(tmp_path / "env.toml"))
    assert Settings().config_path() == tmp_path / "env.toml"
    assert Settings().config_path(tmp_path / "flag.toml") == tmp_path / "flag.toml"


def run_inventory(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inventory", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_validate_command_reports_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    result = run_inventory("validate", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 9
    assert all(line.startswith(f"error: {path}: ") for line in lines)
    assert "registries[0] ('prod'): account_id" in result.stderr
    assert list(tmp_path.iterdir()) == [path]  # nothing written anywhere


def test_validate_command_accepts_a_good_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, FULL)
    env = {k: v for k, v in __import__("os").environ.items() if k != "INVENTORY_CONFIG"}
    result = run_inventory("validate", cwd=tmp_path, env=env)  # ./inventory.toml by default
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "inventory.toml: valid (2 registries, 3 regions)"
    env["INVENTORY_CONFIG"] = str(tmp_path / "missing.toml")
    result = run_inventory("validate", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.toml'}: no such file"
