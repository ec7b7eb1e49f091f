"""The ClickHouse store, on real chDB (in this process; ``streamguard sql`` in a subprocess).

chDB hosts one engine per process, but a closed one can be reopened at another path, so each
test opens its own store under its tmp dir and closes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conftest import CliRunner
from streamguard import Engine
from streamguard.engine import DeadLetter, EngineStats
from streamguard.errors import ConfigError, StoreError
from streamguard.sim import Simulator, example_rules
from streamguard.store import (
    DEFAULT_RETENTION_DAYS,
    MIGRATIONS,
    Store,
    batch_token,
    open_store,
    parse_dsn,
)

DAY = 86_400_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"chdb://{tmp_path / 'ch'}") as s:
        yield s


@pytest.fixture(scope="module")
def feed() -> list[pa.RecordBatch]:
    """A small simulated feed: one batch per kind per chunk (scan, sensor, shipment)."""
    return list(Simulator(seed=5, shipments=100, events=6_000).record_batches(3_000))


@dataclass(frozen=True)
class Processed:
    alerts: pa.RecordBatch
    dead_letters: list[DeadLetter]
    stats: EngineStats


@pytest.fixture(scope="module")
def processed() -> Processed:
    """The engine's output for a small feed with a few invalid inputs."""
    sim = Simulator(seed=5, shipments=100, events=6_000, invalid_rate=0.01)
    engine = Engine(example_rules())
    alerts = engine.process(b"".join(sim.chunks(3_000, "json")))
    return Processed(alerts, engine.dead_letters, engine.stats())


def count(store: Store, table: str) -> int:
    return int(store.rows(f"SELECT count() FROM {table}")[0][0])


def kind_of(batch: pa.RecordBatch) -> str:
    return (batch.schema.metadata or {})[b"streamguard.kind"].decode()


# ---- migrations ----------------------------------------------------------------------------


def test_migrations_applied_on_open_and_twice_is_a_no_op(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'ch'}"
    latest = [m.version for m in MIGRATIONS]
    with open_store(dsn) as store:
        assert store.applied_migrations() == latest
        tables = store.rows(
            "SELECT name, create_table_query FROM system.tables "
            "WHERE database = 'streamguard' ORDER BY name"
        )
        assert store.migrate() == []
    with open_store(dsn) as store:
        assert store.migrate() == []
        assert count(store, "schema_migrations") == len(latest)
        assert (
            store.rows(
                "SELECT name, create_table_query FROM system.tables "
                "WHERE database = 'streamguard' ORDER BY name"
            )
            == tables
        )
    names = {name for name, _ in tables}
    assert names >= {
        "scans",
        "sensor_readings",
        "shipments",
        "shipments_latest",
        "alerts",
        "alert_status",
        "dead_letters",
        "engine_stats",
        "schema_migrations",
    }


def test_a_migration_recorded_twice_is_stored_once(store: Store) -> None:
    # Two processes migrating at once both record version 1: its token keeps one row.
    from streamguard.store import migrations

    store.insert_arrow("schema_migrations", migrations.record_batch(MIGRATIONS[0]), "migration:1")
    assert store.rows("SELECT count() FROM schema_migrations WHERE version = 1") == [(1,)]
    assert count(store, "schema_migrations") == len(MIGRATIONS)


# ---- deduplication -------------------------------------------------------------------------


def test_same_batch_same_token_is_stored_once(store: Store, feed: list[pa.RecordBatch]) -> None:
    expected: dict[str, int] = {}
    for seq, batch in enumerate(feed, start=1):
        token = batch_token("SG_EVENTS", "sg-engine", seq, seq)
        table = store.insert_events(batch, token)
        expected[table] = expected.get(table, 0) + batch.num_rows
        # A retry, and a replay after a restart: the same token.
        store.insert_events(batch, token)
        store.insert_events(batch, token)
    assert {table: count(store, table) for table in expected} == expected
    assert set(expected) == {"scans", "sensor_readings", "shipments"}


