"""A registry's activity as an SVG chart, drawn on the server (no script, no library): the images
present over time as a stepped line over its area, and the change events of each span as bars below it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

from inventory.read.history import Activity

DAYS = 30
"""The span the overview charts."""
BUCKETS = 30
"""Bars (and line points) per chart."""
WIDTH, HEIGHT = 480, 150
_TOP, _LINE_BOTTOM, _BARS_TOP, _BOTTOM, _LEFT, _RIGHT = 14, 88, 98, 134, 44, 8


def svg(points: Sequence[Activity], since: datetime, until: datetime) -> Markup:
    """The chart of ``points`` (oldest first), with its own labels and a text alternative."""
    span = WIDTH - _LEFT - _RIGHT
    step = span / max(len(points), 1)
    most_images = max((p.images for p in points), default=0) or 1
    most_events = max((p.events for p in points), default=0) or 1

    def x(i: float) -> float:
        return _LEFT + step * i

    def y_images(n: int) -> float:
        return _LINE_BOTTOM - (_LINE_BOTTOM - _TOP) * n / most_images

    # a step per span: the images present at its end, held across it
    line = " ".join(
        f"{x(i):.1f},{y_images(p.images):.1f} {x(i + 1):.1f},{y_images(p.images):.1f}" for i, p in enumerate(points)
    )
    area = f"{x(0):.1f},{_LINE_BOTTOM} {line} {x(len(points)):.1f},{_LINE_BOTTOM}"
    bars = []
    for i, p in enumerate(points):
        if p.events:
            height = (_BOTTOM - _BARS_TOP) * p.events / most_events
            tip = f"{p.start:%Y-%m-%d}: {p.events} events ({p.added} added, {p.removed} removed), {p.images} images"
            box = f'x="{x(i) + 1:.1f}" y="{_BOTTOM - height:.1f}" width="{max(step - 2, 1):.1f}" height="{height:.1f}"'
            bars.append(f'<rect class="bar" {box}><title>{escape(tip)}</title></rect>')
    last = points[-1].images if points else 0
    total_events = sum(p.events for p in points)
    label = f"{last:,} images now; {total_events:,} change events from {since:%Y-%m-%d} to {until:%Y-%m-%d}"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>',
        f'<polygon class="area" points="{area}"/><polyline class="line" points="{line}"/>',
        *bars,
        f'<line class="axis" x1="{_LEFT}" y1="{_LINE_BOTTOM}" x2="{WIDTH - _RIGHT}" y2="{_LINE_BOTTOM}"/>',
        f'<line class="axis" x1="{_LEFT}" y1="{_BOTTOM}" x2="{WIDTH - _RIGHT}" y2="{_BOTTOM}"/>',
        f'<text class="tick" x="{_LEFT - 4}" y="{_TOP + 4}" text-anchor="end">{most_images:,}</text>',
        f'<text class="tick" x="{_LEFT - 4}" y="{_LINE_BOTTOM}" text-anchor="end">0</text>',
        f'<text class="tick" x="{_LEFT - 4}" y="{_BARS_TOP + 6}" text-anchor="end">{most_events:,}</text>',
        f'<text class="legend" x="{_LEFT + 2}" y="{_TOP - 4}">images</text>',
        f'<text class="legend" x="{_LEFT + 2}" y="{_BARS_TOP - 2}">change events</text>',
        f'<text class="tick" x="{_LEFT}" y="{HEIGHT - 4}">{since:%b %d}</text>',
        f'<text class="tick" x="{WIDTH - _RIGHT}" y="{HEIGHT - 4}" text-anchor="end">{until:%b %d}</text>',
        "</svg>",
    ]
    return Markup("".join(parts))
