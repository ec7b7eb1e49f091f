"""The summaries of migration 7 (``shipment_firsts``, ``order_legs``), which the anomalies,
sign-off and lane-transit reports read: each holds, key for key, what the raw tables give, and
every report answers its definition (reportexpect.py), whether the summaries were kept by the
views as rows arrived, backfilled by the migration over rows already stored (and backfilled
again, as after a crash), or folded from rows that arrived out of order and twice. Each test
has its own chDB store.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from reportexpect import EXPECTED
from reportfix import ALL, FROM, RANGE, SCHEMAS, TO, Row, Seed, make_seed
from streamguard.store import MIGRATIONS, Store, open_store
from streamguard.store import migrations as mig
from streamguard.store import summaries as sm
from streamguard.store.reports import ReportParams, run_report

SPANS = {"range": RANGE, "all": ALL, "moved-1ms": (FROM + 1, TO + 1), "from-epoch": (0, TO)}
#: The migration that adds the summaries.
SUMMARIES_VERSION = 7

# What the reports read from the summaries, computed from the raw tables as the reports did
# before they existed (argMax skips NULLs: the latest *known* value).
RAW = {
    "shipment_firsts": """
        SELECT shipment, e.first_event, e.carrier, e.origin, e.dest, s.picked_up, s.delivered
        FROM (
            SELECT shipment, min(ts) AS first_event, argMax(carrier, ts) AS carrier,
                argMax(origin, ts) AS origin, argMax(dest, ts) AS dest
            FROM shipments GROUP BY shipment
        ) AS e
        FULL JOIN (
            SELECT shipment, minIf(toNullable(ts), status = 'PICKED_UP') AS picked_up,
                minIf(toNullable(ts), status = 'DELIVERED') AS delivered
            FROM scans WHERE status IN ('PICKED_UP', 'DELIVERED') GROUP BY shipment
        ) AS s USING (shipment)
        ORDER BY shipment
        SETTINGS join_use_nulls = 1
    """,
    "order_legs": """
        SELECT order_id, o.created_at, o.in_shipment, o.in_carrier, o.ret_shipment, o.ret_carrier,
            ifNull(s.inbound, false), ifNull(s.return, false)
        FROM (
            SELECT order_id, min(created_at) AS created_at,
                argMax(inbound_shipment, version) AS in_shipment,
                argMax(inbound_carrier, version) AS in_carrier,
                argMax(return_shipment, version) AS ret_shipment,
                argMax(return_carrier, version) AS ret_carrier
            FROM order_events GROUP BY order_id
        ) AS o
        FULL JOIN (
            SELECT `order` AS order_id, max(leg = 'inbound') = 1 AS inbound,
                max(leg = 'return') = 1 AS return
            FROM signoffs GROUP BY order_id
        ) AS s USING (order_id)
        ORDER BY order_id
        SETTINGS join_use_nulls = 1
    """,
}

KEPT = {
    "shipment_firsts": f"""
        SELECT shipment, first_event, {sm.known("latest_carrier")}, {sm.known("latest_origin")},
            {sm.known("latest_dest")}, first_picked_up, first_delivered
        FROM shipment_firsts FINAL
        ORDER BY shipment
    """,
    "order_legs": f"""
        SELECT order_id, created_at, {sm.known("latest_inbound_shipment")},
            {sm.known("latest_inbound_carrier")}, {sm.known("latest_return_shipment")},
            {sm.known("latest_return_carrier")}, inbound_signed, return_signed
        FROM order_legs FINAL
        ORDER BY order_id
    """,
}


@pytest.fixture(scope="module")
def seed() -> Seed:
    return make_seed()


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'ch'}"


def _answers(store: Store) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {
        (name, span): run_report(store, name, ReportParams(*SPANS[span]))[1]
        for name in EXPECTED
        for span in SPANS
    }


def _expected(seed: Seed) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {(name, span): EXPECTED[name](seed, *SPANS[span]) for name in EXPECTED for span in SPANS}


def _assert_kept_as_computed(store: Store) -> None:
    """Each summary holds, key for key, what the raw tables give."""
    for table, sql in KEPT.items():
        kept = store.rows(sql)
        assert kept, table
        assert kept == store.rows(RAW[table]), table


def _summaries(store: Store) -> list[list[tuple[Any, ...]]]:
    return [store.rows(sql) for sql in KEPT.values()]


def _rows_stored(store: Store) -> dict[str, int]:
    return store.table_counts(["shipment_firsts", "order_legs"])


def _batches(rows: list[Row], table: str, size: int) -> Iterator[pa.Table]:
    for i in range(0, len(rows), size):
        yield pa.Table.from_pylist(rows[i : i + size], schema=SCHEMAS[table])


def _insert_in_batches(store: Store, seed: Seed, size: int, prefix: str) -> None:
    for table in SCHEMAS:
        for i, batch in enumerate(_batches(seed.rows[table], table, size)):
            store.insert_arrow(table, batch, f"{prefix}:{table}:{i}")


def test_the_summaries_hold_what_the_raw_tables_give(dsn: str, seed: Seed) -> None:
    with open_store(dsn) as store:
        _insert_in_batches(store, seed, 37, "seed")
        _assert_kept_as_computed(store)
        [firsts, legs] = _summaries(store)
        shipments = {r["shipment"] for t in ("shipments", "scans") for r in seed.rows[t]}
        assert [r[0] for r in firsts] == sorted(shipments)
        assert [r[0] for r in legs] == sorted({r["order_id"] for r in seed.rows["order_events"]})


def test_the_migration_backfills_a_store_that_already_has_rows(
    dsn: str, seed: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at migration 6 holding the seed. Reopened, migration 7 backfills the summaries
    from its rows: they hold what the raw tables gave before it (what the reports computed),
    and every report answers its definition, as it did over the raw tables."""
    before = tuple(m for m in MIGRATIONS if m.version < SUMMARIES_VERSION)
    with monkeypatch.context() as patch:
        patch.setattr(mig, "MIGRATIONS", before)
        with open_store(dsn) as store:
            assert store.applied_migrations() == [m.version for m in before]
            _insert_in_batches(store, seed, 50, "before")
            tables = {name for (name,) in store.rows("SHOW TABLES")}
            assert not tables & {"shipment_firsts", "order_legs"}
            computed = [store.rows(RAW[table]) for table in KEPT]
    with open_store(dsn) as store:
        assert store.applied_migrations() == [m.version for m in MIGRATIONS]
        assert _summaries(store) == computed
        _assert_kept_as_computed(store)
        assert _answers(store) == _expected(seed)


