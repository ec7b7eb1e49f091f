"""The engine live on NATS, and the embedded stack around it (``streamguard engine`` / ``up``).

:class:`LiveEngine` is the Rust engine consuming JetStream stream ``SG_EVENTS`` in a background
task of the extension's Tokio runtime: Python starts, stops and observes it, and does no
per-event work. ``publish_sim`` feeds a simulator to NATS the way carriers and gateways do.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from streamguard._core import LiveEngine, publish_feed
from streamguard.errors import StackError
from streamguard.sim import Simulator, example_rules
from streamguard.stack import CONTROL_USER, ENGINE_USER, NatsServer, load_credentials

if TYPE_CHECKING:
    from streamguard.store.writer import StoreWriter

__all__ = [
    "SIM_CARRIERS",
    "SIM_GATEWAYS",
    "LiveEngine",
    "StatusLine",
    "feed_credentials",
    "publish_sim",
    "run_up",
    "stop_on_signals",
]

#: The simulator's carriers (core/src/sim/carrier.rs) and the demo's sensor gateways.
SIM_CARRIERS = ("SF", "JD", "YTO", "ZTO", "STO", "EMS", "YUNDA", "DBL")
SIM_GATEWAYS = ("gw01", "gw02", "gw03")


def feed_credentials(stack: NatsServer | Path) -> dict[str, tuple[str, str]]:
    """Each simulated source's NATS user, from a stack's credentials (a running
    :class:`NatsServer`, or its var dir): ``carrier:<C>``, ``gateway:<G>``, ``control``
    (shipment events), and ``default`` (the control user) for anything else."""
    var_dir = stack.var_dir if isinstance(stack, NatsServer) else Path(stack)
    creds: dict[str, tuple[str, str]] = {}
    for path in sorted((var_dir / "nats" / "creds").glob("*.json")):
        user = path.stem
        kind, _, name = user.partition("-")
        if kind in ("carrier", "gateway") and name:
            key = f"{kind}:{name}"
        elif user == CONTROL_USER:
            key = "control"
        else:
            continue
        c = load_credentials(var_dir, user)
        creds[key] = (c.user, c.password)
    if "control" not in creds:
        raise StackError(f"no stack credentials under {var_dir / 'nats' / 'creds'}")
    creds["default"] = creds["control"]
    return creds


def publish_sim(
    sim: Simulator,
    nats_url: str,
    *,
    creds: dict[str, tuple[str, str]] | None = None,
    gateways: int = len(SIM_GATEWAYS),
    sensor_format: str = "protobuf",
    upload: int = 256,
    rate: float | None = None,
    max_events: int | None = None,
    acks: bool = True,
    invalid: bool = False,
    batched: bool = False,
    partitions: int | None = None,
) -> dict[str, Any]:
    """Publish ``sim``'s feed: one JSON scan per message on ``sg.scan.<carrier>``, gateway
    uploads of ``upload`` readings (protobuf or Arrow) on ``sg.sensor.<gateway>``, shipment
    events on ``sg.ship.<carrier>``. With ``acks`` every message is PubAck'ed (stored); with
    ``batched`` carriers upload their scans in batches too. With ``partitions`` (N workers)
    one-event messages carry the shipment as a subject token, for the server's partition
    mapping, and uploads are split by partition (``….batch.<p>``)."""
    return publish_feed(
        sim._sim,
        nats_url,
        creds=creds,
        gateways=gateways,
        sensor_format=sensor_format,
        upload=upload,
        rate=rate,
        max_events=max_events,
        acks=acks,
        invalid=invalid,
        batched=batched,
        partitions=partitions,
    )


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (Ctrl-C) while the block runs; handlers restored after."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _n(x: int) -> str:
    return f"{x:,}"


class StatusLine:
    """A readable line of rates and counts, plus the alerts published since the last line."""

    def __init__(self, engine: LiveEngine, out: TextIO, writer: StoreWriter | None = None) -> None:
        self.engine = engine
        self.out = out
        self.writer = writer
        self.last_events = 0
        self.last_time = time.monotonic()
        self.seen: set[str] = set()

    def print(self) -> None:
        s = self.engine.status()
        e = s["engine"]
        now = time.monotonic()
        rate = (e["events_in"] - self.last_events) / max(now - self.last_time, 1e-9)
        self.last_events, self.last_time = e["events_in"], now
        rejected = sum(e["rejected"].values())
        self.out.write(
            f"[{time.strftime('%H:%M:%S')}] {s['phase']:<10} events {_n(e['events_in'])} "
            f"({_n(round(rate))}/s)  shipments {_n(e['shipments'])}  alerts: "
            f"{_n(e['fired'])} fired, {_n(e['resolved'])} resolved, {_n(e['retracted'])} "
            f"retracted  dead letters {_n(rejected)}  lag {_n(s['pending'])} msgs"
            + (f"  stored {_n(self.writer.rows)} rows" if self.writer is not None else "")
            + "\n"
        )
        fresh = [a for a in self.engine.recent_alerts() if a not in self.seen]
        self.seen = set(self.engine.recent_alerts())
        for text in fresh[-3:]:
            a = json.loads(text)
            detail = ""
            if a.get("metric") and a.get("value") is not None:
                detail = f" {a['metric']}={a['value']}"
            self.out.write(
                f"    {a['severity']:<8} {a['state']:<9} {a['rule']:<18} "
                f"{a['shipment']} ({a.get('carrier') or '?'}){detail}\n"
            )
        if s["rules_error"]:
            self.out.write(f"    rule set refused, old set kept: {s['rules_error']}\n")
        self.out.flush()


def _demo_publisher(
    server: NatsServer, stop: threading.Event, rate: float, seed: int, shipments: int
) -> Callable[[], None]:
    def run() -> None:
        # Event time starts now, so wall-clock dwell timing and the data agree.
        sim = Simulator(
            seed, shipments, events=10**12, invalid_rate=0.002, start_ms=int(time.time() * 1000)
        )
        creds = feed_credentials(server)
        chunk = max(int(rate / 2), 1)
        while not stop.is_set():
            try:
                publish_sim(sim, server.url, creds=creds, rate=rate, max_events=chunk, invalid=True)
            except Exception as e:  # the stack is going down, or the server refused us
                if not stop.is_set():
                    sys.stderr.write(f"streamguard up: demo feed stopped: {e}\n")
                return

    return run


def _start_api(
    where: tuple[str, int | None], server: NatsServer, var_dir: Path, store: Any, out: TextIO
) -> Any:
    from streamguard.api.cli import api_port, control_config
    from streamguard.api.server import ApiServer

    host, port = where
    config = control_config(server.url, var_dir)
    api_server = ApiServer(config, store, host=host, port=api_port(host, port)).start()
    out.write(
        f"streamguard up: API at {api_server.url} (OpenAPI {api_server.url}/schema); a token: "
        f"streamguard token create --role operator --subject you --var {var_dir}\n"
    )
    return api_server


def _demo_orders(
    api_server: Any, server: NatsServer, var_dir: Path, stop: threading.Event, out: TextIO
) -> Any:
    """Repair orders walked through their life by the demo (needs the API)."""
    if api_server is None:
        return None
    from streamguard.demo_orders import DemoOrders
    from streamguard.keys import Keys

    secret = Keys.from_env(var_dir).load_jwt_secret(create=True)
    orders = DemoOrders(api_server.url, server, secret, stop, out=out)
    orders.start()
    return orders


def run_up(
    var_dir: Path,
    *,
    nats_port: int | None = None,
    rules: str | None = None,
    time_mode: str = "wall",
    demo: bool = False,
    rate: float = 2_000.0,
    seed: int = 7,
    shipments: int = 5_000,
    duration: float | None = None,
    interval: float = 2.0,
    dsn: str | None = None,
    api: tuple[str, int | None] | None = ("127.0.0.1", None),
    out: TextIO = sys.stderr,
) -> int:
    """Run the embedded stack until SIGTERM/Ctrl-C (or ``duration`` seconds): a private
    nats-server under ``var_dir/nats``, the engine (checkpoints in ``var_dir/engine``), storage
    (chDB in ``var_dir/clickhouse`` unless ``dsn``), the control plane's API on ``api`` (host,
    port; ``None`` for none) and, with ``demo``, the simulator publishing as carriers and
    gateways."""
    from streamguard.store import open_store
    from streamguard.store.writer import StoreWriter

    var_dir = var_dir.resolve()
    with (
        stop_on_signals() as stop,
        open_store(dsn or f"chdb://{var_dir / 'clickhouse'}") as store,
        NatsServer(var_dir, SIM_CARRIERS, SIM_GATEWAYS, port=nats_port) as server,
    ):
        creds = server.credentials(ENGINE_USER)
        engine = LiveEngine(
            server.url,
            rules=rules if rules is not None else example_rules(),
            time=time_mode,
            state_dir=str(var_dir / "engine"),
            user=creds.user,
            password=creds.password,
            store=True,
        )
        engine.start()
        writer = StoreWriter(engine, store, out)
        writer.start()
        out.write(
            f"streamguard up: nats-server at {server.url} (data in {server.nats_dir}), "
            f"storage {store.dsn}, engine {engine.status()['phase']}; Ctrl-C stops\n"
        )
        api_server = _start_api(api, server, var_dir, store, out) if api is not None else None
        feeder: threading.Thread | None = None
        if demo:
            feeder = threading.Thread(
                target=_demo_publisher(server, stop, rate, seed, shipments),
                name="streamguard-demo-feed",
                daemon=True,
            )
            feeder.start()
            out.write(
                f"streamguard up: demo feed of {_n(round(rate))} events/s from "
                f"{len(SIM_CARRIERS)} carriers and {len(SIM_GATEWAYS)} gateways\n"
            )
        orders = _demo_orders(api_server, server, var_dir, stop, out) if demo else None
        line = StatusLine(engine, out, writer)
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set() and engine.running:
            wait = interval if deadline is None else min(interval, deadline - time.monotonic())
            if stop.wait(max(wait, 0.0)):
                break
            writer.offer_stats(engine.status())
            line.print()
            if orders is not None:
                out.write(f"    demo orders: {orders.started} started, {orders.done} closed\n")
            if deadline is not None and time.monotonic() >= deadline:
                break
        stop.set()
        if feeder is not None:
            feeder.join(timeout=10)
        out.write("streamguard up: stopping (draining the engine, storing, checkpointing)\n")
        if api_server is not None:
            api_server.stop()
        try:
            engine.stop()
        finally:
            writer.stop()
        line.print()
    return 0
