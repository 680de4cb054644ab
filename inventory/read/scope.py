"""What a reader may see, and the one place that says how a read is held to it.

A ``Scope`` is the names of the registries a reader's token covers, or None for every one. Every read
of the read layer takes one and applies it in SQL, so an object out of scope is read exactly as a missing
one: a repository's row says whose it is (``repositories.registry_name``), and the images, versions and
events of a repository are in scope when their repository is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select, tuple_

from inventory.models import RepositoryRow

Scope = tuple[str, ...] | None
"""The registries (by name) a reader may see; None: every one."""

EVERYTHING: Scope = None

_repositories = RepositoryRow.__table__  # type: ignore[attr-defined]


def registries(column: Any, scope: Scope) -> list[ColumnElement[bool]]:
    """The condition (none, or one) that ``column``, a registry's name, is in ``scope``."""
    return [] if scope is None else [column.in_(scope)]


def repositories(c: Any, scope: Scope) -> list[ColumnElement[bool]]:
    """The condition (none, or one) that the rows of ``c`` (of images, versions or events: ``c`` has a
    repository's key columns) are of a repository in ``scope``: a semi-join on ``repositories`` by its
    primary key, which says whose it is."""
    if scope is None:
        return []
    r = _repositories.c
    mine = select(r.registry_type, r.registry_id, r.region, r.repository_name).where(r.registry_name.in_(scope))
    return [tuple_(c.registry_type, c.registry_id, c.region, c.repository_name).in_(mine)]
