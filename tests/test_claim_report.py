"""The claim report: a realistic evidence bundle rendered to HTML and read back with the stdlib
HTML parser -- sections and their order, one chart per metric alert whose geometry maps back to
the data (threshold, evidence, peak), the dwell gap, sign-off verdicts, escaping of
customer-provided text, and a self-contained document. The charts on their own (downsampling,
ticks, edge cases) are tested in test_claim_chart, whose DOM and chart readers these tests use."""

from __future__ import annotations

import copy
import itertools
import math
import re
from typing import Any

import pytest

from streamguard.domain import claim_chart, claim_report
from streamguard.domain.claim_report import render_html
from test_claim_chart import SEC, T0, Node, dom, polyline_points, x_inverse, y_inverse

MIN = 60 * SEC
HOUR = 60 * MIN
INJECT = "<script>alert('x')</script>"

SHOCK_EVIDENCE = [(T0 + 100 * SEC, 3.4), (T0 + 120 * SEC, 7.25), (T0 + 140 * SEC, 4.1)]
TEMP_EVIDENCE = [(T0 + 3 * HOUR, 36.2), (T0 + 3 * HOUR + 10 * MIN, 37.8)]
DWELL_START = T0 + 30 * HOUR
PHOTO_URLS = [
    "https://photos.example.com/RO-42/front.jpg?sig=a&b=1",
    "/orders/RO-42/photos/" + "c" * 64,
]


# --- the bundle ---------------------------------------------------------------------------


def _shock_readings() -> list[dict[str, Any]]:
    """200 readings every 5 s around the shock, quiet (< 1.5 g) except the locked evidence."""
    locked = dict(SHOCK_EVIDENCE)
    start = T0 - 400 * SEC
    out = []
    for i in range(200):
        ts = start + i * 5 * SEC
        out.append({"ts_ms": ts, "value": locked.get(ts, round(0.3 + (i % 7) * 0.15, 2))})
    return out


def _temp_readings() -> list[dict[str, Any]]:
    locked = dict(TEMP_EVIDENCE)
    start = T0 + 3 * HOUR - 20 * MIN
    return [
        {"ts_ms": ts, "value": locked.get(ts, 30.0 + (i % 5))}
        for i in range(60)
        for ts in [start + i * MIN]
    ]


def _alert(**kw: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "kind": "threshold",
        "severity": "critical",
        "state": "resolved",
        "shipment": "SHIP-IN",
        "leg": "inbound",
        "carrier": "SF",
        "metric": None,
        "value": None,
        "threshold": None,
        "peak": None,
        "duration_ms": None,
        "evidence": [],
        "readings": [],
        "scan_status": None,
        "scan_location": None,
        "scan_ms": None,
    }
    alert.update(kw)
    return alert


def _scan(ship: str, leg: str, ts: int, status: str, location: str, **kw: Any) -> dict[str, Any]:
    carrier = "SF" if leg == "inbound" else "YTO"
    scan = {"shipment": ship, "leg": leg, "ts_ms": ts, "id": f"{ship}-{ts}", "carrier": carrier}
    scan.update(status=status, location=location, lat=None, lon=None, signer=None)
    scan.update(kw)
    return scan


