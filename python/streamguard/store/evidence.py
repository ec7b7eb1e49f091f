"""What ClickHouse holds about an order's journey, read for a claim's evidence bundle: every
alert on its shipments with the readings the engine locked and those stored around it, and the
scan trail. The sign-offs and photos come from the order log and are added by the caller
(:func:`streamguard.api.claims.evidence.assemble`).

Everything here is a read; nothing is summarised away. An alert is reported in its latest state
(``firing``, ``resolved``), with the evidence its firing record locked; a ``retracted`` dwell
alert (the carrier's feed was late, the parcel was not) is kept in the bundle, marked, but is
not an anomaly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamguard.store.store import Store
from streamguard.store.tables import ALERTS, SCANS, SENSOR_READINGS

__all__ = ["METRICS", "READINGS_AROUND_MS", "alerts_of", "is_anomaly", "scans_of"]

#: The sensor metrics a threshold alert can be about: each is a ``sensor_readings`` column.
METRICS = frozenset({"shock_g", "temp_c", "humidity_pct", "tilt_deg", "light_lux", "battery_pct"})
#: How much of the stored readings around an alert's window the bundle keeps, each side.
READINGS_AROUND_MS = 15 * 60_000
#: At most this many stored readings per alert (the locked evidence is always whole).
MAX_READINGS = 5_000


def _ms(value: Any) -> int | None:
    """A DateTime64 read back (a datetime) as UTC milliseconds."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    seconds: float = value.timestamp()
    return round(seconds * 1000)


def _point(point: Any) -> dict[str, Any]:
    """A locked evidence point, read back as a named tuple (a dict) or a plain one."""
    ts, value = (point["ts"], point["value"]) if isinstance(point, Mapping) else point
    return {"ts_ms": int(ts), "value": float(value)}


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def is_anomaly(alert: Mapping[str, Any]) -> bool:
    """A retracted alert was the feed's lateness, not the parcel's: it is no anomaly."""
    return alert.get("state") != "retracted"


def alerts_of(store: Store, legs: Mapping[str, tuple[str, str | None]]) -> list[dict[str, Any]]:
    """Every alert on the shipments of ``legs`` (leg -> (shipment, carrier)), oldest first,
    each in its latest state (``states`` lists all its records) with the firing record's
    locked ``evidence`` and the stored
    ``readings`` of its metric from :data:`READINGS_AROUND_MS` before it started to as long
    after it ended."""
    leg_of = {ship: leg for leg, (ship, _) in legs.items()}
    if not leg_of:
        return []
    rows = store.rows(
        f"""
        SELECT id, rule, kind, severity, state, shipment, carrier, ts, started_ts, metric,
               value, threshold, peak, duration_ms, evidence, scan_status, scan_location,
               scan_ts
        FROM {ALERTS}
        WHERE shipment IN {{ships:Array(String)}}
        ORDER BY id, ts, state
        """,
        {"ships": sorted(leg_of)},
    )
    by_id: dict[str, dict[str, Any]] = {}
    for r in rows:
        (aid, rule, kind, severity, state, ship, carrier, ts, started, metric) = r[:10]
        (value, threshold, peak, duration, evidence, scan_status, scan_loc, scan_ts) = r[10:]
        locked = [_point(p) for p in evidence or ()]
        previous = by_id.get(aid)
        alert = {
            "id": aid,
            "rule": rule,
            "kind": kind,
            "severity": severity,
            "state": state,
            "shipment": ship,
            "leg": leg_of.get(ship),
            "carrier": carrier or legs[leg_of[ship]][1],
            "ts_ms": _ms(ts),
            "started_ms": _ms(started),
            "metric": metric or None,
            "value": _number(value),
            "threshold": _number(threshold),
            "peak": _number(peak),
            "duration_ms": duration,
            # The firing record locks the evidence; a later record keeps it.
            "evidence": locked or (previous["evidence"] if previous else []),
            "readings": [],
            "scan_status": scan_status or None,
            "scan_location": scan_loc or None,
            "scan_ms": _ms(scan_ts),
            # Every record of the alert: when it fired, resolved or was retracted.
            "states": [
                *(previous["states"] if previous else []),
                {"state": state, "ts_ms": _ms(ts)},
            ],
        }
        if previous is not None:
            alert["started_ms"] = previous["started_ms"] or alert["started_ms"]
            alert["fired_ms"] = previous.get("fired_ms", previous["ts_ms"])
            for key in ("value", "threshold", "metric", "scan_status", "scan_location"):
                alert[key] = alert[key] if alert[key] is not None else previous[key]
        by_id[aid] = alert
    alerts = sorted(by_id.values(), key=lambda a: (a["started_ms"] or a["ts_ms"] or 0, a["id"]))
    for alert in alerts:
        alert.setdefault("fired_ms", alert["ts_ms"])
        alert["readings"] = _readings_around(store, alert)
    return alerts


def _readings_around(store: Store, alert: Mapping[str, Any]) -> list[dict[str, Any]]:
    metric = alert.get("metric")
    if metric not in METRICS:
        return []
    start = alert.get("started_ms") or alert.get("ts_ms")
    end = alert.get("ts_ms") or start
    if start is None or end is None:
        return []
    # The column name is one of METRICS (checked above), never caller text.
    rows = store.rows(
        f"""
        SELECT toUnixTimestamp64Milli(ts), {metric}
        FROM {SENSOR_READINGS}
        WHERE shipment = {{ship:String}}
          AND ts >= fromUnixTimestamp64Milli({{lo:Int64}})
          AND ts <= fromUnixTimestamp64Milli({{hi:Int64}})
          AND {metric} IS NOT NULL
        ORDER BY ts
        LIMIT 1 BY ts
        LIMIT {MAX_READINGS}
        """,
        {
            "ship": alert["shipment"],
            "lo": min(start, end) - READINGS_AROUND_MS,
            "hi": max(start, end) + READINGS_AROUND_MS,
        },
    )
    return [{"ts_ms": int(t), "value": float(v)} for t, v in rows]


def scans_of(store: Store, legs: Mapping[str, tuple[str, str | None]]) -> list[dict[str, Any]]:
    """The scan trail of the shipments of ``legs``, in time order (a redelivered scan, the same
    id twice, once)."""
    leg_of = {ship: leg for leg, (ship, _) in legs.items()}
    if not leg_of:
        return []
    rows = store.rows(
        f"""
        SELECT shipment, toUnixTimestamp64Milli(ts), id, carrier, status, location, lat, lon,
               signer.name, signer.type, signer.proxy_id, signer.staff_id
        FROM {SCANS}
        WHERE shipment IN {{ships:Array(String)}}
        ORDER BY ts, shipment, id
        LIMIT 1 BY shipment, id, ts
        """,
        {"ships": sorted(leg_of)},
    )
    return [_scan(r, leg_of) for r in rows]


def _scan(r: Sequence[Any], leg_of: Mapping[str, str]) -> dict[str, Any]:
    ship, ts, sid, carrier, status, location, lat, lon, name, kind, proxy, staff = r
    signer = None
    if name:
        signer = {"name": name, "type": kind}
        if proxy:
            signer["proxy_id"] = proxy
        if staff:
            signer["staff_id"] = staff
    return {
        "shipment": ship,
        "leg": leg_of.get(ship),
        "ts_ms": int(ts),
        "id": sid or None,
        "carrier": carrier,
        "status": status,
        "location": location or None,
        "lat": _number(lat),
        "lon": _number(lon),
        "signer": signer,
    }
