"""A claim's evidence bundle as one self-contained HTML report for an insurance claims adjuster.

The API assembles the bundle (format ``streamguard.evidence/1``, see
``streamguard.api.claims.evidence``); this module only renders it. :func:`render_html` gives one
HTML document with no external CSS, JS, fonts or images (photos are linked, never embedded)
whose print stylesheet makes a browser's "Print -> PDF" a clean PDF. Its charts, an alert's
readings and a dwell alert's silent gap, are inline SVG drawn by
``streamguard.domain.claim_chart``; :func:`chart_svg` is re-exported here.

Every value in a bundle may be customer- or carrier-provided text, so each is HTML-escaped where
it is written (with ``claim_chart``'s value helpers, so tables and charts print values alike).
Money is printed as the decimal strings the bundle carries, never through float. All times are
UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streamguard.domain.claim_chart import (
    _DASH,
    UNITS,
    Point,
    _clean,
    _duration,
    _e,
    _float,
    _ms,
    _num,
    _time,
    _unit,
    chart_svg,
    timeline_svg,
)

__all__ = ["FORMAT", "chart_svg", "render_html"]

FORMAT = "streamguard.evidence/1"
# Characters a browser strips or ignores inside a URL scheme ("java\tscript:" is javascript:).
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")
_URL_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")

# ---------------------------------------------------------------------------------------------
# Values for the tables: like claim_chart's, every helper returning text returns it escaped.


def _measure(value: Any, unit: str) -> str:
    number = _float(value)
    return _e(value) if number is None else _e(f"{_num(number)}{_unit(unit)}")


def _money(value: Any) -> str:
    """A decimal string as given (``1234.50 CNY``): money never goes through float."""
    return _DASH if value is None else f"{_e(value)} CNY"


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _maps(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if isinstance(v, Mapping)]


# ---------------------------------------------------------------------------------------------
# HTML: table cells and fact values passed around below are already escaped.

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  color: #1d2329; max-width: 60rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .6rem; }
h2 { font-size: 1.25rem; border-bottom: 2px solid #d0d7de; padding-bottom: .2rem;
  margin-top: 2rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left;
  vertical-align: top; }
thead th { background: #f3f5f7; }
table.facts th { width: 12rem; background: #f8f9fa; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .85em;
  word-break: break-all; }
table.scans td:first-child, table.history td:nth-child(2), table.evidence td:first-child {
  white-space: nowrap; }
table.photos td:first-child { word-break: break-all; }
table.photos code { white-space: nowrap; font-size: .75em; }
.summary { border: 2px solid #1f6feb; background: #eef4ff; padding: .8rem 1rem;
  font-size: 1.1rem; margin: 1rem 0; }
.summary.none { border-color: #8c959f; background: #f6f8fa; }
.verified { color: #1a7f37; font-weight: 700; font-size: 1.1rem; }
.failed { color: #cf222e; border: 2px solid #cf222e; background: #fff0f0;
  padding: .3rem .8rem; font-weight: 600; }
.warning { color: #9a6700; border: 2px solid #d4a72c; background: #fff8c5;
  padding: .4rem .8rem; }
.note { color: #57606a; font-style: italic; }
svg { display: block; width: 100%; height: auto; margin: .5rem 0 1rem; }
@page { size: A4; margin: 14mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section.alerts, section.alert + section.alert { break-before: page;
    page-break-before: always; }
  tr, svg, .summary, .signoff { break-inside: avoid; page-break-inside: avoid; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; }
}
"""


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def _table(cls: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _order_facts(order: Mapping[str, Any]) -> list[tuple[str, str]]:
    product = _map(order.get("product"))
    names = ("category", "brand", "model")
    codes = ("serial", "product_code", "batch")
    rows = [
        ("Customer", _e(order.get("customer_id"))),
        ("Product", _e(" ".join(str(product[k]) for k in names if product.get(k)) or None)),
        ("Serial / code / batch", " / ".join(_e(product.get(k)) for k in codes)),
        ("Declared value", _money(order.get("declared_value"))),
        ("Fault", _e(order.get("fault_type"))),
    ]
    for leg, ship in sorted(_map(order.get("shipments")).items()):
        s = _map(ship)
        route = f"{_e(s.get('origin'))} → {_e(s.get('dest'))}"
        fragile = ", fragile" if s.get("fragile") is True else ""
        rows.append(
            (
                f"{_e(leg).capitalize()} shipment",
                f"{_e(s.get('shipment'))} by {_e(s.get('carrier'))}, {route}, "
                f"tier {_e(s.get('tier'))}{fragile}",
            )
        )
    return rows


def _header(bundle: Mapping[str, Any], claim: Mapping[str, Any]) -> str:
    order = _map(bundle.get("order"))
    warning = ""
    if bundle.get("format") != FORMAT:
        warning = (
            f'<p class="warning">This bundle\'s format is {_e(bundle.get("format"))}, not '
            f"{FORMAT}: parts of it may be missing from this report.</p>"
        )
    facts = [
        ("Order", _e(claim.get("order_id") or order.get("id"))),
        ("Kind", _e(claim.get("kind"))),
        ("Status", f"<strong>{_e(claim.get('status'))}</strong>"),
        ("Claimed", _money(claim.get("claimed_amount"))),
        ("Approved", _money(claim.get("approved_amount"))),
        ("Paid", _money(claim.get("paid_amount"))),
        ("Coverage", _money(claim.get("coverage"))),
        ("Policy", _e(claim.get("policy_id"))),
        ("Time to decision", _duration(claim.get("decision_time_ms"))),
        ("Cycle time", _duration(claim.get("cycle_time_ms"))),
        ("Bundle SHA-256", f"<code>{_e(bundle.get('sha256'))}</code>"),
        ("Generated", _time(bundle.get("generated_ms"))),
    ]
    return (
        f"<header><h1>Insurance claim {_e(claim.get('id'))}</h1>{warning}{_facts(facts)}"
        f"<h3>Order</h3>{_facts(_order_facts(order))}</header>"
    )


def _is_anomaly(alert: Mapping[str, Any]) -> bool:
    # A retracted dwell alert was the carrier feed's lateness, not the parcel's.
    return alert.get("state") != "retracted"


def _first_anomaly(bundle: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(time, leg, holder) of the first anomaly: the claim's attribution, else the bundle's,
    else the earliest anomalous alert (a bundle filed before attribution existed)."""
    for source in (_map(bundle.get("claim")), _map(bundle.get("attribution"))):
        if source.get("first_anomaly_ms") is not None:
            return source["first_anomaly_ms"], source.get("leg"), source.get("custody_holder")
    timed = [
        (start, a)
        for a in _maps(bundle.get("alerts"))
        if _is_anomaly(a) and (start := _ms(a.get("started_ms")) or _ms(a.get("ts_ms"))) is not None
    ]
    if not timed:
        return None, None, None
    start, alert = min(timed, key=lambda p: p[0])
    return start, alert.get("leg"), alert.get("carrier")


def _summary(bundle: Mapping[str, Any]) -> str:
    first_ms, leg, holder = _first_anomaly(bundle)
    if first_ms is None:
        return '<div class="summary none"><strong>No anomaly was recorded.</strong></div>'
    leg_text = "an unknown" if leg is None else _e(leg)
    holder_text = "an unknown holder" if holder is None else _e(holder)
    signed = _map(bundle.get("attribution")).get("depot_signoff_ms")
    depot = "" if signed is None else f"<br>The depot signed for the parcel at {_time(signed)}."
    return (
        f'<div class="summary"><strong>First anomaly: {_time(first_ms)} on the {leg_text} leg, '
        f"in the custody of {holder_text}.</strong>{depot}</div>"
    )


def _history(claim: Mapping[str, Any]) -> str:
    rows = [
        [_e(h.get("status")), _time(h.get("at_ms")), _e(h.get("reason"))]
        for h in _maps(claim.get("history"))
    ]
    table = _table("history", ["Status", "Time", "Reason"], rows) if rows else _note("None.")
    return f'<section class="history"><h2>Status history</h2>{table}</section>'


def _alert_facts(alert: Mapping[str, Any], unit: str) -> list[tuple[str, str]]:
    state = alert.get("state")
    at_label = {"resolved": "Resolved at", "retracted": "Retracted at", "firing": "Fired at"}.get(
        str(state), "Time"
    )
    retracted = " (the carrier's feed was late, not the parcel: no anomaly)"
    rows = [
        ("Rule", _e(alert.get("rule"))),
        ("Kind / severity", f"{_e(alert.get('kind'))} / {_e(alert.get('severity'))}"),
        ("State", _e(state) + (retracted if state == "retracted" else "")),
        ("Shipment", f"{_e(alert.get('shipment'))} ({_e(alert.get('leg'))} leg)"),
        ("Carrier", _e(alert.get("carrier"))),
        ("Started", _time(alert.get("started_ms"))),
        (at_label, _time(alert.get("ts_ms"))),
    ]
    if alert.get("metric") is not None:
        rows += [
            ("Metric", _e(alert.get("metric"))),
            ("Value", _measure(alert.get("value"), unit)),
            ("Threshold", _measure(alert.get("threshold"), unit)),
            ("Peak", _measure(alert.get("peak"), unit)),
        ]
    rows.append(("Duration", _duration(alert.get("duration_ms"))))
    if alert.get("scan_status") is not None or alert.get("scan_ms") is not None:
        scan = f"{_e(alert.get('scan_status'))} at {_e(alert.get('scan_location'))}, "
        rows.append(("Last scan", scan + _time(alert.get("scan_ms"))))
    return rows


def _evidence_table(evidence: list[Point], unit: str) -> str:
    if not evidence:
        return ""
    rows = [[_time(t), _measure(v, unit)] for t, v in evidence]
    caption = f"<h4>Locked evidence ({len(evidence)} readings)</h4>"
    return caption + _table("evidence", ["Time", "Value"], rows)


def _readings_chart(alert: Mapping[str, Any], unit: str) -> str:
    readings = _clean(_maps(alert.get("readings")))
    evidence = _clean(_maps(alert.get("evidence")))
    note = ""
    if not any(v is not None for _, v in readings):
        if not any(v is not None for _, v in evidence):
            return _note("No readings were recorded for this alert.")
        note = _note("No surrounding readings were stored; the chart shows the locked evidence.")
        readings = evidence
    start, end = _ms(alert.get("started_ms")), _ms(alert.get("ts_ms"))
    window = None if start is None or end is None else (start, end)
    title = f"{alert.get('metric')} ({alert.get('rule')}) on {alert.get('shipment')}"
    chart = chart_svg(
        readings,
        evidence=evidence,
        threshold=_float(alert.get("threshold")),
        window=window,
        unit=unit,
        title=title,
    )
    return note + chart


def _gap_chart(alert: Mapping[str, Any], scans: list[Mapping[str, Any]]) -> str:
    start = _ms(alert.get("started_ms"))
    start = _ms(alert.get("scan_ms")) if start is None else start
    end = _ms(alert.get("ts_ms"))
    if start is None or end is None:
        return _note("The bundle records no start or end for this alert's gap.")
    until = "until at least" if alert.get("state") == "firing" else "to"
    statement = (
        f'<p class="gap-statement"><strong>No scan from {_time(start)} {until} {_time(end)}: '
        f"{_duration(end - start)} without a scan.</strong></p>"
    )
    ship = alert.get("shipment")
    marks = [
        (ts, f"{s.get('status')} at {s.get('location')}")
        for s in scans
        if s.get("shipment") == ship and (ts := _ms(s.get("ts_ms"))) is not None
    ]
    title = f"Scans on {ship} ({alert.get('rule')})"
    return statement + timeline_svg(marks, (start, end), title=title)


def _alert(alert: Mapping[str, Any], scans: list[Mapping[str, Any]]) -> str:
    metric = alert.get("metric")
    unit = UNITS.get(metric, "") if isinstance(metric, str) else ""
    evidence = _clean(_maps(alert.get("evidence")))
    chart = _gap_chart(alert, scans) if metric is None else _readings_chart(alert, unit)
    return (
        f'<section class="alert"><h3>Alert {_e(alert.get("id"))}</h3>'
        f"{_facts(_alert_facts(alert, unit))}{chart}{_evidence_table(evidence, unit)}</section>"
    )


def _alerts(bundle: Mapping[str, Any]) -> str:
    alerts = _maps(bundle.get("alerts"))
    scans = _maps(bundle.get("scans"))
    body = "".join(_alert(a, scans) for a in alerts) or _note(
        "No alert was raised on this order's shipments."
    )
    return f'<section class="alerts"><h2>Alerts ({len(alerts)})</h2>{body}</section>'


def _signer(signer: Mapping[str, Any]) -> str:
    if not signer:
        return ""
    ids = [f"{k} {_e(signer[k])}" for k in ("proxy_id", "staff_id") if signer.get(k)]
    extra = ", ".join([_e(signer.get("type")), *ids])
    return f"{_e(signer.get('name'))} ({extra})"


_LEG_ORDER = {"inbound": 0, "return": 1}


def _scan_trail(bundle: Mapping[str, Any]) -> str:
    by_leg: dict[str, list[Mapping[str, Any]]] = {}
    for scan in _maps(bundle.get("scans")):
        by_leg.setdefault(str(scan.get("leg") or "unknown"), []).append(scan)
    parts = []
    for leg in sorted(by_leg, key=lambda k: (_LEG_ORDER.get(k, 2), k)):
        scans = sorted(by_leg[leg], key=lambda s: _ms(s.get("ts_ms")) or 0)
        rows = [
            [
                _time(s.get("ts_ms")),
                _e(s.get("status")),
                _e(s.get("location")),
                _e(s.get("carrier")),
                _signer(_map(s.get("signer"))),
            ]
            for s in scans
        ]
        headers = ["Time", "Status", "Location", "Carrier", "Signer"]
        parts.append(f"<h3>{_e(leg).capitalize()} leg</h3>" + _table("scans", headers, rows))
    body = "".join(parts) or _note("No scans were recorded.")
    return f'<section class="scan-trail"><h2>Scan trail</h2>{body}</section>'


def _verification(result: Mapping[str, Any]) -> str:
    if result.get("valid") is True:
        return '<p class="verified">✓ verified</p>'
    problems = [p for p in result.get("problems") or () if p is not None]
    items = "".join(f"<li>{_e(p)}</li>" for p in problems) or "<li>no problem was listed</li>"
    heading = "✗ NOT verified" if result else "✗ no verification result in the bundle"
    return f'<div class="failed"><p>{heading}:</p><ul>{items}</ul></div>'


def _signoff(signoff: Mapping[str, Any]) -> str:
    facts = [
        ("Leg", _e(signoff.get("leg"))),
        ("Signer", f"{_e(signoff.get('signer_name'))} ({_e(signoff.get('signer_type'))})"),
        ("Time", _time(signoff.get("ts_ms"))),
        ("Channel", _e(signoff.get("channel"))),
        ("Hash", f"<code>{_e(signoff.get('hash'))}</code>"),
    ]
    return (
        f'<div class="signoff"><h3>Sign-off {_e(signoff.get("id"))}</h3>'
        f"{_verification(_map(signoff.get('verification')))}{_facts(facts)}</div>"
    )


def _signoffs(bundle: Mapping[str, Any]) -> str:
    body = "".join(_signoff(s) for s in _maps(bundle.get("signoffs")))
    return f'<section class="signoffs"><h2>Sign-offs</h2>{body or _note("None.")}</section>'


def _link(url: Any) -> str:
    """A photo's URL as a link, or as plain text when its scheme is not http(s) (a
    ``javascript:`` URL must not become clickable)."""
    if not isinstance(url, str):
        return _e(url)
    scheme = _URL_SCHEME.match(_URL_NOISE.sub("", url))
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        return f"{_e(url)} (not linked: not an http(s) address)"
    return f'<a href="{_e(url)}">{_e(url)}</a>'


def _size(value: Any) -> str:
    size = _ms(value)
    if size is None or size < 1024:
        return _e(value) if size is None else f"{size} bytes"
    kib = size / 1024
    return f"{kib / 1024:.1f} MiB" if kib >= 1024 else f"{kib:.1f} KiB"


def _photos(bundle: Mapping[str, Any]) -> str:
    rows = [
        [
            _link(p.get("url")),
            f"<code>{_e(p.get('sha256'))}</code>",
            _e(p.get("content_type")),
            _size(p.get("size")),
        ]
        for p in _maps(bundle.get("photos"))
    ]
    headers = ["Photo", "SHA-256", "Type", "Size"]
    body = _table("photos", headers, rows) if rows else _note("None.")
    return f'<section class="photos"><h2>Photos</h2>{body}</section>'


def render_html(bundle: Mapping[str, Any]) -> str:
    """The claim's evidence ``bundle`` as one self-contained HTML document: header, first
    anomaly, status history, alerts with charts, scan trail, sign-offs, photos."""
    claim = _map(bundle.get("claim"))
    body = "".join(
        (
            _header(bundle, claim),
            _summary(bundle),
            _history(claim),
            _alerts(bundle),
            _scan_trail(bundle),
            _signoffs(bundle),
            _photos(bundle),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Claim {_e(claim.get('id'))}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
