"""Printing plans the way Terraform does: ``+`` new, ``~`` changed (old → new), ``-`` gone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from inventory.errors import ScopeLocked, StalePlan
from inventory.sync.engine import ScopeResult
from inventory.sync.plan import Counts, Entry, ScopeFailure
from inventory.sync.planfile import PlanReader
from inventory.sync.transform import FIELDS, Values

DETAIL_LIMIT = 100
"""Plans (and, when applied unattended, scopes) with more entries than this are summarised per
repository unless --verbose."""

_SHOWN_ON_ADD = ("image_tags", "image_size_in_bytes", "image_pushed_at", "image_status")


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) + "}"
    return str(value)


def _brief(values: Values | None) -> str:
    if values is None:
        return ""
    shown = dict(zip(FIELDS, values, strict=True))
    return " ".join(f"{name}={_format(shown[name])}" for name in _SHOWN_ON_ADD if shown[name] is not None)


def entry_lines(entry: Entry) -> list[str]:
    if entry.symbol == "-":
        return [f"  - {entry.image_digest} {_brief(entry.before)}".rstrip()]
    if entry.symbol == "+" and not entry.restored:
        return [f"  + {entry.image_digest} {_brief(entry.after)}".rstrip()]
    head = f"  {entry.symbol} {entry.image_digest}" + (" (restored)" if entry.restored else "")
    return [head] + [
        f"      {name}: {_format(before)} → {_format(after)}" for name, (before, after) in entry.changes.items()
    ]


def counts_phrase(counts: Counts) -> str:
    return f"{counts.add} to add, {counts.change} to change, {counts.remove} to remove"


_NOT_APPLIED = {StalePlan.code: "stale plan", ScopeLocked.code: "lock timeout"}
"""The failures of a scope that was observed but not written; any other failure left it unobserved."""


def failures_phrase(failures: Sequence[ScopeFailure], scopes: int) -> str:
    """``2 of 5 scopes failed (not observed)``, each reason counted when they differ.

    ``scopes``: those attempted, each repository and each region whose repositories could not be listed."""
    reasons = Counter(_NOT_APPLIED.get(failure.code, "not observed") for failure in failures)
    why = ", ".join(f"{n} {reason}" for reason, n in reasons.items()) if len(reasons) > 1 else next(iter(reasons))
    return f"{len(failures)} of {scopes} {'scope' if scopes == 1 else 'scopes'} failed ({why})"


def summary_line(counts: Counts, failures: Sequence[ScopeFailure] = (), scopes: int = 0) -> str:
    """``Plan: …`` or ``No changes.``; never a bare ``No changes.`` when a scope failed."""
    if not failures:
        return f"Plan: {counts_phrase(counts)}." if counts.total else "No changes."
    head = f"Plan: {counts_phrase(counts)}" if counts.total else "No changes in the observed scopes"
    return f"{head}; {failures_phrase(failures, scopes)}."


def applied_line(counts: Counts, failures: Sequence[ScopeFailure] = (), scopes: int = 0) -> str:
    """``Apply complete: N added, M changed, K removed.``, and how many scopes failed."""
    head = f"Apply complete: {counts.add} added, {counts.change} changed, {counts.remove} removed"
    return f"{head}; {failures_phrase(failures, scopes)}." if failures else f"{head}."


def render_plan(reader: PlanReader, echo: Callable[[str], None], *, verbose: bool = False) -> Counts:
    """Print the plan, then each failure once; return its totals. The last line is ``summary_line``'s."""
    observed = 0
    if verbose or reader.counts.total <= DETAIL_LIMIT:
        for planned in reader.scopes():
            observed += 1
            lines = [line for entry in planned.entries for line in entry_lines(entry)]
            if lines:
                echo(f"{planned.scope.label}:")
                for line in lines:
                    echo(line)
    else:
        for planned in reader.scopes(entries=False):
            observed += 1
            counts = planned.counts
            if counts.total:
                echo(f"{planned.scope.label}: {counts_phrase(counts)}")
    for failure in reader.failures:
        echo(f"Error: {failure.label}: {failure.code}: {failure.message}")
    echo("")
    echo(summary_line(reader.counts, reader.failures, observed + len(reader.failures)))
    return reader.counts


def render_applied(result: ScopeResult, echo: Callable[[str], None]) -> None:
    """Print one scope as it was applied unattended: its entries when they were all kept
    (``RegionSync.keep``), else its counts."""
    counts = result.counts
    if result.failure is not None or not counts.total:
        return
    if len(result.shown) == counts.total:
        echo(f"{result.scope.label}:")
        for entry in result.shown:
            for line in entry_lines(entry):
                echo(line)
    else:
        echo(f"{result.scope.label}: {counts_phrase(counts)}")
