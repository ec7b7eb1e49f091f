"""The control plane's tables: order events (the timeline, append-only), the orders' latest
state derived from them, and content-addressed attachments.

Rows come from the ``SG_ORDERS`` stream, which is the source of truth; the projector inserts
them with the stream's sequence range as the deduplication token, so a redelivery stores once.
"""

from __future__ import annotations

from streamguard.store.tables import DEDUP_WINDOW

__all__ = [
    "ATTACHMENTS",
    "ATTACHMENTS_DDL",
    "CLAIMS_LATEST_DDL",
    "CLAIM_EVENTS",
    "CLAIM_EVENTS_DDL",
    "ORDERS_LATEST_DDL",
    "ORDER_EVENTS",
    "ORDER_EVENTS_DDL",
]

ORDER_EVENTS = "order_events"
CLAIM_EVENTS = "claim_events"
ATTACHMENTS = "attachments"

# One row per event; the order columns are the order *after* it, so the latest row of an
# order is its current state (orders_latest) and reports need no replay.
ORDER_EVENTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {ORDER_EVENTS} (
    order_id String,
    version UInt64,
    type LowCardinality(String),
    at DateTime64(3, 'UTC'),
    actor_role LowCardinality(String),
    actor_subject String,
    actor_carrier LowCardinality(Nullable(String)),
    from_status LowCardinality(Nullable(String)),
    to_status LowCardinality(Nullable(String)),
    reason Nullable(String),
    data String CODEC(ZSTD(1)),
    status LowCardinality(String),
    customer_id String,
    customer_region LowCardinality(String),
    product_category LowCardinality(String),
    product_brand LowCardinality(String),
    product_model String,
    product_code Nullable(String),
    product_batch Nullable(String),
    fault_type LowCardinality(String),
    service LowCardinality(String),
    declared_value_fen Int64,
    inbound_shipment Nullable(String),
    inbound_carrier LowCardinality(Nullable(String)),
    return_shipment Nullable(String),
    return_carrier LowCardinality(Nullable(String)),
    created_at DateTime64(3, 'UTC'),
    alerts UInt32,
    signoffs UInt32
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (order_id, version)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}
"""

ORDERS_LATEST_DDL = f"""
CREATE VIEW IF NOT EXISTS orders_latest AS
SELECT * FROM {ORDER_EVENTS} ORDER BY order_id, version DESC LIMIT 1 BY order_id
"""

# Photos and signature images, keyed by their SHA-256: the same bytes are kept once.
ATTACHMENTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {ATTACHMENTS} (
    sha256 FixedString(64),
    content_type LowCardinality(String),
    size UInt64,
    data String CODEC(ZSTD(1)),
    stored_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY sha256
"""

# One row per claim event (from the order log's ``claim`` events), with the claim *after* it,
# like order_events: claims_latest is each claim's current state. Money is integer fen.
CLAIM_EVENTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {CLAIM_EVENTS} (
    claim_id String,
    order_id String,
    version UInt64,
    at DateTime64(3, 'UTC'),
    event_type LowCardinality(String),
    actor_role LowCardinality(String),
    actor_subject String,
    from_status LowCardinality(Nullable(String)),
    to_status LowCardinality(String),
    reason String,
    kind LowCardinality(String),
    status LowCardinality(String),
    claimed_fen Int64,
    approved_fen Nullable(Int64),
    paid_fen Nullable(Int64),
    coverage_fen Int64,
    policy_id String,
    leg LowCardinality(Nullable(String)),
    custody_holder LowCardinality(Nullable(String)),
    first_anomaly_at Nullable(DateTime64(3, 'UTC')),
    filed_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(filed_at)
ORDER BY (claim_id, version)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}
"""

CLAIMS_LATEST_DDL = f"""
CREATE VIEW IF NOT EXISTS claims_latest AS
SELECT * FROM {CLAIM_EVENTS} ORDER BY claim_id, version DESC LIMIT 1 BY claim_id
"""
