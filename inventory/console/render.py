"""How the console writes things: its templates (``Jinja2Templates``, autoescaped) and their filters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.templating import Jinja2Templates

from inventory.api.ids import image_node_id, repository_node_id
from inventory.config import SEVERITIES

TEMPLATES = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
    )
)


def when(value: datetime | None) -> str:
    """A time in UTC, to the second: ``2026-01-01 12:00:00Z``; ``—`` for none."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def size(value: int | None) -> str:
    """Bytes, in binary units: ``12.3 MiB``."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


def short_digest(digest: str | None) -> str:
    """``sha256:0123456789ab``: enough to tell images apart at a glance."""
    if not digest:
        return "—"
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}:{hexdigest[:12]}" if hexdigest else digest[:19]


def findings(counts: dict[str, int] | None) -> list[tuple[str, int]]:
    """The severities with findings, worst first."""
    return [(s, int((counts or {})[s])) for s in SEVERITIES if int((counts or {}).get(s, 0) or 0) > 0]


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def image_path(row: Any) -> str:
    """The image page of a row (or a mapping) with an image's identity."""
    node = image_node_id(
        *(_get(row, n) for n in ("registry_type", "registry_id", "region", "repository_name", "image_digest"))
    )
    return "/console/image/" + quote(node, safe="/:@")


def repository_path(row: Any) -> str:
    node = repository_node_id(row.registry_type, row.registry_id, row.region, row.repository_name)
    return "/console/repository/" + quote(node, safe="/:@")


def query(base: dict[str, Any], **changes: Any) -> str:
    """A query string: ``base``'s parameters with ``changes`` (None or "" drops one)."""
    merged = {**base, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def value(item: Any) -> str:
    """A field change's value as text."""
    if item is None:
        return "—"
    if isinstance(item, list):
        return ", ".join(str(i) for i in item) or "(none)"
    if isinstance(item, dict):
        return ", ".join(f"{k}: {v}" for k, v in item.items()) or "(none)"
    return str(item)


TEMPLATES.env.filters.update(
    when=when,
    size=size,
    short_digest=short_digest,
    findings=findings,
    image_path=image_path,
    repository_path=repository_path,
    value=value,
)
TEMPLATES.env.globals.update(query=query)
