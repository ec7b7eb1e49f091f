"""Versioned schema migrations, applied in order on start and recorded in ``schema_migrations``.

Rules for adding one: append a :class:`Migration` with the next version; never edit or reorder
an applied one; every statement must be idempotent (``IF NOT EXISTS`` / ``IF EXISTS``; an
``INSERT`` only into a table whose merges fold a repeated row into nothing new, as migration
7's backfill), since a migration interrupted half-way, or run by two processes at once, is run
again whole. Statements are the same text for chDB and for a server: only the transport
differs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa

from streamguard.store import control_tables as ct
from streamguard.store import signoffs as so
from streamguard.store import summaries as sm
from streamguard.store import tables as t
from streamguard.store import webhook_tables as wt

__all__ = ["MIGRATIONS", "Migration", "record_batch", "render"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. ``statements`` may use ``{retention_days}`` (the events' TTL)."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events, alerts, dead letters, engine stats",
        (
            t.SCANS_DDL,
            t.SENSOR_READINGS_DDL,
            t.SHIPMENTS_DDL,
            t.SHIPMENTS_LATEST_DDL,
            t.ALERTS_DDL,
            t.ALERT_STATUS_DDL,
            t.DEAD_LETTERS_DDL,
            t.ENGINE_STATS_DDL,
        ),
    ),
    Migration(
        2,
        "event keys: stream sequence and row",
        tuple(t.event_key_ddl(table) for table in t.EVENT_TABLES.values()),
    ),
    Migration(
        3,
        "control plane: order events, sign-offs, attachments",
        (ct.ORDER_EVENTS_DDL, ct.ORDERS_LATEST_DDL, so.SIGNOFFS_DDL, ct.ATTACHMENTS_DDL),
    ),
    Migration(4, "claims: claim events", (ct.CLAIM_EVENTS_DDL, ct.CLAIMS_LATEST_DDL)),
    Migration(5, "webhooks: delivery attempts", (wt.WEBHOOK_ATTEMPTS_DDL,)),
    Migration(
        6,
        "carrier scoring: shipment scores",
        (t.SHIPMENT_SCORES_DDL, t.SHIPMENT_SCORES_LATEST_DDL),
    ),
    Migration(
        7,
        "reports: shipment firsts and order legs, kept at insert time",
        sm.MIGRATION_STATEMENTS,
    ),
)


def render(migration: Migration, retention_days: int) -> list[str]:
    """The migration's statements with the configuration filled in."""
    return [s.format(retention_days=retention_days).strip() for s in migration.statements]


def record_batch(migration: Migration) -> pa.RecordBatch:
    """The ``schema_migrations`` row that records ``migration`` as applied now."""
    now_ms = time.time_ns() // 1_000_000
    return pa.RecordBatch.from_pylist(
        [{"version": migration.version, "name": migration.name, "applied_at": now_ms}],
        schema=t.MIGRATIONS_SCHEMA,
    )


def _check_order() -> None:
    versions = [m.version for m in MIGRATIONS]
    # A gap or a repeat means someone edited history: fail at import, not on a customer's disk.
    if versions != list(range(1, len(versions) + 1)):
        raise AssertionError(f"migration versions must be 1..N in order, got {versions}")


_check_order()
