"""Rules through the API: read and replace the engine's rule set in KV (If-Match on its
revision), the real engine picking a saved set up, and backtests over stored events compared
with the engine run directly on the same feed (real NATS, real chDB)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from nats.js.errors import BucketNotFoundError

from apifix import ApiStack
from conftest import DWELL, HOUR, MIN, SHOCK, T0, ndjson, rule_set
from natsfix import NatsStack
from streamguard import Engine
from streamguard._core import LiveEngine, convert
from streamguard.domain.backtest import backtest, validate_rules
from streamguard.domain.validation import FieldError
from streamguard.errors import ConfigError
from streamguard.store.backtest import ENGINE_SCHEMAS, stored_batches

DAY = 24 * HOUR
FRAGILE_SHOCK: dict[str, Any] = {
    "id": "fragile-shock-2g",
    "kind": "threshold",
    "metric": "shock_g",
    "op": "gt",
    "value": 2.0,
    "severity": "critical",
    "where": {"fragile": True},
}
RULES: dict[str, Any] = {"version": 1, "lateness_ms": 0, "rules": [SHOCK, DWELL, FRAGILE_SHOCK]}


# ---- helpers -------------------------------------------------------------------------------


def purge_rules(api_stack: ApiStack) -> None:
    """Leave KV ``sg_rules`` without an active set, as on a fresh deployment."""

    async def run() -> None:
        async with NatsStack(api_stack.nats).connect("control") as (nc, _):
            try:
                kv = await nc.jetstream().key_value("sg_rules")
            except BucketNotFoundError:
                return
            await kv.purge("active")

    asyncio.run(run())


def put(api_stack: ApiStack, rules: Any, etag: str | None = None) -> httpx.Response:
    h = api_stack.as_operator()
    if etag is not None:
        h["If-Match"] = etag
    return api_stack.client.put("/rules", json=rules, headers=h)


def saved(api_stack: ApiStack, version: int = 1) -> tuple[dict[str, Any], str]:
    """Save ``RULES`` at ``version`` over whatever is there; the set and its ETag."""
    current = api_stack.client.get("/rules", headers=api_stack.as_operator())
    etag = current.headers["ETag"] if current.status_code == 200 else None
    r = put(api_stack, {**RULES, "version": version}, etag)
    assert r.status_code in (200, 201), r.text
    return r.json(), r.headers["ETag"]


def engine_batches(events: Sequence[dict[str, Any]]) -> list[pa.RecordBatch]:
    """``events`` as the engine's Arrow batches, one per kind, rows in input order."""
    ipc, _ = convert(ndjson(events), "json", "arrow", group_by_kind=True)
    source = pa.BufferReader(ipc)
    batches: list[pa.RecordBatch] = []
    while source.tell() < len(ipc):
        batches.extend(pa.ipc.open_stream(source))
    return batches


