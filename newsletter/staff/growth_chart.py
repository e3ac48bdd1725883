"""The growth charts as inline SVG (pure: weeks in, markup out; no script, no library).

Two charts: the confirmed subscribers per week as a line, and the sign-ups,
confirmations and departures per week as three labelled rows of bars on one scale.
They are readable without colour: every line and row is named in text on the chart,
everything is drawn in `currentColor` (so it follows the page's text colour, dark mode
too), and each SVG carries a `<title>` and a `<desc>` that say what it shows in words.
The page puts a text summary and the figures per week beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from babel.dates import format_date
from markupsafe import Markup, escape

from newsletter.core.numbers import dutch_number
from newsletter.staff.growth import WeekPoint

WIDTH = 480
LEFT = 44  # room for the scale's numbers
RIGHT = 12
FONT = 15


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least `value` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _day(value: date) -> str:
    return format_date(value, "d MMMM y", locale="nl")


def _month(value: date) -> str:
    return format_date(value, "MMM y", locale="nl").replace(".", "")


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * index / (count - 1) if count > 1 else span / 2)


def _text(x: float, y: float, words: str, *, anchor: str = "start", size: int = FONT) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
        f' fill="currentColor">{escape(words)}</text>'
    )


def _frame(ident: str, height: int, title: str, description: str, body: list[str]) -> Markup:
    # Every text in it went through escape(); the rest are numbers we computed.
    return Markup(  # noqa: S704
        f'<svg class="growth-chart" xmlns="http://www.w3.org/2000/svg" role="img" width="100%"'
        f' viewBox="0 0 {WIDTH} {height}" aria-labelledby="{ident}-title {ident}-desc"'
        f' font-family="inherit">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(description)}</desc>' + "".join(body) + "</svg>"
    )


def _month_labels(points: Sequence[WeekPoint], y: float) -> list[str]:
    """A date under the first week and about every quarter after it."""
    count = len(points)
    marks = sorted({0, *range(13, count - 6, 13)})
    return [_text(_x(i, count), y, _month(points[i].start), anchor="middle") for i in marks]


def confirmed_chart(points: Sequence[WeekPoint], *, ident: str = "groei") -> Markup:
    """The confirmed subscribers at the end of each week, as a line with its scale."""
    top, plot = 16, 150
    scale = nice_ceiling(max((point.confirmed for point in points), default=0))
    body = []
    for fraction in (0, 0.5, 1) if scale % 2 == 0 else (0, 1):
        y = top + plot * (1 - fraction)
        value = round(scale * fraction)
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"'
            f' stroke="currentColor" stroke-opacity="0.3" stroke-width="1"/>'
        )
        body.append(_text(LEFT - 6, y + 4, dutch_number(value), anchor="end"))
    coordinates = " ".join(
        f"{_x(i, len(points)):.1f},{top + plot * (1 - point.confirmed / scale):.1f}"
        for i, point in enumerate(points)
    )
    body.append(
        f'<polyline points="{coordinates}" fill="none" stroke="currentColor"'
        f' stroke-width="2.5" stroke-linejoin="round"/>'
    )
    if points:
        last_y = top + plot * (1 - points[-1].confirmed / scale)
        body.append(
            f'<circle cx="{_x(len(points) - 1, len(points)):.1f}" cy="{last_y:.1f}" r="4"'
            ' fill="currentColor"/>'
        )
        label = f"nu {dutch_number(points[-1].confirmed)}"
        body.append(_text(WIDTH - RIGHT, max(last_y - 10, top + 12), label, anchor="end"))
        body.extend(_month_labels(points, top + plot + 20))
    first, last = points[0] if points else None, points[-1] if points else None
    description = (
        "Nog geen cijfers."
        if first is None or last is None
        else f"Een lijn van {dutch_number(first.confirmed)} ingeschreven abonnees in de week"
        f" van {_day(first.start)} naar {dutch_number(last.confirmed)} nu; de hoogste week"
        f" telde {dutch_number(max(point.confirmed for point in points))}."
    )
    title = "Ingeschreven abonnees aan het eind van elke week, het afgelopen jaar"
    return _frame(ident, top + plot + 30, title, description, body)


ROWS = (
    ("signups", "Aanmeldingen"),
    ("confirmations", "Bevestigingen"),
    ("departures", "Vertrekkers"),
)


def flows_chart(points: Sequence[WeekPoint], *, ident: str = "stromen") -> Markup:
    """Sign-ups, confirmations and departures per week: three labelled rows of bars."""
    row_height, bar_room, top = 78, 50, 4
    values = {key: [getattr(point, key) for point in points] for key, _ in ROWS}
    scale = nice_ceiling(max((max(v, default=0) for v in values.values()), default=0))
    count = len(points)
    width = max(1.0, (WIDTH - LEFT - RIGHT) / max(count, 1) * 0.7)
    body = []
    for row, (key, label) in enumerate(ROWS):
        base = top + row * row_height + 18 + bar_room
        total = sum(values[key])
        body.append(_text(LEFT, base - bar_room - 4, f"{label}: {dutch_number(total)} dit jaar"))
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}"'
            ' stroke="currentColor" stroke-width="1"/>'
        )
        body.append(_text(LEFT - 6, base - bar_room + 10, dutch_number(scale), anchor="end"))
        body.append(_text(LEFT - 6, base, "0", anchor="end"))
        for i, value in enumerate(values[key]):
            if value:
                height = bar_room * value / scale
                body.append(
                    f'<rect x="{_x(i, count) - width / 2:.1f}" y="{base - height:.1f}"'
                    f' width="{width:.1f}" height="{height:.1f}" fill="currentColor"/>'
                )
    height = top + len(ROWS) * row_height + 24
    if points:
        body.extend(_month_labels(points, height - 6))
    totals = {key: sum(v) for key, v in values.items()}
    description = (
        f"Drie rijen staafjes, één staafje per week, op dezelfde schaal (tot"
        f" {dutch_number(scale)}). Het afgelopen jaar: {dutch_number(totals['signups'])}"
        f" aanmeldingen, {dutch_number(totals['confirmations'])} bevestigingen en"
        f" {dutch_number(totals['departures'])} vertrekkers."
    )
    title = "Aanmeldingen, bevestigingen en vertrekkers per week, het afgelopen jaar"
    return _frame(ident, height, title, description, body)


@dataclass(frozen=True)
class GrowthCharts:
    """What the dashboard shows of the growth: both charts, and each week with its label
    ("7 december 2026"), newest first, for the table beside them."""

    confirmed: Markup
    flows: Markup
    weeks: list[tuple[str, WeekPoint]]


def growth_charts(points: Sequence[WeekPoint]) -> GrowthCharts:
    return GrowthCharts(
        confirmed=confirmed_chart(points),
        flows=flows_chart(points),
        weeks=[(_day(point.start), point) for point in reversed(points)],
    )
