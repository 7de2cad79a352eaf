"""A line chart drawn as plain SVG geometry, so that the console needs no script library."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from babel import dates as babel_dates

from services.common import i18n


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    at: datetime
    value: float
    label: str = ""
    """What the point says when pointed at (its moment and value); empty: the template's default."""


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
    ticks = [(level, str(level)) for level in (0, 25, 50, 75, 100)]
    return line_chart(series, high=100.0, ticks=ticks, width=width, height=height)


def trend_chart(
    series: Sequence[tuple[datetime, float | None]],
    *,
    share: bool = False,
    high: float | None = None,
    width: int = 360,
    height: int = 150,
) -> LineChart:
    """An indicator over the periods of its trend. A share (a fraction 0-1) is drawn on a 0-100 %
    axis; any other figure on an axis from 0 to ``high``, else to a round number above its
    largest value, so that a small figure is not drawn as a flat line at the top."""
    if share:
        top = 1.0
        ticks = [(level / 100, i18n.format_percent(level / 100)) for level in (0, 25, 50, 75, 100)]
    else:
        largest = max((value for _, value in series if value is not None), default=0.0)
        top = high if high is not None else round_up(largest)
        ticks = [(top * step / 4, i18n.format_number(top * step / 4)) for step in range(5)]

    def point_label(at: datetime, value: float) -> str:
        shown = i18n.format_percent(value) if share else i18n.format_number(value, digits=2)
        return f"{format_day(at)}: {shown}"

    return line_chart(
        series,
        high=top,
        ticks=ticks,
        width=width,
        height=height,
        moment=format_day,
        point_label=point_label,
    )


def format_day(at: datetime) -> str:
    """The day a period starts, in the current language (periods start at midnight UTC)."""
    return babel_dates.format_date(at.astimezone(UTC).date(), format="medium", locale=i18n.current())


def round_up(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value`` (1 for 0):
    the top of an axis that reads as a round number."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def line_chart(
    series: Sequence[tuple[datetime, float | None]],
    *,
    high: float,
    ticks: Sequence[tuple[float, str]],
    width: int,
    height: int,
    moment: Callable[[datetime], str] = i18n.format_datetime,
    point_label: Callable[[datetime, float], str] | None = None,
) -> LineChart:
    """Values from 0 to ``high`` over time; ``ticks`` are (value, label) of the grid lines,
    ``moment`` writes the first and last moment under the plot, ``point_label`` what each point
    says when pointed at."""
    left, top, right, bottom = 40, 10, 10, 24
    plot_width, plot_height = width - left - right, height - top - bottom
    measured = [(at, value) for at, value in series if value is not None]
    points: list[Point] = []

    def y_of(value: float) -> float:
        return top + (1 - max(0.0, min(high, value)) / high) * plot_height

    if measured:
        start, end = measured[0][0], measured[-1][0]
        span = (end - start).total_seconds()
        for index, (at, value) in enumerate(measured):
            if span > 0:
                share = (at - start).total_seconds() / span
            else:
                share = index / max(1, len(measured) - 1) if len(measured) > 1 else 0.5
            label = point_label(at, value) if point_label else ""
            points.append(Point(left + share * plot_width, y_of(value), at, value, label))
    return LineChart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        points=points,
        ticks=[(y_of(level), text) for level, text in ticks],
        first_label=moment(measured[0][0]) if measured else "",
        last_label=moment(measured[-1][0]) if len(measured) > 1 else "",
    )
