"""Plans on disk: written as the plan streams, read back to show it and to apply it.

The file is a sequence of framed records (a kind byte, a 4-byte length, a pickle):

    H  header   (format, created_at, the declared registries, the --targets)
    S  scope    (scope fields, state version, repository description | None, row changed?)
    E  entries  (a page's worth of entries)
    Z  end      (stats, counts, failure | None)   closes the scope
    F  failure  a registry region whose repositories could not be listed
    T  trailer  (totals, failures, the regions listed and their listing's stats), followed by its
                own offset (8 bytes)

A scope whose end carries a failure was not fully observed: readers skip it.
A file without its trailer is truncated and refused. Records are unpickled
with a restricted unpickler that knows only datetimes, time zones and
built-in containers, so a plan file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Iterable, Iterator
from dataclasses import astuple
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from inventory.config import RegistryConfig
from inventory.errors import PlanFileError
from inventory.sync.plan import (
    Counts,
    Entry,
    PlannedScope,
    RepositoryDescription,
    Scope,
    ScopeFailure,
    ScopeStats,
)

FORMAT = 4
_FRAME = struct.Struct("<cI")
_OFFSET = struct.Struct("<Q")
_SAFE_GLOBALS = {
    ("datetime", "datetime"),
    ("datetime", "timezone"),
    ("datetime", "timedelta"),
    ("dateutil.tz.tz", "tzutc"),
    ("dateutil.tz.tz", "tzlocal"),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a plan file")
        return super().find_class(module, name)


def _load(payload: bytes) -> Any:
    return _Unpickler(io.BytesIO(payload)).load()


class PlanWriter:
    """Appends a plan to ``path`` as it is computed; keeps the totals for the trailer."""

    def __init__(self, path: Path, registries: Iterable[RegistryConfig], targets: Iterable[object] = ()) -> None:
        self.path = path
        self.counts = Counts()
        self.failures: list[ScopeFailure] = []
        self.regions: dict[tuple[str, str], ScopeStats] = {}
        self._scope_counts = Counts()
        self._file: IO[bytes] = path.open("wb")
        header = (
            FORMAT,
            datetime.now(UTC).isoformat(),
            [r.model_dump(mode="json") for r in registries],
            [str(target) for target in targets],
        )
        self._write(b"H", header)

    def _write(self, kind: bytes, record: Any) -> None:
        payload = pickle.dumps(record, protocol=5)
        self._file.write(_FRAME.pack(kind, len(payload)))
        self._file.write(payload)

    def begin_scope(
        self, scope: Scope, version: str, repository: RepositoryDescription | None, row_changed: bool
    ) -> None:
        self._scope_counts = Counts()
        self._write(b"S", (astuple(scope), version, None if repository is None else astuple(repository), row_changed))

    def entries(self, entries: list[Entry]) -> None:
        if not entries:
            return
        for entry in entries:
            self._scope_counts.count(entry)
        self._write(b"E", [(e.symbol, e.image_digest, e.after, e.before, e.restored, e.fingerprint) for e in entries])

    def end_scope(self, stats: ScopeStats, error: ScopeFailure | None = None) -> Counts:
        """Close the scope; a failed scope's entries do not count (they will not be applied)."""
        counts = self._scope_counts
        self._write(b"Z", (astuple(stats), counts.as_list(), None if error is None else astuple(error)))
        if error is None:
            self.counts += counts
        else:
            self.failures.append(error)
        return counts

    def region(self, registry_name: str, region: str, listing: ScopeStats) -> None:
        """A region listed: applying the plan records its round (even with nothing to write)."""
        self.regions[(registry_name, region)] = listing

    def failure(self, failure: ScopeFailure) -> None:
        self.failures.append(failure)
        self._write(b"F", astuple(failure))

    def close(self) -> None:
        offset = self._file.tell()
        regions = [(*key, astuple(stats)) for key, stats in self.regions.items()]
        self._write(b"T", (self.counts.as_list(), [astuple(failure) for failure in self.failures], regions))
        self._file.write(_OFFSET.pack(offset))
        self._file.close()

    def __enter__(self) -> PlanWriter:
        return self

    def __exit__(self, *_: object) -> None:
        if not self._file.closed:
            self._file.close()


class PlanReader:
    """Reads a plan file back: totals and failures at once, scopes one at a time, entries streamed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as file:
                kind, header = _read(file)
                if kind != b"H" or header[0] != FORMAT:
                    raise PlanFileError(f"{path}: not a plan file of this version of the inventory")
                file.seek(-_OFFSET.size, io.SEEK_END)
                file.seek(_OFFSET.unpack(file.read(_OFFSET.size))[0])
                kind, trailer = _read(file)
                if kind != b"T":
                    raise ValueError("no trailer")
        except FileNotFoundError:
            raise PlanFileError(f"{path}: no such plan file") from None
        except PlanFileError:
            raise
        except (OSError, ValueError, EOFError, struct.error, pickle.UnpicklingError, IndexError, TypeError):
            raise PlanFileError(f"{path}: not a plan file, or a truncated one") from None
        self.created_at: str = header[1]
        self.registries = [RegistryConfig.model_validate(r) for r in header[2]]
        self.targets: list[str] = header[3]
        self.counts = Counts(*trailer[0])
        self.failures = [ScopeFailure(*failure) for failure in trailer[1]]
        self.regions = {(name, region): ScopeStats(*stats) for name, region, stats in trailer[2]}
        self._failed = {failure.label for failure in self.failures}

    def scopes(self, *, entries: bool = True) -> Iterator[PlannedScope]:
        """The scopes that were fully observed, in plan order, each with its stats and counts.

        With ``entries``, each scope's entries stream from ``planned.entries`` (consume them
        before asking for the next scope); without, entry records are skipped unread.
        """
        with self.path.open("rb") as file:
            _read(file)  # the header
            while True:
                kind, record = _read(file, skip=b"EF")
                if kind == b"T":
                    return
                if kind != b"S":
                    continue
                start = file.tell()
                stats, counts = _scope_end(file)  # read ahead: a scope is whole before it is yielded
                scope = Scope(*record[0])
                if scope.label in self._failed:
                    continue
                description = None if record[2] is None else RepositoryDescription(*record[2])
                planned = PlannedScope(scope, record[1], description, record[3], stats, counts)
                if entries:
                    end = file.tell()
                    file.seek(start)
                    planned.entries = _entries(file)
                    yield planned
                    file.seek(end)
                else:
                    yield planned


def _read(file: IO[bytes], skip: bytes = b"") -> tuple[bytes, Any]:
    kind, length = _FRAME.unpack(file.read(_FRAME.size))
    if kind in skip:
        file.seek(length, io.SEEK_CUR)
        return kind, None
    payload = file.read(length)
    if len(payload) != length:
        raise EOFError("truncated record")
    return kind, _load(payload)


def _scope_end(file: IO[bytes]) -> tuple[ScopeStats, Counts]:
    """Skip to the end of the scope: its stats and counts."""
    while True:
        kind, record = _read(file, skip=b"E")
        if kind == b"Z":
            return ScopeStats(*record[0]), Counts(*record[1])


def _entries(file: IO[bytes]) -> Iterator[Entry]:
    while True:
        kind, record = _read(file)
        if kind == b"Z":
            return
        for fields in record:
            yield Entry(*fields)
