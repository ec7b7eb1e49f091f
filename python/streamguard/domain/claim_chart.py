"""Inline SVG charts for the claim report, and the value formatting the report shares with them.

:func:`chart_svg` draws one alert's readings as a line chart (a downsampled line, the locked
evidence as markers on top, the threshold, the shaded anomaly window and the annotated peak);
:func:`timeline_svg` draws a dwell alert's scans on a time axis with its silent gap shaded.
:func:`downsample` and :func:`nice_ticks` are the arithmetic behind them. Each chart is one
``<svg>`` element for inlining into HTML (``streamguard.domain.claim_report`` does so): no xmlns,
no external reference.

The private value helpers (``_e``, ``_ms``, ``_time``, ``_duration``, ``_num``, ``_clean``...)
turn a bundle's values into text for people; ``claim_report`` imports them, so the report's
tables and its charts print a value alike. Every value may be customer- or carrier-provided text,
so each is HTML-escaped where it is written, in SVG text and attributes too. All times are UTC.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "MAX_LINE_POINTS",
    "UNITS",
    "Point",
    "chart_svg",
    "downsample",
    "nice_ticks",
    "timeline_svg",
]

#: The unit each sensor metric is charted in; a metric not listed is charted without one.
UNITS: Mapping[str, str] = {
    "shock_g": "g",
    "temp_c": "°C",
    "humidity_pct": "%",
    "tilt_deg": "°",
    "light_lux": "lx",
    "battery_pct": "%",
}
#: At most this many readings are drawn as a chart's line; the evidence markers come on top.
MAX_LINE_POINTS = 600

#: A reading: (time in ms, value); the value is None where the sensor reported nothing.
Point = tuple[int, float | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DASH = "—"

# ---------------------------------------------------------------------------------------------
# Values, shared with claim_report: every helper returning text returns it HTML-escaped.


def _e(value: Any) -> str:
    """``value`` as escaped text, safe in element content and quoted attributes; a dash for
    None."""
    return _DASH if value is None else html.escape(str(value), quote=True)


def _ms(value: Any) -> int | None:
    """An integer ms time from the bundle, or None when missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) else None


def _float(value: Any) -> float | None:
    """A finite reading value, or None (a missing value, a string, NaN, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _time(value: Any) -> str:
    """``YYYY-MM-DD HH:MM:SS UTC``; the raw value, escaped, when it is not a usable time."""
    ms = _ms(value)
    if ms is None:
        return _e(value)
    try:
        return _dt(ms).strftime("%Y-%m-%d %H:%M:%S UTC")
    except OverflowError:
        return _e(value)


def _clock(ms: int) -> str:
    return _dt(ms).strftime("%H:%M:%S")


def _duration(value: Any) -> str:
    """``2 h 5 min``: the two largest units of a duration in ms."""
    ms = _ms(value)
    if ms is None or ms < 0:
        return _e(value)
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms // 1000
    counts = []
    for name, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        counts.append((count, name))
    first = next(i for i, (count, _) in enumerate(counts) if count)
    return " ".join(f"{count} {name}" for count, name in counts[first : first + 2] if count)


def _num(value: float) -> str:
    """A reading for people: ``3``, ``7.25``, ``-0.5``; very large or small ones in e-notation."""
    value = value + 0.0  # -0.0 reads as 0
    if value == 0 or 1e-4 <= abs(value) < 1e9:
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""


def _clean(points: Iterable[Any]) -> list[Point]:
    """(ts, value) pairs with a usable time, in time order; unusable values become None."""
    out: list[Point] = []
    for point in points:
        if isinstance(point, Mapping):
            point = (point.get("ts_ms"), point.get("value"))
        ts = _ms(point[0])
        if ts is not None:
            out.append((ts, _float(point[1])))
    out.sort(key=lambda p: p[0])
    return out


# ---------------------------------------------------------------------------------------------
# Chart arithmetic.


def downsample(points: Sequence[Point], limit: int = MAX_LINE_POINTS) -> list[Point]:
    """At most ``limit`` of ``points``, chosen deterministically for drawing a line.

    The series is cut into ``limit // 2`` equal time buckets and each keeps its lowest and its
    highest point (in time order), so peaks and dips survive; a bucket with no value keeps one
    gap point (value None) so the line breaks there.
    """
    if limit < 2:
        raise ValueError("downsample keeps at least 2 points (a bucket's low and high)")
    ordered = sorted(points, key=lambda p: p[0])
    if len(ordered) <= limit:
        return ordered
    count = limit // 2
    t0 = ordered[0][0]
    span = ordered[-1][0] - t0 + 1
    buckets: list[list[Point]] = [[] for _ in range(count)]
    for point in ordered:
        buckets[(point[0] - t0) * count // span].append(point)
    return [p for bucket in buckets for p in _extremes(bucket)]


def _extremes(bucket: list[Point]) -> list[Point]:
    valued = [(t, v) for t, v in bucket if v is not None]
    if not valued:
        return bucket[:1]
    low = min(valued, key=lambda p: p[1])
    high = max(valued, key=lambda p: p[1])
    return [low] if low is high else sorted((low, high), key=lambda p: p[0])


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round axis ticks (steps of 1, 2, 2.5 or 5 times a power of 10) from at or below ``low``
    to at or above ``high``; a flat range (all values equal) is widened around its value."""
    low, high = min(low, high), max(low, high)
    if not high > low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / count
    base = 10.0 ** math.floor(math.log10(raw))
    step = next((m * base for m in (1, 2, 2.5, 5) if raw <= m * base * (1 + 1e-9)), 10 * base)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [k * step for k in range(first, last + 1)]


