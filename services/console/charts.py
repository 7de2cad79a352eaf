"""A line chart drawn as plain SVG geometry, so that the console needs no script library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.common import i18n


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    at: datetime
    value: float


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    points: list[Point]
    ticks: list[tuple[float, str]]
    """(y, label) of the horizontal grid lines."""
    first_label: str
    last_label: str
    """Empty when the chart has one point: its one moment is the first label."""

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def last(self) -> Point | None:
        return self.points[-1] if self.points else None


def score_chart(
    series: Sequence[tuple[datetime, float | None]], *, width: int = 720, height: int = 220
) -> LineChart:
    """Scores 0-100 over time: x by time (first to last point), y by score. Gaps (``None``,
    a window where the score could not be measured) are left out rather than drawn as 0."""
    left, top, right, bottom = 40, 10, 10, 24
    plot_width, plot_height = width - left - right, height - top - bottom
    measured = [(at, value) for at, value in series if value is not None]
    points: list[Point] = []
    if measured:
        start, end = measured[0][0], measured[-1][0]
        span = (end - start).total_seconds()
        for index, (at, value) in enumerate(measured):
            if span > 0:
                share = (at - start).total_seconds() / span
            else:
                share = index / max(1, len(measured) - 1) if len(measured) > 1 else 0.5
            x = left + share * plot_width
            y = top + (1 - max(0.0, min(100.0, value)) / 100) * plot_height
            points.append(Point(x, y, at, value))
    ticks = [(top + (1 - level / 100) * plot_height, str(level)) for level in (0, 25, 50, 75, 100)]
    return LineChart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        points=points,
        ticks=ticks,
        first_label=i18n.format_datetime(measured[0][0]) if measured else "",
        last_label=i18n.format_datetime(measured[-1][0]) if len(measured) > 1 else "",
    )
