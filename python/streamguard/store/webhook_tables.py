"""``webhook_attempts``: every delivery attempt of every webhook, for operators to see what was
sent where, what came back, and why a subscription was disabled.

One row per attempt, inserted with ``webhook:<delivery id>:<attempt>`` as the deduplication
token: the attempt number is the delivery's JetStream delivery count, so a row written twice
(a retried insert) is stored once, and two attempts never share a token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from streamguard.store.tables import DEDUP_WINDOW

if TYPE_CHECKING:
    # Not at run time: migrations imports this module, and the store imports migrations.
    from streamguard.store.store import Store

__all__ = [
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_ATTEMPTS_DDL",
    "Attempt",
    "Outcome",
    "attempts_of",
    "insert_attempt",
]

WEBHOOK_ATTEMPTS: str = "webhook_attempts"

#: ``delivered``: a 2xx. ``failed``: retried after ``retry_in_ms``. ``disabled``: failed, and
#: the failure disabled the subscription, so this delivery ends here. ``dropped_disabled`` /
#: ``dropped_deleted``: a queued delivery found its subscription disabled or deleted and was
#: not sent.
Outcome = Literal["delivered", "failed", "disabled", "dropped_disabled", "dropped_deleted"]

WEBHOOK_ATTEMPTS_DDL: str = f"""
CREATE TABLE IF NOT EXISTS {WEBHOOK_ATTEMPTS} (
    subscription_id String,
    delivery_id String,
    event_type LowCardinality(String),
    order_id String,
    source_seq UInt64,
    attempt UInt32,
    at DateTime64(3, 'UTC'),
    url String,
    status_code Nullable(UInt16),
    error Nullable(String),
    duration_ms UInt32,
    outcome LowCardinality(String),
    retry_in_ms Nullable(UInt32)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (subscription_id, at, delivery_id, attempt)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}
"""

_FIELDS: list[pa.Field[Any]] = [
    pa.field("subscription_id", pa.string()),
    pa.field("delivery_id", pa.string()),
    pa.field("event_type", pa.string()),
    pa.field("order_id", pa.string()),
    pa.field("source_seq", pa.uint64()),
    pa.field("attempt", pa.uint32()),
    pa.field("at", pa.timestamp("ms", tz="UTC")),
    pa.field("url", pa.string()),
    pa.field("status_code", pa.uint16()),
    pa.field("error", pa.string()),
    pa.field("duration_ms", pa.uint32()),
    pa.field("outcome", pa.string()),
    pa.field("retry_in_ms", pa.uint32()),
]
_SCHEMA = pa.schema(_FIELDS)
_COLUMNS = ", ".join(
    "toUnixTimestamp64Milli(at) AS at" if f.name == "at" else f.name for f in _SCHEMA
)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt. ``at`` is when it started (UTC ms); ``status_code`` is the receiver's
    answer, ``error`` what went wrong instead (timeout, refused) or why it was not sent."""

    subscription_id: str
    delivery_id: str
    event_type: str
    order_id: str
    source_seq: int
    attempt: int
    at: int
    url: str
    outcome: Outcome
    duration_ms: int = 0
    status_code: int | None = None
    error: str | None = None
    retry_in_ms: int | None = None


def insert_attempt(store: Store, attempt: Attempt) -> None:
    batch = pa.RecordBatch.from_pylist([asdict(attempt)], schema=_SCHEMA)
    token = f"webhook:{attempt.delivery_id}:{attempt.attempt}"
    store.insert_arrow(WEBHOOK_ATTEMPTS, batch, token)


def attempts_of(
    store: Store,
    subscription_id: str,
    *,
    limit: int,
    offset: int = 0,
    delivery_id: str | None = None,
) -> list[dict[str, Any]]:
    """A subscription's attempts, newest first."""
    where = "subscription_id = {sub:String}"
    params: dict[str, Any] = {"sub": subscription_id, "limit": limit, "offset": offset}
    if delivery_id is not None:
        where += " AND delivery_id = {delivery:String}"
        params["delivery"] = delivery_id
    table = store.query(
        f"SELECT {_COLUMNS} FROM {WEBHOOK_ATTEMPTS} WHERE {where} "
        "ORDER BY at DESC, delivery_id, attempt DESC "
        "LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        params,
    )
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows
