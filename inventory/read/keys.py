"""Keys of the inventory's objects: the primary keys of their tables (a leaf)."""

from __future__ import annotations

RepositoryKey = tuple[str, str, str, str]
"""(registry type, registry id, region, repository name): the primary key of ``repositories``."""
ImageKey = tuple[str, str, str, str, str]
"""(registry type, registry id, region, repository name, image digest): the primary key of ``images``."""
