"""Which registry (by name) each repository belongs to, for the image tables: a page's rows say their
repository's account, not which declared registry holds it (two may share an account, split by globs).

Read with ``inventory.read.inventory.repositories_by_key`` and remembered per process for
``OWNER_SECONDS``: a repository changes registry only when the inventory file does. Only the names of
repositories whose images the reader was just given are asked for, and a name out of the reader's scope
is never handed back, so the memory cannot show one reader what another may see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from inventory.read import inventory
from inventory.read.database import Database
from inventory.read.inventory import AsOf
from inventory.read.keys import RepositoryKey
from inventory.read.scope import Scope

OWNER_SECONDS = 60.0
_ENTRIES = 100_000


class Owners:
    """One per API process."""

    def __init__(self, seconds: float = OWNER_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._known: dict[RepositoryKey, tuple[float, str]] = {}

    async def of(
        self, db: Database, reader: Scope, keys: Sequence[RepositoryKey], at: AsOf | None = None
    ) -> dict[RepositoryKey, str]:
        """The registry of each repository of ``keys`` that ``reader`` may see (at ``at``: read afresh)."""
        if at is not None:
            return {k: r.registry_name for k, r in (await inventory.repositories_by_key(db, reader, keys, at)).items()}
        now = self.clock()
        found: dict[RepositoryKey, str] = {}
        missing = []
        for key in dict.fromkeys(keys):
            known = self._known.get(key)
            if known is not None and now - known[0] < self.seconds:
                found[key] = known[1]
            else:
                missing.append(key)
        if missing:
            if len(self._known) + len(missing) > _ENTRIES:
                self._known.clear()
            for key, row in (await inventory.repositories_by_key(db, None, missing)).items():
                self._known[key] = (now, row.registry_name)
                found[key] = row.registry_name
        return {k: name for k, name in found.items() if reader is None or name in reader}
