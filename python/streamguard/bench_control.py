"""``streamguard bench --control-plane``: the control plane end to end, on this machine.

Every repetition of every scenario builds a fresh private stack in a temp dir: ``nats-server``
(JetStream, the simulator's carriers as users), the live engine (it creates ``SG_EVENTS``,
which the control plane's scan consumer reads), chDB, keys, and the API (uvicorn in a thread
of this process, rate limit out of the way). The clients run in a child process
(``bench_control_client.main``), as they would on other machines: they do not share this
process's GIL with the API, but they do share the machine's cores with the API, nats-server,
chDB and the engine. The clients speak HTTP/1.1 with a small stdlib pool
(``bench_control_client.Pool``): httpx costs several times the API's own CPU per request once
many requests wait, which the API would then lack.

- ``signoff_visible``: ``orders`` repair orders are created, booked inbound with carrier SF
  (one tracking number each) and moved to INBOUND_IN_TRANSIT by a PICKED_UP scan (untimed).
  Then, one order at a time (concurrency 1): t0, the carrier publishes the DELIVERED scan with
  a ``signer`` as NATS user ``carrier-SF`` (JetStream publish, PubAck awaited), and
  ``GET /orders/{id}`` as a depot token is polled every ``POLL_S`` until ``signoffs`` is not
  empty; latency = arrival of that response - t0. An order not visible within
  ``VISIBLE_TIMEOUT_S`` is missing (and the target is not met). Target: p99 <= 1 s.
- ``api_latency``: open loop at ``rate`` requests/s for ``duration_s`` seconds, alternating
  ``POST /orders`` (a customer token, a unique Idempotency-Key) and ``GET /orders/{id}`` of an
  order created earlier (by its customer). Requests are sent on schedule whatever is still in
  flight (at most ``connections`` connections, the rest wait for one); each latency is measured
  from the request's *scheduled* send time, so queueing in the client counts. Reported: p50/p99 per
  operation, non-2xx responses and transport errors, the achieved send rate and the served
  rate (answers per second until the last one). No latency target: the bar is serving the rate
  (>= 95 %) with no error, otherwise the latencies only say how long the queue grew.

Each scenario reports the median over repetitions of each run's p50/p90/p99/max, and the min
and max of the runs' p99. Each run also records the CPU used while timed (% of one core) by
this process (API, engine, chDB), nats-server and the clients, and the machine's 1-minute load
average: other work on the machine shows there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from streamguard.api.server import ApiServer
from streamguard.bench import _machine
from streamguard.bench_nats import _percentile, _stack
from streamguard.bus.plane import ControlConfig
from streamguard.domain.auth import Principal, Role
from streamguard.keys import Keys
from streamguard.live import LiveEngine
from streamguard.stack import CONTROL_USER, NatsServer
from streamguard.store import open_store
from streamguard.tokens import create_token

__all__ = [
    "CONTROL_SCENARIOS",
    "ControlBenchError",
    "ControlSizes",
    "run_bench_control",
]

CONTROL_SCENARIOS = ("signoff_visible", "return_created", "api_latency")
TARGET_SIGNOFF_P99_MS = 1000.0
#: An order whose sign-off is not on the order API this long after its scan is missing.
VISIBLE_TIMEOUT_S = 10.0
#: signoff_visible: this many missing orders in a row end the run (the consumer is stuck).
STUCK_AFTER = 5
POLL_S = 0.005
CARRIER = "SF"
DEPOT_REGION = "CN-440300"
#: api_latency: orders created (one after the other) before the load starts, so the first GETs
#: have something to read.
SEED_ORDERS = 32
CUSTOMERS = 16
#: api_latency meets its bar when the API served (answered) at least this share of the asked
#: rate, with no error: below it, requests queue and latencies grow with the run's length.
RATE_SHARE = 0.95
#: Far above any rate here: the bench measures latency, not the limiter.
RATE_LIMIT = 1_000_000
ENGINE_BATCH = 1000
PREPARE_TIMEOUT_S = 60.0
CPU_SAMPLE_S = 0.2


class ControlBenchError(RuntimeError):
    """A run that could not be measured: the stack or a client failed, orders never moved."""


@dataclass(frozen=True)
class ControlSizes:
    #: signoff_visible: orders per repetition.
    orders: int
    #: api_latency: seconds of load per repetition.
    duration_s: float
    repeat: int
    #: api_latency: requests per second (creates and gets alternate).
    rate: float = 200.0
    #: api_latency: the client's connection pool.
    connections: int = 64


DEFAULT = ControlSizes(orders=300, duration_s=20.0, repeat=3)
QUICK = ControlSizes(orders=60, duration_s=5.0, repeat=1)

_INTAKE: dict[str, Any] = {
    "customer": {
        "name": "Bench Customer",
        "phone": "+86 139 0000 0000",
        "address": {"line": "8 Shennan Avenue, Futian", "region": "CN-440304"},
    },
    "product": {"category": "laptop", "brand": "Lenovo", "model": "X1 Carbon"},
    "purchase_channel": "tmall.com",
    "fault_type": "battery",
    "description": "benchmark order",
    "declared_value": "899.00",
}


def _log(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


# ---- the stack (this process) ---------------------------------------------------------------


@dataclass
class _Stack:
    server: NatsServer
    engine: LiveEngine
    api: ApiServer
    secret: bytes

    def token(self, role: Role, subject: str) -> str:
        return create_token(self.secret, Principal(role=role, subject=subject))


@contextlib.contextmanager
def _control_stack(tag: str) -> Iterator[_Stack]:
    """bench_nats's private nats-server and live engine, plus chDB, keys and the API in the same
    temp dir; all stopped and removed on exit."""
    with _stack(tag, ENGINE_BATCH) as (server, engine, _):
        root = server.var_dir.parent
        keys = Keys.in_dir(root / "keys")
        config = ControlConfig(server.url, server.credentials(CONTROL_USER), keys, DEPOT_REGION)
        with open_store(f"chdb://{root / 'clickhouse'}") as store:
            api = ApiServer(config, store, rate_limit=RATE_LIMIT).start()
            try:
                yield _Stack(server, engine, api, keys.load_jwt_secret())
            finally:
                api.stop()


def _proc_cpu_s(pid: int | None) -> float:
    """CPU seconds a process has used (Linux ``/proc``); NaN where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


