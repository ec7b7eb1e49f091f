"""``streamguard bench --reports``: the seven operator reports over >= 10 M stored events.

A fresh embedded store (chDB, in a temp dir) is seeded entirely in SQL (``INSERT ... SELECT
... FROM numbers(N)``; no Python rows), over the 360 days before now, in the proportions of a
repair platform (default: 1 M shipments):

- ``shipments``: one event per shipment, 5 % re-sent later with another carrier;
- ``scans``: 4 per shipment (PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY, then DELIVERED or, for
  3 %, EXCEPTION); a lane joins one of 31 customer provinces and one of 2 depots (124
  lanes, each way), 8 carriers;
- ``sensor_readings``: 5 per shipment (counted as stored events; no report reads them);
- ``alerts``: 3 % of shipments, a firing and a resolved (10 %: retracted) record each;
- ``order_events``: 1 order per 10 shipments, its two legs among the shipments, up to 11
  events each (created .. REPAIRED .. DELIVERED .. CLOSED), 50 product codes, 200 batches;
- ``signoffs``: one per leg the order got a sign-off for;
- ``claim_events``: 1 claim per 20 orders, FILED .. decision .. PAID.

Each table is inserted in one statement with one block per partition (``max_insert_block_size``
above its rows), so each partition starts as one part, as a store whose background merges have
caught up has. The inserts go through the materialized views like any other, so the summaries
that the anomalies, sign-off and lane-transit reports read (``shipment_firsts``,
``order_legs``) are filled as a store's would be: two parts each (one per source table), every
key in both, which their ``FINAL`` reads merge key by key. Their merges are held off while the
reports are timed, so every report reads that layout and no background merge takes CPU from
the one being timed; a summary whose merges have caught up (one part) reads faster.

Then each report runs over the full range (366 days, the longest allowed) once untimed (to warm
caches) and ``repeat`` times timed, wall clock around :func:`run_report` (the query and the
conversion of its rows). Reported per report: the median and min-max seconds, and the rows
answered. Target: each under 1 s.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, get_args

from streamguard.bench import _machine
from streamguard.domain.orders import FaultType
from streamguard.domain.regions import provinces
from streamguard.store import Store, open_store
from streamguard.store.reports import DAY_MS, REPORTS, ReportParams, run_report

__all__ = ["DEFAULT", "QUICK", "ReportSizes", "run_bench_reports"]

TARGET_S = 1.0
SPAN_DAYS = 360
HOUR_MS = 3_600_000
CARRIERS = ("SF", "JD", "YTO", "ZTO", "STO", "EMS", "YUNDA", "DBL")
FAULTS: tuple[str, ...] = get_args(FaultType)
RECALL_CODE = "PC-7"
#: Every parcel goes to or comes from a depot: a lane is customer province <-> depot.
DEPOTS = ("CN-440300", "CN-310000")


@dataclass(frozen=True)
class ReportSizes:
    shipments: int
    repeat: int

    @property
    def orders(self) -> int:
        return self.shipments // 10

    @property
    def claims(self) -> int:
        return max(self.orders // 20, 1)


DEFAULT = ReportSizes(shipments=1_000_000, repeat=5)
QUICK = ReportSizes(shipments=50_000, repeat=3)


def _h(x: str, salt: int) -> str:
    """A deterministic pseudo-random UInt64 of ``x``: the same shipment gets the same carrier
    in every table."""
    return f"cityHash64({x}, {salt})"


def _pick(values: tuple[str, ...], x: str, salt: int) -> str:
    items = ", ".join(f"'{v}'" for v in values)
    return f"[{items}][1 + {_h(x, salt)} % {len(values)}]"


def _ts(ms: str) -> str:
    return f"fromUnixTimestamp64Milli(toInt64({ms}), 'UTC')"


class _Seeder:
    """The SQL of each table's rows, for shipments ``0 .. n - 1`` over ``[start, end)``."""

    def __init__(self, sizes: ReportSizes, end_ms: int) -> None:
        self.sizes = sizes
        self.start = end_ms - SPAN_DAYS * DAY_MS
        self.provinces = tuple(f"CN-{p.code}" for p in provinces().values())

    # Shipment i, as every table sees it.
    def ship(self, i: str) -> str:
        return f"concat('BS', toString({i}))"

    def carrier(self, i: str) -> str:
        return _pick(CARRIERS, i, 2)

    def customer(self, i: str) -> str:
        return _pick(self.provinces, f"intDiv({i}, 2)", 3)

    def depot(self, i: str) -> str:
        return _pick(DEPOTS, f"intDiv({i}, 2)", 4)

    def first_ms(self, i: str) -> str:
        return f"({self.start} + {_h(i, 1)} % {(SPAN_DAYS - 10) * DAY_MS})"

    def pickup_ms(self, i: str) -> str:
        return f"({self.first_ms(i)} + {_h(i, 5)} % {6 * HOUR_MS})"

    def transit_ms(self, i: str) -> str:
        return f"({12 * HOUR_MS} + {_h(i, 6)} % {96 * HOUR_MS})"

    def statements(self) -> list[tuple[str, dict[str, str], str]]:
        """``(table, {column: expression}, FROM ... [WHERE ...])`` per table."""
        n, o, c = self.sizes.shipments, self.sizes.orders, self.sizes.claims
        return [
            ("shipments", *self._shipments(n)),
            ("scans", *self._scans(n)),
            ("sensor_readings", *self._readings(n)),
            ("alerts", *self._alerts(n)),
            ("order_events", *self._orders(o)),
            ("signoffs", *self._signoffs(o)),
            ("claim_events", *self._claims(c, o)),
        ]

    def _shipments(self, n: int) -> tuple[dict[str, str], str]:
        i, update = f"number % {n}", f"number >= {n}"
        columns = {
            "shipment": self.ship(i),
            "ts": _ts(f"{self.first_ms(i)} + if({update}, {HOUR_MS}, 0)"),
            "carrier": f"if({update}, {_pick(CARRIERS, i, 3)}, {self.carrier(i)})",
            "origin": f"if({i} % 2 = 0, {self.customer(i)}, {self.depot(i)})",
            "dest": f"if({i} % 2 = 0, {self.depot(i)}, {self.customer(i)})",
            "tier": "'advanced'",
        }
        return columns, f"FROM numbers({n + n // 20})"

    def _scans(self, n: int) -> tuple[dict[str, str], str]:
        i, k = "intDiv(number, 4)", "number % 4"
        statuses = "['PICKED_UP', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED']"
        offset = f"intDiv({self.transit_ms(i)} * [0, 3, 8, 10][1 + {k}], 10)"
        columns = {
            "shipment": self.ship(i),
            "ts": _ts(f"{self.pickup_ms(i)} + {offset}"),
            "id": "concat('SC', toString(number))",
            "carrier": self.carrier(i),
            "status": f"if({k} = 3 AND {_h(i, 7)} % 100 < 3, 'EXCEPTION', {statuses}[1 + {k}])",
            "location": self.customer(i),
        }
        return columns, f"FROM numbers({n * 4})"

    def _readings(self, n: int) -> tuple[dict[str, str], str]:
        i, k = "intDiv(number, 5)", "number % 5"
        at = f"{self.pickup_ms(i)} + {k} * {2 * HOUR_MS} + {_h('number', 8)} % {HOUR_MS}"
        columns = {
            "shipment": self.ship(i),
            "ts": _ts(at),
            "device": f"concat('gw', toString({_h(i, 9)} % 100))",
            "shock_g": f"({_h('number', 10)} % 600) / 100",
            "temp_c": f"15 + ({_h('number', 11)} % 2000) / 100",
            "humidity_pct": f"({_h('number', 12)} % 10000) / 100",
        }
        return columns, f"FROM numbers({n * 5})"

    def _alerts(self, n: int) -> tuple[dict[str, str], str]:
        i = "number"
        fired = f"({self.pickup_ms(i)} + intDiv({self.transit_ms(i)}, 2))"
        end = f"if({_h(i, 14)} % 10 = 0, 'retracted', 'resolved')"
        columns = {
            "id": f"concat('shock-3g:', {self.ship(i)}, ':', toString({fired}))",
            "rule": "'shock-3g'",
            "kind": "'threshold'",
            "severity": "'critical'",
            "state": "state",
            "shipment": self.ship(i),
            "carrier": self.carrier(i),
            "ts": _ts(f"{fired} + if(state = 'firing', 0, {HOUR_MS})"),
            "started_ts": _ts(fired),
            "metric": "'shock_g'",
            "value": "4.5",
            "threshold": "3.0",
        }
        source = (
            f"FROM numbers({n}) ARRAY JOIN ['firing', {end}] AS state WHERE {_h(i, 13)} % 100 < 3"
        )
        return columns, source

    def _last_step(self, o: str) -> str:
        stage = f"{_h(o, 20)} % 100"
        return f"multiIf({stage} < 3, 1, {stage} < 8, 6, {stage} < 12, 8, {stage} < 90, 9, 10)"

    def _order_at(self, o: str, step: str) -> str:
        created = f"({self.start} + {_h(o, 21)} % {(SPAN_DAYS - 20) * DAY_MS})"
        return f"({created} + {step} * ({12 * HOUR_MS} + {_h(o, 22)} % {24 * HOUR_MS}))"

    def _orders(self, orders: int) -> tuple[dict[str, str], str]:
        o, s = "intDiv(number, 11)", "number % 11"
        after = (
            "['CREATED', 'AWAITING_PICKUP', 'AWAITING_PICKUP', 'INBOUND_IN_TRANSIT', 'RECEIVED', "
            "'DIAGNOSING', 'REPAIRING', 'REPAIRED', 'RETURN_IN_TRANSIT', 'DELIVERED', 'CLOSED']"
        )
        types = (
            "['created', 'status', 'shipment', 'status', 'signoff', 'status', 'status', "
            "'status', 'shipment', 'signoff', 'status']"
        )
        inbound, back = f"2 * {o}", f"2 * {o} + 1"
        region = (
            f"concat(substring({_pick(self.provinces, o, 23)}, 1, 5), "
            f"leftPad(toString(1 + {_h(o, 28)} % 20), 2, '0'), '00')"
        )
        brands = ("Huawei", "Xiaomi", "Apple", "Oppo", "Vivo")
        columns = {
            "order_id": f"concat('RO-', toString({o}))",
            "version": "number + 1",
            "type": f"{types}[1 + {s}]",
            "at": _ts(self._order_at(o, s)),
            "actor_role": "'system'",
            "actor_subject": "'bench'",
            "from_status": f"if({s} IN (0, 2), NULL, {after}[{s}])",
            "to_status": f"if({s} = 2, NULL, {after}[1 + {s}])",
            "status": f"{after}[1 + {s}]",
            "customer_id": f"concat('cust-', toString({_h(o, 27)} % 50000))",
            "customer_region": region,
            "product_category": "'phone'",
            "product_brand": _pick(brands, o, 29),
            "product_model": "'Model'",
            "product_code": f"concat('PC-', toString({_h(o, 24)} % 50))",
            "product_batch": f"concat('B', toString({_h(o, 25)} % 200))",
            "fault_type": _pick(FAULTS, o, 26),
            "service": "'repair'",
            "declared_value_fen": "100000",
            "inbound_shipment": f"if({s} >= 2, {self.ship(inbound)}, NULL)",
            "inbound_carrier": f"if({s} >= 2, {self.carrier(inbound)}, NULL)",
            "return_shipment": f"if({s} >= 8, {self.ship(back)}, NULL)",
            "return_carrier": f"if({s} >= 8, {self.carrier(back)}, NULL)",
            "created_at": _ts(self._order_at(o, "0")),
        }
        return columns, f"FROM numbers({orders * 11}) WHERE {s} <= {self._last_step(o)}"

    def _signoffs(self, orders: int) -> tuple[dict[str, str], str]:
        o, leg = "intDiv(number, 2)", "number % 2"
        step = f"if({leg} = 0, 4, 9)"
        columns = {
            "id": "concat('SO-', toString(number))",
            "`order`": f"concat('RO-', toString({o}))",
            "leg": f"if({leg} = 0, 'inbound', 'return')",
            "`index`": leg,
            "ts": _ts(self._order_at(o, step)),
            "signer_name": "'Signer'",
            "signer_type": f"if({leg} = 0, 'depot_staff', 'self')",
            "channel": "'api'",
        }
        return columns, f"FROM numbers({orders * 2}) WHERE {self._last_step(o)} >= {step}"

    def _claims(self, claims: int, orders: int) -> tuple[dict[str, str], str]:
        c, s = "intDiv(number, 4)", "number % 4"
        decision = _pick(("APPROVED", "PARTIALLY_APPROVED", "REJECTED"), c, 32)
        path = f"['FILED', 'UNDER_REVIEW', {decision}, 'PAID']"
        last = f"multiIf({_h(c, 33)} % 10 < 2, 1, {decision} = 'REJECTED', 2, 3)"
        filed = f"({self.start} + {_h(c, 31)} % {(SPAN_DAYS - 30) * DAY_MS})"
        at = f"({filed} + {s} * ({DAY_MS} + {_h(c, 34)} % {5 * DAY_MS}))"
        claimed = f"(10000 + {_h(c, 35)} % 1000000)"
        approved = f"if({decision} = 'APPROVED', {claimed}, intDiv({claimed}, 2))"
        custody = "CAST([NULL, 'SF', 'JD', 'depot'], 'Array(Nullable(String))')"
        columns = {
            "claim_id": f"concat('CL-', toString({c}))",
            "order_id": f"concat('RO-', toString({_h(c, 30)} % {orders}))",
            "version": "number + 1",
            "at": _ts(at),
            "event_type": f"if({s} = 0, 'filed', 'status')",
            "actor_role": "'operator'",
            "from_status": f"if({s} = 0, NULL, {path}[{s}])",
            "to_status": f"{path}[1 + {s}]",
            "kind": _pick(("damage", "loss", "delay"), c, 36),
            "status": f"{path}[1 + {s}]",
            "claimed_fen": claimed,
            "approved_fen": f"if({s} >= 2 AND {decision} != 'REJECTED', {approved}, NULL)",
            "paid_fen": f"if({s} >= 3, {approved}, NULL)",
            "coverage_fen": claimed,
            "policy_id": f"concat('POL-', toString({c}))",
            "custody_holder": f"{custody}[1 + {_h(c, 37)} % 4]",
            "filed_at": _ts(filed),
        }
        return columns, f"FROM numbers({claims * 4}) WHERE {s} <= {last}"


