"""The ClickHouse tables, as DDL, and the Arrow shapes that go into them.

Column names and order follow the engine's Arrow schemas (``core/src/event/arrow/write.rs`` for
events, ``core/src/engine/alert.rs`` for alerts, ``core/src/engine/score.rs`` for shipment
scores), so a batch goes in with ``insert_arrow``
unchanged; ClickHouse matches columns by name. The one conversion is the alerts' ``ts`` columns:
the engine writes them as Int64 ms, and ClickHouse's Arrow reader does not read an Int64 into a
``DateTime64`` as milliseconds, so they are re-typed (``Array.view``, zero copy) to
``timestamp[ms, UTC]``, the type the event batches already carry.

Every table that ingests batches keeps the block hashes of its last
:data:`DEDUP_WINDOW` inserts (``non_replicated_deduplication_window``), so an insert that
repeats an ``insert_deduplication_token`` is dropped; replicated tables get the same from
``replicated_deduplication_window``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import pyarrow as pa

__all__ = [
    "ALERTS",
    "DEAD_LETTERS",
    "DEAD_LETTERS_SCHEMA",
    "DEDUP_WINDOW",
    "ENGINE_STATS",
    "ENGINE_STATS_SCHEMA",
    "EVENT_TABLES",
    "MIGRATIONS_TABLE",
    "RETAINED_TABLES",
    "SCANS",
    "SENSOR_READINGS",
    "SHIPMENTS",
    "SHIPMENT_SCORES",
    "DeadLetterLike",
    "alerts_for_storage",
    "dead_letters_batch",
    "dead_letters_from_messages",
    "event_key_ddl",
    "stats_batch",
]

SCANS = "scans"
SENSOR_READINGS = "sensor_readings"
SHIPMENTS = "shipments"
ALERTS = "alerts"
DEAD_LETTERS = "dead_letters"
ENGINE_STATS = "engine_stats"
SHIPMENT_SCORES = "shipment_scores"
MIGRATIONS_TABLE = "schema_migrations"

#: The engine's event kind (schema metadata ``streamguard.kind``) -> its table.
EVENT_TABLES: Mapping[str, str] = {
    "scan": SCANS,
    "sensor": SENSOR_READINGS,
    "shipment": SHIPMENTS,
}

#: Tables whose rows expire after the configured retention, and their time column.
RETAINED_TABLES: Mapping[str, str] = {
    SCANS: "ts",
    SENSOR_READINGS: "ts",
    DEAD_LETTERS: "received",
    ENGINE_STATS: "ts",
    SHIPMENT_SCORES: "ts",
}

#: Inserts remembered per table for deduplication. A batch spanning k days is k blocks, so this
#: covers thousands of batches: far more than a redelivery after a crash replays.
DEDUP_WINDOW = 10_000

TS = "DateTime64(3, 'UTC')"
# Codes and other short, repetitive strings.
CODE = "LowCardinality(Nullable(String))"
TEXT = "Nullable(String)"
# High-volume tables: ZSTD(1) and delta-coded times take a sensor reading from 26 to 17 bytes
# on disk (measured on the simulator's feed) at no visible cost to insert speed.
Z = "CODEC(ZSTD(1))"
EVENT_TS = f"{TS} CODEC(Delta, ZSTD(1))"
METRIC = f"Nullable(Float64) {Z}"


def _schema(fields: Iterable[pa.Field[Any]]) -> pa.Schema:
    return pa.schema(list(fields))


def _ttl(column: str) -> str:
    # ttl_only_drop_parts: parts are day partitions, so expiry drops whole parts, never rewrites.
    return f"TTL toDateTime({column}) + INTERVAL {{retention_days}} DAY"


_DEDUP = f"non_replicated_deduplication_window = {DEDUP_WINDOW}"

SCANS_DDL = f"""
CREATE TABLE IF NOT EXISTS {SCANS} (
    shipment String {Z},
    ts {EVENT_TS},
    id {TEXT} {Z},
    carrier {CODE},
    status {CODE},
    location {CODE} {Z},
    lat {METRIC},
    lon {METRIC},
    signer Tuple(name {TEXT}, type {CODE}, proxy_id {TEXT}, staff_id {TEXT}),
    raw_status {CODE} {Z}
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (shipment, ts)
{_ttl("ts")}
SETTINGS {_DEDUP}, ttl_only_drop_parts = 1
"""

SENSOR_READINGS_DDL = f"""
CREATE TABLE IF NOT EXISTS {SENSOR_READINGS} (
    shipment String {Z},
    ts {EVENT_TS},
    id {TEXT} {Z},
    device {CODE},
    shock_g {METRIC},
    temp_c {METRIC},
    humidity_pct {METRIC},
    tilt_deg {METRIC},
    light_lux {METRIC},
    battery_pct {METRIC},
    lat {METRIC},
    lon {METRIC}
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (shipment, ts)
{_ttl("ts")}
SETTINGS {_DEDUP}, ttl_only_drop_parts = 1
"""

# Every shipment event is kept (append-only); shipments_latest is the current attributes.
SHIPMENTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {SHIPMENTS} (
    shipment String,
    ts {TS},
    id {TEXT},
    carrier {CODE},
    origin {CODE},
    dest {CODE},
    tier {CODE},
    fragile Nullable(Bool),
    `order` {TEXT},
    declared_value Nullable(Decimal(19, 2))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (shipment, ts)
SETTINGS {_DEDUP}
"""


def event_key_ddl(table: str) -> str:
    """Migration 2: each stored event's key, its message's ``SG_EVENTS`` sequence and its row
    in that message (the live engine fills them; 0 for rows stored by other means)."""
    return (
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS seq UInt64 DEFAULT 0 {Z}, "
        f"ADD COLUMN IF NOT EXISTS idx UInt32 DEFAULT 0 {Z}"
    )


SHIPMENTS_LATEST_DDL = f"""
CREATE VIEW IF NOT EXISTS shipments_latest AS
SELECT * FROM {SHIPMENTS} ORDER BY shipment, ts DESC LIMIT 1 BY shipment
"""

# Alerts never expire: they are the evidence insurance claims cite.
ALERTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {ALERTS} (
    id String,
    rule LowCardinality(String),
    kind LowCardinality(String),
    severity LowCardinality(String),
    state LowCardinality(String),
    shipment String,
    carrier {CODE},
    ts {TS},
    started_ts {TS},
    metric {CODE},
    value Nullable(Float64),
    threshold Nullable(Float64),
    peak Nullable(Float64),
    duration_ms Nullable(Int64),
    evidence Array(Tuple(ts Int64, value Float64)),
    scan_status {CODE},
    scan_location {CODE},
    scan_ts Nullable({TS})
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (shipment, ts, id, state)
SETTINGS {_DEDUP}
"""

# The latest record of each alert: a firing one is still open.
ALERT_STATUS_DDL = f"""
CREATE VIEW IF NOT EXISTS alert_status AS
SELECT * FROM {ALERTS} ORDER BY id, ts DESC, state = 'firing' LIMIT 1 BY id
"""

DEAD_LETTERS_DDL = f"""
CREATE TABLE IF NOT EXISTS {DEAD_LETTERS} (
    received {TS},
    reason LowCardinality(String),
    detail String,
    raw String,
    subject {TEXT},
    stream_seq Nullable(UInt64)
)
ENGINE = MergeTree
PARTITION BY toDate(received)
ORDER BY (reason, received)
{_ttl("received")}
SETTINGS {_DEDUP}, ttl_only_drop_parts = 1
"""

ENGINE_STATS_DDL = f"""
CREATE TABLE IF NOT EXISTS {ENGINE_STATS} (
    ts {TS},
    worker LowCardinality(String),
    events_in UInt64,
    accepted UInt64,
    out_of_order UInt64,
    rejected Map(LowCardinality(String), UInt64),
    fired UInt64,
    resolved UInt64,
    retracted UInt64,
    shipments UInt64,
    state_bytes UInt64,
    watermark Nullable({TS}),
    rules_version UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (worker, ts)
{_ttl("ts")}
SETTINGS {_DEDUP}
"""

# A shipment's ETA, delay and damage risk each time they changed materially (issue 7); the
# engine writes timestamps as timestamp[ms, UTC], so a batch goes in unchanged. Derived data,
# so it expires with the events it was derived from.
SHIPMENT_SCORES_DDL = f"""
CREATE TABLE IF NOT EXISTS {SHIPMENT_SCORES} (
    shipment String {Z},
    ts {EVENT_TS},
    carrier LowCardinality(String),
    origin LowCardinality(String),
    dest LowCardinality(String),
    eta_p50 Nullable({TS}),
    eta_p90 Nullable({TS}),
    delay_risk Nullable(Float64),
    damage_risk Float64,
    shock_episodes UInt32,
    delivered Bool
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (shipment, ts)
{_ttl("ts")}
SETTINGS {_DEDUP}, ttl_only_drop_parts = 1
"""

# Each shipment's latest score.
SHIPMENT_SCORES_LATEST_DDL = f"""
CREATE VIEW IF NOT EXISTS shipment_scores_latest AS
SELECT * FROM {SHIPMENT_SCORES} ORDER BY shipment, ts DESC LIMIT 1 BY shipment
"""

# Not a migration: the ledger migrations are recorded in. A re-recorded version is dropped by
# its deduplication token, so two processes migrating at once leave one row per version.
MIGRATIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version UInt32,
    name String,
    applied_at {TS}
)
ENGINE = MergeTree
ORDER BY version
SETTINGS non_replicated_deduplication_window = 1000
"""

MIGRATIONS_SCHEMA = _schema(
    [
        pa.field("version", pa.uint32(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("applied_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    ]
)

_TS_ARROW = pa.timestamp("ms", tz="UTC")
_ALERT_TS_COLUMNS = ("ts", "started_ts", "scan_ts")


def alerts_for_storage(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The alert batch with its Int64 ms ``ts`` columns re-typed as ``timestamp[ms, UTC]``
    (zero copy: same buffers, new type)."""
    columns = list(batch.columns)
    fields = list(batch.schema)
    for name in _ALERT_TS_COLUMNS:
        i = batch.schema.get_field_index(name)
        if i >= 0 and pa.types.is_int64(fields[i].type):
            columns[i] = columns[i].view(_TS_ARROW)
            fields[i] = fields[i].with_type(_TS_ARROW)
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


class DeadLetterLike(Protocol):
    """What :meth:`Store.insert_dead_letters` reads: ``streamguard.engine.DeadLetter`` fits."""

    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def raw(self) -> bytes: ...


DEAD_LETTERS_SCHEMA = _schema(
    [
        pa.field("received", _TS_ARROW, nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("raw", pa.binary(), nullable=False),
        pa.field("subject", pa.string()),
        pa.field("stream_seq", pa.uint64()),
    ]
)


def dead_letters_from_messages(
    rows: Iterable[tuple[str, str, bytes, str, int]], received_ms: int
) -> pa.RecordBatch:
    """``(reason, detail, raw, subject, stream_seq)`` rows, one per dead letter, as a batch."""
    cols: list[list[Any]] = [[], [], [], [], []]
    for row in rows:
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    n = len(cols[0])
    return pa.RecordBatch.from_arrays(
        [
            pa.array([received_ms] * n, pa.int64()).view(_TS_ARROW),
            pa.array(cols[0], pa.string()),
            pa.array(cols[1], pa.string()),
            pa.array(cols[2], pa.binary()),
            pa.array(cols[3], pa.string()),
            pa.array(cols[4], pa.uint64()),
        ],
        schema=DEAD_LETTERS_SCHEMA,
    )


def dead_letters_batch(
    rows: Iterable[DeadLetterLike | tuple[str, str, bytes]],
    received_ms: int,
    subject: str | None,
    stream_seq: int | None,
) -> pa.RecordBatch:
    """Dead letters (``DeadLetter`` objects or ``(reason, detail, raw)`` tuples) as a batch."""
    reasons: list[str] = []
    details: list[str] = []
    raws: list[bytes] = []
    for row in rows:
        if isinstance(row, tuple):
            reason, detail, raw = row
        else:
            reason, detail, raw = row.reason, row.detail, row.raw
        reasons.append(reason)
        details.append(detail)
        raws.append(raw)
    n = len(reasons)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([received_ms] * n, pa.int64()).view(_TS_ARROW),
            pa.array(reasons, pa.string()),
            pa.array(details, pa.string()),
            pa.array(raws, pa.binary()),
            pa.array([subject] * n, pa.string()),
            pa.array([stream_seq] * n, pa.uint64()),
        ],
        schema=DEAD_LETTERS_SCHEMA,
    )


ENGINE_STATS_SCHEMA = _schema(
    [
        pa.field("ts", _TS_ARROW, nullable=False),
        pa.field("worker", pa.string(), nullable=False),
        *(
            pa.field(name, pa.uint64(), nullable=False)
            for name in ("events_in", "accepted", "out_of_order")
        ),
        pa.field("rejected", pa.map_(pa.string(), pa.uint64()), nullable=False),
        *(
            pa.field(name, pa.uint64(), nullable=False)
            for name in ("fired", "resolved", "retracted", "shipments", "state_bytes")
        ),
        pa.field("watermark", _TS_ARROW),
        pa.field("rules_version", pa.uint64(), nullable=False),
    ]
)


def stats_batch(stats: Mapping[str, object], ts_ms: int, worker: str) -> pa.RecordBatch:
    """One row of engine counters (``Engine.stats()`` or a live engine's status)."""
    row = {
        name: stats.get(name, 0) or 0
        for name in ENGINE_STATS_SCHEMA.names
        if name not in ("ts", "worker", "watermark")
    }
    rejected = stats.get("rejected") or {}
    if not isinstance(rejected, Mapping):
        raise TypeError(f"stats['rejected'] must be a mapping, got {type(rejected).__name__}")
    row["rejected"] = list(rejected.items())
    row["ts"] = ts_ms
    row["worker"] = worker
    row["watermark"] = stats.get("watermark")
    return pa.RecordBatch.from_pylist([row], schema=ENGINE_STATS_SCHEMA)
