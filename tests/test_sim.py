"""The simulator: seeded, realistic, in every format."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from streamguard.errors import ConfigError
from streamguard.sim import Simulator, example_rules


def test_same_seed_same_feed_other_seed_other_feed() -> None:
    a = b"".join(Simulator(seed=1, shipments=100, events=3_000).chunks(1_000))
    b = b"".join(Simulator(seed=1, shipments=100, events=3_000).chunks(1_000))
    c = b"".join(Simulator(seed=2, shipments=100, events=3_000).chunks(1_000))
    assert a == b
    assert a != c


def test_feed_is_realistic() -> None:
    sim = Simulator(seed=9, shipments=400, events=30_000, invalid_rate=0.01)
    kinds: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    metrics: Counter[str] = Counter()
    shipments: set[str] = set()
    invalid = 0
    for chunk in sim.chunks(5_000):
        for line in chunk.splitlines():
            try:
                e = json.loads(line)
                kinds[e["kind"]] += 1
                shipments.add(e["shipment"])
            except (ValueError, KeyError, TypeError):
                invalid += 1
                continue
            if e["kind"] == "scan":
                statuses[e["status"]] += 1
            for m in ("shock_g", "temp_c", "humidity_pct", "battery_pct"):
                metrics[m] += m in e
    # The event count is approximate: whole scan sequences, sensor readings fill the rest.
    assert 27_000 < sim.events_emitted < 33_000
    assert {"shipment", "scan", "sensor"} <= set(kinds)
    assert kinds["shipment"] >= 400
    assert {"PICKED_UP", "IN_TRANSIT", "DELIVERED"} <= set(statuses)
    assert all(metrics[m] > 0 for m in metrics), metrics
    assert len(shipments) >= 400
    assert sim.invalid_emitted > 0


@pytest.mark.parametrize("fmt", ["json", "protobuf", "arrow"])
def test_every_format_is_written(fmt: str) -> None:
    chunks = list(Simulator(seed=4, shipments=50, events=2_000).chunks(300, fmt))
    assert len(chunks) >= 4
    assert all(chunks)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        Simulator(shipments=0)
    with pytest.raises(ConfigError):
        Simulator(invalid_rate=2.0)
    with pytest.raises(ConfigError):
        Simulator().next_chunk(100, "xml")


def test_example_rules_parse() -> None:
    doc = json.loads(example_rules())
    assert len(doc["rules"]) >= 8


def test_lane_truths_follow_the_depots() -> None:
    sim = Simulator(
        seed=3,
        shipments=100,
        events=2_000,
        invalid_rate=0.0,
        depots=["CN-44"],
        customer_provinces=["CN-440300", "CN-11"],
    )
    lanes = sim.lane_truths()
    pairs = {(lane["origin"], lane["dest"]) for lane in lanes}
    assert pairs == {("CN-44", "CN-44"), ("CN-44", "CN-11"), ("CN-11", "CN-44")}
    assert len({lane["carrier"] for lane in lanes}) == 8
    assert sum(lane["share"] for lane in lanes) == pytest.approx(1.0)
    assert all(0 < lane["p50_ms"] < lane["p90_ms"] for lane in lanes)
    assert all(0 < lane["damage_rate"] < 1 for lane in lanes)
    for chunk in sim.chunks(1_000):
        for line in chunk.splitlines():
            e = json.loads(line)
            if e["kind"] == "shipment":
                assert "CN-440000" in (e["origin"], e["dest"])
    with pytest.raises(ConfigError):
        Simulator(depots=["CN-71"])
    with pytest.raises(ConfigError):
        Simulator(customer_provinces=["Guangdong"])