def make_bundle() -> dict[str, Any]:
    shock = _alert(
        id=f"shock-3g:SHIP-IN:{T0 + 100 * SEC}",
        rule="shock-3g",
        ts_ms=T0 + 140 * SEC,
        started_ms=T0 + 100 * SEC,
        metric="shock_g",
        value=3.4,
        threshold=3.0,
        peak=7.25,
        duration_ms=40 * SEC,
        evidence=[{"ts_ms": t, "value": v} for t, v in SHOCK_EVIDENCE],
        readings=_shock_readings(),
    )
    heat = _alert(
        id=f"heat-35:SHIP-IN:{TEMP_EVIDENCE[0][0]}",
        rule="heat-35",
        severity="warning",
        state="firing",
        ts_ms=TEMP_EVIDENCE[1][0],
        started_ms=TEMP_EVIDENCE[0][0],
        metric="temp_c",
        value=37.8,
        threshold=35.0,
        evidence=[{"ts_ms": t, "value": v} for t, v in TEMP_EVIDENCE],
        readings=_temp_readings(),
    )
    dwell = _alert(
        id=f"dwell-2h:SHIP-RET:{DWELL_START}",
        rule="dwell-2h",
        kind="dwell",
        severity="warning",
        state="resolved",
        shipment="SHIP-RET",
        leg="return",
        carrier="YTO",
        ts_ms=DWELL_START + 2 * HOUR + 15 * MIN,
        started_ms=DWELL_START,
        duration_ms=2 * HOUR + 15 * MIN,
        scan_status="IN_TRANSIT",
        scan_location="Wuhan hub",
        scan_ms=DWELL_START,
    )
    scans = [
        _scan("SHIP-IN", "inbound", T0 - HOUR, "PICKED_UP", "Shenzhen"),
        _scan("SHIP-IN", "inbound", T0 + HOUR, "IN_TRANSIT", "Guangzhou hub"),
        _scan(
            "SHIP-IN",
            "inbound",
            T0 + 20 * HOUR,
            "DELIVERED",
            "Shanghai depot",
            signer={"name": INJECT, "type": "proxy", "proxy_id": "P-9"},
        ),
        _scan("SHIP-RET", "return", T0 + 26 * HOUR, "PICKED_UP", "Shanghai depot"),
        _scan("SHIP-RET", "return", DWELL_START, "IN_TRANSIT", "Wuhan hub"),
        _scan("SHIP-RET", "return", DWELL_START + 2 * HOUR + 15 * MIN, "IN_TRANSIT", "Xi'an hub"),
    ]
    return {
        "format": "streamguard.evidence/1",
        "sha256": "ab" * 32,
        "generated_ms": T0 + 40 * HOUR,
        "claim": {
            "id": "CL-7",
            "order_id": "RO-42",
            "kind": "damage",
            "status": "PARTIALLY_APPROVED",
            "claimed_amount": "1234.50",
            "approved_amount": "1000.00",
            "paid_amount": None,
            "policy_id": "POL-RO-42",
            "coverage": "3000.00",
            "leg": "inbound",
            "custody_holder": "SF",
            "first_anomaly_ms": T0 + 100 * SEC,
            "history": [
                {"status": "FILED", "at_ms": T0 + 41 * HOUR, "reason": INJECT},
                {"status": "UNDER_REVIEW", "at_ms": T0 + 42 * HOUR, "reason": "assigned"},
                {"status": "PARTIALLY_APPROVED", "at_ms": T0 + 50 * HOUR, "reason": "screen"},
            ],
            "decision_time_ms": 9 * HOUR,
            "cycle_time_ms": None,
            "allowed": ["PAID"],
        },
        "order": {
            "id": "RO-42",
            "customer_id": "cust-1",
            "status": "RETURNING",
            "declared_value": "3000.00",
            "product": {"category": "phone", "brand": "Acme", "model": "X1", "serial": "SN1"},
            "fault_type": "screen",
            "shipments": {
                "inbound": {
                    "shipment": "SHIP-IN",
                    "carrier": "SF",
                    "origin": "Shenzhen",
                    "dest": "Shanghai",
                    "tier": "advanced",
                    "fragile": True,
                },
                "return": {
                    "shipment": "SHIP-RET",
                    "carrier": "YTO",
                    "origin": "Shanghai",
                    "dest": "Shenzhen",
                    "tier": "advanced",
                    "fragile": True,
                },
            },
        },
        "attribution": {
            "leg": "inbound",
            "custody_holder": "SF",
            "first_anomaly_ms": T0 + 100 * SEC,
            "depot_signoff_ms": T0 + 20 * HOUR,
        },
        "alerts": [shock, heat, dwell],
        "scans": scans,
        "signoffs": [
            {
                "id": "SO-1",
                "leg": "inbound",
                "signer_name": "Depot clerk Li",
                "signer_type": "staff",
                "ts_ms": T0 + 20 * HOUR,
                "channel": "app",
                "hash": "11" * 32,
                "verification": {"valid": True, "problems": []},
            },
            {
                "id": "SO-2",
                "leg": "return",
                "signer_name": INJECT,
                "signer_type": "customer",
                "ts_ms": T0 + 60 * HOUR,
                "channel": "sms",
                "hash": "22" * 32,
                "verification": {
                    "valid": False,
                    "problems": ["signer_name changed after signing", "chain broken at SO-2"],
                },
            },
        ],
        "photos": [
            {
                "sha256": "a" * 64,
                "content_type": "image/jpeg",
                "size": 245_760,
                "url": PHOTO_URLS[0],
            },
            {"sha256": "c" * 64, "content_type": None, "size": None, "url": PHOTO_URLS[1]},
        ],
    }


@pytest.fixture(scope="module")
def report() -> str:
    return render_html(make_bundle())