class _CpuSampler(threading.Thread):
    """Samples (wall clock, this process's CPU, nats-server's CPU) every ``CPU_SAMPLE_S``, so
    the CPU used during the client's timed window can be told apart from its start-up."""

    def __init__(self, nats_pid: int | None) -> None:
        super().__init__(name="streamguard-bench-cpu", daemon=True)
        self.nats_pid = nats_pid
        self.samples: list[tuple[float, float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.time(), time.process_time(), _proc_cpu_s(self.nats_pid)))
            if self.done.wait(CPU_SAMPLE_S):
                return

    def usage(self, start: float, end: float) -> tuple[float, float]:
        """Percent of one core used by this process (API, engine, chDB) and by nats-server
        between the first sample after ``start`` and the last before ``end``."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return math.nan, math.nan
        (t0, api0, nats0), (t1, api1, nats1) = inside[0], inside[-1]
        return (api1 - api0) / (t1 - t0) * 100.0, (nats1 - nats0) / (t1 - t0) * 100.0


def _drive(kind: str, st: _Stack, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run a client in a child process (its progress goes to our stderr); its JSON result, with
    ``cpu``: what this process, nats-server and the client used during its timed window."""
    code = "from streamguard.bench_control_client import main; main()"
    sampler = _CpuSampler(st.server.pid)
    sampler.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps({"kind": kind, **spec}),
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ControlBenchError(
            f"{kind}: the client did not finish within {timeout:.0f} s"
        ) from None
    finally:
        sampler.done.set()
        sampler.join()
    try:
        doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise ControlBenchError(
            f"{kind}: the client exited with status {proc.returncode} and no result"
        ) from None
    if "error" in doc:
        raise ControlBenchError(f"{kind}: {doc['error']}")
    start, end = doc["window"]
    api, nats = sampler.usage(start, end)
    doc["cpu"] = {
        "api_process_pct": api,
        "nats_server_pct": nats,
        "client_pct": doc["window_cpu_s"] / max(end - start, 1e-9) * 100.0,
        "loadavg_1m": os.getloadavg()[0],
    }
    return doc


