"""The engine through the binding: a hand-written feed whose alerts are derived from the spec
by hand, the Arrow and dict outputs, stats, dead letters and the watermark."""

from __future__ import annotations

import pyarrow as pa
import pytest

from conftest import DWELL, HOUR, MIN, SHOCK, T0, assert_alerts, ndjson, rule_set
from streamguard import DeadLetter, Engine

RULES = rule_set(
    SHOCK,
    DWELL,
    lateness_ms=0,
    version=3,
)


def scan(ship: str, ts: int | str, status: str, location: str, carrier: str) -> dict[str, object]:
    return {
        "kind": "scan",
        "shipment": ship,
        "carrier": carrier,
        "ts": ts,
        "status": status,
        "location": location,
    }


def shock(ship: str, ts: int | str, g: float) -> dict[str, object]:
    return {"kind": "sensor", "shipment": ship, "device": "D-" + ship, "ts": ts, "shock_g": g}


# SHIP1 (SF): picked up at T0, a 3.4 g shock at T0+2min (written as RFC 3339), cleared at
# T0+3min, next scan 2.5 h after pick-up (a gap past the 2 h deadline), delivered at T0+3h.
# SHIP2 (JD): in transit at T0, silent while SHIP1's scans push the watermark past its
# deadline, then a late upload shows a scan at T0+1h.
FEED = [
    {
        "kind": "shipment",
        "shipment": "SHIP1",
        "carrier": "SF",
        "origin": "CN-SH",
        "dest": "CN-BJ",
        "tier": "premium",
        "fragile": True,
        "order": "RO-1",
        "declared_value": "1999.00",
        "ts": T0 - MIN,
    },
    scan("SHIP1", T0, "PICKED_UP", "CN-SH", "SF"),
    scan("SHIP2", T0, "IN_TRANSIT", "CN-GZ", "JD"),
    shock("SHIP1", T0 + 1 * MIN, 1.2),
    shock("SHIP1", "2026-11-22T13:07:00Z", 3.4),  # = T0 + 2 min
    shock("SHIP1", T0 + 3 * MIN, 0.5),
    scan("SHIP1", T0 + 150 * MIN, "IN_TRANSIT", "CN-NJ", "SF"),
    scan("SHIP2", T0 + 1 * HOUR, "IN_TRANSIT", "CN-CS", "JD"),  # late upload
    scan("SHIP1", T0 + 3 * HOUR, "DELIVERED", "CN-BJ", "SF"),
]

EXPECTED = [
    # §3.1: idle → breach with for_ms 0 fires at once; id {rule}:{shipment}:{start}.
    {
        "id": f"shock-3g:SHIP1:{T0 + 2 * MIN}",
        "rule": "shock-3g",
        "kind": "threshold",
        "severity": "critical",
        "state": "firing",
        "shipment": "SHIP1",
        "carrier": "SF",
        "ts": T0 + 2 * MIN,
        "started_ts": T0 + 2 * MIN,
        "metric": "shock_g",
        "value": 3.4,
        "threshold": 3.0,
        "evidence": [{"ts": T0 + 1 * MIN, "value": 1.2}, {"ts": T0 + 2 * MIN, "value": 3.4}],
    },
    # cleared(r) = NOT (0.5 > 3.0): resolved at the clearing reading, with the episode's peak.
    {
        "id": f"shock-3g:SHIP1:{T0 + 2 * MIN}",
        "state": "resolved",
        "ts": T0 + 3 * MIN,
        "peak": 3.4,
        "duration_ms": 1 * MIN,
    },
    # §3.2: next scan n.ts > deadline (T0 + 2h): fires with ts = deadline, resolved at n.ts.
    {
        "id": f"dwell-2h:SHIP1:{T0}",
        "rule": "dwell-2h",
        "kind": "dwell",
        "severity": "warning",
        "state": "firing",
        "shipment": "SHIP1",
        "carrier": "SF",
        "ts": T0 + 2 * HOUR,
        "started_ts": T0,
        "evidence": {"status": "PICKED_UP", "location": "CN-SH", "ts": T0},
    },
    {"id": f"dwell-2h:SHIP1:{T0}", "state": "resolved", "ts": T0 + 150 * MIN},
    # W = T0 + 2.5h ≥ SHIP2's deadline T0 + 2h (timers fire after the scan that moved W).
    {
        "id": f"dwell-2h:SHIP2:{T0}",
        "state": "firing",
        "shipment": "SHIP2",
        "carrier": "JD",
        "ts": T0 + 2 * HOUR,
        "evidence": {"status": "IN_TRANSIT", "location": "CN-GZ", "ts": T0},
    },
    # The late scan at T0+1h ≤ deadline: the parcel was moving, the feed was late → retracted.
    {"id": f"dwell-2h:SHIP2:{T0}", "state": "retracted", "ts": T0 + 1 * HOUR},
    # SHIP2's scan at T0+1h armed a deadline at T0+3h; SHIP1's scan at T0+3h moves W there.
    {"id": f"dwell-2h:SHIP2:{T0 + HOUR}", "state": "firing", "ts": T0 + 3 * HOUR},
]


