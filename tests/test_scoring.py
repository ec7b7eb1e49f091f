"""Carrier scoring (issue 7): lane statistics and shipment scores from the engine, merged
across partitions, stored in ClickHouse, and live on NATS (``sg.score.>``, KV ``sg_lanes``)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conftest import HOUR, T0, ndjson
from natsfix import NatsStack, read_stream, wait_permission_errors
from streamguard import Engine, LaneTable
from streamguard.bus.lanes import LaneWatch
from streamguard.domain.insurance import Tariffs
from streamguard.domain.returns import LaneEstimate, Weights
from streamguard.errors import ConfigError, DecodeError
from streamguard.lanes import LaneRow, merge_tables
from streamguard.live import LiveEngine, feed_credentials, publish_sim
from streamguard.sim import Simulator, example_rules
from streamguard.store import open_store
from streamguard.store.writer import store_item

SCORE_FIELDS = {
    "shipment",
    "ts",
    "carrier",
    "origin",
    "dest",
    "eta_p50",
    "eta_p90",
    "delay_risk",
    "damage_risk",
    "shock_episodes",
    "delivered",
}


def sim_lines(seed: int = 11, shipments: int = 600, events: int = 30_000) -> list[bytes]:
    """A simulated feed as NDJSON lines, in arrival order."""
    sim = Simulator(seed=seed, shipments=shipments, events=events, invalid_rate=0.0)
    return b"".join(sim.chunks(4_096, "json")).splitlines()


def run(engine: Engine, lines: list[bytes], chunk: int = 1_000) -> list[dict[str, Any]]:
    """Feed ``lines`` in chunks; every score record produced, as dicts."""
    scores: list[dict[str, Any]] = []
    for i in range(0, len(lines), chunk):
        engine.process(b"\n".join(lines[i : i + chunk]))
        scores += engine.scores().to_pylist()
    return scores


def by_lane(rows: list[LaneRow]) -> dict[tuple[str, str | None, str | None], LaneRow]:
    return {(r["carrier"], r["origin"], r["dest"]): r for r in rows}


# ---- a hand-written journey -----------------------------------------------------------------


def journey(ship: str, t: int, transit: int, carrier: str = "SF") -> list[dict[str, Any]]:
    scan = {"kind": "scan", "shipment": ship, "carrier": carrier, "location": "CN-310115"}
    return [
        {
            "kind": "shipment",
            "shipment": ship,
            "carrier": carrier,
            "origin": "CN-310115",
            "dest": "CN-110105",
            "tier": "basic",
            "fragile": False,
            "ts": t - HOUR,
        },
        {**scan, "ts": t, "status": "PICKED_UP"},
        {**scan, "ts": t + transit // 2, "status": "IN_TRANSIT"},
        {**scan, "ts": t + transit, "status": "DELIVERED"},
    ]


def test_a_lane_learns_its_transit_time_and_scores_shipments() -> None:
    engine = Engine(example_rules())
    for k in range(12):
        engine.process(ndjson(journey(f"SF{k:04}", T0 + k * HOUR, 30 * HOUR)))
    lanes = engine.lanes()
    est = lanes.estimate("SF", "CN-310115", "CN-110105")
    assert est is not None
    assert abs(est["p50_ms"] / (30 * HOUR) - 1) <= 0.01
    assert est["on_time_rate"] == 1.0
    assert 11 < est["shipments"] <= 12
    # Regions at any depth name the same province-level lane; both or neither.
    assert lanes.estimate("SF", "CN-31", "CN-11") == est
    assert lanes.estimate("SF") is not None
    assert lanes.estimate("JD", "CN-31", "CN-11") is None
    with pytest.raises(ConfigError, match="origin_region"):
        lanes.estimate("SF", "Shanghai", "CN-11")
    with pytest.raises(ConfigError, match="both"):
        lanes.estimate("SF", "CN-31")
    # A new shipment on the lane: scored at pickup, then when it changes materially.
    ship = journey("SFX", T0 + 5 * 24 * HOUR, 80 * HOUR)
    engine.process(ndjson(ship[:2]))
    [first] = engine.scores().to_pylist()
    assert set(first) == SCORE_FIELDS
    assert (first["shipment"], first["carrier"], first["origin"], first["dest"]) == (
        "SFX",
        "SF",
        "CN-31",
        "CN-11",
    )
    pickup = ship[1]["ts"]
    eta = first["eta_p50"].timestamp() * 1000 - pickup
    assert abs(eta / (30 * HOUR) - 1) < 0.02
    assert (first["delay_risk"], first["damage_risk"], first["delivered"]) == (0.0, 0.0, False)
    engine.process(ndjson(ship[2:]))
    *_, last = engine.scores().to_pylist()
    assert last["delivered"]
    assert last["delay_risk"] == 1.0  # 80 h: past the 72 h SLA


def test_scoring_off_keeps_no_statistics() -> None:
    engine = Engine(example_rules(), scoring=False)
    engine.process(ndjson(journey("SF1", T0, 30 * HOUR)))
    assert not engine.scoring
    assert engine.scores().num_rows == 0
    assert (engine.stats()["lanes"], engine.stats()["lane_bytes"]) == (0, 0)
    with pytest.raises(ConfigError, match="scoring is off"):
        engine.lanes()


# ---- the simulated feed, one engine and partitions ----------------------------------------


def test_lanes_from_the_simulator() -> None:
    engine = Engine(example_rules())
    scores = run(engine, sim_lines())
    stats = engine.stats()
    lanes = engine.lanes()
    assert len(lanes) == stats["lanes"] > 50
    rows = lanes.estimates()
    carriers = {r["carrier"] for r in rows if r["origin"] is None}
    assert carriers == {"SF", "JD", "YTO", "ZTO", "STO", "EMS", "YUNDA", "DBL"}
    for r in rows:
        assert 10 * 60_000 <= r["p50_ms"] <= r["p90_ms"] <= 30 * 24 * HOUR, r
        assert 0 <= r["on_time_rate"] <= 1
        assert 0 <= r["lane_weight"] <= 1
        assert r["dwell_per_shipment"] >= 0
        assert r["shock_per_shipment"] >= 0
    assert len(scores) > 1_000
    final = [s for s in scores if s["delivered"]]
    assert final
    assert all(s["eta_p50"] == s["ts"] for s in final)
    assert all(0 <= s["damage_risk"] <= 1 for s in scores)
    assert all(s["delay_risk"] is None or 0 <= s["delay_risk"] <= 1 for s in scores)
    # Bytes round trip; damage is a DecodeError.
    raw = lanes.to_bytes()
    assert LaneTable.from_bytes(raw).to_bytes() == raw
    with pytest.raises(DecodeError):
        LaneTable.from_bytes(raw[:-1])
    with pytest.raises(DecodeError):
        LaneTable.from_bytes(b"not a lane table")


def test_partitions_merge_into_one_engines_table() -> None:
    lines = sim_lines(seed=12)
    whole = Engine(example_rules())
    run(whole, lines)
    parts = [Engine(example_rules()), Engine(example_rules())]
    # A partition owns whole shipments, as NATS subject mapping does.
    split: list[list[bytes]] = [[], []]
    for line in lines:
        split[zlib.crc32(json.loads(line)["shipment"].encode()) % 2].append(line)
    for engine, mine in zip(parts, split, strict=True):
        assert mine
        run(engine, mine)
    merged = parts[0].lanes()
    merged.merge(parts[1].lanes())
    want, got = by_lane(whole.lanes().estimates()), by_lane(merged.estimates())
    assert got.keys() == want.keys()
    assert len(want) > 50
    for lane, w in want.items():
        g = got[lane]
        # Rates are sums in another order: equal to rounding. A quantile's rank may round
        # across a bucket edge: within one bucket (2 %).
        for k in ("on_time_rate", "dwell_per_shipment", "shock_per_shipment", "shipments"):
            assert g[k] == pytest.approx(w[k], rel=1e-9, abs=1e-12), (lane, k)
        for k in ("p50_ms", "p90_ms"):
            assert g[k] == pytest.approx(w[k], rel=0.021), (lane, k)
    # The same through bytes, as the control plane merges KV sg_lanes.
    again = merge_tables(p.lanes().to_bytes() for p in parts)
    assert by_lane(again.estimates()).keys() == want.keys()


# ---- storage --------------------------------------------------------------------------------


def test_scores_are_stored(tmp_path: Path) -> None:
    engine = Engine(example_rules())
    lines = sim_lines(seed=13, shipments=200, events=8_000)
    batches: list[pa.RecordBatch] = []
    for i in range(0, len(lines), 2_000):
        engine.process(b"\n".join(lines[i : i + 2_000]))
        batches.append(engine.scores())
    n = sum(b.num_rows for b in batches)
    assert n > 100
    with open_store(f"chdb://{tmp_path / 'ch'}") as store:
        for i, b in enumerate(batches):
            store.insert_scores(b, f"scores:{i}")
        # As a live engine's storage item: deduplicated by its token.
        item = {"token": "w:1-1", "events": [], "alerts": None, "dead": [], "scores": batches[0]}
        assert store_item(store, item) == (0, batches[0].num_rows)
        assert store_item(store, item) == (0, batches[0].num_rows)
        assert store.rows("SELECT count() FROM shipment_scores") == [(n + batches[0].num_rows,)]
        latest = store.rows("SELECT count(), countIf(delivered) FROM shipment_scores_latest")[0]
        ships = {r["shipment"] for b in batches for r in b.to_pylist()}
        assert latest[0] == len(ships)
        assert latest[1] > 0


# ---- live on NATS ---------------------------------------------------------------------------


async def _caught_up(stack: NatsStack) -> bool:
    async with stack.connect("engine") as (nc, _):
        js = nc.jetstream()
        last = (await js.stream_info("SG_EVENTS")).state.last_seq
        try:
            info = await js.consumer_info("SG_EVENTS", "sg-engine")
        except Exception:
            return False
        return bool(info.delivered.stream_seq == last and info.num_ack_pending == 0)


async def _kv(stack: NatsStack, user: str, key: str) -> bytes:
    async with stack.connect(user) as (nc, _):
        kv = await nc.jetstream().key_value("sg_lanes")
        entry = await kv.get(key)
        assert entry.value is not None
        return entry.value


def test_live_engine_publishes_scores_and_its_lane_table(
    live_stack: NatsStack, tmp_path: Path
) -> None:
    creds = live_stack.creds("engine")

    def engine_on(sim: Simulator) -> LiveEngine:
        """A live engine over ``tmp_path``'s state, run until ``sim``'s feed is evaluated."""
        engine = LiveEngine(
            live_stack.url,
            rules=example_rules(),
            time="event",
            state_dir=str(tmp_path / "engine"),
            user=creds.user,
            password=creds.password,
            tick_ms=100,
            checkpoint_ms=200,
        )
        engine.start()
        try:
            publish_sim(sim, live_stack.url, creds=feed_credentials(live_stack.server))
            deadline = time.monotonic() + 60
            while not asyncio.run(_caught_up(live_stack)):
                assert time.monotonic() < deadline, "the engine did not catch up"
                time.sleep(0.1)
        finally:
            engine.stop()
        return engine

    first = engine_on(Simulator(seed=3, shipments=200, events=10_000, invalid_rate=0.0))
    first_seq = len(read_stream(live_stack, "SG_EVENTS"))
    before = first.lanes()
    assert before is not None
    assert len(before) > 20
    # A restart keeps the statistics: the second engine starts from the first's snapshot and
    # learns on from there (later shipments on the same lanes), so its final table is what one
    # engine over both feeds learns.
    start = T0 + 40 * 24 * HOUR
    engine = engine_on(
        Simulator(seed=4, shipments=200, events=10_000, invalid_rate=0.0, start_ms=start)
    )
    status = engine.status()
    assert status["scores_published"] > 0
    assert status["lanes_error"] is None
    published = first.status()["scores_published"] + status["scores_published"]

    # What replaying SG_EVENTS in stream order scores, message by message.
    replay = Engine(example_rules())
    want: list[str] = []
    for i, m in enumerate(read_stream(live_stack, "SG_EVENTS")):
        if i == first_seq:
            want_first, replay_first = len(want), replay.lanes().to_bytes()
        kind = {"scan": "scan", "sensor": "sensor", "ship": "shipment"}[m.subject.split(".")[1]]
        fmt = {"application/x-protobuf": "protobuf", "application/vnd.apache.arrow.stream": "arrow"}
        replay.process(m.data, fmt.get((m.headers or {}).get("Content-Type", ""), "json"), kind)
        want += [
            f"{s['shipment']}:{int(s['ts'].timestamp() * 1000)}"
            for s in replay.scores().to_pylist()
        ]
    got = []
    for m in read_stream(live_stack, "SG_SCORES"):
        s = json.loads(m.data)
        assert set(s) == SCORE_FIELDS
        assert m.subject == f"sg.score.{s['shipment']}"
        assert m.headers["Nats-Msg-Id"] == f"{s['shipment']}:{s['ts']}"
        got.append(m.headers["Nats-Msg-Id"])
    assert len(got) == published
    # Until the restart, exactly the replay's records.
    assert got[:want_first] == want[:want_first]
    assert before.to_bytes() == replay_first
    # After it, the statistics go on exactly (below), but a score may differ slightly: each
    # lane's cached distribution is rebuilt from the restored statistics, not from the older
    # ones it was last built from (README, "Cost"). Nearly all records are the same.
    after, want_after = got[want_first:], want[want_first:]
    assert len(set(after) & set(want_after)) >= 0.95 * len(want_after)
    assert abs(len(after) - len(want_after)) <= 0.05 * len(want_after)

    # KV sg_lanes holds the final table under the durable name, readable by the control plane.
    raw = asyncio.run(_kv(live_stack, "control", "sg-engine"))
    assert raw == replay.lanes().to_bytes()
    live = engine.lanes()
    assert live is not None
    assert live.to_bytes() == raw
    assert live.to_bytes() != before.to_bytes()

    # The control plane's view of it: LaneWatch follows the bucket, as the return choice and
    # GET /carriers/score read it.
    async def watched() -> list[LaneEstimate | None]:
        async with live_stack.connect("control") as (nc, _):
            watch = LaneWatch.start(nc.jetstream())
            try:
                deadline = time.monotonic() + 10
                while not watch.tables:
                    assert time.monotonic() < deadline, "LaneWatch saw no table"
                    await asyncio.sleep(0.05)
                return [
                    watch.estimate(r["carrier"], str(r["origin"]), str(r["dest"])) for r in rows
                ]
            finally:
                await watch.stop()

    rows = [r for r in replay.lanes().estimates() if r["origin"] is not None]
    assert len(rows) > 20
    for r, got_lane in zip(rows, asyncio.run(watched()), strict=True):
        assert got_lane is not None
        assert got_lane.p50_ms == r["p50_ms"]
        assert got_lane.p90_ms == r["p90_ms"]
        assert got_lane.shipments == r["shipments"]


def test_sources_cannot_publish_scores(live_stack: NatsStack) -> None:
    async def go() -> list[str]:
        async with live_stack.connect("carrier-SF") as (nc, errors):
            await nc.publish("sg.score.SF1", b"{}")
            await nc.publish("sg.score.>", b"{}")
            return await wait_permission_errors(errors, 2)

    assert asyncio.run(go()) == [
        'nats: permissions violation for publish to "sg.score.sf1"',
        'nats: permissions violation for publish to "sg.score.>"',
    ]


# ---- ranking --------------------------------------------------------------------------------

TIME_ONLY = Weights(cost=0.0, time=1.0, coverage=0.0, quality=0.0)


def learned(transit_h: dict[str, int], n: int = 30) -> Engine:
    """An engine that saw ``n`` deliveries per carrier on Shanghai -> Beijing, each carrier's
    taking ``transit_h`` hours."""
    engine = Engine(example_rules())
    for carrier, hours in transit_h.items():
        for k in range(n):
            engine.process(
                ndjson(journey(f"{carrier}{k:04}", T0 + k * HOUR, hours * HOUR, carrier))
            )
    return engine


def test_score_carriers_ranks_by_what_the_engine_learned() -> None:
    engine = learned({"SF": 50, "JD": 20, "EMS": 30})
    choice = engine.score_carriers("CN-310115", "CN-110105", 50_000, weights=TIME_ONLY)
    ranked = [o.carrier for o in choice.options if o.eligible]
    # Learned lanes first by transit; carriers never seen fall back to their nominal SLA days
    # (2-4 days: slower than 20 h and 30 h, so behind JD and EMS).
    assert ranked[:2] == ["JD", "EMS"]
    assert choice.chosen == "JD"
    jd = choice.option("JD")
    assert jd is not None
    assert jd.lane is not None
    assert abs(jd.lane.p50_ms / (20 * HOUR) - 1) <= 0.01
    assert jd.scores["time"] == 1.0
    sf = choice.option("SF")
    assert sf is not None
    assert sf.scores["time"] == pytest.approx(20 / 50, abs=0.01)
    # The same engine with other weights: cost decides (STO is the cheapest tariff).
    cheap = engine.score_carriers(
        "CN-310115", "CN-110105", 50_000, weights=Weights(cost=1, time=0, coverage=0, quality=0)
    )
    assert cheap.chosen == "STO"
    # Scoring off: only the tariffs' nominal figures, so the learned JD has no edge.
    off = Engine(example_rules(), scoring=False)
    nominal = off.score_carriers("CN-310115", "CN-110105", 50_000, weights=TIME_ONLY)
    assert all(o.lane is None for o in nominal.options)
    assert nominal.chosen == "JD"  # 2 days nominal, tie with SF broken by code


def test_constraints_outrank_every_learned_score() -> None:
    """The fastest learned carriers are the ones the constraints exclude; whatever the
    request, the chosen carrier meets every constraint and each excluded one says why."""
    engine = learned({"STO": 10, "YTO": 12, "EMS": 14, "SF": 60, "JD": 70, "ZTO": 80})
    tariffs = Tariffs.load_sample()
    for dest in ("CN-110105", "CN-650102", "CN-540102", "CN-310115"):
        for value in (10_000, 150_000, 400_000, 4_000_000, 9_000_000):
            for fragile in (False, True):
                choice = engine.score_carriers("CN-310115", dest, value, fragile, weights=TIME_ONLY)
                province = dest[:5]
                for o in choice.options:
                    t = tariffs[o.carrier]
                    broken = []
                    if fragile and not t.shock_proof:
                        broken.append("shock-proof")
                    if value > t.insurable_max_fen:
                        broken.append("insurable maximum")
                    remote = province in ("CN-65", "CN-54")
                    if (remote and not t.coverage.remote) or province in t.coverage.excluded:
                        broken.append("deliver")
                    assert o.eligible == (not broken), (dest, value, fragile, o)
                    assert len(o.excluded_because) == len(broken), (o, broken)
                    for what, why in zip(broken, o.excluded_because, strict=True):
                        assert what in why, (what, why)
                eligible = [o for o in choice.options if o.eligible]
                assert choice.chosen == (eligible[0].carrier if eligible else None)
                assert all(a.total >= b.total for a, b in itertools.pairwise(eligible))
    # The unconstrained request goes to the fastest learned carrier.
    assert (
        engine.score_carriers("CN-310115", "CN-110105", 10_000, weights=TIME_ONLY).chosen == "STO"
    )


def test_quality_ranks_by_incidents_above_the_rules_baseline() -> None:
    """Both carriers stall past dwell-2h on every journey (the rules' routine baseline); JD's
    parcels are also dropped once each. Quality tells them apart: the cleaner one scores 1."""
    engine = Engine(example_rules())
    for carrier in ("SF", "JD"):
        for k in range(30):
            ship, t = f"{carrier}{k:04}", T0 + k * HOUR
            events = journey(ship, t, 30 * HOUR, carrier)
            if carrier == "JD":
                shock = {"kind": "sensor", "shipment": ship, "device": f"d-{ship}", "shock_g": 9.0}
                events.insert(2, {**shock, "ts": t + 3 * HOUR})
            engine.process(ndjson(events))
    lanes = engine.lanes()
    sf, jd = (lanes.estimate(c, "CN-310115", "CN-110105") for c in ("SF", "JD"))
    assert sf is not None
    assert jd is not None
    assert sf["dwell_per_shipment"] == pytest.approx(jd["dwell_per_shipment"])
    assert sf["dwell_per_shipment"] > 0.5
    # One drop per JD parcel: 1 per shipment, up to the decay between the drop and the
    # delivery it is counted against (27 h of a 14-day half-life: 2^(-27/336) = 0.946).
    assert sf["shock_per_shipment"] == 0.0
    assert jd["shock_per_shipment"] == pytest.approx(2 ** (-27 / 336), rel=0.01)
    choice = engine.score_carriers(
        "CN-310115", "CN-110105", 50_000, weights=Weights(cost=0, time=0, coverage=0, quality=1)
    )
    assert choice.chosen == "SF"
    scores = {o.carrier: o.scores["quality"] for o in choice.options}
    x_sf, x_jd = (e["dwell_per_shipment"] + e["shock_per_shipment"] for e in (sf, jd))
    assert scores["SF"] == 1.0
    assert scores["JD"] == pytest.approx((1 + 4 * x_sf) / (1 + 4 * x_jd), abs=1e-4)
    assert scores["JD"] < 0.8
    assert scores["EMS"] == 0.5  # no data: neutral
