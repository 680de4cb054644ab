"""``inventory demo``: the seeded emulator, the embedded database, and what they hold."""

from __future__ import annotations

import os
from collections import Counter

from rich.console import Console
from rich.table import Table

from inventory.aws.clients import ecr_client, ecr_public_client
from inventory.aws.paging import image_pages, repository_pages
from inventory.config import RegistryConfig, Settings, load_config
from inventory.db import describe, open_inventory
from inventory.testing import Emulator
from inventory.testing.seed import demo_config, seed_demo

# The emulator accepts any credentials; these stand in when the machine has none.
_DEMO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"}


def run_demo(settings: Settings) -> None:
    """Start everything on embedded defaults and print a summary of the demo fleet."""
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
        config = load_config(path)
        console.print(f"demo configuration written to {path}")
        table = Table(title="What the demo registries hold")
        for column in (
            "registry",
            "type",
            "region",
            "repositories",
            "images",
            "untagged",
            "archived",
        ):
            table.add_column(column, justify="left" if column in ("registry", "type", "region") else "right")
        with console.status("paging DescribeRepositories and DescribeImages"):
            for registry in config.registries:
                for region in registry.regions:
                    table.add_row(registry.name, registry.type, region, *_count(registry, region))
        console.print(table)
    engine.dispose()


def _count(registry: RegistryConfig, region: str) -> list[str]:
    """Repositories and images of one registry region, read through the real API."""
    client = ecr_public_client(registry) if registry.type == "ecr-public" else ecr_client(registry, region)
    counts: Counter[str] = Counter()
    for repositories in repository_pages(client, registry):
        for repository in repositories:
            counts["repositories"] += 1
            for details in image_pages(client, registry, repository["repositoryName"]):
                for detail in details:
                    counts["images"] += 1
                    counts["untagged"] += not detail.get("imageTags")
                    counts["archived"] += detail.get("imageStatus") == "ARCHIVED"
    return [str(counts[key]) for key in ("repositories", "images", "untagged", "archived")]
