"""Plans on disk: gzip'd JSON lines, written as the plan streams and read back to show or apply.

    {"t": "plan", "format": 1, "created_at": ..., "registries": [the declared registries]}
    {"t": "scope", "scope": [...], "version": ..., "repository": {...} | null}
    {"t": "e", "s": "+", "d": digest, "a": [values] | null, "b": [values] | null, "r": restored}
    {"t": "end", "stats": {...}, "error": null | {failure}}
    {"t": "error", ...failure}      a registry region whose repositories could not be listed
    {"t": "done"}

A scope whose ``end`` carries an error was not fully observed: readers skip its
entries. A file without ``done`` is truncated and refused.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from inventory.config import RegistryConfig
from inventory.errors import InventoryError
from inventory.sync.plan import Counts, Entry, Scope
from inventory.sync.transform import FIELDS, TIMESTAMP_FIELDS, Values

FORMAT = 1
_TIMESTAMPS = [i for i, name in enumerate(FIELDS) if name in TIMESTAMP_FIELDS]


class PlanFileError(InventoryError):
    """The plan file cannot be used."""


def _encode(values: Values | None) -> list[Any] | None:
    if values is None:
        return None
    encoded = list(values)
    for i in _TIMESTAMPS:
        if encoded[i] is not None:
            encoded[i] = encoded[i].isoformat()
    return encoded


def _decode(encoded: list[Any] | None) -> Values | None:
    if encoded is None:
        return None
    for i in _TIMESTAMPS:
        if encoded[i] is not None:
            encoded[i] = datetime.fromisoformat(encoded[i])
    return tuple(encoded)


@dataclass
class ScopeFailure:
    """A scope (or a whole registry region, ``repository_name`` None) that failed."""

    registry_name: str
    registry_id: str
    region: str
    repository_name: str | None
    code: str
    message: str

    @classmethod
    def of(cls, scope: Scope, code: str, message: str) -> ScopeFailure:
        return cls(scope.registry_name, scope.registry_id, scope.region, scope.repository_name, code, message)

    @property
    def label(self) -> str:
        parts = (self.registry_name, self.region, self.repository_name)
        return "/".join(part for part in parts if part)


@dataclass
class ScopeStats:
    """What observing a scope took: images listed, API calls, throttled calls."""

    images_seen: int = 0
    api_calls: int = 0
    throttled_calls: int = 0


@dataclass
class PlannedScope:
    scope: Scope
    version: str
    repository: dict[str, Any] | None
    entries: Iterator[Entry]
    stats: ScopeStats = field(default_factory=ScopeStats)
    counts: Counts = field(default_factory=Counts)


class PlanWriter:
    """Appends a plan to ``path`` as it is computed; keeps the totals for the trailer."""

    def __init__(self, path: Path, registries: Iterable[RegistryConfig]) -> None:
        self.path = path
        self.counts = Counts()
        self.failures: list[ScopeFailure] = []
        self._scope_counts = Counts()
        self._file: IO[str] = gzip.open(path, "wt", encoding="utf-8", compresslevel=1)  # noqa: SIM115
        self._write(
            {
                "t": "plan",
                "format": FORMAT,
                "created_at": datetime.now(UTC).isoformat(),
                "registries": [registry.model_dump(mode="json") for registry in registries],
            }
        )

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")))
        self._file.write("\n")

    def begin_scope(self, scope: Scope, version: str, repository: dict[str, Any] | None) -> None:
        self._scope_counts = Counts()
        self._write({"t": "scope", "scope": list(_scope_fields(scope)), "version": version,
                     "repository": repository})  # fmt: skip

    def entries(self, entries: list[Entry]) -> None:
        for entry in entries:
            self._scope_counts.count(entry)
            self._write({"t": "e", "s": entry.symbol, "d": entry.image_digest, "a": _encode(entry.after),
                         "b": _encode(entry.before), "r": entry.restored})  # fmt: skip

    def end_scope(self, stats: ScopeStats, error: ScopeFailure | None = None) -> Counts:
        """Close the scope; a failed scope's entries do not count (they will not be applied)."""
        counts = self._scope_counts
        self._write({"t": "end", "stats": vars(stats), "counts": counts.as_list(),
                     "error": None if error is None else vars(error)})  # fmt: skip
        if error is None:
            self.counts += counts
        else:
            self.failures.append(error)
        return counts

    def failure(self, failure: ScopeFailure) -> None:
        self.failures.append(failure)
        self._write({"t": "error", **vars(failure)})

    def close(self) -> None:
        self._write({"t": "done", "counts": self.counts.as_list(), "failures": [vars(f) for f in self.failures]})
        self._file.close()

    def __enter__(self) -> PlanWriter:
        return self

    def __exit__(self, *_: object) -> None:
        if not self._file.closed:
            self._file.close()


