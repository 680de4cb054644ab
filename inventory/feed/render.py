"""The change feed and the histories as the command line prints them: ``inventory events`` and
``inventory history``. Events print as text lines or as JSON objects shaped like GraphQL's ``ImageEvent``
(``Event.json``); histories print as tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from inventory.config import InventoryConfig, RegistryConfig, is_region
from inventory.errors import InventoryError, TargetError
from inventory.feed import query
from inventory.feed.event import Event, FieldChange, Position
from inventory.feed.follow import PAGE
from inventory.feed.query import EventFilter, EventScope
from inventory.feed.replay import TagSpan, tag_assignments
from inventory.sync.runner import Target

# names ---------------------------------------------------------------------------------


class Labels:
    """``REGISTRY/REGION/REPOSITORY`` of an event, with the registry's name in the config when it has one."""

    def __init__(self, config: InventoryConfig) -> None:
        self.config = config

    def registry(self, registry_type: str, registry_id: str, region: str, repository_name: str) -> str:
        same = [r for r in self.config.registries if (r.type, r.account_id) == (registry_type, registry_id)]
        # Registries may share an account (private and public, or split by repository globs):
        # the one that covers the region and repository, else the region, else any.
        for fits in (lambda r: region in r.regions and r.covers(repository_name), lambda r: region in r.regions):
            for registry in same:
                if fits(registry):
                    return registry.name
        if same:
            return same[0].name
        return registry_id if registry_type == "ecr" else f"{registry_type}:{registry_id}"

    def __call__(self, row: Any) -> str:
        registry = self.registry(row.registry_type, row.registry_id, row.region, row.repository_name)
        return f"{registry}/{row.region}/{row.repository_name}"


def registry_named(config: InventoryConfig, name: str, *, option: str = "") -> RegistryConfig:
    """The config's registry ``name``; otherwise an error listing the names there are."""
    try:
        return config.registry(name)
    except KeyError:
        known = ", ".join(r.name for r in config.registries) or "none"
        raise (TargetError if option else InventoryError)(
            f"{option}{name!r}: no such registry in the inventory file (registries: {known})"
        ) from None


def target_scopes(config: InventoryConfig, targets: Sequence[Target]) -> list[EventScope]:
    """The event scopes of ``--target NAME[/REGION[/REPOSITORY]]``s: a registry stands for its declared regions."""
    scopes: list[EventScope] = []
    for target in targets:
        registry = registry_named(config, target.registry_name, option="--target ")
        if target.region is not None and target.region not in registry.regions:
            raise TargetError(
                f"--target {target.registry_name}/{target.region}: the registry covers {', '.join(registry.regions)}"
            )
        regions = [target.region] if target.region else registry.regions
        scopes += [(registry.type, registry.account_id, region, target.repository_name) for region in regions]
    return scopes


# rendering -------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) + "}"
    return str(value)


def change_summary(event: Event, sep: str = "; ") -> str:
    """``tags +prod -v1.2; image_status ACTIVE → ARCHIVED``: tag movements first, then each other field."""
    added, removed = event.tags_added, event.tags_removed
    parts = ["tags " + " ".join([f"+{t}" for t in added] + [f"-{t}" for t in removed])] if added or removed else []
    parts += [_change(c) for c in event.changes if c.field != "image_tags"]
    return sep.join(parts)