def _insert(store: Store, table: str, columns: dict[str, str], source: str, rows_hint: int) -> None:
    # One block per partition: each partition starts as one part (see the module docstring).
    block = max(rows_hint, 1_048_576)
    names = ", ".join(columns)
    select = ", ".join(f"{expr} AS {name.strip('`')}" for name, expr in columns.items())
    store.rows(
        f"INSERT INTO {table} ({names}) SETTINGS max_partitions_per_insert_block = 0, "
        f"max_insert_block_size = {block}, min_insert_block_size_rows = {block} "
        f"SELECT {select} {source}"
    )


SUMMARIES = ("shipment_firsts", "order_legs")


def _layout(store: Store) -> dict[str, dict[str, int]]:
    """Each summary's rows and active parts: what its ``FINAL`` reads merge."""
    rows = store.rows(
        "SELECT table, sum(rows), count() FROM system.parts WHERE active "
        "AND database = {db:String} AND table IN {tables:Array(String)} GROUP BY table",
        {"db": store.database, "tables": list(SUMMARIES)},
    )
    return {str(table): {"rows": int(n), "parts": int(parts)} for table, n, parts in rows}


def _seed(store: Store, sizes: ReportSizes, end_ms: int) -> dict[str, int]:
    seeder = _Seeder(sizes, end_ms)
    hints = {"scans": sizes.shipments * 4, "sensor_readings": sizes.shipments * 5}
    statements = seeder.statements()
    for table, columns, source in statements:
        start = time.perf_counter()
        _insert(store, table, columns, source, hints.get(table, sizes.shipments * 2))
        rows = store.table_counts([table])[table]
        print(
            f"streamguard bench --reports: {table}: {rows:,} rows in "
            f"{time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
    return store.table_counts([t for t, _, _ in statements])


@dataclass
class ReportTiming:
    report: str
    rows: int
    median_s: float
    min_s: float
    max_s: float
    runs_s: list[float]
    #: CPU seconds of this process (chDB's threads included) per run, median: what the query
    #: costs whatever else the machine runs; on an idle machine wall is about this / cores.
    cpu_s: float
    met: bool


def _time_report(store: Store, name: str, params: ReportParams, repeat: int) -> ReportTiming:
    _, rows = run_report(store, name, params)  # warm-up: not timed
    runs, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        run_report(store, name, params)
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    median = statistics.median(runs)
    return ReportTiming(
        name,
        len(rows),
        median,
        min(runs),
        max(runs),
        runs,
        statistics.median(cpu),
        median < TARGET_S,
    )


def _table(results: list[ReportTiming], counts: dict[str, int]) -> str:
    events = sum(counts.get(t, 0) for t in ("scans", "sensor_readings", "shipments"))
    lines = [
        f"stored: {sum(counts.values()):,} rows ({events:,} events: scans, sensor readings, "
        "shipment events); " + ", ".join(f"{t} {n:,}" for t, n in counts.items()),
        f"{'report':<20}{'rows':>8}{'median s':>10}{'min s':>9}{'max s':>9}{'cpu s':>8}  < 1 s",
    ]
    lines.append("-" * len(lines[-1]))
    for r in results:
        lines.append(
            f"{r.report:<20}{r.rows:>8,}{r.median_s:>10.3f}{r.min_s:>9.3f}{r.max_s:>9.3f}"
            f"{r.cpu_s:>8.3f}  "
            f"{'yes' if r.met else 'NO'}"
        )
    return "\n".join(lines)


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def run_bench_reports(
    *,
    quick: bool = False,
    repeat: int | None = None,
    shipments: int | None = None,
    json_path: Path | None = None,
) -> int:
    """Seed a temp store, time every report over the full range, print a table on stdout,
    optionally write JSON. Exit status 0 (a target not met is in the table and the JSON)."""
    base = QUICK if quick else DEFAULT
    sizes = ReportSizes(shipments or base.shipments, repeat or base.repeat)
    end_ms = time.time_ns() // 1_000_000 // HOUR_MS * HOUR_MS
    print(
        f"streamguard bench --reports: seeding {sizes.shipments:,} shipments, "
        f"{sizes.orders:,} orders, {sizes.claims:,} claims over {SPAN_DAYS} days (chDB, temp dir)",
        file=sys.stderr,
    )
    with (
        tempfile.TemporaryDirectory(prefix="sg-bench-reports-") as tmp,
        open_store(f"chdb://{Path(tmp) / 'ch'}") as store,
    ):
        start = time.perf_counter()
        counts = _seed(store, sizes, end_ms)
        seed_s = time.perf_counter() - start
        for table in SUMMARIES:
            store.rows(f"SYSTEM STOP MERGES {table}")
        layout = _layout(store)
        full = ReportParams(end_ms - REPORTS["anomalies"].max_days * DAY_MS, end_ms)
        load_before = os.getloadavg()
        results = []
        for name in REPORTS:
            params = full
            if REPORTS[name].filters:
                params = ReportParams(full.from_ms, full.to_ms, product_code=RECALL_CODE)
            results.append(_time_report(store, name, params, sizes.repeat))
            r = results[-1]
            print(
                f"streamguard bench --reports: {name}: median {r.median_s:.3f} s",
                file=sys.stderr,
            )
        load_after = os.getloadavg()
    print(_table(results, counts))
    print(
        "read with FINAL, merges held: "
        + ", ".join(f"{t} {x['rows']:,} rows in {x['parts']} parts" for t, x in layout.items())
    )
    print(
        f"load average (1, 5, 15 min) before timing {_load(load_before)}, after {_load(load_after)}"
        f" on {os.cpu_count()} cores: other work on the machine slows every figure"
    )
    if json_path is not None:
        doc: dict[str, Any] = {
            "results": [asdict(r) for r in results],
            "target_s": TARGET_S,
            "range_days": REPORTS["anomalies"].max_days,
            "recall_product_code": RECALL_CODE,
            "sizes": {**asdict(sizes), "orders": sizes.orders, "claims": sizes.claims},
            "stored_rows": counts,
            "summaries": layout,
            "seed_seconds": round(seed_s, 1),
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
            "machine": _machine(),
            "command": " ".join(["streamguard", *sys.argv[1:]]),
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0
