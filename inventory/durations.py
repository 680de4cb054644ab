"""Durations as people write them: ``30s``, ``15m``, ``1h``, ``1h30m``, ``500ms``, ``30d``."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError naming the text when it is not a duration."""
    compact = text.strip().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 15m, 1h, 30d)")
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)