def _spec(st: _Stack, run: int) -> dict[str, Any]:
    carrier = st.server.credentials(f"carrier-{CARRIER}")
    return {
        "run": run,
        "api_url": st.api.url,
        "nats_url": st.server.url,
        "carrier_user": carrier.user,
        "carrier_password": carrier.password,
        "operator": st.token(Role.OPERATOR, "bench-operator"),
        "depot": st.token(Role.DEPOT, "bench-depot"),
        "customers": [st.token(Role.CUSTOMER, f"bench-c{i:02d}") for i in range(CUSTOMERS)],
    }


def _check_engine(name: str, st: _Stack) -> None:
    status = st.engine.status()
    if status["phase"] == "failed":
        raise ControlBenchError(f"{name}: the engine failed: {status['error']}")


# ---- results ----------------------------------------------------------------------------


@dataclass
class Percentiles:
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, ms: Sequence[float]) -> Percentiles:
        s = sorted(ms)
        if not s:
            nan = math.nan
            return cls(0, nan, nan, nan, nan)
        return cls(len(s), _percentile(s, 0.5), _percentile(s, 0.9), _percentile(s, 0.99), s[-1])


@dataclass
class Row:
    """One line of the table and one doc of the JSON: a scenario (or one operation of one)."""

    name: str
    scenario: str
    operation: str
    runs: list[dict[str, Any]]
    target: str
    note: str
    target_p99_ms: float | None = None
    #: api_latency: the rate asked for; its runs say what was achieved.
    rate: float | None = None

    def _median(self, key: str) -> float:
        values = [float(r[key]) for r in self.runs if not math.isnan(float(r[key]))]
        return statistics.median(values) if values else math.nan

    @property
    def p99s(self) -> list[float]:
        return [float(r["p99_ms"]) for r in self.runs]

    @property
    def bad(self) -> int:
        """signoff_visible: orders missing; api_latency: non-2xx responses and errors."""
        return sum(int(r.get("missing", r.get("errors", 0))) for r in self.runs)

    @property
    def met(self) -> bool:
        if self.bad or not self.runs:
            return False
        if self.target_p99_ms is not None:
            return self._median("p99_ms") <= self.target_p99_ms
        assert self.rate is not None
        return all(float(r["done_rate"]) >= RATE_SHARE * self.rate for r in self.runs)

    def doc(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "scenario": self.scenario,
            "operation": self.operation,
            "count": sum(int(r["count"]) for r in self.runs),
            "p50_ms": self._median("p50_ms"),
            "p90_ms": self._median("p90_ms"),
            "p99_ms": self._median("p99_ms"),
            "p99_ms_min": min(self.p99s),
            "p99_ms_max": max(self.p99s),
            "max_ms": self._median("max_ms"),
            "repeats": len(self.runs),
        }
        if self.target_p99_ms is not None:
            d["missing"] = self.bad
            d["target_p99_ms"] = self.target_p99_ms
        else:
            d["errors"] = self.bad
            d["rate"] = self.rate
            d["sent_rate"] = statistics.median(float(r["sent_rate"]) for r in self.runs)
            d["served_rate"] = statistics.median(float(r["done_rate"]) for r in self.runs)
        d.update(target=self.target, met=self.met, note=self.note, runs=self.runs)
        return d


SIGNOFF_NOTE = (
    "one order at a time: t0, DELIVERED scan with a signer as carrier-SF (PubAck awaited), then "
    f"GET /orders/{{id}} as depot every {POLL_S * 1000:g} ms until signoffs is not empty; latency"
    " to the response that shows it"
)


