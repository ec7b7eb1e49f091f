"""The claim report's SVG charts on their own, read back with the stdlib HTML parser: a single
point and a flat series chart without dividing by zero, a None value breaks the line,
downsampling keeps peaks and dips deterministically, a huge series draws at most the line limit
plus every evidence point, and axis ticks are round. Also the small DOM and the chart-reading
helpers (a value from y, a time from x) that test_claim_report reads its charts with."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from streamguard.domain.claim_chart import MAX_LINE_POINTS, chart_svg, downsample, nice_ticks

# 2026-11-22T13:05:00Z
T0 = 1_795_352_700_000
SEC = 1_000


# --- a small DOM over html.parser -------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "link", "input"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def cls(self) -> str:
        return self.attrs.get("class") or ""

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in n.cls.split())]

    def num(self, name: str) -> float:
        return float(self.attrs[name] or "nan")


class Dom(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.at = self.root
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.at)
        self.at.children.append(node)
        if tag not in VOID:
            self.at = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.at.children.append(Node(tag, dict(attrs), self.at))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None, f"stray </{tag}>"
        assert node.parent is not None
        self.at = node.parent

    def handle_data(self, data: str) -> None:
        self.at.children.append(data)


def dom(text: str) -> Node:
    return Dom(text).root


# --- reading a chart back ---------------------------------------------------------------------


def y_inverse(svg: Node) -> tuple[Any, float]:
    """value(y) from the y-axis tick labels as drawn, and how much value one pixel is."""
    ticks = sorted((n.num("y"), float(n.text())) for n in svg.find("text", "ytick"))
    (ya, va), (yb, vb) = ticks[0], ticks[-1]
    per_px = (vb - va) / (yb - ya)
    return (lambda y: va + (y - ya) * per_px), abs(per_px)


def x_inverse(svg: Node, day: str = "2026-11-22") -> tuple[Any, float]:
    """ms(x) from the x-axis tick labels (HH:MM:SS on ``day``)."""

    def ms(label: str) -> int:
        when = datetime.strptime(f"{day} {label}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return int(when.timestamp() * 1000)

    ticks = sorted((n.num("x"), ms(n.text())) for n in svg.find("text", "xtick"))
    (xa, ta), (xb, tb) = ticks[0], ticks[-1]
    per_px = (tb - ta) / (xb - xa)
    return (lambda x: ta + (x - xa) * per_px), per_px


def polyline_points(svg: Node) -> list[tuple[float, float]]:
    out = []
    for line in svg.find("polyline", "readings"):
        for pair in (line.attrs["points"] or "").split():
            x, y = pair.split(",")
            out.append((float(x), float(y)))
    return out


# --- edge cases -------------------------------------------------------------------------------


def test_a_single_point_and_flat_series_chart_without_dividing_by_zero() -> None:
    for points in ([(T0, 2.0)], [(T0 + i * SEC, 5.0) for i in range(50)]):
        tree = dom(chart_svg(points, evidence=points[:1], threshold=5.0, unit="g"))
        for node in tree.iter():
            for name in ("x", "y", "cx", "cy", "x1", "x2", "y1", "y2", "width", "height"):
                if name in node.attrs:
                    assert math.isfinite(node.num(name)), (node.tag, name)
        labels = [float(n.text()) for n in tree.find("text", "ytick")]
        assert len(set(labels)) == len(labels) >= 2
        assert len(tree.find("circle", "evidence")) == 1
    assert len(dom(chart_svg([(T0, 2.0)])).find("circle", "reading")) == 1


def test_none_values_break_the_line() -> None:
    points = [(T0 + i * SEC, None if i == 5 else float(i)) for i in range(10)]
    lines = dom(chart_svg(points)).find("polyline", "readings")
    assert [len((p.attrs["points"] or "").split()) for p in lines] == [5, 4]


# --- downsampling -------------------------------------------------------------------------------


def big_series(n: int = 100_000) -> list[tuple[int, float | None]]:
    series: list[tuple[int, float | None]] = [(T0 + i * 100, math.sin(i / 500)) for i in range(n)]
    series[73_421] = (series[73_421][0], 99.0)
    series[12_345] = (series[12_345][0], -42.0)
    return series


def test_downsample_keeps_peaks_and_dips_deterministically() -> None:
    series = big_series()
    kept = downsample(series)
    assert len(kept) <= MAX_LINE_POINTS
    assert series[73_421] in kept
    assert series[12_345] in kept
    assert kept == downsample(list(reversed(series)))
    assert kept == sorted(kept)
    assert downsample(series[:600]) == series[:600]


def test_a_huge_series_draws_at_most_the_limit_plus_every_evidence_point() -> None:
    series = big_series()
    # The engine's evidence ends with the firing (breaching) reading.
    evidence = [series[i] for i in range(73_417, 73_422)]
    svg = dom(chart_svg(series, evidence=evidence, threshold=3.0, unit="g"))
    points = polyline_points(svg)
    assert len(points) <= MAX_LINE_POINTS
    assert len(svg.find("circle", "evidence")) == 5
    assert svg.find("text", "peak-label")[0].text().startswith("peak 99 g")
    value_at, per_px = y_inverse(svg)
    assert max(value_at(y) for _, y in points) == pytest.approx(99.0, abs=per_px)
    assert min(value_at(y) for _, y in points) == pytest.approx(-42.0, abs=per_px)


def test_nice_ticks() -> None:
    assert nice_ticks(0.3, 7.25) == [0, 2, 4, 6, 8]
    assert nice_ticks(30, 37.8) == [30, 32, 34, 36, 38]
    flat = nice_ticks(5.0, 5.0)
    assert flat[0] < 5.0 < flat[-1]
    assert nice_ticks(0.0, 0.0)[0] < 0.0 < nice_ticks(0.0, 0.0)[-1]