def test_a_batch_spanning_several_days_is_deduplicated_whole(store: Store) -> None:
    # A batch over k days becomes k parts (one per day partition), each deduplicated.
    sim = Simulator(seed=9, shipments=50, events=20_000)
    batches = [b for b in sim.record_batches(20_000) if kind_of(b) == "sensor"]
    batch = pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
    batch = batch.replace_schema_metadata({"streamguard.kind": "sensor"})
    store.insert_events(batch, "multi-day")
    days = store.rows(
        "SELECT uniqExact(partition) FROM system.parts WHERE active AND table = 'sensor_readings'"
    )[0][0]
    assert days > 1
    store.insert_events(batch, "multi-day")
    assert count(store, "sensor_readings") == batch.num_rows


def test_a_different_token_stores_the_rows_again(store: Store, feed: list[pa.RecordBatch]) -> None:
    batch = next(b for b in feed if kind_of(b) == "scan")
    store.insert_events(batch, batch_token("SG_EVENTS", "sg-engine", 1, 10))
    store.insert_events(batch, batch_token("SG_EVENTS", "sg-engine", 11, 20))
    assert count(store, "scans") == 2 * batch.num_rows


def test_a_token_names_one_set_of_rows(store: Store, feed: list[pa.RecordBatch]) -> None:
    # The hazard the token format guards against: ClickHouse keys a block by (day partition,
    # token), so a reused token silently drops other rows of the days the first insert had.
    first, second = [b for b in feed if kind_of(b) == "scan"][:2]
    store.insert_events(first, "same")
    store.insert_events(second, "same")
    days = set(pc.strftime(first["ts"], format="%Y-%m-%d").to_pylist())
    in_first_days = sum(d in days for d in pc.strftime(second["ts"], format="%Y-%m-%d").to_pylist())
    assert in_first_days > 0
    assert count(store, "scans") == first.num_rows + second.num_rows - in_first_days
    # Partitioned workers read interleaved sequences: the consumer keeps their tokens apart.
    assert batch_token("SG_EVENTS", "sg-engine-p0", 5, 9) != batch_token(
        "SG_EVENTS", "sg-engine-p1", 5, 9
    )


def test_alerts_in_every_state_with_evidence(store: Store, processed: Processed) -> None:
    alerts = processed.alerts
    store.insert_alerts(alerts, "alerts:1-9")
    store.insert_alerts(alerts, "alerts:1-9")
    assert count(store, "alerts") == alerts.num_rows
    states = dict(store.rows("SELECT state, count() FROM alerts GROUP BY state"))
    assert states == {s: alerts["state"].to_pylist().count(s) for s in set(states)}
    assert set(states) >= {"firing", "resolved"}
    # ts columns keep their milliseconds; evidence keeps its readings.
    stored = sorted(
        store.rows(
            "SELECT id, state, toUnixTimestamp64Milli(ts), toUnixTimestamp64Milli(started_ts), "
            "evidence FROM alerts"
        )
    )
    source = sorted(
        (a["id"], a["state"], a["ts"], a["started_ts"], a["evidence"] or [])
        for a in alerts.to_pylist()
    )
    assert [r[:4] for r in stored] == [s[:4] for s in source]
    evidence = [(r[4], s[4]) for r, s in zip(stored, source, strict=True) if s[4]]
    assert evidence
    for got, want in evidence:
        assert [tuple(x.values()) if isinstance(x, dict) else tuple(x) for x in got] == [
            (w["ts"], w["value"]) for w in want
        ]


# ---- dead letters, stats -------------------------------------------------------------------


def test_dead_letters_are_queryable(store: Store, processed: Processed) -> None:
    letters = processed.dead_letters
    assert letters
    rows = [*letters, ("malformed", "not UTF-8", b"\xff\xfe{")]
    store.insert_dead_letters(rows, "dlq:1", subject="sg.scan.YTO", stream_seq=42)
    store.insert_dead_letters(rows, "dlq:1", subject="sg.scan.YTO", stream_seq=42)
    assert count(store, "dead_letters") == len(rows)
    stored = store.rows(
        "SELECT reason, detail, hex(raw), subject, stream_seq FROM dead_letters "
        "ORDER BY reason, detail, raw"
    )
    want = sorted(
        (r[0], r[1], r[2].hex().upper(), "sg.scan.YTO", 42)
        for r in ((d.reason, d.detail, d.raw) for d in letters)
    )
    want.append(("malformed", "not UTF-8", "FFFE7B", "sg.scan.YTO", 42))
    assert sorted(stored) == sorted(want)
    by_reason = dict(store.rows("SELECT reason, count() FROM dead_letters GROUP BY reason"))
    assert sum(by_reason.values()) == len(rows)