@pytest.fixture(scope="module")
def page(report: str) -> Node:
    return dom(report)


def charts(page: Node) -> dict[str, Node]:
    """The metric charts by the rule named in their title."""
    out = {}
    for svg in page.find("svg", "chart"):
        title = svg.find("title")[0].text()
        out[title.split("(")[1].split(")")[0]] = svg
    return out


# --- the document -----------------------------------------------------------------------------


def test_header_prints_ids_amounts_as_given_and_the_digest(page: Node) -> None:
    header = page.find("header")[0].text()
    assert "Insurance claim CL-7" in header
    assert "RO-42" in header
    assert "damage" in header
    assert "PARTIALLY_APPROVED" in header
    # As the decimal strings, not through float ("1234.5").
    assert "1234.50 CNY" in header
    assert "1000.00 CNY" in header
    assert "3000.00 CNY" in header
    paid = next(r for r in page.find("tr") if r.find("th")[0].text() == "Paid")
    assert paid.find("td")[0].text() == "—"
    assert "ab" * 32 in header
    assert "Generated2026-11-24 05:05:00 UTC" in header.replace("\n", "")


def test_sections_come_in_order(report: str) -> None:
    marks = [
        "<header>",
        'class="summary"',
        ">Status history<",
        ">Alerts (3)<",
        ">Scan trail<",
        ">Sign-offs<",
        ">Photos<",
    ]
    positions = [report.index(m) for m in marks]
    assert positions == sorted(positions)


def test_summary_names_the_time_leg_and_holder(page: Node) -> None:
    summary = page.find("div", "summary")[0].text()
    assert summary.startswith(
        "First anomaly: 2026-11-22 13:06:40 UTC on the inbound leg, in the custody of SF."
    )
    assert "2026-11-23 09:05:00 UTC" in summary  # the depot sign-off


def test_status_history_lists_status_time_reason(page: Node) -> None:
    rows = page.find("table", "history")[0].find("tbody")[0].find("tr")
    cells = [[td.text() for td in row.find("td")] for row in rows]
    assert cells[0] == ["FILED", "2026-11-24 06:05:00 UTC", INJECT]
    assert [c[0] for c in cells] == ["FILED", "UNDER_REVIEW", "PARTIALLY_APPROVED"]


def test_print_stylesheet_breaks_pages_before_anomaly_sections(report: str) -> None:
    css = report[report.index("<style>") : report.index("</style>")]
    media = css[css.index("@media print") :]
    assert "section.alert + section.alert" in media
    assert "break-before: page" in media


def test_one_chart_per_metric_alert_and_a_timeline_for_the_dwell(page: Node) -> None:
    assert sorted(charts(page)) == ["heat-35", "shock-3g"]
    assert len(page.find("svg")) == 3
    assert len(page.find("svg", "timeline")) == 1
    alerts = page.find("section", "alert")
    assert len(alerts) == 3
    assert [len(a.find("svg")) for a in alerts] == [1, 1, 1]


def test_evidence_markers_are_the_locked_points_at_their_values_and_times(page: Node) -> None:
    shock, heat = charts(page)["shock-3g"], charts(page)["heat-35"]
    assert len(shock.find("circle", "evidence")) == len(SHOCK_EVIDENCE)
    assert len(heat.find("circle", "evidence")) == len(TEMP_EVIDENCE)
    value_at, per_px_v = y_inverse(shock)
    time_at, per_px_t = x_inverse(shock)
    for marker, (ts, value) in zip(shock.find("circle", "evidence"), SHOCK_EVIDENCE, strict=True):
        assert value_at(marker.num("cy")) == pytest.approx(value, abs=per_px_v)
        assert time_at(marker.num("cx")) == pytest.approx(ts, abs=per_px_t)


def test_the_readings_line_keeps_every_reading_under_the_limit(page: Node) -> None:
    shock = charts(page)["shock-3g"]
    points = polyline_points(shock)
    assert len(points) == 200
    value_at, per_px = y_inverse(shock)
    assert max(value_at(y) for _, y in points) == pytest.approx(7.25, abs=per_px)


def test_threshold_line_sits_at_the_threshold_and_is_labelled(page: Node) -> None:
    for rule, threshold, label in (("shock-3g", 3.0, "threshold 3 g"), ("heat-35", 35.0, "°C")):
        svg = charts(page)[rule]
        (line,) = svg.find("line", "threshold")
        assert line.attrs["stroke-dasharray"]
        assert line.num("y1") == line.num("y2")
        value_at, per_px = y_inverse(svg)
        assert value_at(line.num("y1")) == pytest.approx(threshold, abs=per_px)
        assert label in svg.find("text", "threshold-label")[0].text()


