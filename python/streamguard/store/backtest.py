"""Stored events read back for a backtest, in the order the live engine saw them.

The live engine stores each event with its key: ``seq``, the ``SG_EVENTS`` sequence of the
message it came in, and ``idx``, its row in that message (across kinds). Ordering the three
event tables together by ``(seq, idx)`` is therefore the arrival order, and a backtest over it
sees what the engine saw. Rows stored by other means have ``seq = 0``: their arrival order was
never recorded, so they come after every keyed row, by event time, shipments before scans
before sensor readings at equal ``ts`` (a ``where`` filter then sees the shipment's attributes),
then by shipment and event id. Rows that tie on all of those are in no defined order.

The batches are cast to the engine's own Arrow event schemas (``core/src/event/arrow/
write.rs``), so a ClickHouse server's types (dictionary strings, other timestamp units) and
chDB's read the same; ``seq``/``idx`` are dropped, and a ``signer`` tuple whose parts are all
null (ClickHouse has no nullable tuple) is null again, as the engine wrote it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamguard.errors import ConfigError
from streamguard.store import tables as t
from streamguard.store.store import Store

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "ENGINE_SCHEMAS",
    "RUN_ROWS",
    "count_events",
    "stored_batches",
]

#: The most events one backtest reads unless the caller says otherwise.
DEFAULT_MAX_EVENTS = 1_000_000
#: Longest record batch yielded; the engine's output does not depend on batch boundaries.
RUN_ROWS = 65_536

_TS = pa.timestamp("ms", tz="UTC")
_KIND_META = b"streamguard.kind"


def _schema(kind: str, fields: list[pa.Field[Any]]) -> pa.Schema:
    common: list[pa.Field[Any]] = [
        pa.field("shipment", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        pa.field("id", pa.string()),
    ]
    return pa.schema(common + fields, metadata={_KIND_META: kind.encode()})


_SIGNER = pa.struct([(name, pa.string()) for name in ("name", "type", "proxy_id", "staff_id")])
_METRICS = ("shock_g", "temp_c", "humidity_pct", "tilt_deg", "light_lux", "battery_pct")

#: The engine's Arrow schema of each kind of event, as ``Engine.process`` takes it.
ENGINE_SCHEMAS: dict[str, pa.Schema] = {
    "shipment": _schema(
        "shipment",
        [
            *(pa.field(n, pa.string()) for n in ("carrier", "origin", "dest", "tier")),
            pa.field("fragile", pa.bool_()),
            pa.field("order", pa.string()),
            pa.field("declared_value", pa.decimal128(19, 2)),
        ],
    ),
    "scan": _schema(
        "scan",
        [
            *(pa.field(n, pa.string()) for n in ("carrier", "status", "location")),
            pa.field("lat", pa.float64()),
            pa.field("lon", pa.float64()),
            pa.field("signer", _SIGNER),
            pa.field("raw_status", pa.string()),
        ],
    ),
    "sensor": _schema(
        "sensor",
        [
            pa.field("device", pa.string()),
            *(pa.field(n, pa.float64()) for n in (*_METRICS, "lat", "lon")),
        ],
    ),
}

# Tie-break rank of each kind for rows without a key (and the order tables are read in).
_KINDS = ("shipment", "scan", "sensor")

_RANGE = (
    "ts >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
    "AND ts < fromUnixTimestamp64Milli({hi:Int64}, 'UTC')"
)


def _params(from_ms: int, to_ms: int) -> dict[str, int]:
    if from_ms >= to_ms:
        raise ConfigError(f"empty range: from_ms {from_ms} must be before to_ms {to_ms}")
    return {"lo": from_ms, "hi": to_ms}


def count_events(store: Store, from_ms: int, to_ms: int) -> int:
    """How many events of every kind are stored with ``ts`` in ``[from_ms, to_ms)``."""
    params = _params(from_ms, to_ms)
    selects = [f"SELECT count() AS n FROM {t.EVENT_TABLES[k]} WHERE {_RANGE}" for k in _KINDS]
    rows = store.rows(f"SELECT sum(n) FROM ({' UNION ALL '.join(selects)})", params)
    return int(rows[0][0] or 0)


def _too_many(total: int, max_events: int) -> ConfigError:
    return ConfigError(
        f"the range holds {total} stored events, more than the limit of {max_events} "
        "a backtest reads; narrow from_ms/to_ms"
    )


def _read(store: Store, kind: str, params: dict[str, int]) -> pa.Table:
    columns = ", ".join(f"`{name}`" for name in ENGINE_SCHEMAS[kind].names)
    sql = (
        f"SELECT {columns}, seq, idx FROM {t.EVENT_TABLES[kind]} WHERE {_RANGE} "
        "ORDER BY seq = 0, seq, idx, ts, shipment, id LIMIT {limit:UInt64}"
    )
    return store.query(sql, params)


def _signer(column: pa.ChunkedArray[Any]) -> pa.Array[Any]:
    """The signer struct, null where all its parts are (ClickHouse stores no null tuple)."""
    arr = column.combine_chunks().cast(_SIGNER)
    assert isinstance(arr, pa.StructArray)
    parts = [arr.field(i) for i in range(arr.type.num_fields)]
    present = pc.is_valid(parts[0])
    for part in parts[1:]:
        present = pc.or_(present, pc.is_valid(part))
    return pa.StructArray.from_arrays(parts, fields=list(_SIGNER), mask=pc.invert(present))


def _engine_batch(kind: str, table: pa.Table) -> pa.RecordBatch:
    schema = ENGINE_SCHEMAS[kind]
    arrays: list[pa.Array[Any]] = []
    for f in schema:
        column = table.column(f.name)
        if f.name == "signer":
            arrays.append(_signer(column))
        else:
            arrays.append(column.combine_chunks().cast(f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _arrival_order(tables: dict[str, pa.Table]) -> pa.Table:
    """One row per stored event, sorted into arrival order: its kind's rank and its row."""
    keys = []
    for rank, kind in enumerate(_KINDS):
        table = tables[kind]
        seq = table.column("seq").combine_chunks().cast(pa.uint64())
        keys.append(
            pa.table(
                {
                    "unkeyed": pc.equal(seq, pa.scalar(0, pa.uint64())),
                    "seq": seq,
                    "idx": table.column("idx").combine_chunks().cast(pa.uint32()),
                    "ts": table.column("ts").combine_chunks().cast(_TS).cast(pa.int64()),
                    "rank": pa.repeat(pa.scalar(rank, pa.int8()), table.num_rows),
                    "row": pa.array(range(table.num_rows), pa.int64()),
                }
            )
        )
    order = ["unkeyed", "seq", "idx", "ts", "rank", "row"]
    return pa.concat_tables(keys).sort_by([(k, "ascending") for k in order])