def test_the_backfill_run_again_changes_nothing(dsn: str, seed: Seed) -> None:
    """A migration interrupted after its backfill runs again whole: every stored row folded in
    a second (and a third) time leaves every summary row and every answer as it was."""
    with open_store(dsn) as store:
        seed.insert(store)
        answers, summaries = _answers(store), _summaries(store)
        [migration] = [m for m in MIGRATIONS if m.version == SUMMARIES_VERSION]
        # Unmerged, the rows folded in again are there to count.
        for table in ("shipment_firsts", "order_legs"):
            store.rows(f"SYSTEM STOP MERGES {table}")
        stored = _rows_stored(store)
        for _ in range(2):
            for statement in mig.render(migration, store.retention_days):
                store.rows(statement)
        again = _rows_stored(store)
        assert all(again[table] > n for table, n in stored.items()), (stored, again)
        assert _summaries(store) == summaries
        assert _answers(store) == answers == _expected(seed)


def test_rows_out_of_order_and_twice_give_the_same_answers(dsn: str, seed: Seed) -> None:
    """Scans and sign-offs before the shipment and order events they follow, each table's rows
    shuffled into small batches (a DELIVERED stored before its PICKED_UP, a later shipment or
    order event before an earlier one), then a third of the batches delivered again under new
    tokens, so their rows are stored twice."""
    rng = random.Random(7)
    first = ("scans", "signoffs", "alerts", "shipments")
    tables = [*first, *(t for t in SCHEMAS if t not in first)]
    with open_store(dsn) as store:
        batches = [
            (table, i, batch)
            for table in tables
            for i, batch in enumerate(
                _batches(rng.sample(seed.rows[table], len(seed.rows[table])), table, 7)
            )
        ]
        for table, i, batch in batches:
            store.insert_arrow(table, batch, f"shuffled:{table}:{i}")
        for table, i, batch in rng.sample(batches, len(batches) // 3):
            store.insert_arrow(table, batch, f"again:{table}:{i}")
        assert store.rows("SELECT count() FROM scans")[0][0] > len(seed.rows["scans"])
        _assert_kept_as_computed(store)
        assert _answers(store) == _expected(seed)


def _shipment(ship: str, ts: int, carrier: str | None, origin: str | None = "CN-110000") -> Row:
    return {"shipment": ship, "ts": ts, "carrier": carrier, "origin": origin, "dest": "CN-310000"}


def test_the_latest_known_attribute_is_argmax_over_known_values(dsn: str) -> None:
    """The encoding behind ``latest_*``: the latest time wins (times before 1970 too), a NULL
    is not known, an empty string is, none known reads as NULL, and a tie goes to the greater
    value (``argMax`` took the first it read: either is the latest)."""
    rows = [
        _shipment("A", -5_000, "OLD"),
        _shipment("A", -4_000, "NEW"),  # both before 1970
        _shipment("B", 1_000, "SF"),
        _shipment("B", 2_000, None),  # a later event without a carrier: SF is still known
        _shipment("C", 1_000, "SF"),
        _shipment("C", 2_000, ""),  # an empty carrier is a known value
        _shipment("D", 1_000, None, origin=None),
        _shipment("E", 10**12, "Z"),
        _shipment("E", 10**12 + 1, "A"),  # later and smaller: the time decides, not the value
        _shipment("F", 3_000, "X"),
        _shipment("F", 3_000, "Y"),  # a tie in time: the greater value, whatever the order
    ]
    with open_store(dsn) as store:
        for i, row in enumerate(reversed(rows)):
            batch = pa.Table.from_pylist([row], schema=SCHEMAS["shipments"])
            store.insert_arrow("shipments", batch, f"latest:{i}")
        got = store.rows(
            f"SELECT shipment, {sm.known('latest_carrier')}, {sm.known('latest_origin')} "
            "FROM shipment_firsts FINAL ORDER BY shipment"
        )
    assert got == [
        ("A", "NEW", "CN-110000"),
        ("B", "SF", "CN-110000"),
        ("C", "", "CN-110000"),
        ("D", None, None),
        ("E", "A", "CN-110000"),
        ("F", "Y", "CN-110000"),
    ]
