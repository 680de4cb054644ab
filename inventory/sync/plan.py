"""Plans as pure data: what differs between the stored and the observed images of a scope.

No I/O here. The planner feeds observed pages through ``PageDiff`` against an
index of the stored images (digest → fingerprint, removed?), fetches the stored
values of the candidates it returns, and asks ``change_entries`` which of them
really changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from inventory.sync.transform import Values, changed_fields, fingerprint

Symbol = Literal["+", "~", "-"]
Candidate = tuple[str, Values, bytes]
"""(digest, observed values, their fingerprint) of an image that may have changed."""


@dataclass(frozen=True, order=True)
class Scope:
    """The unit of sync: one repository of one registry region."""

    registry_name: str
    registry_type: str
    registry_id: str
    region: str
    repository_name: str

    @property
    def label(self) -> str:
        return f"{self.registry_name}/{self.region}/{self.repository_name}"

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The repository's identity in the inventory, in the order of its primary key."""
        return (self.registry_type, self.registry_id, self.region, self.repository_name)


@dataclass(frozen=True)
class RepositoryDescription:
    """What ``DescribeRepositories`` says of a repository, as stored."""

    repository_arn: str | None = None
    repository_uri: str | None = None
    created_at: datetime | None = None

    @classmethod
    def of(cls, description: Mapping[str, Any]) -> RepositoryDescription:
        created = description.get("createdAt")
        return cls(
            description.get("repositoryArn"),
            description.get("repositoryUri"),
            created if isinstance(created, datetime) else None,
        )


@dataclass(frozen=True)
class StoredRepository:
    """A repository the inventory holds as present, as last described."""

    scope: Scope
    description: RepositoryDescription


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


class Entry(NamedTuple):
    """One image's planned change: ``+`` new (or restored), ``~`` changed, ``-`` gone.

    A named tuple: a first sync makes one per image, and a tuple is several times cheaper
    to make than a frozen dataclass."""

    symbol: Symbol
    image_digest: str
    after: Values | None
    before: Values | None = None
    restored: bool = False
    fingerprint: bytes | None = None
    """Of ``after``; what apply stores with the image."""

    @property
    def changes(self) -> dict[str, tuple[Any, Any]]:
        if self.before is None or self.after is None:
            return {}
        return changed_fields(self.before, self.after)


class StoredImage(NamedTuple):
    fingerprint: bytes | None
    removed: bool


@dataclass
class Counts:
    add: int = 0
    change: int = 0
    remove: int = 0

    def count(self, entry: Entry) -> None:
        if entry.symbol == "+":
            self.add += 1
        elif entry.symbol == "~":
            self.change += 1
        else:
            self.remove += 1

    def __iadd__(self, other: Counts) -> Counts:
        self.add += other.add
        self.change += other.change
        self.remove += other.remove
        return self

    def as_list(self) -> list[int]:
        return [self.add, self.change, self.remove]

    @property
    def total(self) -> int:
        return self.add + self.change + self.remove


@dataclass
class PageDiff:
    """Observed pages of one scope, compared one at a time against the stored index."""

    stored: Mapping[str, StoredImage]
    seen: set[str] = field(default_factory=set)

    def feed(self, observed: Iterable[tuple[str, Values]]) -> tuple[list[Entry], list[Candidate]]:
        """(``+`` entries, candidates whose stored values must be fetched to decide ``~``)."""
        added: list[Entry] = []
        candidates: list[Candidate] = []
        for digest, values in observed:
            if digest in self.seen:  # a digest listed twice: the first listing wins
                continue
            self.seen.add(digest)
            known = self.stored.get(digest)
            observed_fingerprint = fingerprint(values)
            if known is None:
                added.append(Entry("+", digest, values, fingerprint=observed_fingerprint))
            elif known.removed or known.fingerprint != observed_fingerprint:
                candidates.append((digest, values, observed_fingerprint))
        return added, candidates

    def gone(self) -> list[str]:
        """Digests stored as present that no page listed."""
        return [d for d, known in self.stored.items() if not known.removed and d not in self.seen]


def change_entries(candidates: Iterable[Candidate], stored: Mapping[str, tuple[Values, bool]]) -> Iterator[Entry]:
    """Entries for candidates, given their stored (values, removed?).

    A candidate whose values equal the stored ones (only its fingerprint differed) yields
    nothing: the inventory is left as it is.
    """
    for digest, after, after_fingerprint in candidates:
        before, removed = stored[digest]
        if removed:
            yield Entry("+", digest, after, before, restored=True, fingerprint=after_fingerprint)
        elif changed_fields(before, after):
            yield Entry("~", digest, after, before, fingerprint=after_fingerprint)


def removal_entries(stored: Mapping[str, tuple[Values, bool]]) -> Iterator[Entry]:
    for digest, (before, _) in stored.items():
        yield Entry("-", digest, None, before)


@dataclass
class PlannedScope:
    """One scope of a saved plan: what to write, and the state it was planned against.

    ``version`` is the stored images' version when planned; ``repository`` the listed
    description (None: the repository is gone); ``row_changed`` whether the repository's
    own row must be written even with no image entries.
    """

    scope: Scope
    version: str
    repository: RepositoryDescription | None
    row_changed: bool
    stats: ScopeStats
    counts: Counts
    entries: Iterator[Entry] = field(default_factory=lambda: iter(()))