def stored_batches(
    store: Store,
    from_ms: int,
    to_ms: int,
    max_events: int = DEFAULT_MAX_EVENTS,
    *,
    run_rows: int = RUN_ROWS,
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """The events stored with ``ts`` in ``[from_ms, to_ms)`` as ``(kind, batch)`` pairs: each
    batch a run of consecutive events of one kind (at most ``run_rows``), in arrival order
    (see the module docstring), in the engine's Arrow schema.

    Raises ConfigError, before yielding anything, when the range holds more than
    ``max_events`` (counted first, so an oversized range is refused before it is read).
    """
    total = count_events(store, from_ms, to_ms)
    if total > max_events:
        raise _too_many(total, max_events)
    if total == 0:
        return
    # Rows stored since the count are bounded too: one more than the limit is enough to tell.
    params = {**_params(from_ms, to_ms), "limit": max_events + 1}
    tables = {kind: _read(store, kind, params) for kind in _KINDS}
    read = sum(table.num_rows for table in tables.values())
    if read > max_events:
        raise _too_many(read, max_events)
    order = _arrival_order(tables)
    ranks = order.column("rank").combine_chunks()
    rows = order.column("row").combine_chunks()
    # Each kind's rows put in arrival order once: every run is then a zero-copy slice.
    batches = {
        kind: _engine_batch(kind, tables[kind]).take(
            pc.filter(rows, pc.equal(ranks, pa.scalar(rank, pa.int8())))
        )
        for rank, kind in enumerate(_KINDS)
    }
    next_row = dict.fromkeys(_KINDS, 0)
    # Where the kind changes from one event to the next: the runs' boundaries.
    changes = pc.indices_nonzero(pc.not_equal(ranks[1:], ranks[:-1])).to_pylist()
    starts = [0, *(i + 1 for i in changes if i is not None)]
    ends = [*starts[1:], len(ranks)]
    for start, end in zip(starts, ends, strict=True):
        kind = _KINDS[ranks[start].as_py()]
        for lo in range(start, end, run_rows):
            n = min(run_rows, end - lo)
            yield kind, batches[kind].slice(next_row[kind], n)
            next_row[kind] += n
