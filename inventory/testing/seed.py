"""Seeds for the emulator: ``empty`` and ``demo``.

The demo fleet is deterministic: two accounts reached through assumed roles, two
regions, private ECR and ECR Public, 30 repositories and about 3,000 images
(tagged, untagged, archived, with scan findings, and one repository of 1,200
images so that paging at 1,000 is real). The newest image of every repository
is tagged ``latest``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from inventory.testing.store import DOCKER_CONFIG, RegistryType, Store, synthetic_digest

DEMO_REGIONS = ("us-east-1", "eu-west-1")
DEMO_ACCOUNTS = {
    "prod": (
        "111111111111",
        (
            "payments/api",
            "payments/worker",
            "web/frontend",
            "web/backend",
            "data/etl",
            "data/notebooks",
            "ml/inference",
            "ml/training",
        ),
    ),
    "staging": ("222222222222", ("payments/api", "web/frontend", "web/backend", "data/etl", "tmp/scratch")),
}
DEMO_PUBLIC = ("111111111111", ("tools/cli", "tools/agent", "docs/site", "base/python"))
DEMO_BIG_REPOSITORY = ("111111111111", "us-east-1", "platform/base", 1200)
DEMO_IMAGES_PER_REPOSITORY = 58
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL")


def _image(rng: random.Random, key: tuple[object, ...], index: int, private: bool) -> dict[str, Any]:
    pushed = _EPOCH + timedelta(minutes=index * 97 + rng.randrange(60))
    tags = [] if rng.random() < 0.2 else [f"v1.{index}.{rng.randrange(10)}"]
    if tags and rng.random() < 0.1:
        tags.append(f"build-{index}")
    detail: dict[str, Any] = {
        "imageDigest": synthetic_digest(*key, index),
        "imageTags": tags,
        "imageSizeInBytes": rng.choice([rng.randrange(5 << 20, 900 << 20), 3_100_000_000]),
        "imagePushedAt": pushed,
        "imageManifestMediaType": (_OCI_INDEX if rng.random() < 0.1 else "application/vnd.oci.image.manifest.v1+json"),
        "artifactMediaType": DOCKER_CONFIG,
    }
    if not private:
        return detail
    if rng.random() < 0.85:
        counts = {s: rng.randrange(0, 40) for s in _SEVERITIES if rng.random() < 0.5}
        detail["imageScanStatus"] = {
            "status": "COMPLETE",
            "description": "The scan was completed successfully.",
        }
        detail["imageScanFindingsSummary"] = {
            "imageScanCompletedAt": pushed + timedelta(minutes=5),
            "vulnerabilitySourceUpdatedAt": pushed - timedelta(hours=3),
            "findingSeverityCounts": counts,
        }
    elif rng.random() < 0.5:
        detail["imageScanStatus"] = {"status": "FAILED", "description": "UnsupportedImageError"}
    if rng.random() < 0.6:
        detail["lastRecordedPullTime"] = pushed + timedelta(days=rng.randrange(1, 90))
    if rng.random() < 0.05:
        detail["imageStatus"] = "ARCHIVED"
        detail["lastArchivedAt"] = pushed + timedelta(days=120)
    if rng.random() < 0.03:
        detail["subjectManifestDigest"] = synthetic_digest(*key, index - 1)
        detail["artifactMediaType"] = "application/vnd.dev.cosign.artifact.sig.v1+json"
    return detail


def _fill(
    store: Store,
    rng: random.Random,
    registry_type: RegistryType,
    account: str,
    region: str,
    name: str,
    count: int,
) -> None:
    repository = store.create_repository(registry_type, account, region, name, created_at=_EPOCH)
    key = (registry_type, account, region, name)
    for index in range(count):
        detail = _image(rng, key, index, registry_type == "ecr")
        if index == count - 1:  # the newest image of every repository is also `latest`
            detail["imageTags"] = [*detail["imageTags"], "latest"]
        store.add_image(repository, detail)


def seed_demo(store: Store) -> None:
    """Load the demo fleet (see the module docstring)."""
    rng = random.Random(20261122)
    account, region, name, count = DEMO_BIG_REPOSITORY
    _fill(store, rng, "ecr", account, region, name, count)
    for account, names in DEMO_ACCOUNTS.values():
        for region in DEMO_REGIONS:
            for name in names:
                _fill(store, rng, "ecr", account, region, name, DEMO_IMAGES_PER_REPOSITORY)
    account, names = DEMO_PUBLIC
    for name in names:
        _fill(store, rng, "ecr-public", account, "us-east-1", name, DEMO_IMAGES_PER_REPOSITORY)


DEMO_QUEUE = ("123456789012", "us-east-1", "ecr-events")
"""(account, region, name) of the queue that receives the demo emulator's ECR events."""


def demo_queue_url(endpoint_url: str) -> str:
    account, _, name = DEMO_QUEUE
    return f"{endpoint_url.rstrip('/')}/{account}/{name}"


def demo_config(endpoint_url: str, *, event_queue: bool = False) -> str:
    """An ``inventory.toml`` covering the demo fleet served at ``endpoint_url`` (and, with ``event_queue``,
    reading its ECR events from the emulator's ``DEMO_QUEUE``)."""
    blocks = []
    for label, (account, _) in DEMO_ACCOUNTS.items():
        blocks.append(
            f'[[registries]]\nname = "{label}"\ntype = "ecr"\naccount_id = "{account}"\n'
            f"regions = {list(DEMO_REGIONS)!r}\n".replace("'", '"')
            + f'role_arn = "arn:aws:iam::{account}:role/inventory-reader"\n'
            + 'exclude = ["tmp/*"]\n'
            + f'endpoint_url = "{endpoint_url}"\n'
        )
    account, _ = DEMO_PUBLIC
    blocks.append(
        f'[[registries]]\nname = "public"\ntype = "ecr-public"\naccount_id = "{account}"\n'
        'regions = ["us-east-1"]\n'
        f'role_arn = "arn:aws:iam::{account}:role/inventory-reader"\n'
        f'endpoint_url = "{endpoint_url}"\n'
    )
    if event_queue:
        blocks.append(
            f'[[event_queues]]\nname = "{DEMO_QUEUE[2]}"\nurl = "{demo_queue_url(endpoint_url)}"\n'
            f'region = "{DEMO_QUEUE[1]}"\nendpoint_url = "{endpoint_url}"\n'
        )
    return "\n".join(blocks)


SEEDS: dict[str, Callable[[Store], None]] = {"empty": lambda store: None, "demo": seed_demo}
