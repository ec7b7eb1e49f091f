"""The engine live on a real nats-server: end to end, crash safety, duplicates, hot reload, DLQ.

Every test gets its own server (``live_stack``), so streams start empty. Alerts are checked
against ``Engine`` replaying the events of SG_EVENTS in stream order (spec §3.2: a batched or
restarted engine must give the same alerts).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from natsfix import NatsStack, read_stream
from streamguard import Engine
from streamguard.errors import NatsError, RuleError
from streamguard.live import SIM_CARRIERS, SIM_GATEWAYS, LiveEngine, feed_credentials, publish_sim
from streamguard.sim import Simulator, example_rules
from streamguard.stack import NatsServer

FORMAT_OF = {
    "application/json": "json",
    "application/x-protobuf": "protobuf",
    "application/vnd.apache.arrow.stream": "arrow",
}
KIND_OF = {"scan": "scan", "sensor": "sensor", "ship": "shipment"}


def alert_ids(stack: NatsStack) -> list[str]:
    """``{id}:{state}`` of every record on SG_ALERTS, in order."""
    out = []
    for m in read_stream(stack, "SG_ALERTS"):
        a = json.loads(m.data)
        assert m.headers["Nats-Msg-Id"] == f"{a['id']}:{a['state']}"
        assert m.subject == f"sg.alert.{a['severity']}"
        out.append(m.headers["Nats-Msg-Id"])
    return out


def replay_ids(stack: NatsStack, rules: str) -> list[str]:
    """What ``streamguard replay`` gives for SG_EVENTS in stream order."""
    engine = Engine(rules)
    out = []
    for m in read_stream(stack, "SG_EVENTS"):
        fmt = FORMAT_OF[(m.headers or {}).get("Content-Type", "application/json")]
        kind = KIND_OF[m.subject.split(".")[1]]
        out += [f"{a['id']}:{a['state']}" for a in engine.process_dicts(m.data, fmt, kind)]
        engine.discard_dead_letters()
    return out


async def _caught_up(stack: NatsStack, durable: str, filtered: bool) -> bool:
    async with stack.connect("engine") as (nc, _):
        js = nc.jetstream()
        last = (await js.stream_info("SG_EVENTS")).state.last_seq
        try:
            info = await js.consumer_info("SG_EVENTS", durable)
        except Exception:
            return False
        return bool(
            (filtered or info.delivered.stream_seq == last)
            and info.num_pending == 0
            and info.num_ack_pending == 0
        )


def wait_caught_up(
    stack: NatsStack, durable: str = "sg-engine", timeout: float = 60, filtered: bool = False
) -> None:
    """Until ``durable`` has been handed and has acked everything (a ``filtered`` consumer
    sees only its partition's messages)."""
    deadline = time.monotonic() + timeout
    while not asyncio.run(_caught_up(stack, durable, filtered)):
        assert time.monotonic() < deadline, "the engine did not catch up with SG_EVENTS"
        time.sleep(0.1)


def live_engine(stack: NatsStack, tmp_path: Path, **kw: Any) -> LiveEngine:
    creds = stack.creds("engine")
    kw.setdefault("rules", example_rules())
    kw.setdefault("time", "event")
    return LiveEngine(
        stack.url,
        state_dir=str(tmp_path / "engine"),
        user=creds.user,
        password=creds.password,
        tick_ms=100,
        checkpoint_ms=200,
        **kw,
    )


def feed(stack: NatsStack, seed: int = 3, events: int = 20_000, **kw: Any) -> dict[str, Any]:
    sim = Simulator(seed=seed, shipments=200, events=events, invalid_rate=0.0)
    return publish_sim(sim, stack.url, creds=feed_credentials(stack.server), **kw)


def test_end_to_end_alerts_equal_replay(live_stack: NatsStack, tmp_path: Path) -> None:
    engine = live_engine(live_stack, tmp_path)
    engine.start()
    try:
        sent = feed(live_stack, sensor_format="protobuf")
        wait_caught_up(live_stack)
        status = engine.status()
    finally:
        engine.stop()
    assert sent["events"] > 10_000
    assert status["phase"] == "running"
    assert status["engine"]["accepted"] + status["engine"]["out_of_order"] == sent["events"]
    got = alert_ids(live_stack)
    assert len(got) > 50, "the feed should raise alerts"
    assert got == replay_ids(live_stack, example_rules())
    assert status["alerts_published"] == len(got)
    assert engine.recent_alerts(), "the console's alert tail is filled"


def test_arrow_uploads_and_one_event_messages_mix(live_stack: NatsStack, tmp_path: Path) -> None:
    engine = live_engine(live_stack, tmp_path)
    engine.start()
    try:
        feed(live_stack, seed=5, events=5_000, sensor_format="arrow", upload=64)
        wait_caught_up(live_stack)
    finally:
        engine.stop()
    got = alert_ids(live_stack)
    assert got
    assert got == replay_ids(live_stack, example_rules())


def _engine_cmd(stack: NatsStack, tmp_path: Path, rules: Path) -> list[str]:
    creds = stack.creds("engine")
    return [
        sys.executable, "-m", "streamguard", "engine", "--nats-url", stack.url,
        "--rules", str(rules), "--time", "event", "--state-dir", str(tmp_path / "state"),
        "--user", creds.user, f"--password={creds.password}", "--quiet",
    ]  # fmt: skip


def kill_9_three_times(stack: NatsStack, cmd: list[str], rate: float) -> dict[str, Any]:
    """Run ``cmd`` (an engine) while a feed is published, ``kill -9`` it three times
    mid-stream, restart it each time, let it catch up and stop it with SIGTERM. Returns what
    the feed published."""
    done = threading.Event()
    errors: list[BaseException] = []
    sent: dict[str, Any] = {}

    def publish() -> None:
        try:
            # Slow enough that the kills land mid-stream.
            sent.update(feed(stack, seed=11, events=60_000, rate=rate))
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    def start() -> subprocess.Popen[str]:
        # Started means the consumer is re-created: a caught-up check before that would see
        # the previous incarnation's consumer.
        p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        assert p.stderr is not None
        line = p.stderr.readline()
        assert "consuming SG_EVENTS" in line, line + p.stderr.read()
        return p

    publisher = threading.Thread(target=publish)
    proc = start()
    publisher.start()
    kills = 0
    try:
        for delay in (0.3, 0.4, 0.5):
            time.sleep(delay)
            assert not done.is_set(), "the feed ended before the kill: slow it down"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
            kills += 1
            proc = start()
        publisher.join()
        assert not errors, errors
        wait_caught_up(stack)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        assert proc.stderr is not None
        tail = proc.stderr.read()
        proc.stderr.close()
        assert code == 0, tail
    assert kills == 3
    return sent


def test_kill_9_three_times_neither_loses_nor_repeats_an_alert(
    live_stack: NatsStack, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(example_rules())
    kill_9_three_times(live_stack, _engine_cmd(live_stack, tmp_path, rules), rate=12_000)
    got = alert_ids(live_stack)
    want = replay_ids(live_stack, example_rules())
    assert len(got) == len(set(got)), "an alert record was published twice"
    assert got == want


def test_kill_9_with_storage_stores_every_event_and_alert_once(
    live_stack: NatsStack, tmp_path: Path
) -> None:
    from streamguard.store import open_store

    rules = tmp_path / "rules.json"
    rules.write_text(example_rules())
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    cmd = [*_engine_cmd(live_stack, tmp_path, rules), "--dsn", dsn]
    sent = kill_9_three_times(live_stack, cmd, rate=6_000)
    alerts = alert_ids(live_stack)
    dead = read_stream(live_stack, "SG_DLQ")
    with open_store(dsn) as store:
        stored = 0
        for table in ("scans", "sensor_readings", "shipments"):
            [(n, unique)] = store.rows(f"SELECT count(), uniqExact(seq, idx) FROM {table}")
            assert n == unique, f"{table}: {n - unique} events stored twice"
            stored += n
        [(n_alerts, unique_alerts)] = store.rows("SELECT count(), uniqExact(id, state) FROM alerts")
        [(n_dead,)] = store.rows("SELECT count() FROM dead_letters")
    assert stored == sent["events"], "every published event is stored, once"
    assert n_alerts == unique_alerts == len(alerts) > 0
    assert n_dead == len(dead)


def test_same_events_twice_give_no_duplicate_alerts(live_stack: NatsStack, tmp_path: Path) -> None:
    engine = live_engine(live_stack, tmp_path)
    engine.start()
    try:
        sent = feed(live_stack, seed=4, events=5_000)
        wait_caught_up(live_stack)
        first = alert_ids(live_stack)
        # An at-least-once publisher sends the whole feed again.
        feed(live_stack, seed=4, events=5_000)
        wait_caught_up(live_stack)
        status = engine.status()
    finally:
        engine.stop()
    assert first
    assert alert_ids(live_stack) == first
    assert status["engine"]["events_in"] == 2 * sent["events"]


async def _put_rules(stack: NatsStack, text: str) -> None:
    async with stack.connect("control") as (nc, _):
        kv = await nc.jetstream().key_value("sg_rules")
        await kv.put("active", text.encode())


def _wait_status(engine: LiveEngine, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        s = engine.status()
        if pred(s):
            return s
        assert time.monotonic() < deadline, f"status never matched: {s}"
        time.sleep(0.02)


def test_hot_reload_from_kv_while_events_flow(live_stack: NatsStack, tmp_path: Path) -> None:
    engine = live_engine(live_stack, tmp_path)
    engine.start()
    rejected: list[bytes] = []

    async def listen_and_put(text: str) -> None:
        async with live_stack.connect("control") as (nc, _):
            got = asyncio.Event()

            async def on_msg(msg: Any) -> None:
                rejected.append(msg.data)
                got.set()

            await nc.subscribe("sg.rules.rejected", cb=on_msg)
            await nc.flush()
            kv = await nc.jetstream().key_value("sg_rules")
            await kv.put("active", text.encode())
            await asyncio.wait_for(got.wait(), 5)

    try:
        publisher = threading.Thread(
            target=feed, args=(live_stack, 6, 20_000), kwargs={"rate": 20_000}
        )
        publisher.start()
        time.sleep(0.2)
        new = json.loads(example_rules())
        new["version"] = 99
        started = time.monotonic()
        asyncio.run(_put_rules(live_stack, json.dumps(new)))
        _wait_status(engine, lambda s: s["rules_version"] == 99)
        assert time.monotonic() - started < 1.0, "a valid set must be live within 1 s"

        bad = json.loads(example_rules())
        bad["version"] = 100
        bad["rules"][0]["op"] = "bigger"
        asyncio.run(listen_and_put(json.dumps(bad)))
        s = _wait_status(engine, lambda s: s["rules_error"] is not None)
        publisher.join()
        wait_caught_up(live_stack)
        final = engine.status()
    finally:
        engine.stop()
    assert s["rules_version"] == 99, "an invalid set leaves the running one in place"
    assert "op" in s["rules_error"]
    reason = json.loads(rejected[0])
    assert reason["rule"] == "shock-3g"
    assert reason["field"] == "op"
    assert reason["running_version"] == 99
    assert final["phase"] == "running"


def test_malformed_messages_land_in_the_dlq(live_stack: NatsStack, tmp_path: Path) -> None:
    engine = live_engine(live_stack, tmp_path)
    engine.start()

    async def publish() -> None:
        async with live_stack.connect("carrier-SF") as (nc, _):
            js = nc.jetstream()
            await js.publish("sg.scan.SF", b'{"shipment": "S1", "ts": 1, "status": "PICKED_UP"')
            await js.publish("sg.scan.SF", b"a,b,c", headers={"Content-Type": "text/csv"})
            await js.publish("sg.scan.SF", b'{"shipment": "S1", "ts": 5, "status": "TELEPORTED"}')
            await js.publish("sg.scan.SF", b'{"shipment": "S1", "ts": 9, "status": "PICKED_UP"}')

    try:
        asyncio.run(publish())
        wait_caught_up(live_stack)
        status = engine.status()
    finally:
        engine.stop()
    dead = read_stream(live_stack, "SG_DLQ")
    assert [m.subject for m in dead] == [
        "sg.dlq.malformed",
        "sg.dlq.malformed",
        "sg.dlq.bad_status",
    ]
    assert dead[0].data == b'{"shipment": "S1", "ts": 1, "status": "PICKED_UP"'
    assert dead[1].data == b"a,b,c"
    assert "text/csv" in dead[1].headers["Sg-Detail"]
    assert dead[2].headers["Sg-Reason"] == "bad_status"
    assert dead[2].headers["Sg-Subject"] == "sg.scan.SF"
    assert status["engine"]["accepted"] == 1
    assert sum(status["engine"]["rejected"].values()) == 3


def test_bad_seed_rules_and_unreachable_server_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="op"):
        LiveEngine("nats://127.0.0.1:1", rules='{"rules": [{"id": "x", "kind": "threshold", '
                   '"metric": "shock_g", "op": "bigger", "value": 1}]}')  # fmt: skip
    engine = LiveEngine("nats://127.0.0.1:1", rules=example_rules())
    with pytest.raises(NatsError, match=r"cannot connect to NATS at nats://127\.0\.0\.1:1"):
        engine.start()
    assert engine.status()["phase"] == "failed"


def test_up_runs_the_stack_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamguard", "up", "--demo", "--var", str(tmp_path / "var"),
         "--rate", "3000"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "events" in line and "running" in line and "fired" in line:
            events = int(line.split("events ")[1].split(" ")[0].replace(",", ""))
            if events > 0:
                break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=30) == 0, "".join(lines) + rest
    assert any("nats-server at nats://127.0.0.1:" in x for x in lines), lines
    assert not any(":4222" in x for x in lines)
    assert "stopping" in rest
    assert (tmp_path / "var" / "engine" / "sg-engine.ckpt").exists()
    assert (tmp_path / "var" / "nats" / "creds" / "carrier-SF.json").exists()
    from streamguard.store import open_store

    with open_store(f"chdb://{tmp_path / 'var' / 'clickhouse'}") as store:
        [(stats_rows, max_events)] = store.rows("SELECT count(), max(accepted) FROM engine_stats")
        [(events,)] = store.rows(
            "SELECT (SELECT count() FROM scans) + (SELECT count() FROM sensor_readings) "
            "+ (SELECT count() FROM shipments)"
        )
    assert stats_rows >= 1
    assert events >= max_events > 0, "the demo's events are stored"


def test_two_partitioned_workers_match_one_worker(tmp_path: Path) -> None:
    """Worker k of 2 consumes sg.<kind>.*.*.<k>: per-event messages get their partition from
    the server's subject mapping, uploads are split by the publisher. Together the two give
    the alerts of one engine over the whole stream."""
    with NatsServer(tmp_path / "var", SIM_CARRIERS, SIM_GATEWAYS, partitions=2) as server:
        stack = NatsStack(server)
        workers = [live_engine(stack, tmp_path / f"w{k}", partition=(k, 2)) for k in (0, 1)]
        for w in workers:
            w.start()
        try:
            sent = feed(stack, seed=8, events=20_000, partitions=2)
            for k in (0, 1):
                wait_caught_up(stack, f"sg-engine-p{k}", filtered=True)
            # The last watermark exchange: both workers end at the input's W.
            _wait_status(
                workers[0],
                lambda s: s["engine"]["watermark"] == workers[1].status()["engine"]["watermark"],
            )
            statuses = [w.status() for w in workers]
        finally:
            for w in workers:
                w.stop()
        events = read_stream(stack, "SG_EVENTS")
        got = alert_ids(stack)
        want = replay_ids(stack, example_rules())
    assert [s["durable"] for s in statuses] == ["sg-engine-p0", "sg-engine-p1"]
    for k, s in enumerate(statuses):
        e = s["engine"]
        assert e["accepted"] > 1000, f"worker {k} got no share of the work: {statuses}"
        assert e["rejected"]["bad_shipment"] == 0, "a message reached the wrong worker"
    assert sum(s["engine"]["events_in"] for s in statuses) == sent["events"]
    # Every stored subject names its partition in the fifth token.
    assert all(len(m.subject.split(".")) == 5 for m in events)
    assert len(got) == len(set(got))
    # Retractions depend on when the watermark passed a deadline relative to a late scan,
    # which differs between one engine and two; everything else must be identical.
    retracted = {i.rsplit(":", 1)[0] for i in got + want if i.endswith(":retracted")}

    def settled(ids: list[str]) -> list[str]:
        return sorted(i for i in ids if i.rsplit(":", 1)[0] not in retracted)

    assert len(settled(want)) > 50
    assert settled(got) == settled(want)


def test_one_message_raising_thousands_of_alerts_does_not_stall(
    live_stack: NatsStack, tmp_path: Path
) -> None:
    """More outputs than the client's 5000 unacknowledged publishes, from one message."""
    engine = live_engine(live_stack, tmp_path)
    engine.start()
    n = 7_000
    body = "\n".join(
        json.dumps({"kind": "sensor", "shipment": f"BURST{i}", "ts": 1_000 + i, "shock_g": 9.0})
        for i in range(n)
    ).encode()

    async def publish() -> None:
        async with live_stack.connect("gateway-gw01") as (nc, _):
            await nc.jetstream().publish("sg.sensor.gw01", body)

    try:
        asyncio.run(publish())
        wait_caught_up(live_stack, timeout=30)
        status = engine.status()
    finally:
        engine.stop()
    assert status["alerts_published"] == n
    assert len(alert_ids(live_stack)) == n


def test_simulate_publishes_into_a_running_stack(
    live_stack: NatsStack, tmp_path: Path, cli: Any
) -> None:
    engine = live_engine(live_stack, tmp_path)
    engine.start()
    try:
        r = cli(
            "simulate", "--nats-url", live_stack.url, "--var", live_stack.var_dir,
            "--events", "4000", "--shipments", "100", "--sensor-format", "arrow",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "as each carrier and gateway" in r.stderr
        wait_caught_up(live_stack)
        status = engine.status()
    finally:
        engine.stop()
    subjects = {".".join(m.subject.split(".")[:2]) for m in read_stream(live_stack, "SG_EVENTS")}
    assert subjects == {"sg.scan", "sg.sensor", "sg.ship"}
    assert status["engine"]["events_in"] > 3000
    # Without the stack's credentials the server refuses the feed: a clear error, exit 2.
    r = cli("simulate", "--nats-url", live_stack.url, "--var", tmp_path / "none", "--events", "10")
    assert r.returncode == 2
    assert "streamguard: error:" in r.stderr
    assert "Authorization" in r.stderr or "authorization" in r.stderr
