"""Running a sync: plan into a file (with progress), for the CLI and the demo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from inventory.aws.clients import ClientFactory
from inventory.config import InventoryConfig
from inventory.sync.planfile import PlanReader, PlanWriter
from inventory.sync.planner import Planner, Target
from inventory.sync.progress import progress_for


def plan_to_file(
    engine: Engine,
    config: InventoryConfig,
    path: Path,
    *,
    aws_max_attempts: int = 5,
    targets: Sequence[Target] = (),
    interactive: bool = False,
) -> PlanReader:
    """Plan ``config`` (or its ``targets``) against the inventory into ``path``; read it back."""
    with progress_for(interactive) as progress, PlanWriter(path, config.registries) as writer:
        Planner(engine, config, ClientFactory(aws_max_attempts), progress, targets).plan(writer)
        writer.close()
    return PlanReader(path)
