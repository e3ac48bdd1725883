"""The growth charts as SVG (pure): shapes, words and scale, readable without colour."""

from __future__ import annotations

import re
from datetime import date, timedelta
from xml.etree import ElementTree

import pytest

from newsletter.staff.growth import WeekPoint
from newsletter.staff.growth_chart import (
    confirmed_chart,
    flows_chart,
    growth_charts,
    nice_ceiling,
)

SVG = "{http://www.w3.org/2000/svg}"
FIRST = date(2025, 11, 24)


def year(confirmed: list[int]) -> list[WeekPoint]:
    return [
        WeekPoint(FIRST + timedelta(weeks=i), value, i % 3, i % 2, 1 if i == 40 else 0)
        for i, value in enumerate(confirmed)
    ]


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (1234, 2000)])
def test_the_scale_ends_at_a_round_number(value: int, ceiling: int) -> None:
    assert nice_ceiling(value) == ceiling


def test_the_confirmed_chart_is_a_line_with_words() -> None:
    points = year([1000 + i * 5 for i in range(52)])
    svg = ElementTree.fromstring(str(confirmed_chart(points)))
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "groei-title groei-desc"
    title = svg.find(f"{SVG}title")
    desc = svg.find(f"{SVG}desc")
    assert title is not None and title.text and "Ingeschreven abonnees" in title.text
    assert desc is not None and desc.text
    assert "1.000 ingeschreven abonnees in de week van 24 november 2025" in desc.text
    assert "naar 1.255 nu" in desc.text
    [line] = svg.findall(f"{SVG}polyline")
    assert len(line.get("points", "").split()) == 52
    labels = [text.text for text in svg.findall(f"{SVG}text")]
    assert "2.000" in labels and "1.000" in labels and "0" in labels  # the scale
    assert "nu 1.255" in labels
    assert "nov 2025" in labels  # the months under it
    # No colour carries meaning: everything is drawn in the text colour.
    colours = set(re.findall(r'(?:fill|stroke)="([^"]+)"', str(confirmed_chart(points))))
    assert colours <= {"currentColor", "none"}


def test_the_flows_chart_names_each_row_and_draws_a_bar_per_busy_week() -> None:
    points = year([0] * 52)
    markup = str(flows_chart(points))
    svg = ElementTree.fromstring(markup)
    labels = [text.text or "" for text in svg.findall(f"{SVG}text")]
    assert "Aanmeldingen: 51 dit jaar" in labels
    assert "Bevestigingen: 26 dit jaar" in labels
    assert "Vertrekkers: 1 dit jaar" in labels
    bars = svg.findall(f"{SVG}rect")
    busy = sum(1 for p in points for v in (p.signups, p.confirmations, p.departures) if v)
    assert len(bars) == busy
    desc = svg.find(f"{SVG}desc")
    assert desc is not None and desc.text and "51 aanmeldingen" in desc.text


def test_text_in_the_chart_is_escaped() -> None:
    charts = growth_charts(year([5] * 52))
    assert "<script" not in str(charts.confirmed)
    assert charts.weeks[0][0] == "16 november 2026" and charts.weeks[-1][0] == "24 november 2025"


def test_an_empty_list_still_draws() -> None:
    points = year([0] * 52)
    assert ElementTree.fromstring(str(confirmed_chart(points))).tag == f"{SVG}svg"
    assert "van 0 ingeschreven abonnees" in str(confirmed_chart(points))
