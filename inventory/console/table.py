"""The image table's rows (search, repository pages), written in Python: a hundred rows are most of a
search page's work, and a format string per row writes them in a fifth of the template's time (measured
by ``bench/console.py``). Every value is escaped (``html.escape``, quotes too); the template holds the rest."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from inventory.console.render import findings, short_digest, size, when
from inventory.read.keys import RepositoryKey

_ROW = (
    '<tr{removed_class}><td title="account {registry_id}">{owner}{public}</td><td>{region}</td>'
    '<td><a href="{repository_href}">{repository}</a></td><td class="tags">{tags}</td>'
    '<td><a class="digest" href="{image_href}" title="{digest}">{short}</a>{pills}</td>'
    '<td class="time">{pushed}</td><td class="num">{size}</td><td>{findings}</td></tr>'
)
_EMPTY = '<tr><td colspan="8" class="empty">No images match.</td></tr>'
_PUBLIC = ' <span class="pill">public</span>'
_PLAIN = re.compile(r"[A-Za-z0-9._~/:@-]*")
"""A path with nothing to quote (most are: ids, regions, digests and repository names)."""


def _path(path: str) -> str:
    return path if _PLAIN.fullmatch(path) else quote(path, safe="/:@")


def image_rows(images: Sequence[Any], owners: Mapping[RepositoryKey, str], as_of: str = "") -> Markup:
    """The ``<tr>`` of each image row (rows of ``search.shown_images``); ``as_of`` carried in their links."""
    if not images:
        return Markup(_EMPTY)
    suffix = f"?as_of={quote(as_of, safe='')}" if as_of else ""
    lines = []
    for image in images:
        key = (image.registry_type, image.registry_id, image.region, image.repository_name)
        public = image.registry_type == "ecr-public"
        prefix = "ecr-public/" if public else ""
        repository = f"{prefix}{image.registry_id}/{image.region}/{image.repository_name}"
        node = f"{prefix}{image.registry_id}/{image.region}/{image.image_digest}/{image.repository_name}"
        tags = "".join(f'<span class="tag">{escape(t)}</span>' for t in sorted(image.image_tags))
        pills = (' <span class="pill removed">removed</span>' if image.removed_at else "") + (
            ' <span class="pill">archived</span>' if image.image_status == "ARCHIVED" else ""
        )
        lines.append(
            _ROW.format(
                removed_class=' class="removed"' if image.removed_at else "",
                owner=escape(owners.get(key) or image.registry_id),
                public=_PUBLIC if public else "",
                registry_id=escape(image.registry_id),
                region=escape(image.region),
                repository=escape(image.repository_name),
                repository_href=escape("/console/repository/" + _path(repository) + suffix),
                image_href=escape("/console/image/" + _path(node) + suffix),
                tags=tags or '<span class="muted">untagged</span>',
                digest=escape(image.image_digest),
                short=escape(short_digest(image.image_digest)),
                pills=pills,
                pushed=when(image.image_pushed_at),
                size=size(image.image_size_in_bytes),
                findings=_findings(image),
            )
        )
    return Markup("".join(lines))


def _findings(image: Any) -> str:
    found = findings(image.finding_severity_counts)
    if found:
        return "".join(f'<span class="badge {s.lower()}" title="{n} {s.lower()}">{s[0]} {n}</span>' for s, n in found)
    if image.image_scan_status:
        return '<span class="badge clean">none</span>'
    return '<span class="muted">not scanned</span>'