def test_axis_ticks_are_nice_and_evenly_spaced(page: Node) -> None:
    svg = charts(page)["shock-3g"]
    ticks = sorted((-n.num("y"), float(n.text())) for n in svg.find("text", "ytick"))
    values = [v for _, v in ticks]
    steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in {1, 2, 2.5, 5}
    assert values[0] <= 0.3
    assert values[-1] >= 7.25
    gaps = {round(b[0] - a[0], 1) for a, b in itertools.pairwise(ticks)}
    assert len(gaps) == 1
    labels = [n.text() for n in svg.find("text", "xtick")]
    assert labels
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", lbl) for lbl in labels)
    (caption,) = svg.find("text", "xcaption")
    assert caption.text() == "time (UTC), 2026-11-22"
    assert svg.find("text", "unit")[0].text() == "g"


def test_peak_is_annotated_with_value_unit_and_time(page: Node) -> None:
    assert charts(page)["shock-3g"].find("text", "peak-label")[0].text() == (
        "peak 7.25 g at 13:07:00"
    )
    assert charts(page)["heat-35"].find("text", "peak-label")[0].text().startswith("peak 37.8 °C")


def test_anomaly_window_is_shaded_from_start_to_alert_time(page: Node) -> None:
    svg = charts(page)["shock-3g"]
    (rect,) = svg.find("rect", "window")
    first, *_, last = svg.find("circle", "evidence")
    assert rect.num("x") == pytest.approx(first.num("cx"), abs=0.02)
    assert rect.num("x") + rect.num("width") == pytest.approx(last.num("cx"), abs=0.02)


def test_dwell_alert_states_the_gap_and_draws_the_scans(page: Node) -> None:
    dwell = page.find("section", "alert")[2]
    statement = dwell.find("p", "gap-statement")[0].text()
    assert statement == (
        "No scan from 2026-11-23 19:05:00 UTC to 2026-11-23 21:20:00 UTC: "
        "2 h 15 min without a scan."
    )
    (timeline,) = dwell.find("svg", "timeline")
    assert len(timeline.find("line", "scan")) == 3  # the return shipment's scans only
    assert timeline.find("text", "gap-label")[0].text() == "no scan for 2 h 15 min"
    labels = [t.text() for t in timeline.find("text", "scan-label")]
    assert labels[:2] == ["PICKED_UP at Shanghai depot", "IN_TRANSIT at Wuhan hub"]
    (gap,) = timeline.find("rect", "gap")
    assert gap.num("width") > 10


def test_scan_trail_is_per_leg_with_signers(page: Node) -> None:
    trail = page.find("section", "scan-trail")[0]
    assert [h.text() for h in trail.find("h3")] == ["Inbound leg", "Return leg"]
    inbound, back = trail.find("table", "scans")
    assert len(inbound.find("tbody")[0].find("tr")) == 3
    assert len(back.find("tbody")[0].find("tr")) == 3
    delivered = inbound.find("tbody")[0].find("tr")[2].find("td")
    assert [td.text() for td in delivered[:4]] == [
        "2026-11-23 09:05:00 UTC",
        "DELIVERED",
        "Shanghai depot",
        "SF",
    ]
    assert delivered[4].text() == f"{INJECT} (proxy, proxy_id P-9)"


def test_signoffs_show_verified_or_the_problems(page: Node) -> None:
    verified, tampered = page.find("div", "signoff")
    assert verified.find("p", "verified")[0].text() == "✓ verified"
    assert not verified.find("div", "failed")
    assert not tampered.find("p", "verified")
    (failed,) = tampered.find("div", "failed")
    assert [li.text() for li in failed.find("li")] == [
        "signer_name changed after signing",
        "chain broken at SO-2",
    ]


def test_photos_are_linked_with_digest_and_size(page: Node) -> None:
    rows = page.find("table", "photos")[0].find("tbody")[0].find("tr")
    assert [r.find("a")[0].attrs["href"] for r in rows] == PHOTO_URLS
    first = [td.text() for td in rows[0].find("td")]
    assert first[1:] == ["a" * 64, "image/jpeg", "240.0 KiB"]


# --- safety -----------------------------------------------------------------------------------