RETURN_NOTE = (
    "one order at a time, each received and REPAIRING beforehand: t0, POST /orders/{id}/"
    f"transitions REPAIRED as depot, then GET /orders/{{id}} every {POLL_S * 1000:g} ms until "
    "shipments.return exists (booked by the returns consumer with its carrier choice); latency "
    "to the response that shows it"
)
_VISIBLE = {
    "signoff_visible": ("carrier scan -> GET /orders/{id}", SIGNOFF_NOTE, "ack"),
    "return_created": ("REPAIRED -> return leg on GET /orders/{id}", RETURN_NOTE, "POST"),
}


def _visible(kind: str, sizes: ControlSizes) -> Row:
    """signoff_visible and return_created: one action per order, then poll until it shows."""
    operation, note, what = _VISIBLE[kind]
    runs: list[dict[str, Any]] = []
    for i in range(sizes.repeat):
        with _control_stack(kind) as st:
            spec = {**_spec(st, i), "orders": sizes.orders}
            doc = _drive(kind, st, spec, PREPARE_TIMEOUT_S * 3 + sizes.orders * 2.0)
            _check_engine(kind, st)
        p = Percentiles.of(doc["latencies_ms"])
        ack = Percentiles.of(doc["puback_ms"])
        run = {
            **asdict(p),
            "missing": doc["missing"],
            "orders": sizes.orders,
            "puback_p50_ms": ack.p50_ms,
            "puback_p99_ms": ack.p99_ms,
            "prepare_s": doc["prepare_s"],
            "cpu": doc["cpu"],
        }
        runs.append(run)
        _log(
            f"{kind} [{i + 1}/{sizes.repeat}]: p50 {p.p50_ms:.1f} ms, p99 "
            f"{p.p99_ms:.1f} ms, max {p.max_ms:.1f} ms; {p.count}/{sizes.orders} visible, "
            f"{what} p50 {ack.p50_ms:.1f} ms; {_cpu_text(doc['cpu'])}"
        )
    return Row(
        name=kind,
        scenario=kind,
        operation=operation,
        runs=runs,
        target=f"p99 <= {TARGET_SIGNOFF_P99_MS / 1000:g} s",
        target_p99_ms=TARGET_SIGNOFF_P99_MS,
        note=note,
    )


def _api_latency(sizes: ControlSizes) -> list[Row]:
    per_op: dict[str, list[dict[str, Any]]] = {"create": [], "get": []}
    for i in range(sizes.repeat):
        with _control_stack("api") as st:
            spec = {
                **_spec(st, i),
                "rate": sizes.rate,
                "duration_s": sizes.duration_s,
                "connections": sizes.connections,
            }
            doc = _drive("api_latency", st, spec, PREPARE_TIMEOUT_S * 2 + sizes.duration_s * 3)
            _check_engine("api_latency", st)
        for op, out in per_op.items():
            o = doc["ops"][op]
            p = Percentiles.of(o["latencies_ms"])
            out.append(
                {
                    **asdict(p),
                    "errors": o["errors"],
                    "statuses": o["statuses"],
                    "sent": doc["sent"],
                    "sent_rate": doc["sent_rate"],
                    "done_rate": doc["done_rate"],
                    "max_send_lag_ms": doc["max_send_lag_ms"],
                    "cpu": doc["cpu"],
                }
            )
            _log(
                f"api_latency {op} [{i + 1}/{sizes.repeat}]: p50 {p.p50_ms:.1f} ms, p99 "
                f"{p.p99_ms:.1f} ms, max {p.max_ms:.1f} ms; {p.count} ok, {o['errors']} errors; "
                f"sent {doc['sent_rate']:.1f}/s, served {doc['done_rate']:.1f}/s; "
                f"{_cpu_text(doc['cpu'])}"
            )
    note = (
        f"open loop at {sizes.rate:g} requests/s for {sizes.duration_s:g} s, creates and gets "
        f"alternating ({sizes.connections} pooled connections); latency from the scheduled send "
        "time; the client shares the cores with the API, nats-server, chDB and the engine"
    )
    target = f"serves >= {RATE_SHARE * sizes.rate:g}/s"
    return [
        Row(
            name=f"api_order_{op}",
            scenario="api_latency",
            operation="POST /orders" if op == "create" else "GET /orders/{id}",
            runs=runs,
            target=target,
            rate=sizes.rate,
            note=note,
        )
        for op, runs in per_op.items()
    ]