def test_engine_stats_rows(store: Store, processed: Processed) -> None:
    stats = processed.stats
    store.insert_stats(stats, "stats:w0:1", ts_ms=1_795_352_700_000, worker="p0")
    store.insert_stats(stats, "stats:w0:1", ts_ms=1_795_352_700_000, worker="p0")
    [(worker, events_in, rejected, watermark)] = store.rows(
        "SELECT worker, events_in, rejected, toUnixTimestamp64Milli(watermark) FROM engine_stats"
    )
    assert (worker, events_in, watermark) == ("p0", stats["events_in"], stats["watermark"])
    assert rejected == stats["rejected"]


# ---- retention -----------------------------------------------------------------------------


def ttl_of(store: Store, table: str) -> str:
    """The table's TTL clause as ClickHouse reports it, or ''."""
    [(query,)] = store.rows(
        "SELECT create_table_query FROM system.tables WHERE database = 'streamguard' "
        "AND name = {t:String}",
        {"t": table},
    )
    found = re.search(r" TTL (.*?) SETTINGS ", str(query))
    return found.group(1) if found else ""


def test_ttl_is_present_and_defaults_to_three_years(store: Store) -> None:
    assert DEFAULT_RETENTION_DAYS >= 3 * 365
    for table, column in [("scans", "ts"), ("sensor_readings", "ts"), ("dead_letters", "received")]:
        assert (
            ttl_of(store, table)
            == f"toDateTime({column}) + toIntervalDay({DEFAULT_RETENTION_DAYS})"
        )
    # Alerts are claim evidence: they never expire.
    assert ttl_of(store, "alerts") == ""


def test_ttl_is_configurable_and_expires_old_rows(tmp_path: Path) -> None:
    with open_store(f"chdb://{tmp_path / 'ch'}", retention_days=30) as store:
        assert ttl_of(store, "scans").endswith("toIntervalDay(30)")
        store.set_retention(400)
        assert ttl_of(store, "scans").endswith("toIntervalDay(400)")
        now = int(store.rows("SELECT toUnixTimestamp64Milli(now64(3))")[0][0])
        old = pa.RecordBatch.from_pydict(
            {"shipment": ["OLD", "NEW"], "ts": pa.array([now - 500 * DAY, now], pa.int64())},
        )
        old = old.set_column(1, "ts", old["ts"].view(pa.timestamp("ms", tz="UTC")))
        store.insert_arrow("scans", old, "ttl-test")
        # The expired row may already be gone (a background merge applies the TTL too).
        assert ("NEW",) in store.rows("SELECT shipment FROM scans")
        store.rows("OPTIMIZE TABLE scans FINAL")
        assert store.rows("SELECT shipment FROM scans") == [("NEW",)]


# ---- the one-engine rule, errors -----------------------------------------------------------


