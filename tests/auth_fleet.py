"""A multi-account inventory synced from the emulator twice (so it has history), and tokens for it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from inventory.api.auth import new_token, token_hash
from inventory.cli import main
from inventory.db import driver_connection
from inventory.tables import api_tokens
from inventory.testing import AdminClient, Emulator

PROD, STAGING = "111111111111", "222222222222"
US, EU = "us-east-1", "eu-west-1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)

REGISTRIES = {
    # Two registries share an account, split by repository globs; a public one shares it too.
    "prod": ("ecr", PROD, [US, EU], ["app/*"]),
    "prod-tools": ("ecr", PROD, [US], ["tools/*"]),
    "staging": ("ecr", STAGING, [US], ["*"]),
    "public": ("ecr-public", PROD, [US], ["*"]),
}
NAMES = tuple(REGISTRIES)


def _config(endpoint: str) -> str:
    blocks = []
    for name, (kind, account, regions, globs) in REGISTRIES.items():
        blocks.append(
            f'[[registries]]\nname = "{name}"\ntype = "{kind}"\naccount_id = "{account}"\n'
            f"regions = {regions!r}\nrepositories = {globs!r}\n".replace("'", '"')
            + f'role_arn = "arn:aws:iam::{account}:role/reader"\nendpoint_url = "{endpoint}"\n'
        )
    return "\n".join(blocks)


def _images(prefix: str, n: int, start: int) -> list[dict[str, Any]]:
    return [
        {"imageDigest": "sha256:" + hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest(),
         "imageTags": [f"{prefix}-{i}", "latest"] if i == n - 1 else [f"{prefix}-{i}"],
         "imagePushedAt": (T0 + timedelta(hours=start + i)).isoformat(), "imageSizeInBytes": 1000 * (i + 1)}
        for i in range(n)
    ]  # fmt: skip


@dataclass(frozen=True)
class Fleet:
    url: str
    between: datetime
    """A time between the two syncs."""
    owner: dict[tuple[str, str, str, str], str]
    """Every repository's key → the name of its registry (what the tables say)."""
    present: int
    """How many images are present."""

    def token(self, registries: Sequence[str] | None, scopes: Sequence[str] = ("read",), **options: Any) -> str:
        return create_token(self.url, registries=registries, scopes=scopes, **options)


def create_token(
    url: str,
    *,
    registries: Sequence[str] | None = None,
    scopes: Sequence[str] = ("read",),
    name: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """A new token in the database at ``url``, as ``inventory tokens create`` stores it."""
    token = new_token()
    engine = create_engine(url)
    with engine.begin() as connection:
        assert api_tokens.create(
            name or f"t-{token[4:14]}", token_hash(token), scopes=scopes, registries=registries,
            expires_at=expires_at, connection=driver_connection(connection),
        )  # fmt: skip
    engine.dispose()
    return token


def _apply(config: Path) -> None:
    result = CliRunner().invoke(main, ["apply", "-c", str(config), "--auto-approve"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture
def fleet(
    admin: AdminClient, emulator: Emulator, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Fleet:
    web = admin.put_images(PROD, US, "app/web", _images("web", 4, 0))
    admin.put_images(PROD, US, "app/api", _images("api", 2, 10))
    admin.put_images(PROD, US, "tools/cli", _images("cli", 2, 20))
    admin.put_images(PROD, EU, "app/web", _images("eu", 2, 30))
    stg = admin.put_images(STAGING, US, "app/web", _images("stg", 3, 40))
    admin.put_images(PROD, US, "tools/cli", _images("pub", 2, 50), registry_type="ecr-public")
    config = tmp_path / "inventory.toml"
    config.write_text(_config(emulator.url))
    for key, value in {"INVENTORY_DATABASE_URL": db_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    _apply(config)
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    # The second sync moves tags and adds images everywhere: changes, versions and events in every registry.
    admin.set_image(PROD, US, "app/web", web[0], imageTags=["latest", "prod"])
    admin.set_image(STAGING, US, "app/web", stg[0], imageTags=["latest", "stg-0"])
    admin.put_images(PROD, US, "tools/cli", _images("cli2", 1, 60))
    admin.put_images(PROD, US, "tools/cli", _images("pub2", 1, 70), registry_type="ecr-public")
    admin.put_images(PROD, EU, "app/web", _images("eu2", 1, 80))
    _apply(config)
    engine = create_engine(db_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT registry_type, registry_id, region, repository_name, registry_name FROM repositories")
        ).all()
        present = connection.execute(text("SELECT count(*) FROM images WHERE removed_at IS NULL")).scalar_one()
    engine.dispose()
    owner = {(r[0], r[1], r[2], r[3]): r[4] for r in rows}
    assert set(owner.values()) == set(NAMES)
    assert present > 15  # the second sync added images
    return Fleet(db_url, between, owner, present)
