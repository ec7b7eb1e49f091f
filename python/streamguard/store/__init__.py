"""StreamGuard's storage: every event, alert and dead letter in ClickHouse.

One code path for both transports, through clickhouse-connect: ``chdb:///abs/path`` keeps
ClickHouse in this process (chDB; the default, ``./var/clickhouse``), ``http(s)://…`` talks to
a server or cluster.

>>> store = open_store("chdb:///tmp/sg-store")                  # doctest: +SKIP
>>> store.insert_events(batch, batch_token("SG_EVENTS", "sg-engine", 1, 64))  # doctest: +SKIP
>>> store.query("SELECT count() FROM scans")                     # doctest: +SKIP
"""

from __future__ import annotations

from streamguard.store.dsn import DSN_ENV, Dsn, default_dsn, parse_dsn
from streamguard.store.migrations import MIGRATIONS, Migration
from streamguard.store.store import (
    DEFAULT_RETENTION_DAYS,
    OUTPUT_FORMATS,
    Store,
    batch_token,
    open_store,
)

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "DSN_ENV",
    "MIGRATIONS",
    "OUTPUT_FORMATS",
    "Dsn",
    "Migration",
    "Store",
    "batch_token",
    "default_dsn",
    "open_store",
    "parse_dsn",
]