_CPU_KEYS = ("api_process_pct", "nats_server_pct", "client_pct", "loadavg_1m")


def _cpu_text(cpu: dict[str, float]) -> str:
    return (
        f"CPU (% of one core): API process (API, engine, chDB) {cpu['api_process_pct']:.0f}, "
        f"nats-server {cpu['nats_server_pct']:.0f}, clients {cpu['client_pct']:.0f}; "
        f"load average {cpu['loadavg_1m']:.1f} on {os.cpu_count()} cores"
    )


def _table(rows: Sequence[Row], failed: dict[str, str]) -> str:
    head = (
        f"{'scenario':<18}{'count':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'min p99':>9}"
        f"{'max p99':>9}{'max ms':>9}{'reps':>5}{'miss/err':>9}  {'target':<22}{'met':<4}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        d = row.doc()
        lines.append(
            f"{row.name:<18}{d['count']:>7}{d['p50_ms']:>9.1f}{d['p90_ms']:>9.1f}"
            f"{d['p99_ms']:>9.1f}{d['p99_ms_min']:>9.1f}{d['p99_ms_max']:>9.1f}{d['max_ms']:>9.1f}"
            f"{d['repeats']:>5}{row.bad:>9}  {row.target:<22}{'yes' if row.met else 'NO':<4}"
        )
    for row in rows:
        extra = ""
        if row.rate is not None:
            d = row.doc()
            extra = (
                f"; sent {d['sent_rate']:.1f}/s, served {d['served_rate']:.1f}/s (all "
                "requests, median of runs)"
            )
        lines.append(f"  {row.name} ({row.operation}): {row.note}{extra}")
        if row.name != "api_order_get":
            cpu = {k: statistics.median(float(r["cpu"][k]) for r in row.runs) for k in _CPU_KEYS}
            lines.append(f"    while timed (median of runs): {_cpu_text(cpu)}")
    for name, why in failed.items():
        lines.append(f"  {name}: FAILED: {why}")
    return "\n".join(lines)


def _no_nan(value: Any) -> Any:
    """``value`` with NaN (nothing measured, a CPU figure /proc could not give) as null: JSON
    has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def run_bench_control(
    *,
    quick: bool = False,
    repeat: int | None = None,
    json_path: Path | None = None,
    scenarios: Sequence[str] | None = None,
    sizes: ControlSizes | None = None,
) -> int:
    """Run the scenarios against private stacks, print a table on stdout, optionally write
    JSON; exit status 0, or 1 when a scenario could not be measured (reported with its error;
    the others still run). A target not met is in the table and the JSON, not the status."""
    base = sizes or (QUICK if quick else DEFAULT)
    sizes = dataclasses.replace(base, repeat=repeat or base.repeat)
    wanted = list(scenarios or CONTROL_SCENARIOS)
    print(
        f"streamguard bench --control-plane: {sizes.repeat} repeats; signoff_visible "
        f"{sizes.orders} orders, api_latency {sizes.rate:g} requests/s for {sizes.duration_s:g} "
        "s; nats-server, engine, chDB, API and clients on this machine",
        file=sys.stderr,
    )
    rows: list[Row] = []
    failed: dict[str, str] = {}
    for name in CONTROL_SCENARIOS:
        if name not in wanted:
            continue
        try:
            if name in _VISIBLE:
                rows.append(_visible(name, sizes))
            else:
                rows += _api_latency(sizes)
        except Exception as e:
            failed[name] = str(e)
            print(f"streamguard bench --control-plane: {name}: {e}", file=sys.stderr)
    print(_table(rows, failed))
    if json_path is not None:
        results = [r.doc() for r in rows]
        results += [{"name": k, "scenario": k, "error": v, "met": False} for k, v in failed.items()]
        out = {
            "results": results,
            "sizes": asdict(sizes),
            "machine": _machine(),
            "command": " ".join(["streamguard", *sys.argv[1:]]),
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(_no_nan(out), indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0