def injected_bundle() -> dict[str, Any]:
    bundle = make_bundle()
    evil = '"><script>alert(1)</script><svg onload="x">'
    bundle["claim"]["id"] = evil
    bundle["alerts"][0]["rule"] = evil  # lands in SVG <title>, aria-label and text
    bundle["alerts"][0]["shipment"] = evil
    bundle["alerts"][2]["shipment"] = evil
    for scan in bundle["scans"][3:]:
        scan["shipment"] = evil
    bundle["signoffs"][1]["verification"]["problems"].append(evil)
    bundle["photos"].append(
        {"sha256": evil, "content_type": evil, "size": evil, "url": "java\tscript:alert(1)"}
    )
    return bundle


def test_customer_text_is_escaped_everywhere() -> None:
    out = render_html(injected_bundle())
    assert "<script" not in out.lower()
    assert "&lt;script&gt;" in out
    page = dom(out)
    assert not page.find("script")
    assert not [n for n in page.iter() if any(k.startswith("on") for k in n.attrs)]
    # Exactly the three charts of the real bundle: no injected <svg> element.
    assert len(page.find("svg")) == 3
    hrefs = [a.attrs["href"] or "" for a in page.find("a")]
    assert not [h for h in hrefs if "script" in h.lower()]
    # The injected text reads back verbatim as text.
    assert '"><script>alert(1)</script><svg onload="x">' in page.text()


def test_the_report_is_self_contained(report: str) -> None:
    escaped_photos = {u.replace("&", "&amp;") for u in PHOTO_URLS}
    for found in re.findall(r"https?://[^\s\"'<>]+", report):
        assert found in escaped_photos
    for external in ("<link", "<img", "<iframe", "<script", "@import", "url(", "src="):
        assert external not in report.lower()


# --- edge cases -------------------------------------------------------------------------------


def test_no_alerts_reads_no_anomaly() -> None:
    bundle = make_bundle()
    bundle["alerts"] = []
    bundle["claim"]["first_anomaly_ms"] = None
    bundle["attribution"]["first_anomaly_ms"] = None
    page = dom(render_html(bundle))
    assert page.find("div", "summary")[0].text() == "No anomaly was recorded."
    assert not page.find("svg")
    assert "No alert was raised" in page.find("section", "alerts")[0].text()


def test_first_anomaly_falls_back_to_the_alerts_and_skips_retracted_ones() -> None:
    bundle = make_bundle()
    del bundle["claim"]
    bundle["attribution"] = {}
    bundle["alerts"][2]["state"] = "retracted"
    bundle["alerts"][2]["started_ms"] = T0 - 10 * HOUR
    summary = dom(render_html(bundle)).find("div", "summary")[0].text()
    assert summary.startswith("First anomaly: 2026-11-22 13:06:40 UTC on the inbound leg")


def test_evidence_without_readings_is_charted_and_neither_says_so() -> None:
    bundle = make_bundle()
    bundle["alerts"][0]["readings"] = []
    bundle["alerts"][1]["readings"] = []
    bundle["alerts"][1]["evidence"] = []
    page = dom(render_html(bundle))
    shock, heat, _ = page.find("section", "alert")
    assert "shows the locked evidence" in shock.text()
    assert len(shock.find("circle", "evidence")) == 3
    assert not heat.find("svg")
    assert "no readings were recorded for this alert" in heat.text().lower()


def test_unknown_metric_has_no_unit() -> None:
    bundle = make_bundle()
    bundle["alerts"][1]["metric"] = "pressure_kpa"
    svg = charts(dom(render_html(bundle)))["heat-35"]
    assert not svg.find("text", "unit")
    assert svg.find("text", "threshold-label")[0].text() == "threshold 35"


def test_bundle_is_not_mutated() -> None:
    bundle = make_bundle()
    before = copy.deepcopy(bundle)
    render_html(bundle)
    assert bundle == before


def test_a_firing_dwell_says_the_gap_lasted_at_least_until_the_deadline() -> None:
    bundle = make_bundle()
    bundle["alerts"][2].update(state="firing", ts_ms=DWELL_START + 2 * HOUR, duration_ms=None)
    dwell = dom(render_html(bundle)).find("section", "alert")[2]
    assert dwell.find("p", "gap-statement")[0].text() == (
        "No scan from 2026-11-23 19:05:00 UTC until at least 2026-11-23 21:05:00 UTC: "
        "2 h without a scan."
    )


# --- the module ---------------------------------------------------------------------------------


def test_chart_svg_is_still_importable_from_the_report_module() -> None:
    assert claim_report.chart_svg is claim_chart.chart_svg
    assert "chart_svg" in claim_report.__all__