def _scope_fields(scope: Scope) -> tuple[str, ...]:
    return (scope.registry_name, scope.registry_type, scope.registry_id, scope.region,
            scope.repository_name)  # fmt: skip


_ENTRY_PREFIX = '{"t":"e"'


class PlanReader:
    """Reads a plan file back: totals and failures at once, scopes one at a time, entries streamed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with gzip.open(path, "rt", encoding="utf-8") as file:
                header = json.loads(file.readline())
                last = ""
                for line in file:
                    last = line
            trailer = json.loads(last or "{}")
        except FileNotFoundError:
            raise PlanFileError(f"{path}: no such plan file") from None
        except (OSError, ValueError, EOFError) as exc:
            raise PlanFileError(f"{path}: not a plan file ({exc})") from None
        if header.get("t") != "plan" or header.get("format") != FORMAT:
            raise PlanFileError(f"{path}: not a plan file of this version of the inventory")
        if trailer.get("t") != "done":
            raise PlanFileError(f"{path}: the plan file is truncated")
        self.created_at: str = header["created_at"]
        self.registries = [RegistryConfig.model_validate(r) for r in header["registries"]]
        self.counts = Counts(*trailer["counts"])
        self.failures = [ScopeFailure(**failure) for failure in trailer["failures"]]
        self._failed = {failure.label for failure in self.failures}

    def scopes(self, *, entries: bool = True) -> Iterator[PlannedScope]:
        """The scopes that were fully observed, in plan order.

        With ``entries``, each scope's entries stream from ``planned.entries``: consume
        them before asking for the next scope. Without, entry lines are skipped unparsed
        and ``planned.counts`` and ``planned.stats`` are set at once.
        """
        lines = self._lines()
        for line in lines:
            record = json.loads(line)
            if record["t"] != "scope":
                continue
            planned = PlannedScope(Scope(*record["scope"]), record["version"], record["repository"], iter(()))
            if planned.scope.label in self._failed:
                _end(lines, planned)
                continue
            if not entries:
                _end(lines, planned)
                yield planned
                continue
            planned.entries = _entries(lines, planned)
            yield planned
            for _ in planned.entries:  # skip what the caller did not read
                pass

    def _lines(self) -> Iterator[str]:
        with gzip.open(self.path, "rt", encoding="utf-8") as file:
            yield from file


def _end(lines: Iterator[str], planned: PlannedScope) -> None:
    for line in lines:
        if not line.startswith(_ENTRY_PREFIX):
            _close(json.loads(line), planned)
            return


def _close(record: dict[str, Any], planned: PlannedScope) -> None:
    planned.stats = ScopeStats(**record["stats"])
    planned.counts = Counts(*record["counts"])


def _entries(lines: Iterator[str], planned: PlannedScope) -> Iterator[Entry]:
    for line in lines:
        record = json.loads(line)
        if record["t"] == "end":
            _close(record, planned)
            return
        yield Entry(record["s"], record["d"], _decode(record["a"]), _decode(record["b"]), record["r"])
