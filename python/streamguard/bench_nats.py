"""``streamguard bench --nats``: end to end through a real nats-server, on this machine.

Publisher (``publish_sim``, the carriers' and gateways' own NATS users), a private
``nats-server`` (JetStream, file storage) and the live engine (``LiveEngine``, event time, the
example rule set) all run here, so they share the machine's cores. Every repetition of every
scenario starts a fresh server (temp dir, free ports) and a fresh engine, so streams and keyed
state start empty.

- ``nats_batched``: uploads of ``UPLOAD`` (1000) events per protobuf message, scans and shipment
  events included (``batched=True``), each message PubAck'ed (the headline: nothing is lost).
  The same feed with plain publishes is reported as ``nats_batched_unacked``: faster, but an
  overloaded server drops messages (seen: 1 of 8,411), which its ``lost`` column shows.
- ``nats_per_event``: one event per NATS message: scans and shipment events one JSON object per
  message; sensor readings, which a gateway can only send as protobuf/Arrow uploads, as uploads
  of one reading (``upload=1``). Every message carries exactly one event.
- ``alert_latency``: a background feed at half the measured ``nats_batched`` rate; meanwhile
  ``PROBE_COUNT`` probes, each a JSON sensor reading with ``shock_g`` 9.0 for a shipment of its
  own (``PROBE-<n>``, so the ``shock-3g`` rule fires at once), published as a gateway user; a
  ``control`` subscriber on ``sg.alert.critical`` takes the time each firing alert arrives.

Throughput = events published / seconds from the first publish until the engine has processed
them all (``status()["engine"]["events_in"]`` equals the events published; it is polled every
few ms). An event that never arrives is lost: the engine must end with exactly the published
count (``lost`` and ``duplicated`` are reported and must be 0). A run whose engine makes no
progress for ``STALL_S`` seconds ends as stalled, with what the engine and the streams show.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from streamguard.bench import Result, _machine, summarize
from streamguard.live import (
    SIM_CARRIERS,
    SIM_GATEWAYS,
    LiveEngine,
    feed_credentials,
    publish_sim,
)
from streamguard.sim import Simulator, example_rules
from streamguard.stack import CONTROL_USER, ENGINE_USER, NatsCredentials, NatsServer
from streamguard.store import open_store
from streamguard.store.writer import StoreWriter

__all__ = [
    "NATS_SCENARIOS",
    "NatsBenchError",
    "NatsSizes",
    "run_bench_nats",
]

NATS_SCENARIOS = ("nats_batched", "nats_batched_stored", "nats_per_event", "alert_latency")
SEED = 42
UPLOAD = 1000
SENSOR_FORMAT = "protobuf"
# The targets of ARCHITECTURE.md (publisher, server and engine on the same 2 cores).
TARGET_BATCHED = 5_000_000.0
TARGET_PER_EVENT = 500_000.0
TARGET_STORED = 1_000_000.0
TARGET_P99_MS = 50.0
# The simulator plays each shipment's whole life in ~800 events: enough shipments that the
# feed is not cut short, few enough that scans keep realistic gaps (dwell alerts stay rare).
EVENTS_PER_SHIPMENT = 400
# A run ends as stalled when the engine's event count does not move for this long.
STALL_S = 15.0
POLL_S = 0.002
PROGRESS_S = 2.0
# alert_latency: the background feed runs this long before the first probe, and is published
# in slices of this many seconds (publish_sim cannot be interrupted from Python).
WARMUP_S = 1.0
SLICE_S = 0.5
PROBE_GATEWAY = SIM_GATEWAYS[0]
# How long after the last probe its alert may still come.
PROBE_TIMEOUT_S = 5.0


class NatsBenchError(RuntimeError):
    """A run that could not be measured: the engine failed or stalled, the feed failed."""


@dataclass(frozen=True)
class NatsSizes:
    batched_events: int
    per_event_events: int
    probes: int
    probe_interval_s: float
    repeat: int
    #: NATS messages the engine pulls and evaluates per batch (LiveEngine's ``batch``).
    engine_batch: int = 1000


DEFAULT = NatsSizes(
    batched_events=8_000_000,
    per_event_events=300_000,
    probes=500,
    probe_interval_s=0.01,
    repeat=3,
)
QUICK = NatsSizes(
    batched_events=2_000_000,
    per_event_events=100_000,
    probes=200,
    probe_interval_s=0.005,
    repeat=1,
)


def _log(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


@dataclass
class FeedRun:
    """One repetition of a throughput scenario."""

    events: int
    messages: int
    bytes: int
    seconds: float
    publish_seconds: float
    events_in: int
    lost: int
    duplicated: int
    rejected: int
    alerts_published: int
    #: nats_batched_stored: bytes on disk per stored event (chDB's active parts).
    bytes_on_disk_per_event: float | None = None


@dataclass
class Throughput:
    """A throughput scenario: bench.Result (median and min/max over repetitions) plus what the
    feed was and whether every event arrived."""

    result: Result
    target_events_per_s: float
    acks: bool
    batched: bool
    upload: int
    sensor_format: str
    shipments: int
    messages: int
    events_per_message: float
    lost: int
    duplicated: int
    rejected: int
    headline: bool
    note: str
    runs: list[FeedRun] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return self.result.events_per_s >= self.target_events_per_s and self.lost == 0

    def doc(self) -> dict[str, Any]:
        d = asdict(self.result)
        d.update(
            target_events_per_s=self.target_events_per_s,
            met=self.met,
            headline=self.headline,
            acks=self.acks,
            batched=self.batched,
            upload=self.upload,
            sensor_format=self.sensor_format,
            shipments=self.shipments,
            messages=self.messages,
            events_per_message=self.events_per_message,
            lost=self.lost,
            duplicated=self.duplicated,
            rejected=self.rejected,
            note=self.note,
            runs=[asdict(r) for r in self.runs],
        )
        return d


@dataclass
class LatencyRun:
    p50_ms: float
    p99_ms: float
    max_ms: float
    probes: int
    received: int
    background_rate: float
    background_events: int


@dataclass
class Latency:
    """alert_latency: the median over repetitions of each run's p50/p99/max, the min/max p99."""

    name: str
    p50_ms: float
    p99_ms: float
    max_ms: float
    p99_ms_min: float
    p99_ms_max: float
    probes: int
    missing: int
    target_rate: float
    background_rate: float
    repeats: int
    runs: list[LatencyRun]

    @property
    def met(self) -> bool:
        return self.p99_ms <= TARGET_P99_MS and self.missing == 0

    def doc(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(target_p99_ms=TARGET_P99_MS, met=self.met)
        return d


@contextlib.contextmanager
def _stack(
    tag: str, engine_batch: int, store: bool = False
) -> Iterator[tuple[NatsServer, LiveEngine, StoreWriter | None]]:
    """A private nats-server (the simulator's carriers and gateways as users) and a started
    live engine, both in a fresh temp dir (with ``store``, also chDB there and the storage
    writer); stopped and removed on exit."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"sg-bench-{tag}-"))
        server = stack.enter_context(NatsServer(Path(tmp) / "var", SIM_CARRIERS, SIM_GATEWAYS))
        db = stack.enter_context(open_store(f"chdb://{tmp}/clickhouse")) if store else None
        creds = server.credentials(ENGINE_USER)
        engine = LiveEngine(
            server.url,
            rules=example_rules(),
            time="event",
            state_dir=str(Path(tmp) / "engine"),
            user=creds.user,
            password=creds.password,
            batch=engine_batch,
            store=store,
        )
        engine.start()
        writer = StoreWriter(engine, db) if db is not None else None
        if writer is not None:
            writer.start()
        try:
            yield server, engine, writer
        finally:
            with contextlib.suppress(Exception):  # a stalled engine may not stop in time
                engine.stop(timeout=10.0)
            if writer is not None:
                writer.stop(timeout=10.0)


class _Feed(threading.Thread):
    """``publish_sim`` in a thread (it releases the GIL while it publishes)."""

    def __init__(self, server: NatsServer, sim: Simulator, **kw: Any) -> None:
        super().__init__(name="streamguard-bench-feed", daemon=True)
        self.server, self.sim, self.kw = server, sim, kw
        self.stats: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.stats = publish_sim(
                self.sim, self.server.url, creds=feed_credentials(self.server), **self.kw
            )
        except BaseException as e:
            self.error = e


def _stall_detail(server: NatsServer, status: dict[str, Any]) -> str:
    async def streams() -> str:
        creds = server.credentials(CONTROL_USER)
        nc = Client()
        try:
            await nc.connect(server.url, **creds.connect_kwargs(), allow_reconnect=False)
            js = nc.jetstream()
            events = (await js.stream_info("SG_EVENTS")).state.last_seq
            alerts = (await js.stream_info("SG_ALERTS")).state.messages
            text = f"SG_EVENTS last seq {events:,}, SG_ALERTS {alerts:,} messages"
            if events == status["last_seq"]:
                text += " (the engine has every stored message: the rest was lost in transit)"
            blocked = alerts - status["alerts_published"]
            if blocked > 0:
                text += (
                    f" ({blocked:,} alerts stored from the batch in progress, whose PubAcks "
                    "are not awaited yet)"
                )
            return text
        finally:
            await nc.close()

    try:
        text = asyncio.run(streams())
    except Exception as e:
        text = f"streams unreadable: {e}"
    return (
        f"engine {status['phase']}, {status['messages']:,} messages (last seq "
        f"{status['last_seq']:,}), {status['alerts_published']:,} alerts published; {text}"
        + (f"; error: {status['error']}" if status.get("error") else "")
    )


def _feed_run(name: str, events: int, engine_batch: int, store: bool = False, **kw: Any) -> FeedRun:
    """Publish a fresh simulated feed to a fresh stack and time it until the engine has it all
    (with ``store``: until every event is stored)."""
    sim = Simulator(SEED, max(events // EVENTS_PER_SHIPMENT, 100), events, invalid_rate=0.0)
    with _stack(name, engine_batch, store) as (server, engine, writer):
        feed = _Feed(server, sim, **kw)
        start = time.perf_counter()
        feed.start()
        last_n, last_change, last_note = -1, start, start
        while True:
            status = engine.status()
            now = time.perf_counter()
            n = status["engine"]["events_in"] if writer is None else writer.events
            if status["phase"] == "failed":
                raise NatsBenchError(f"{name}: the engine failed: {status['error']}")
            if feed.error is not None:
                raise NatsBenchError(f"{name}: the feed failed: {feed.error}") from feed.error
            if feed.stats is not None and n >= feed.stats["events"]:
                end = now
                break
            if n != last_n:
                last_n, last_change = n, now
            elif now - last_change > STALL_S:
                published = f"{feed.stats['events']:,}" if feed.stats else "still publishing"
                raise NatsBenchError(
                    f"{name}: the engine stalled at {n:,} events (published: {published}) for "
                    f"{STALL_S:g} s: {_stall_detail(server, status)}"
                )
            if now - last_note >= PROGRESS_S:
                last_note = now
                _log(f"{name}: {n:,} events in the engine after {now - start:.1f} s")
            time.sleep(POLL_S)
        feed.join()
        assert feed.stats is not None
        # Anything beyond the published count (a redelivery) shows up within a few polls.
        time.sleep(0.2)
        status = engine.status()
        disk = _bytes_per_event(writer) if writer is not None else None
    st = feed.stats
    n = status["engine"]["events_in"]
    return FeedRun(
        events=st["events"],
        messages=st["messages"],
        bytes=st["bytes"],
        seconds=end - start,
        publish_seconds=st["seconds"],
        events_in=n,
        lost=max(st["events"] - n, 0),
        duplicated=max(n - st["events"], 0),
        rejected=sum(status["engine"]["rejected"].values()),
        alerts_published=status["alerts_published"],
        bytes_on_disk_per_event=disk,
    )


def _bytes_per_event(writer: StoreWriter) -> float:
    """Bytes on disk per stored event (the event tables' active parts)."""
    [(size, rows)] = writer.store.rows(
        "SELECT sum(bytes_on_disk), sum(rows) FROM system.parts WHERE active "
        "AND database = currentDatabase() "
        "AND table IN ('scans', 'sensor_readings', 'shipments')"
    )
    return float(size) / max(int(rows), 1)


def _throughput(
    name: str,
    events: int,
    repeat: int,
    engine_batch: int,
    *,
    target: float,
    headline: bool,
    note: str,
    acks: bool,
    batched: bool,
    upload: int,
    store: bool = False,
) -> Throughput:
    runs: list[FeedRun] = []
    for i in range(repeat):
        run = _feed_run(
            name,
            events,
            engine_batch,
            store,
            batched=batched,
            upload=upload,
            acks=acks,
            sensor_format=SENSOR_FORMAT,
        )
        runs.append(run)
        _log(
            f"{name} [{i + 1}/{repeat}]: {run.events:,} events in {run.messages:,} messages, "
            f"{run.events / run.seconds:,.0f} events/s (publisher alone "
            f"{run.events / run.publish_seconds:,.0f}/s), lost {run.lost}"
        )
    first = runs[0]
    return Throughput(
        result=summarize(name, first.events, [r.seconds for r in runs]),
        target_events_per_s=target,
        acks=acks,
        batched=batched,
        upload=upload,
        sensor_format=SENSOR_FORMAT,
        shipments=max(events // EVENTS_PER_SHIPMENT, 100),
        messages=first.messages,
        events_per_message=first.events / max(first.messages, 1),
        lost=sum(r.lost for r in runs),
        duplicated=sum(r.duplicated for r in runs),
        rejected=sum(r.rejected for r in runs),
        headline=headline,
        note=note,
        runs=runs,
    )


def _percentile(sorted_ms: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks."""
    if len(sorted_ms) == 1:
        return sorted_ms[0]
    pos = q * (len(sorted_ms) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (pos - lo)


async def _probe(
    url: str,
    gateway: NatsCredentials,
    control: NatsCredentials,
    probes: int,
    interval: float,
    run: int,
) -> list[float]:
    """Publish the probes (as ``gateway``), return each alert's latency in ms (as ``control``)."""
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    all_in = asyncio.Event()

    async def on_alert(msg: Msg) -> None:
        now = time.perf_counter()
        if b'"PROBE-' not in msg.data:
            return
        a = json.loads(msg.data)
        sid = a.get("shipment")
        if a.get("rule") == "shock-3g" and a.get("state") == "firing" and sid in sent:
            got.setdefault(sid, now)
            if len(got) == probes:
                all_in.set()

    sub, pub = Client(), Client()
    try:
        await sub.connect(url, **control.connect_kwargs(), allow_reconnect=False)
        await pub.connect(url, **gateway.connect_kwargs(), allow_reconnect=False)
        await sub.subscribe("sg.alert.critical", cb=on_alert)
        await sub.flush()
        subject = f"sg.sensor.{PROBE_GATEWAY}"
        headers = {"Content-Type": "application/json"}
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for i in range(probes):
            sid = f"PROBE-{run}-{i}"
            body = json.dumps(
                {
                    "shipment": sid,
                    "device": f"probe-{i}",
                    "ts": int(time.time() * 1000),
                    "shock_g": 9.0,
                }
            ).encode()
            sent[sid] = time.perf_counter()
            await pub.publish(subject, body, headers=headers)
            next_at += interval
            await asyncio.sleep(max(next_at - loop.time(), 0.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), PROBE_TIMEOUT_S)
    finally:
        await pub.close()
        await sub.close()
    return [(got[s] - sent[s]) * 1000.0 for s in got]


def _latency_run(rate: float, sizes: NatsSizes, run: int) -> LatencyRun:
    duration = WARMUP_S + sizes.probes * sizes.probe_interval_s + PROBE_TIMEOUT_S
    events = int(rate * duration * 2) + 100_000
    sim = Simulator(SEED, max(events // EVENTS_PER_SHIPMENT, 100), events, invalid_rate=0.0)
    slice_events = max(int(rate * SLICE_S), 1)
    stop = threading.Event()
    published = [0]
    errors: list[BaseException] = []

    with _stack("latency", sizes.engine_batch) as (server, engine, _):
        creds = feed_credentials(server)

        def background() -> None:
            try:
                while not stop.is_set():
                    st = publish_sim(
                        sim,
                        server.url,
                        creds=creds,
                        batched=True,
                        upload=UPLOAD,
                        sensor_format=SENSOR_FORMAT,
                        acks=False,
                        rate=rate,
                        max_events=slice_events,
                    )
                    published[0] += st["events"]
                    if st["events"] == 0:
                        return
            except BaseException as e:
                errors.append(e)

        feeder = threading.Thread(target=background, name="streamguard-bench-bg", daemon=True)
        started = time.perf_counter()
        feeder.start()
        time.sleep(WARMUP_S)
        try:
            latencies = asyncio.run(
                _probe(
                    server.url,
                    server.credentials(f"gateway-{PROBE_GATEWAY}"),
                    server.credentials(CONTROL_USER),
                    sizes.probes,
                    sizes.probe_interval_s,
                    run,
                )
            )
        finally:
            stop.set()
            feeder.join(timeout=30)
        elapsed = time.perf_counter() - started
        status = engine.status()
    if errors:
        raise NatsBenchError(f"alert_latency: the background feed failed: {errors[0]}")
    if status["phase"] == "failed":
        raise NatsBenchError(f"alert_latency: the engine failed: {status['error']}")
    if not latencies:
        raise NatsBenchError(
            f"alert_latency: no probe alert arrived ({sizes.probes} probes); engine "
            f"{status['phase']}, {status['engine']['events_in']:,} events in"
        )
    ms = sorted(latencies)
    return LatencyRun(
        p50_ms=_percentile(ms, 0.50),
        p99_ms=_percentile(ms, 0.99),
        max_ms=ms[-1],
        probes=sizes.probes,
        received=len(ms),
        background_rate=published[0] / elapsed,
        background_events=published[0],
    )


def _latency(rate: float, sizes: NatsSizes) -> Latency:
    runs: list[LatencyRun] = []
    for i in range(sizes.repeat):
        r = _latency_run(rate, sizes, i)
        runs.append(r)
        _log(
            f"alert_latency [{i + 1}/{sizes.repeat}]: p50 {r.p50_ms:.2f} ms, p99 "
            f"{r.p99_ms:.2f} ms, max {r.max_ms:.2f} ms; {r.received}/{r.probes} probes, "
            f"background {r.background_rate:,.0f} events/s"
        )
    p99 = [r.p99_ms for r in runs]
    return Latency(
        name="alert_latency",
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(p99),
        max_ms=statistics.median(r.max_ms for r in runs),
        p99_ms_min=min(p99),
        p99_ms_max=max(p99),
        probes=sum(r.probes for r in runs),
        missing=sum(r.probes - r.received for r in runs),
        target_rate=rate,
        background_rate=statistics.median(r.background_rate for r in runs),
        repeats=len(runs),
        runs=runs,
    )


PER_EVENT_NOTE = (
    "PubAck'ed; every message carries exactly one event: scans and shipment events as one JSON "
    "object, sensor readings (gateways send protobuf/Arrow only) as protobuf uploads of one reading"
)
STORED_NOTE = (
    "as nats_batched, and every event, alert and dead letter stored in chDB (embedded "
    "ClickHouse) before its input is acked; timed until the last event is stored"
)
BATCHED_NOTE = (
    f"uploads of {UPLOAD} events (protobuf) per message, each PubAck'ed (window of {4096:,} in "
    "flight); 0 lost is checked at the engine (events_in == events published)"
)
UNACKED_NOTE = (
    "as nats_batched with plain publishes (no PubAck): an overloaded server may drop messages"
)


def _table(
    throughputs: Sequence[Throughput], latency: Latency | None, failed: dict[str, str]
) -> str:
    head = (
        f"{'scenario':<20}{'events':>12}{'median ev/s':>14}{'min ev/s':>13}{'max ev/s':>13}"
        f"{'median s':>10}{'reps':>6}{'lost':>6}  {'target':<15}{'met':<4}"
    )
    rows = [head, "-" * len(head)]
    for t in throughputs:
        r = t.result
        target = f">= {t.target_events_per_s / 1e6:g} M ev/s"
        rows.append(
            f"{r.name:<20}{r.events:>12,}{r.events_per_s:>14,.0f}{r.events_per_s_min:>13,.0f}"
            f"{r.events_per_s_max:>13,.0f}{r.seconds:>10.3f}{r.repeats:>6}{t.lost:>6}  "
            f"{target:<15}{'yes' if t.met else 'NO':<4}"
        )
    if latency is not None:
        lat = latency
        rows.append(
            f"{'alert_latency':<20}{'p50 ms':>12}{'p99 ms':>14}{'min p99':>13}{'max p99':>13}"
            f"{'max ms':>10}{'reps':>6}{'miss':>6}"
        )
        rows.append(
            f"{'':<20}{lat.p50_ms:>12.2f}{lat.p99_ms:>14.2f}{lat.p99_ms_min:>13.2f}"
            f"{lat.p99_ms_max:>13.2f}{lat.max_ms:>10.2f}{lat.repeats:>6}{lat.missing:>6}  "
            f"{f'p99 <= {TARGET_P99_MS:g} ms':<15}{'yes' if lat.met else 'NO':<4}"
        )
        rows.append(
            f"  {lat.probes:,} probes at {lat.background_rate:,.0f} events/s of background feed "
            f"(asked for {lat.target_rate:,.0f}: half of nats_batched, or --latency-rate)"
        )
    for t in throughputs:
        disk = [r.bytes_on_disk_per_event for r in t.runs if r.bytes_on_disk_per_event]
        rows.append(
            f"  {t.result.name}: {t.events_per_message:,.1f} events/message, {t.messages:,} "
            f"messages{' (headline)' if t.headline else ''}; {t.note}"
            + (f"; {statistics.median(disk):.1f} bytes on disk per stored event" if disk else "")
        )
    for name, why in failed.items():
        rows.append(f"  {name}: FAILED: {why}")
    return "\n".join(rows)


def run_bench_nats(
    *,
    quick: bool = False,
    repeat: int | None = None,
    json_path: Path | None = None,
    scenarios: Sequence[str] | None = None,
    sizes: NatsSizes | None = None,
    acked: bool = True,
    engine_batch: int | None = None,
    latency_rate: float | None = None,
) -> int:
    """Run the scenarios against private nats-servers, print a table on stdout, optionally
    write JSON; exit status 0, or 1 when a scenario could not be measured (it is reported with
    its error, and the others still run).

    ``alert_latency`` runs its background feed at half the ``nats_batched`` median, or at
    ``latency_rate`` events/s when given (then ``nats_batched`` is not needed for it)."""
    base = sizes or (QUICK if quick else DEFAULT)
    sizes = dataclasses.replace(
        base,
        repeat=repeat or base.repeat,
        engine_batch=engine_batch or base.engine_batch,
    )
    wanted = list(scenarios or NATS_SCENARIOS)
    print(
        f"streamguard bench --nats: {sizes.repeat} repeats; nats_batched ~{sizes.batched_events:,}"
        f" events, nats_per_event ~{sizes.per_event_events:,} events, {sizes.probes} probes, "
        f"engine batches of {sizes.engine_batch} messages; publisher, nats-server and engine "
        "on this machine",
        file=sys.stderr,
    )
    throughputs: list[Throughput] = []
    latency: Latency | None = None
    failed: dict[str, str] = {}

    def attempt(name: str, run: Callable[[], Throughput]) -> Throughput | None:
        try:
            return run()
        except NatsBenchError as e:
            failed[name] = str(e)
            print(f"streamguard bench --nats: {e}", file=sys.stderr)
            return None

    def throughput(name: str, repeat: int, acks: bool) -> Callable[[], Throughput]:
        per_event = name == "nats_per_event"
        stored = name == "nats_batched_stored"
        return lambda: _throughput(
            name,
            sizes.per_event_events if per_event else sizes.batched_events,
            repeat,
            sizes.engine_batch,
            target=TARGET_PER_EVENT if per_event else TARGET_STORED if stored else TARGET_BATCHED,
            headline=name in ("nats_batched", "nats_batched_stored", "nats_per_event"),
            note=PER_EVENT_NOTE
            if per_event
            else STORED_NOTE
            if stored
            else BATCHED_NOTE
            if acks
            else UNACKED_NOTE,
            acks=acks,
            batched=not per_event,
            upload=1 if per_event else UPLOAD,
            store=stored,
        )

    batched: Throughput | None = None
    need_rate = "alert_latency" in wanted and latency_rate is None
    if "nats_batched" in wanted or need_rate:
        # alert_latency needs the batched rate: measured once if not asked for.
        reps = sizes.repeat if "nats_batched" in wanted else 1
        batched = attempt("nats_batched", throughput("nats_batched", reps, acks=True))
        if batched is not None and "nats_batched" in wanted:
            throughputs.append(batched)
    if "nats_batched" in wanted and acked:
        t = attempt("nats_batched_unacked", throughput("nats_batched_unacked", sizes.repeat, False))
        if t is not None:
            throughputs.append(t)
    if "nats_batched_stored" in wanted:
        t = attempt("nats_batched_stored", throughput("nats_batched_stored", sizes.repeat, False))
        if t is not None:
            throughputs.append(t)
    if "nats_per_event" in wanted:
        # PubAck'ed: plain publishes of one-event messages at full speed outrun JetStream's
        # ingest, and the server drops messages (seen: 45% of 1M); acks make the count exact.
        t = attempt("nats_per_event", throughput("nats_per_event", sizes.repeat, True))
        if t is not None:
            throughputs.append(t)
    if "alert_latency" in wanted:
        rate = latency_rate or (batched.result.events_per_s / 2 if batched else None)
        if rate is None:
            failed["alert_latency"] = "not run: no nats_batched rate to take half of"
            print(
                f"streamguard bench --nats: alert_latency {failed['alert_latency']}",
                file=sys.stderr,
            )
        else:
            try:
                latency = _latency(rate, sizes)
            except NatsBenchError as e:
                failed["alert_latency"] = str(e)
                print(f"streamguard bench --nats: {e}", file=sys.stderr)
    print(_table(throughputs, latency, failed))
    if json_path is not None:
        results = [t.doc() for t in throughputs]
        if latency is not None:
            results.append(latency.doc())
        results += [{"name": k, "error": v, "met": False} for k, v in failed.items()]
        doc = {
            "results": results,
            "sizes": asdict(sizes),
            "machine": _machine(),
            "command": " ".join(["streamguard", *sys.argv[1:]]),
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0