def store_feed(api_stack: ApiStack, events: Sequence[dict[str, Any]], keyed: bool) -> None:
    """Store ``events`` as the live engine does (``keyed``: message sequence and row, two events
    a message, in list order) or as a bulk load does (no key: ``seq`` = 0)."""
    for batch in engine_batches(events):
        kind = batch.schema.metadata[b"streamguard.kind"].decode()
        if keyed:
            at = [i for i, e in enumerate(events) if e["kind"] == kind]
            table = pa.Table.from_batches([batch])
            table = table.append_column("seq", pa.array([1000 + i // 2 for i in at], pa.uint64()))
            table = table.append_column("idx", pa.array([i % 2 for i in at], pa.uint32()))
            batch = table.to_batches()[0]
        api_stack.store.insert_events(batch, f"test-rules:{events[0]['ts']}:{kind}:{keyed}")


def feed(t: int) -> list[dict[str, Any]]:
    """Two shipments from ``t``, in arrival order: attributes, scans (one shipment dwells, the
    other's scans move the watermark past its deadline) and shocks (one read late)."""
    ship = {"kind": "shipment", "origin": "CN-110000", "dest": "CN-440300", "ts": t}
    fragile = {"carrier": "SF", "tier": "premium", "fragile": True, "declared_value": "4999.00"}

    def scan(s: str, at: int, status: str, **kw: Any) -> dict[str, Any]:
        return {"kind": "scan", "shipment": s, "carrier": "SF", "ts": t + at, "status": status,
                "location": "CN-110000", **kw}  # fmt: skip

    def shock(s: str, at: int, g: float) -> dict[str, Any]:
        return {"kind": "sensor", "shipment": s, "device": "d-" + s, "ts": t + at, "shock_g": g}

    return [
        {**ship, **fragile, "shipment": "BT-1", "order": "RO-1"},
        {**ship, "shipment": "BT-2", "carrier": "JD", "tier": "basic", "fragile": False},
        scan("BT-1", MIN, "PICKED_UP"),
        shock("BT-1", 10 * MIN, 2.5),
        scan("BT-2", 2 * MIN, "PICKED_UP"),
        shock("BT-2", 15 * MIN, 3.5),
        shock("BT-1", 20 * MIN, 4.2),
        shock("BT-1", 5 * MIN, 9.0),  # out of order: stored, raises nothing
        shock("BT-1", 30 * MIN, 0.5),
        scan("BT-2", 3 * HOUR, "IN_TRANSIT"),
        shock("BT-2", 3 * HOUR, 0.2),
        scan("BT-1", 4 * HOUR, "DELIVERED", signer={"name": "Li Lei", "type": "self"}),
    ]


# ---- who may ------------------------------------------------------------------------------


def test_only_operators_may_read_replace_or_backtest(api_stack: ApiStack) -> None:
    body = {"rules": RULES, "from_ms": T0, "to_ms": T0 + DAY}
    for headers in (
        api_stack.as_customer("cust-rules"),
        api_stack.as_depot(),
        api_stack.as_carrier("SF"),
    ):
        assert api_stack.client.get("/rules", headers=headers).status_code == 403
        assert api_stack.client.put("/rules", json=RULES, headers=headers).status_code == 403
        r = api_stack.client.post("/rules/backtest", json=body, headers=headers)
        assert r.status_code == 403
    assert api_stack.client.get("/rules").status_code == 401


# ---- read and replace ----------------------------------------------------------------------


def test_first_put_saves_the_set_and_get_returns_it_with_its_etag(api_stack: ApiStack) -> None:
    purge_rules(api_stack)
    assert api_stack.client.get("/rules", headers=api_stack.as_operator()).status_code == 404
    r = put(api_stack, RULES)
    assert r.status_code == 201, r.text
    assert r.json() == RULES
    etag = r.headers["ETag"]
    got = api_stack.client.get("/rules", headers=api_stack.as_operator())
    assert got.status_code == 200
    assert got.json() == RULES
    assert got.headers["ETag"] == etag

    # A set exists now: replacing it needs its ETag.
    r = put(api_stack, {**RULES, "version": 2})
    assert r.status_code == 428
    assert r.headers["ETag"] == etag
    r = put(api_stack, {**RULES, "version": 2}, etag)
    assert r.status_code == 200, r.text
    assert int(r.headers["ETag"].strip('"')) > int(etag.strip('"'))
    assert api_stack.client.get("/rules", headers=api_stack.as_operator()).json()["version"] == 2


def test_a_stale_if_match_gets_412_with_the_current_etag(api_stack: ApiStack) -> None:
    _, first = saved(api_stack, version=3)
    r = put(api_stack, {**RULES, "version": 4}, first)
    assert r.status_code == 200, r.text
    current = r.headers["ETag"]
    r = put(api_stack, {**RULES, "version": 5}, first)
    assert r.status_code == 412
    assert r.headers["ETag"] == current
    assert r.json()["current_version"] == int(current.strip('"'))
    r = put(api_stack, {**RULES, "version": 5}, '"0"')
    assert r.status_code == 412, "If-Match 0 means 'no set yet'"
    got = api_stack.client.get("/rules", headers=api_stack.as_operator())
    assert got.json()["version"] == 4


def test_an_invalid_rule_gets_422_naming_rule_and_field_and_nothing_is_saved(
    api_stack: ApiStack,
) -> None:
    before, etag = saved(api_stack, version=6)
    bad = {**RULES, "version": 7, "rules": [{**SHOCK, "op": "bigger"}, DWELL]}
    r = put(api_stack, bad, etag)
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert [e["field"] for e in errors] == ["rules[shock-3g].op"]
    assert "bigger" in errors[0]["message"]

    r = put(api_stack, {**RULES, "rules": [{"kind": "dwell"}]}, etag)
    assert [e["field"] for e in r.json()["errors"]] == ["rules[0].id"]
    r = put(api_stack, {**RULES, "lateness": 5}, etag)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["lateness"]
    r = put(api_stack, [RULES], etag)
    assert r.status_code == 422
    h = {**api_stack.as_operator(), "If-Match": etag, "Content-Type": "application/json"}
    r = api_stack.client.put("/rules", content=b"{not json", headers=h)
    assert r.status_code == 422, "undecodable JSON is an input error like any other"
    assert [e["field"] for e in r.json()["errors"]] == ["body"]

    got = api_stack.client.get("/rules", headers=api_stack.as_operator())
    assert got.json() == before
    assert got.headers["ETag"] == etag


def test_the_running_engine_applies_a_saved_set_within_a_second(
    api_stack: ApiStack, tmp_path: Path
) -> None:
    _, etag = saved(api_stack, version=10)
    creds = api_stack.nats.credentials("engine")
    engine = LiveEngine(
        api_stack.nats.url,
        time="event",
        state_dir=str(tmp_path / "engine"),
        user=creds.user,
        password=creds.password,
        tick_ms=100,
        checkpoint_ms=200,
    )
    engine.start()
    try:
        assert engine.status()["rules_version"] == 10
        started = time.monotonic()
        r = put(api_stack, {**RULES, "version": 11}, etag)
        assert r.status_code == 200, r.text
        while engine.status()["rules_version"] != 11:
            assert time.monotonic() - started < 1.0, f"not applied: {engine.status()}"
            time.sleep(0.01)
        assert engine.status()["rules_error"] is None
    finally:
        engine.stop()


# ---- backtest ------------------------------------------------------------------------------


def run_backtest(api_stack: ApiStack, **body: Any) -> httpx.Response:
    return api_stack.client.post(
        "/rules/backtest", json={"rules": RULES, **body}, headers=api_stack.as_operator()
    )


def test_backtest_gives_the_alerts_the_engine_gives_for_the_stored_feed(
    api_stack: ApiStack,
) -> None:
    t = T0 + 10 * DAY
    events = feed(t)
    store_feed(api_stack, events, keyed=True)
    expected = Engine(rule_set(SHOCK, DWELL, FRAGILE_SHOCK)).process_dicts(ndjson(events))
    assert {(a["rule"], a["state"]) for a in expected} == {
        ("shock-3g", "firing"),
        ("shock-3g", "resolved"),
        ("fragile-shock-2g", "firing"),
        ("fragile-shock-2g", "resolved"),
        ("dwell-2h", "firing"),
        ("dwell-2h", "resolved"),
    }

    r = run_backtest(api_stack, from_ms=t, to_ms=t + DAY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["alerts"] == expected
    assert body["total_alerts"] == len(expected)
    assert body["events"] == len(events)
    assert body["dead_letters"] == 0
    assert body["truncated"] is False
    by_rule: dict[str, dict[str, int]] = {}
    for a in expected:
        states = by_rule.setdefault(a["rule"], {})
        states[a["state"]] = states.get(a["state"], 0) + 1
    assert body["by_rule"] == by_rule
    assert body["by_rule"]["shock-3g"] == {"firing": 2, "resolved": 2}
    assert body["by_severity"]["warning"] == by_rule["dwell-2h"]

    r = run_backtest(api_stack, from_ms=t, to_ms=t + DAY, max_alerts=1)
    assert r.json()["alerts"] == expected[:1]
    assert r.json()["truncated"] is True
    assert r.json()["total_alerts"] == len(expected)


def test_backtest_orders_unkeyed_rows_by_event_time_shipments_first(
    api_stack: ApiStack,
) -> None:
    t = T0 + 12 * DAY
    # A shock at the very ts of the shipment's attributes: only with them first does the
    # fragile rule apply to it.
    early = {"kind": "sensor", "shipment": "BT-1", "device": "d-BT-1", "ts": t, "shock_g": 2.8}
    events = [early, *feed(t)]
    store_feed(api_stack, events, keyed=False)
    rank = {"shipment": 0, "scan": 1, "sensor": 2}
    in_order = sorted(events, key=lambda e: (e["ts"], rank[e["kind"]]))
    rules = rule_set(SHOCK, DWELL, FRAGILE_SHOCK)
    expected = Engine(rules).process_dicts(ndjson(in_order))
    assert any(a["rule"] == "fragile-shock-2g" and a["started_ts"] == t for a in expected)
    result = backtest(rules, stored_batches(api_stack.store, t, t + DAY))
    assert result.alerts == expected
    assert result.events == len(events)


def test_stored_batches_are_in_the_engines_schema_and_bounded(api_stack: ApiStack) -> None:
    t = T0 + 14 * DAY
    events = feed(t)
    store_feed(api_stack, events, keyed=True)
    batches = list(stored_batches(api_stack.store, t, t + DAY))
    assert sum(b.num_rows for _, b in batches) == len(events)
    for kind, batch in batches:
        assert batch.schema.equals(ENGINE_SCHEMAS[kind], check_metadata=True)
    for batch in engine_batches(events):
        kind = batch.schema.metadata[b"streamguard.kind"].decode()
        assert batch.schema.equals(ENGINE_SCHEMAS[kind], check_metadata=True)
    signers = [s for k, b in batches if k == "scan" for s in b.column("signer").to_pylist()]
    assert signers.count(None) == 3, "a scan without a signer reads back without one"
    one_by_one = list(stored_batches(api_stack.store, t, t + DAY, run_rows=1))
    assert [b.num_rows for _, b in one_by_one] == [1] * len(events)
    rules = rule_set(SHOCK, DWELL, FRAGILE_SHOCK)
    assert backtest(rules, one_by_one).alerts == backtest(rules, batches).alerts
    shocks_only = list(stored_batches(api_stack.store, t + 10 * MIN, t + 31 * MIN))
    assert [(k, b.num_rows) for k, b in shocks_only] == [("sensor", 4)]
    with pytest.raises(ConfigError, match="limit of 5"):
        next(stored_batches(api_stack.store, t, t + DAY, max_events=5))
    assert list(stored_batches(api_stack.store, t - DAY, t)) == []


def test_backtest_422_for_bad_rules_and_bad_ranges(api_stack: ApiStack) -> None:
    bad = {**RULES, "rules": [SHOCK, {**DWELL, "for_ms": -1}]}
    r = api_stack.client.post(
        "/rules/backtest",
        json={"rules": bad, "from_ms": T0, "to_ms": T0 + DAY},
        headers=api_stack.as_operator(),
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["rules.rules[dwell-2h].for_ms"]

    r = run_backtest(api_stack, from_ms=T0 + DAY, to_ms=T0 + DAY)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["to_ms"]
    r = run_backtest(api_stack, from_ms=T0, to_ms=T0 + 32 * DAY)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["to_ms"]
    r = run_backtest(api_stack, from_ms=T0, to_ms=T0 + DAY, max_alerts=-1, extra=1)
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"max_alerts", "extra"}


def test_validate_rules_names_the_field_of_every_kind_of_error() -> None:
    assert validate_rules(rule_set(SHOCK)) == []
    assert validate_rules(b"{nope")[0].field == "body"
    assert validate_rules("[1]") == [
        FieldError("body", "a rule set must be a JSON object, not list")
    ]
    assert [e.field for e in validate_rules('{"lateness_ms": -1, "rules": []}')] == ["lateness_ms"]
    assert [e.field for e in validate_rules('{"rules": [5]}', at="rules.")] == ["rules.rules[0]"]
    errors = validate_rules(rule_set({**DWELL, "statuses": ["LOST"]}))
    assert [e.field for e in errors] == ["rules[dwell-2h].statuses[0]"]
    assert "LOST" in errors[0].message