def test_hand_written_feed_gives_the_spec_alerts() -> None:
    engine = Engine(RULES)
    assert_alerts(engine.process_dicts(ndjson(FEED)), EXPECTED)
    stats = engine.stats()
    assert stats["events_in"] == len(FEED)
    assert stats["accepted"] == len(FEED)
    assert stats["out_of_order"] == 0
    assert sum(stats["rejected"].values()) == 0
    assert (stats["fired"], stats["resolved"], stats["retracted"]) == (4, 2, 1)
    assert stats["watermark"] == T0 + 3 * HOUR
    assert stats["shipments"] == 2
    assert stats["rules_version"] == 3
    assert engine.dead_letters == []


def test_same_alerts_one_event_at_a_time() -> None:
    engine = Engine(RULES)
    alerts = [a for e in FEED for a in engine.process_dicts(ndjson([e]))]
    assert_alerts(alerts, EXPECTED)


def test_alerts_as_a_record_batch() -> None:
    engine = Engine(RULES)
    batch = engine.process(ndjson(FEED))
    assert isinstance(batch, pa.RecordBatch)
    assert batch.num_rows == len(EXPECTED)
    for col in ("id", "rule", "kind", "severity", "state", "shipment", "ts"):
        assert col in batch.schema.names
    assert batch.schema.field("ts").type == pa.int64()
    rows = batch.to_pylist()
    assert [(r["id"], r["state"]) for r in rows] == [(e["id"], e["state"]) for e in EXPECTED]
    assert rows[0]["evidence"] == EXPECTED[0]["evidence"]
    assert (rows[2]["scan_status"], rows[2]["scan_ts"]) == ("PICKED_UP", T0)


def test_json_array_and_single_object_and_str_inputs() -> None:
    import json

    as_array = Engine(RULES).process_dicts(json.dumps(FEED))
    assert_alerts(as_array, EXPECTED)
    engine = Engine(RULES)
    one = engine.process_dicts(json.dumps(shock("S9", T0, 9.0)).encode())
    assert [a["id"] for a in one] == [f"shock-3g:S9:{T0}"]


def test_out_of_order_and_duplicates_change_nothing() -> None:
    engine = Engine(RULES)
    events = [shock("S1", T0 + 2 * MIN, 4.0), shock("S1", T0 + 2 * MIN, 4.0)]
    events.append(shock("S1", T0 + 1 * MIN, 0.1))  # earlier than the last accepted: out of order
    alerts = engine.process_dicts(ndjson(events))
    assert [(a["id"], a["state"]) for a in alerts] == [(f"shock-3g:S1:{T0 + 2 * MIN}", "firing")]
    stats = engine.stats()
    assert stats["out_of_order"] == 1
    assert stats["accepted"] == 2


def test_advance_watermark_fires_silent_shipments() -> None:
    engine = Engine(RULES)
    assert engine.process_dicts(ndjson([scan("S1", T0, "IN_TRANSIT", "CN-SH", "SF")])) == []
    assert engine.advance_watermark(T0 + HOUR).num_rows == 0
    fired = engine.advance_watermark(T0 + 2 * HOUR).to_pylist()
    assert [(a["id"], a["state"], a["ts"]) for a in fired] == [
        (f"dwell-2h:S1:{T0}", "firing", T0 + 2 * HOUR)
    ]
    assert engine.advance_watermark(T0).num_rows == 0  # W never goes back
    assert engine.stats()["watermark"] == T0 + 2 * HOUR


def test_dead_letters_are_drained_with_raw_bytes() -> None:
    engine = Engine(RULES)
    bad = b'{"kind": "sensor", "shipment": "S1", "ts": "yesterday", "shock_g": 5}'
    engine.process(bad + b"\n")
    dead = engine.dead_letters
    assert len(dead) == 1
    assert isinstance(dead[0], DeadLetter)
    assert dead[0].reason == "bad_ts"
    assert dead[0].raw.strip() == bad
    assert engine.dead_letters == []
    assert engine.stats()["rejected"]["bad_ts"] == 1
    assert dead[0].to_json()["raw"].strip() == bad.decode()
    assert DeadLetter("malformed", "x", b"\xff\x00").to_json()["raw_base64"] == "/wA="


@pytest.mark.parametrize("data", [b"", b"\n\n", b"   "])
def test_empty_input_is_fine(data: bytes) -> None:
    engine = Engine(RULES)
    assert engine.process(data).num_rows == 0
    assert engine.stats()["events_in"] == 0
