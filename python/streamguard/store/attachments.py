"""Photos and signature images in ClickHouse, content-addressed by SHA-256."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from streamguard.store.control_tables import ATTACHMENTS
from streamguard.store.store import Store

__all__ = ["describe", "get", "put"]

_FIELDS: list[pa.Field[Any]] = [
    pa.field("sha256", pa.string()),
    pa.field("content_type", pa.string()),
    pa.field("size", pa.uint64()),
    pa.field("data", pa.binary()),
    pa.field("stored_at", pa.timestamp("ms", tz="UTC")),
]
_SCHEMA = pa.schema(_FIELDS)


def put(store: Store, sha256: str, content_type: str, data: bytes) -> None:
    """Keep ``data`` under its digest (the same bytes twice are one row)."""
    batch = pa.RecordBatch.from_pylist(
        [
            {
                "sha256": sha256,
                "content_type": content_type,
                "size": len(data),
                "data": data,
                "stored_at": time.time_ns() // 1_000_000,
            }
        ],
        schema=_SCHEMA,
    )
    store.insert_arrow(ATTACHMENTS, batch, f"attachment:{sha256}")


def get(store: Store, sha256: str) -> tuple[str, bytes] | None:
    """The content type and bytes stored under ``sha256``, if any."""
    # hex(): the query path decodes strings as UTF-8, which a JPEG is not.
    rows = store.rows(
        f"SELECT content_type, hex(data) FROM {ATTACHMENTS} WHERE sha256 = {{d:String}} LIMIT 1",
        {"d": sha256},
    )
    if not rows:
        return None
    return str(rows[0][0]), bytes.fromhex(str(rows[0][1]))


def describe(store: Store, digests: list[str]) -> dict[str, tuple[str, int]]:
    """The content type and size of each stored digest of ``digests`` (absent ones are left
    out), without reading the bytes."""
    if not digests:
        return {}
    rows = store.rows(
        f"SELECT toString(sha256), any(content_type), any(size) FROM {ATTACHMENTS} "
        "WHERE sha256 IN {d:Array(String)} GROUP BY sha256",
        {"d": sorted(set(digests))},
    )
    return {str(d): (str(t), int(n)) for d, t, n in rows}
