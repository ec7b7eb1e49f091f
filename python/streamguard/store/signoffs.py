"""Sign-offs in ClickHouse: one flat row per sealed record, and back again without loss.

The row is the record as signed, field for field (the proxy's identity as ``proxy_*`` columns,
``lat``/``lon`` as the decimal text that was signed), plus its hash, signature and key id: the
platform's key itself is never here. Nothing in the API updates or deletes these rows; if
someone does it in the database, :func:`streamguard.domain.signoffs.verify` reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pyarrow as pa

from streamguard.domain.signoffs import SealedSignOff, SignOffRecord
from streamguard.errors import StoreError
from streamguard.store import tables as t
from streamguard.store.store import Store

__all__ = [
    "SIGNOFFS",
    "SIGNOFFS_DDL",
    "SIGNOFFS_SCHEMA",
    "SIGNOFF_RETENTION_DAYS",
    "StoredSignOffError",
    "from_row",
    "insert_signoffs",
    "signoff_by_id",
    "signoffs_of_order",
    "to_row",
]

SIGNOFFS = "signoffs"

#: The law's floor: sign-offs are kept at least this long (3 years, one leap day included).
#: The table has no TTL at all, which keeps them longer; see SIGNOFFS_DDL for why.
SIGNOFF_RETENTION_DAYS = 3 * 365 + 1

_PROXY_FIELDS = ("name", "document_type", "document_hash", "document_last4", "relationship")

# No TTL: a row-by-row expiry would drop an order's first sign-off before its later ones (days
# or weeks apart), and the survivors would then fail chain verification as if tampered with;
# the rows are tiny (two per order), and deleting legal evidence should be a deliberate act.
# No braces: migrations are rendered with str.format(retention_days=...).
SIGNOFFS_DDL: str = f"""
CREATE TABLE IF NOT EXISTS {SIGNOFFS} (
    id String,
    `order` String,
    leg LowCardinality(String),
    `index` UInt32,
    prev_hash String,
    signer_name String,
    signer_type LowCardinality(String),
    proxy_name Nullable(String),
    proxy_document_type LowCardinality(Nullable(String)),
    proxy_document_hash Nullable(String),
    proxy_document_last4 Nullable(String),
    proxy_relationship LowCardinality(Nullable(String)),
    staff_id Nullable(String),
    ts {t.TS},
    region LowCardinality(Nullable(String)),
    lat Nullable(String),
    lon Nullable(String),
    channel LowCardinality(String),
    carrier LowCardinality(Nullable(String)),
    shipment Nullable(String),
    signature_image_sha256 Nullable(String),
    photo_sha256 Array(String),
    content_sha256 String,
    hash String,
    signature String,
    key_id LowCardinality(String),
    stored_at {t.TS} DEFAULT now64(3),
    INDEX signoff_id id TYPE bloom_filter GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (`order`, `index`)
SETTINGS non_replicated_deduplication_window = {t.DEDUP_WINDOW}
"""

_TS = pa.timestamp("ms", tz="UTC")
_OPTIONAL = {
    *(f"proxy_{name}" for name in _PROXY_FIELDS),
    *("staff_id", "region", "lat", "lon", "carrier", "shipment", "signature_image_sha256"),
}
_COLUMNS = (
    "id",
    "order",
    "leg",
    "index",
    "prev_hash",
    "signer_name",
    "signer_type",
    *(f"proxy_{name}" for name in _PROXY_FIELDS),
    "staff_id",
    "ts",
    "region",
    "lat",
    "lon",
    "channel",
    "carrier",
    "shipment",
    "signature_image_sha256",
    "photo_sha256",
    "content_sha256",
    "hash",
    "signature",
    "key_id",
)


def _arrow_type(column: str) -> pa.DataType:
    if column == "index":
        return pa.uint32()
    if column == "ts":
        return _TS
    if column == "photo_sha256":
        return pa.list_(pa.string())
    return pa.string()


#: What :func:`insert_signoffs` sends: every column but ``stored_at`` (ClickHouse's clock).
SIGNOFFS_SCHEMA = pa.schema(
    [pa.field(c, _arrow_type(c), nullable=c in _OPTIONAL) for c in _COLUMNS]
)

# ts comes back as integer ms, so the read is exact whatever the client does with time zones.
_SELECT = ", ".join("toUnixTimestamp64Milli(ts) AS ts" if c == "ts" else f"`{c}`" for c in _COLUMNS)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StoredSignOffError(StoreError):
    """A ``signoffs`` row that is not a valid sign-off at all (say ``signer_type`` edited to a
    word the API never writes): tampering that cannot even be read as a record.
    ``signoff_id`` names the row so the caller can report it."""

    def __init__(self, message: str, *, signoff_id: str) -> None:
        super().__init__(message)
        self.signoff_id = signoff_id


def to_row(sealed: SealedSignOff) -> dict[str, Any]:
    """The sealed sign-off as one ``signoffs`` row (``ts`` as integer ms)."""
    record = msgspec.to_builtins(sealed.record)
    proxy = record.pop("proxy") or {}
    row = {c: record.get(c) for c in _COLUMNS}
    row.update({f"proxy_{name}": proxy.get(name) for name in _PROXY_FIELDS})
    row.update(
        ts=sealed.record.ts_ms,
        photo_sha256=list(sealed.record.photo_sha256),
        hash=sealed.hash,
        signature=sealed.signature,
        key_id=sealed.key_id,
    )
    return row


def _ms(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value - _EPOCH) // timedelta(milliseconds=1)
    return value


def from_row(row: Mapping[str, Any]) -> SealedSignOff:
    """The sealed sign-off a ``signoffs`` row holds (the inverse of :func:`to_row`; ``ts`` as
    ms or a datetime; other columns, ``stored_at``, ignored)."""
    record = {f: row.get(f) for f in SignOffRecord.__struct_fields__}
    proxy = {name: row.get(f"proxy_{name}") for name in _PROXY_FIELDS}
    record["proxy"] = None if all(v is None for v in proxy.values()) else proxy
    record["ts_ms"] = _ms(row.get("ts"))
    try:
        return msgspec.convert(
            {
                "record": record,
                "hash": row.get("hash"),
                "signature": row.get("signature"),
                "key_id": row.get("key_id"),
            },
            SealedSignOff,
        )
    except msgspec.ValidationError as e:
        signoff_id = str(row.get("id"))
        raise StoredSignOffError(
            f"sign-off {signoff_id!r} in {SIGNOFFS} is not a valid sign-off ({e}): "
            "it was changed in the database",
            signoff_id=signoff_id,
        ) from e


def insert_signoffs(store: Store, sealed: Iterable[SealedSignOff], token: str) -> None:
    """Insert sealed sign-offs; ``token`` is the insert's deduplication token (a retried
    insert with the same token stores them once)."""
    batch = pa.RecordBatch.from_pylist([to_row(s) for s in sealed], schema=SIGNOFFS_SCHEMA)
    store.insert_arrow(SIGNOFFS, batch, token)


def signoffs_of_order(store: Store, order: str) -> list[SealedSignOff]:
    """The order's sign-offs by ``index``. Rows that differ only in ``stored_at`` (an insert
    repeated outside the deduplication window) count once; two different rows with one id are
    both returned, so a forged second row shows up in the chain instead of hiding."""
    table = store.query(
        f"SELECT DISTINCT {_SELECT} FROM {SIGNOFFS} WHERE `order` = {{order:String}} "
        "ORDER BY `index`, id, hash",
        {"order": order},
    )
    return [from_row(row) for row in table.to_pylist()]


def signoff_by_id(store: Store, signoff_id: str) -> SealedSignOff | None:
    """The sign-off ``signoff_id`` (the first stored, should a second row claim its id)."""
    table = store.query(
        f"SELECT {_SELECT} FROM {SIGNOFFS} WHERE id = {{id:String}} ORDER BY stored_at LIMIT 1",
        {"id": signoff_id},
    )
    rows = table.to_pylist()
    return from_row(rows[0]) if rows else None