def test_one_chdb_engine_per_process(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    with open_store(f"chdb://{a}") as first:
        with open_store(f"chdb://{a}/") as same:
            # Same directory, other spelling: the same engine, shared.
            assert same.rows("SELECT count() FROM schema_migrations") == [(len(MIGRATIONS),)]
        assert first.rows("SELECT 1") == [(1,)]
        with pytest.raises(StoreError, match=r"one engine per process.*close that store"):
            open_store(f"chdb://{b}")
    # Once closed, another path can be opened.
    with open_store(f"chdb://{b}") as other:
        assert other.applied_migrations() == [m.version for m in MIGRATIONS]


def test_clickhouse_failures_are_store_errors(store: Store, feed: list[pa.RecordBatch]) -> None:
    with pytest.raises(StoreError, match=r"UNKNOWN_TABLE|does not exist"):
        store.rows("SELECT * FROM nowhere")
    with pytest.raises(StoreError, match="SYNTAX_ERROR"):
        store.query("SELEC 1")
    with pytest.raises(StoreError, match=r"insert into alerts: .*Code: \d+"):
        store.insert_arrow("alerts", feed[0], "bad-shape")
    with pytest.raises(ConfigError, match="unknown kind"):
        store.insert_events(pa.record_batch({"x": [1]}), "t")
    with pytest.raises(ConfigError, match="deduplication token"):
        store.insert_events(feed[0], "")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.rows("SELECT 1")


def test_query_returns_arrow(store: Store, feed: list[pa.RecordBatch]) -> None:
    batch = next(b for b in feed if kind_of(b) == "shipment")
    store.insert_events(batch, "ship:1")
    table = store.query("SELECT shipment, tier, declared_value FROM shipments_latest;")
    assert table.num_rows == len(set(batch["shipment"].to_pylist()))
    assert pa.types.is_string(table.schema.field("shipment").type)


# ---- DSNs ----------------------------------------------------------------------------------


def test_dsn_parsing() -> None:
    d = parse_dsn("chdb:///var/lib/sg/")
    assert (d.scheme, d.path, d.database) == ("chdb", "/var/lib/sg", "streamguard")
    d = parse_dsn("https://ops:p%40ss@ch.example:9443/events")
    assert (d.host, d.port, d.username, d.password, d.database) == (
        "ch.example",
        9443,
        "ops",
        "p@ss",
        "events",
    )
    assert "p@ss" not in str(d)
    assert "p@ss" not in repr(d)
    assert parse_dsn("http://ch").port == 8123
    assert parse_dsn("https://ch").port == 8443


@pytest.mark.parametrize(
    ("dsn", "part"),
    [
        ("chdb://relative/path", "absolute path"),
        ("chdb:///x?y=1", "no options"),
        ("mysql://h/db", "unknown scheme 'mysql'"),
        ("http://:8123/db", "no host"),
        ("http://h:port/db", "bad port"),
        ("http://h/a-b", "bad database 'a-b'"),
        ("http://u:hunter2@h/a;b", "bad database"),
    ],
)
def test_bad_dsns_name_the_bad_part(dsn: str, part: str) -> None:
    with pytest.raises(ConfigError, match=part) as e:
        parse_dsn(dsn)
    assert "hunter2" not in str(e.value)


# ---- streamguard sql -----------------------------------------------------------------------


@pytest.fixture
def filled(tmp_path: Path, processed: Processed) -> str:
    dsn = f"chdb://{tmp_path / 'ch'}"
    with open_store(dsn) as store:
        store.insert_alerts(processed.alerts, "alerts:1")
        store.insert_dead_letters(processed.dead_letters, "dlq:1")
    return dsn


def test_sql_prints_json_csv_and_table(cli: CliRunner, filled: str, processed: Processed) -> None:
    q = "SELECT state, count() AS n FROM alerts GROUP BY state ORDER BY state"
    out = cli("sql", q, "--format", "json", "--dsn", filled)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    states = processed.alerts["state"].to_pylist()
    assert rows == [{"state": s, "n": states.count(s)} for s in sorted(set(states))]
    out = cli("sql", q, "--format", "csv", "--dsn", filled)
    assert out.stdout.splitlines()[0] == '"state","n"'
    out = cli("sql", q, "--dsn", filled)
    assert "firing" in out.stdout
    assert "│" in out.stdout


def test_sql_reads_the_dsn_from_the_environment(
    cli: CliRunner, filled: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMGUARD_DSN", filled)
    out = cli("sql", "SELECT count() AS n FROM dead_letters", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] > 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELEC 1", "SYNTAX_ERROR"),
        ("SELECT * FROM nowhere", "UNKNOWN_TABLE"),
        ("SELECT nope FROM alerts", "UNKNOWN_IDENTIFIER"),
    ],
)
def test_sql_errors_are_clickhouse_errors_exit_2(
    cli: CliRunner, filled: str, query: str, expected: str
) -> None:
    out = cli("sql", query, "--dsn", filled)
    assert out.returncode == 2
    assert out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith("streamguard: error: query failed: Code: ")
    assert expected in line


def test_sql_without_a_store_is_a_clear_error(cli: CliRunner, tmp_path: Path) -> None:
    out = cli("sql", "SELECT 1", "--dsn", f"chdb://{tmp_path / 'none'}")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"streamguard: error: no store at {tmp_path / 'none'}: nothing has been stored there yet"
    ]
    out = cli("sql", "SELECT 1", "--dsn", "chdb://relative")
    assert out.returncode == 2
    assert "absolute path" in out.stderr
