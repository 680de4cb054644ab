"""Keys of the inventory's objects as the API names them (a leaf: it imports nothing of the API)."""

from __future__ import annotations

RepositoryKey = tuple[str, str, str, str]
"""(registry type, registry id, region, repository name): the primary key of ``repositories``."""