def _tick_label(value: float, step: float) -> str:
    """A tick value with as many decimals as its step needs (``0.25`` steps: two)."""
    decimals = next((d for d in range(10) if abs(round(step, d) - step) <= step * 1e-9), 10)
    # k * step drifts (3 * 0.1 = 0.30000000000000004) and 0 may come out as -0.0.
    return f"{0.0 if abs(value) < step * 1e-9 else value:.{decimals}f}"


_TIME_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def _time_ticks(t0: int, t1: int, count: int = 6) -> list[int]:
    """Tick times on round UTC seconds, minutes, hours or days, at most about ``count``."""
    span = t1 - t0
    step = next((s * 1000 for s in _TIME_STEPS_S if span <= s * 1000 * count), None)
    if step is None:
        step = math.ceil(span / count / 3_600_000 / 6) * 6 * 3_600_000
    first = -(-t0 // step) * step
    return list(range(first, t1 + 1, step))


def _time_range(times: Iterable[int], margin: float = 0.0) -> tuple[int, int]:
    """The span of ``times`` plus ``margin`` of it each side, and at least 10 s wide (so one
    point still has an axis)."""
    listed = list(times) or [0]
    t0, t1 = min(listed), max(listed)
    pad = max(int((t1 - t0) * margin), (10_000 - (t1 - t0)) // 2 + 1)
    return t0 - pad, t1 + pad


# ---------------------------------------------------------------------------------------------
# SVG: coordinates are ours; every text is escaped by _text.

_W, _LEFT, _RIGHT, _TOP, _BOTTOM = 760, 72, 30, 40, 46
_CHART_H, _TIMELINE_H = 300, 170
_BLUE, _ORANGE, _RED, _INK, _GREY = "#4a6fa5", "#d9480f", "#cf222e", "#1d2329", "#8c959f"


@dataclass(frozen=True)
class _Frame:
    """A chart's data ranges (t1 > t0, high > low) and the SVG box they map onto."""

    t0: int
    t1: int
    low: float = 0.0
    high: float = 1.0
    height: int = _CHART_H

    @property
    def bottom(self) -> int:
        return self.height - _BOTTOM

    def x(self, t: int) -> float:
        return _LEFT + (t - self.t0) * (_W - _LEFT - _RIGHT) / (self.t1 - self.t0)

    def y(self, v: float) -> float:
        return _TOP + (self.high - v) * (self.bottom - _TOP) / (self.high - self.low)


def _c(v: float) -> str:
    return f"{v:.2f}"


def _text(x: float, y: float, text: str, cls: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text class="{cls}" x="{_c(x)}" y="{_c(y)}" text-anchor="{anchor}"{extra}>'
        f"{_e(text)}</text>"
    )


def _svg_open(cls: str, title: str, height: int) -> str:
    # No xmlns: the SVG is inlined into HTML, where it is implied (and the report stays free
    # of any http:// reference). Saved as a standalone .svg it needs one.
    return (
        f'<svg class="{cls}" viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" '
        f'role="img" aria-label="{_e(title)}" font-family="system-ui, sans-serif" '
        f'font-size="11" fill="{_INK}"><title>{_e(title)}</title>'
        + _text(_LEFT, 20, title, "chart-title", extra=' font-size="13" font-weight="600"')
    )


def _x_axis(frame: _Frame) -> str:
    b = frame.bottom
    parts = [f'<line x1="{_LEFT}" y1="{b}" x2="{_W - _RIGHT}" y2="{b}" stroke="{_GREY}"/>']
    for t in _time_ticks(frame.t0, frame.t1):
        x = _c(frame.x(t))
        parts.append(f'<line x1="{x}" y1="{b}" x2="{x}" y2="{b + 4}" stroke="{_GREY}"/>')
        parts.append(_text(frame.x(t), b + 16, _clock(t), "xtick", "middle"))
    first, last = _dt(frame.t0).date(), _dt(frame.t1).date()
    dates = str(first) if first == last else f"{first} to {last}"
    middle = (_LEFT + _W - _RIGHT) / 2
    parts.append(_text(middle, frame.height - 8, f"time (UTC), {dates}", "xcaption", "middle"))
    return "".join(parts)


def _y_axis(frame: _Frame, ticks: list[float], unit: str) -> str:
    step = ticks[1] - ticks[0]
    parts = []
    for v in ticks:
        y = _c(frame.y(v))
        parts.append(f'<line x1="{_LEFT}" y1="{y}" x2="{_W - _RIGHT}" y2="{y}" stroke="#eaeef2"/>')
        label = _tick_label(v, step)
        parts.append(
            _text(_LEFT - 6, frame.y(v), label, "ytick", "end", ' dominant-baseline="middle"')
        )
    if unit:
        mid = (_TOP + frame.bottom) / 2
        turn = f' transform="rotate(-90 14 {_c(mid)})" dominant-baseline="middle"'
        parts.append(_text(14, mid, unit, "unit", "middle", turn))
    return "".join(parts)


def _window_rect(frame: _Frame, window: tuple[int, int], cls: str, fill: str) -> str:
    start, end = sorted(window)
    x = frame.x(start)
    width = max(frame.x(end) - x, 2.0)
    tip = f"{_time(start)} to {_time(end)}"
    return (
        f'<rect class="{cls}" x="{_c(x)}" y="{_TOP}" width="{_c(width)}" '
        f'height="{frame.bottom - _TOP}" fill="{fill}" fill-opacity="0.2">'
        f"<title>{tip}</title></rect>"
    )


def _threshold_line(frame: _Frame, threshold: float, unit: str) -> str:
    y = frame.y(threshold)
    label = f"threshold {_num(threshold)}{_unit(unit)}"
    return (
        f'<line class="threshold" x1="{_LEFT}" y1="{_c(y)}" x2="{_W - _RIGHT}" y2="{_c(y)}" '
        f'stroke="{_RED}" stroke-width="1.5" stroke-dasharray="6 4"/>'
        + _text(_W - _RIGHT - 4, y - 5, label, "threshold-label", "end", f' fill="{_RED}"')
    )


def _segments(points: list[Point]) -> list[list[tuple[int, float]]]:
    """The runs of valued points: a None value breaks the line."""
    runs: list[list[tuple[int, float]]] = [[]]
    for t, v in points:
        if v is None:
            runs.append([])
        else:
            runs[-1].append((t, v))
    return [run for run in runs if run]


def _line(frame: _Frame, points: list[Point]) -> str:
    parts = []
    for run in _segments(points):
        if len(run) == 1:
            ((t, v),) = run
            parts.append(
                f'<circle class="reading" cx="{_c(frame.x(t))}" cy="{_c(frame.y(v))}" r="2" '
                f'fill="{_BLUE}"/>'
            )
            continue
        coords = " ".join(f"{_c(frame.x(t))},{_c(frame.y(v))}" for t, v in run)
        parts.append(
            f'<polyline class="readings" points="{coords}" fill="none" stroke="{_BLUE}" '
            'stroke-width="1"/>'
        )
    return "".join(parts)


def _markers(frame: _Frame, marks: list[tuple[int, float]], unit: str) -> str:
    return "".join(
        f'<circle class="evidence" cx="{_c(frame.x(t))}" cy="{_c(frame.y(v))}" r="4" '
        f'fill="{_ORANGE}" stroke="#fff" stroke-width="1"><title>'
        f"{_time(t)}: {_e(_num(v) + _unit(unit))}</title></circle>"
        for t, v in marks
    )


def _peak_of(
    valued: list[tuple[int, float]], marks: list[tuple[int, float]], threshold: float | None
) -> tuple[int, float]:
    """The highest point, or the lowest when the alert is a low one: its firing reading (the
    last evidence point), or with no evidence every value, lies below the threshold."""
    basis = marks[-1][1] if marks else max(v for _, v in valued)
    below = threshold is not None and basis < threshold
    pick = min if below else max
    return pick(valued, key=lambda p: p[1])


def _peak(frame: _Frame, peak: tuple[int, float], high: bool, unit: str) -> str:
    t, v = peak
    x, y = frame.x(t), frame.y(v)
    left = x > (_LEFT + _W - _RIGHT) / 2
    label_y = max(y - 10, _TOP - 2) if high else min(y + 18, frame.bottom - 4)
    label = f"peak {_num(v)}{_unit(unit)} at {_clock(t)}"
    return f'<circle class="peak" cx="{_c(x)}" cy="{_c(y)}" r="7" fill="none" stroke="{_INK}"/>' + (
        _text(
            x - 9 if left else x + 9,
            label_y,
            label,
            "peak-label",
            "end" if left else "start",
            ' font-weight="600"',
        )
    )


def chart_svg(
    points: Iterable[tuple[int, float | None]],
    *,
    evidence: Iterable[tuple[int, float | None]] = (),
    threshold: float | None = None,
    window: tuple[int, int] | None = None,
    unit: str = "",
    title: str = "",
) -> str:
    """One alert's readings as an inline SVG line chart (for embedding in HTML).

    ``points`` are (ts_ms, value) pairs drawn as a thin line (downsampled to
    :data:`MAX_LINE_POINTS`, a None value breaking it); ``evidence`` points are drawn on top as
    filled markers, all of them. ``threshold`` is a dashed line, ``window`` (start_ms, end_ms)
    the shaded anomaly window, and the peak is annotated. Axes have round ticks; x is UTC.
    """
    line = downsample(_clean(points))
    marks = [(t, v) for t, v in _clean(evidence) if v is not None]
    valued = sorted([(t, v) for t, v in line if v is not None] + marks)
    limit = _float(threshold)
    span = tuple(t for t in (_ms(w) for w in window or ()) if t is not None)
    values = [v for _, v in valued] + ([limit] if limit is not None else []) or [0.0]
    t0, t1 = _time_range([t for t, _ in line] + [t for t, _ in marks] + list(span))
    ticks = nice_ticks(min(values), max(values))
    frame = _Frame(t0, t1, ticks[0], ticks[-1])
    parts = [_svg_open("chart", title, _CHART_H)]
    if len(span) == 2:
        parts.append(_window_rect(frame, (span[0], span[1]), "window", "#f5a623"))
    parts += [_y_axis(frame, ticks, unit), _x_axis(frame)]
    if limit is not None:
        parts.append(_threshold_line(frame, limit, unit))
    parts += [_line(frame, line), _markers(frame, marks, unit)]
    if valued:
        peak = _peak_of(valued, marks, limit)
        parts.append(_peak(frame, peak, peak[1] == max(v for _, v in valued), unit))
    else:
        middle = (_LEFT + _W - _RIGHT) / 2
        parts.append(_text(middle, (_TOP + frame.bottom) / 2, "no readings", "empty", "middle"))
    parts.append("</svg>")
    return "".join(parts)


def _scan_ticks(frame: _Frame, scans: list[tuple[int, str]]) -> str:
    """One tick per scan (its time and label as a tooltip), labelled where there is room."""
    parts = []
    free_from = -math.inf
    for t, label in scans:
        x = frame.x(t)
        parts.append(
            f'<line class="scan" x1="{_c(x)}" y1="{_TOP + 22}" x2="{_c(x)}" y2="{frame.bottom}" '
            f'stroke="{_INK}" stroke-width="2"><title>{_time(t)}: {_e(label)}</title></line>'
        )
        width = 6 * len(label)
        # A label that would run off the right edge goes to the tick's left instead.
        flip = x + 4 + width > _W
        if (x - 4 - width if flip else x) >= free_from:
            parts.append(
                _text(
                    x - 4 if flip else x + 4,
                    frame.bottom - 6,
                    label,
                    "scan-label",
                    "end" if flip else "start",
                    ' font-size="10"',
                )
            )
            free_from = x + 12 if flip else x + 8 + width
    return "".join(parts)


def timeline_svg(scans: Iterable[tuple[int, str]], gap: tuple[int, int], *, title: str = "") -> str:
    """The chart of an alert without a metric (a dwell alert): the shipment's ``scans`` as ticks
    on a UTC time axis (each (ts_ms, label)) and the silent ``gap`` (start_ms, end_ms) shaded
    and labelled with its duration."""
    ticks = sorted((ts, lbl) for ts, lbl in ((_ms(t), lbl) for t, lbl in scans) if ts is not None)
    start, end = sorted(gap)
    span = _time_range([start, end, *(t for t, _ in ticks)], margin=0.04)
    frame = _Frame(*span, height=_TIMELINE_H)
    middle = min(max((frame.x(start) + frame.x(end)) / 2, _LEFT + 70), _W - _RIGHT - 70)
    label = f"no scan for {_duration(end - start)}"
    bold = f' fill="{_RED}" font-weight="600"'
    return "".join(
        (
            _svg_open("timeline", title, _TIMELINE_H),
            _window_rect(frame, (start, end), "gap", _RED),
            _text(middle, _TOP + 14, label, "gap-label", "middle", bold),
            _scan_ticks(frame, ticks),
            _x_axis(frame),
            "</svg>",
        )
    )
