"""Wire formats through the binding: the same events as JSON, protobuf and Arrow give the same
alerts; batch boundaries never change them; malformed input becomes dead letters."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from conftest import SHOCK, T0, ndjson
from streamguard import Engine, _core
from streamguard.sim import Simulator


def engine_for(rules_path: object) -> Engine:
    return Engine(rules_path)  # type: ignore[arg-type]


def read_ipc_streams(data: bytes) -> list[pa.RecordBatch]:
    """Every batch of one or more concatenated Arrow IPC streams."""
    src = pa.BufferReader(data)
    batches: list[pa.RecordBatch] = []
    while src.tell() < src.size():
        batches.extend(pa.ipc.open_stream(src))
    return batches


def test_the_feed_raises_alerts(rules_path, small_feed) -> None:
    engine = engine_for(rules_path)
    alerts = engine.process_dicts(small_feed)
    assert len(alerts) > 10
    assert {a["state"] for a in alerts} >= {"firing", "resolved"}
    assert {a["kind"] for a in alerts} == {"threshold", "dwell"}
    assert engine.stats()["shipments"] > 100


def test_json_and_protobuf_give_identical_alerts(rules_path, small_feed_valid) -> None:
    proto, rejected = _core.convert(small_feed_valid, "json", "protobuf")
    assert rejected == 0
    from_json = engine_for(rules_path).process_json(small_feed_valid)
    from_proto = engine_for(rules_path).process_json(proto, "protobuf")
    assert from_json
    assert from_proto == from_json


def test_arrow_gives_the_alerts_of_its_row_order(rules_path, small_feed_valid) -> None:
    # An Arrow stream holds one batch per kind, so its events are grouped by kind: the same
    # events in that order, as JSON, must give exactly the same alerts.
    arrow, _ = _core.convert(small_feed_valid, "json", "arrow")
    grouped, _ = _core.convert(small_feed_valid, "json", "json", group_by_kind=True)
    from_json = engine_for(rules_path).process_json(grouped)
    assert from_json
    assert engine_for(rules_path).process_json(arrow, "arrow") == from_json
    # pyarrow objects take the zero-copy path and agree too.
    batches = read_ipc_streams(arrow)
    engine = engine_for(rules_path)
    assert b"".join(engine.process_json(b) for b in batches) == from_json
    table = pa.Table.from_batches(batches[:1])
    first = engine_for(rules_path).process_json(batches[0])
    assert engine_for(rules_path).process_json(table) == first
    reader = pa.RecordBatchReader.from_batches(batches[0].schema, batches[:1])
    assert engine_for(rules_path).process_json(reader) == first


def test_simulated_arrow_and_protobuf_chunks_carry_the_same_events(rules_path) -> None:
    def stats(fmt: str) -> tuple[int, int, int]:
        sim = Simulator(seed=11, shipments=200, events=10_000, invalid_rate=0.0)
        engine = engine_for(rules_path)
        for c in sim.chunks(2_500, fmt):
            engine.process(c, fmt)
        s = engine.stats()
        return s["events_in"], sum(s["rejected"].values()), s["shipments"]

    sim = Simulator(seed=11, shipments=200, events=10_000, invalid_rate=0.0)
    total = sum(1 for _ in sim.chunks(10_000))
    assert total >= 1
    assert stats("arrow") == stats("protobuf") == (sim.events_emitted, 0, 200)


@pytest.mark.parametrize("lines_per_chunk", [1, 7, 500, 4_096])
def test_chunk_boundaries_never_change_the_alerts(rules_path, small_feed, lines_per_chunk) -> None:
    whole = engine_for(rules_path)
    expected = whole.process_json(small_feed)
    lines = small_feed.splitlines(keepends=True)
    engine = engine_for(rules_path)
    got = b"".join(
        engine.process_json(b"".join(lines[i : i + lines_per_chunk]))
        for i in range(0, len(lines), lines_per_chunk)
    )
    assert got == expected
    assert engine.stats() == whole.stats()


def test_simulator_chunk_size_does_not_change_the_alerts(rules_path) -> None:
    def run(chunk: int) -> bytes:
        sim = Simulator(seed=5, shipments=150, events=8_000)
        engine = engine_for(rules_path)
        return b"".join(engine.process_json(c, "protobuf") for c in sim.chunks(chunk, "protobuf"))

    assert run(100) == run(8_000)


def test_bad_json_lines_among_good_ones() -> None:
    good = [
        {"kind": "sensor", "shipment": "S1", "device": "D1", "ts": T0, "shock_g": 9.5},
        {"kind": "scan", "shipment": "S1", "carrier": "SF", "ts": T0, "status": "IN_TRANSIT"},
    ]
    bad_lines = {
        "malformed": b'{"kind": "scan", "shipment": oops',
        "bad_ts": b'{"kind": "sensor", "shipment": "S2", "ts": "last tuesday", "shock_g": 1}',
        "bad_kind": b'{"kind": "teleport", "shipment": "S3", "ts": 1}',
        "bad_status": b'{"kind": "scan", "shipment": "S4", "ts": 1, "status": "LOST"}',
        "bad_shipment": b'{"kind": "scan", "shipment": "", "ts": 1, "status": "IN_TRANSIT"}',
    }
    feed = ndjson(good[:1]) + b"\n".join(bad_lines.values()) + b"\n" + ndjson(good[1:])
    engine = Engine({"rules": [SHOCK]})
    alerts = engine.process_dicts(feed)
    assert [a["id"] for a in alerts] == [f"shock-3g:S1:{T0}"]
    dead = engine.dead_letters
    assert sorted(d.reason for d in dead) == sorted(bad_lines)
    for d in dead:
        assert d.raw.strip() == bad_lines[d.reason], d
        assert d.detail
    stats = engine.stats()
    assert stats["accepted"] == 2
    assert {r: n for r, n in stats["rejected"].items() if n} == dict.fromkeys(bad_lines, 1)


def test_truncated_protobuf_is_a_dead_letter(rules_path, small_feed_valid) -> None:
    proto, _ = _core.convert(small_feed_valid, "json", "protobuf")
    engine = engine_for(rules_path)
    engine.process(proto[: len(proto) // 2 + 3], format="protobuf")
    dead = engine.dead_letters
    assert dead, "a truncated message must be surfaced"
    assert {d.reason for d in dead} == {"malformed"}
    assert all(d.raw for d in dead)
    assert engine.stats()["rejected"]["malformed"] == len(dead)


def test_garbage_protobuf_and_arrow_bytes(rules_path) -> None:
    engine = engine_for(rules_path)
    engine.process(b"\xff\xff\xff\xff not protobuf", format="protobuf")
    engine.process(b"definitely not an arrow stream", format="arrow")
    dead = engine.dead_letters
    assert [d.reason for d in dead] == ["malformed", "malformed"]
    assert dead[1].raw == b"definitely not an arrow stream"


def test_arrow_with_the_wrong_schema(rules_path) -> None:
    wrong = pa.record_batch({"parcel": ["S1", "S2"], "when": [1, 2]})
    engine = engine_for(rules_path)
    assert engine.process(wrong).num_rows == 0
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, wrong.schema) as writer:
        writer.write_batch(wrong)
    engine.process(sink.getvalue().to_pybytes(), format="arrow")
    dead = engine.dead_letters
    assert [d.reason for d in dead] == ["schema", "schema"]
    assert all(d.detail for d in dead)
    # ts of the wrong type is a schema error too, not a crash.
    typed_wrong = pa.record_batch(
        {"kind": ["sensor"], "shipment": ["S1"], "ts": ["soon"], "shock_g": [1.0]}
    )
    engine.process(typed_wrong)
    assert [d.reason for d in engine.dead_letters] == ["schema"]


def test_process_arrow_rejects_non_arrow_objects(rules_path) -> None:
    engine = engine_for(rules_path)
    with pytest.raises(TypeError, match="expected a pyarrow RecordBatch"):
        engine._core.process_arrow([1, 2, 3])


def test_convert_round_trip_keeps_every_event(small_feed_valid) -> None:
    proto, _ = _core.convert(small_feed_valid, "json", "protobuf")
    back, rejected = _core.convert(proto, "protobuf", "json")
    assert rejected == 0
    assert len(back.splitlines()) == len(small_feed_valid.splitlines())
    first = json.loads(back.splitlines()[0])
    assert first == json.loads(small_feed_valid.splitlines()[0])


def _batch_with_shipment_bytes(raw: bytes) -> pa.RecordBatch:
    offsets = pa.py_buffer(bytes(memoryview(pa.array([0, len(raw)], pa.int32()).buffers()[1])))
    shipment = pa.Array.from_buffers(pa.utf8(), 1, [None, offsets, pa.py_buffer(raw)])
    return pa.RecordBatch.from_arrays(
        [shipment, pa.array([T0], pa.int64()), pa.array([9.0])],
        schema=pa.schema(
            [("shipment", pa.utf8()), ("ts", pa.int64()), ("shock_g", pa.float64())],
            metadata={"streamguard.kind": "sensor"},
        ),
    )


def test_invalid_arrow_data_from_pyarrow_is_a_dead_letter(rules_path) -> None:
    invalid_utf8 = _batch_with_shipment_bytes(b"S\xff\xfe")
    engine = engine_for(rules_path)
    assert engine.process(invalid_utf8).num_rows == 0
    (dead,) = engine.dead_letters
    assert dead.reason == "malformed"
    assert dead.detail.startswith("invalid Arrow data: ")
    # Without the per-row Arrow checks the row still meets the engine's own validation.
    engine.process(invalid_utf8, validate=False)
    assert [d.reason for d in engine.dead_letters] == ["bad_shipment"]
    # A valid batch is evaluated either way.
    ok = _batch_with_shipment_bytes(b"S1")
    for validate in (True, False):
        alerts = engine_for(rules_path).process_dicts(ok, validate=validate)
        # fragile-shock-2g's `where` needs the shipment's attributes, unknown here.
        assert [a["id"] for a in alerts] == [f"shock-3g:S1:{T0}"]