def _change(change: FieldChange) -> str:
    return f"{change.field} {_value(change.before)} → {_value(change.after)}"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def when(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_line(event: Event, labels: Labels) -> str:
    """``2026-11-23T06:14:36Z image.changed prod/us-east-1/payments/api sha256:… tags +prod -v1.2``."""
    parts = [when(event.occurred_at), event.type, labels(event), event.image_digest, change_summary(event)]
    line = " ".join(part for part in parts if part)
    return line + " (backfill)" if event.backfill else line


def event_json(event: Event) -> str:
    """One JSON object with the fields of GraphQL's ``ImageEvent`` (``syncRun`` as ``syncRunId``)."""
    return json.dumps(event.json())


# histories ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """``REGISTRY/REGION/REPOSITORY:TAG`` or ``REGISTRY/REGION/REPOSITORY@DIGEST``."""

    registry_name: str
    region: str
    repository_name: str
    tag: str | None = None
    image_digest: str | None = None

    FORMS = "REGISTRY/REGION/REPOSITORY:TAG or REGISTRY/REGION/REPOSITORY@DIGEST (a digest starts with sha256:)"

    @classmethod
    def parse(cls, text: str) -> Subject:
        """Repository names hold neither ':' nor '@', tags neither: the last one splits. ValueError if malformed."""
        if "@" in text:
            where, _, digest = text.rpartition("@")
            tag = None
            ok = digest.startswith("sha256:") and len(digest) > len("sha256:")
        else:
            where, _, tag = text.rpartition(":")
            digest, ok = None, bool(tag)
        parts = where.split("/", 2)
        if not ok or ":" in where or "@" in where or len(parts) != 3 or not all(parts) or not is_region(parts[1]):
            raise ValueError(f"expected {cls.FORMS}, got {text!r}")
        registry_name, region, repository_name = parts
        return cls(registry_name, region, repository_name, tag=tag, image_digest=digest)

    @property
    def repository(self) -> str:
        return f"{self.registry_name}/{self.region}/{self.repository_name}"

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag is not None else f"{self.repository}@{self.image_digest}"


def _repository(config: InventoryConfig, subject: Subject) -> tuple[str, str, str, str]:
    registry = registry_named(config, subject.registry_name)
    if subject.region not in registry.regions:
        raise InventoryError(
            f"{subject.registry_name}/{subject.region}: the registry covers {', '.join(registry.regions)}"
        )
    return (registry.type, registry.account_id, subject.region, subject.repository_name)


def tag_history(engine: Engine, config: InventoryConfig, subject: Subject) -> list[TagSpan]:
    """Where ``subject.tag`` pointed, newest first."""
    assert subject.tag is not None
    with engine.connect() as connection:
        rows = connection.execute(query.tag_events(_repository(config, subject), subject.tag)).all()
    return tag_assignments(rows, subject.tag)


def image_history(engine: Engine, config: InventoryConfig, subject: Subject) -> list[Event]:
    """The events of ``subject.image_digest``, newest first."""
    where = EventFilter(repository=_repository(config, subject), image_digests=[subject.image_digest or ""])
    found: list[Event] = []
    with engine.connect() as connection:
        before: Position | None = None
        while True:
            rows = connection.execute(query.history(where, before, PAGE)).all()
            found += [Event.from_row(row) for row in rows[:PAGE]]
            if len(rows) <= PAGE:
                return found
            before = (rows[PAGE - 1].xid, rows[PAGE - 1].id)


def history_view(engine: Engine, config: InventoryConfig, subject: Subject) -> RenderableType | str:
    """The subject's history as a heading over a table, or a line saying there is none."""
    if subject.tag is not None:
        assignments = tag_history(engine, config, subject)
        return (
            tag_table(subject, assignments)
            if assignments
            else f"No history of tag {subject.tag!r} in {subject.repository}."
        )
    rows = image_history(engine, config, subject)
    return image_table(subject, rows) if rows else f"No events of {subject.image_digest} in {subject.repository}."


SHORTEST_DIGEST = len("sha256:1234…cdef")


def short_digest(digest: str, width: int) -> str:
    """``digest`` if it fits ``width``, else shortened in the middle: ``sha256:1234…cdef`` at the shortest."""
    if len(digest) <= width:
        return digest
    algorithm, _, hex_digits = digest.partition(":")
    kept = max(width, SHORTEST_DIGEST) - len(algorithm) - 2  # the colon and the ellipsis
    return f"{algorithm}:{hex_digits[: kept - kept // 2]}…{hex_digits[len(hex_digits) - kept // 2 :]}"


class _Digest:
    """The digest in full when its line has room, else shortened in the middle; ``before`` and ``after`` it."""

    def __init__(self, digest: str, before: str = "", after: str = "") -> None:
        self.digest, self.before, self.after = digest, before, after

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        around = len(self.before) + len(self.after)
        return Measurement(around + min(SHORTEST_DIGEST, len(self.digest)), around + len(self.digest))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        room = options.max_width - len(self.before) - len(self.after)
        yield Text(self.before + short_digest(self.digest, room) + self.after)


def _table(
    heading: RenderableType, columns: Sequence[str], rows: Sequence[Sequence[str | _Digest]], *, fits: str
) -> Group:
    """A heading over a table whose columns but ``fits`` are never cut or wrapped (times are meant to be
    copied): the ``fits`` one takes the width left on a narrow terminal (changes wrap, digests shorten)."""
    table = Table()
    for index, column in enumerate(columns):
        if column == fits:
            table.add_column(column, min_width=SHORTEST_DIGEST if column == "digest" else None)
        else:
            width = max(len(column), *(len(str(row[index])) for row in rows))
            table.add_column(column, no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    return Group(heading, table)  # not the table's title: that wraps at the table's width, a digest too


def tag_table(subject: Subject, assignments: Sequence[TagSpan]) -> Group:
    rows = [(_Digest(a.image_digest), when(a.since), when(a.until) if a.until else "now") for a in assignments]
    heading = Text(f"{subject}: where the tag pointed, newest first")
    return _table(heading, ("digest", "from", "until"), rows, fits="digest")


def image_table(subject: Subject, events: Sequence[Event]) -> Group:
    rows = [
        (when(e.occurred_at), e.type + (" (backfill)" if e.backfill else ""), change_summary(e, "\n")) for e in events
    ]
    heading = _Digest(subject.image_digest or "", "Events of ", f" in {subject.repository}, newest first")
    return _table(heading, ("when", "type", "changes"), rows, fits="changes")
