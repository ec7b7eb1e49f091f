"""The store: one clickhouse-connect client, embedded (chDB) or a server, and StreamGuard's
reads and writes over it. Nothing below :func:`_connect` knows which transport it has."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from streamguard.errors import ConfigError, StoreError
from streamguard.store import migrations as mig
from streamguard.store import tables as t
from streamguard.store.dsn import Dsn, default_dsn, parse_dsn

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "OUTPUT_FORMATS",
    "Store",
    "batch_token",
    "open_store",
]

#: Raw scans, sensor readings and dead letters are kept this long by default: three years (one
#: leap day included), the window in which an insurance claim may cite them.
DEFAULT_RETENTION_DAYS = 3 * 365 + 1

#: ``streamguard sql --format`` names -> ClickHouse output formats (ClickHouse renders them, so
#: the embedded store and a server print the same bytes).
OUTPUT_FORMATS: Mapping[str, str] = {
    "json": "JSONEachRow",
    "table": "PrettyCompactMonoBlock",
    "csv": "CSVWithNames",
}

# Failures reach the caller as StoreError; without this, Python's last-resort handler would
# also print the driver's own log line on stderr when the application configured no logging.
logging.getLogger("clickhouse_connect").addHandler(logging.NullHandler())

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRAILING = re.compile(r"[\s;]+$")


def batch_token(
    stream: str, consumer: str, first_seq: int, last_seq: int, part: str | None = None
) -> str:
    """The ``insert_deduplication_token`` of the rows made from the messages ``first_seq`` ..
    ``last_seq`` of ``stream`` as read by ``consumer``: ``SG_EVENTS/sg-engine-p0:101-164``.

    The consumer is part of it because partitioned workers read interleaved sequences of one
    stream, so two workers' ranges can have the same bounds. ``part`` tells apart several
    inserts into one table from one range. ClickHouse drops an insert whose token it has seen,
    whatever its rows: a token must name exactly one set of rows.
    """
    if not 0 < first_seq <= last_seq:
        raise ConfigError(f"bad sequence range {first_seq}..{last_seq} (need 0 < first <= last)")
    token = f"{stream}/{consumer}:{first_seq}-{last_seq}"
    return f"{token}:{part}" if part else token


@contextmanager
def _clickhouse(action: str) -> Iterator[None]:
    """Every ClickHouse failure as a StoreError carrying ClickHouse's own message."""
    try:
        yield
    except (ClickHouseError, OSError) as e:
        # One line: ClickHouse quotes the query (with the FORMAT clause the client appended).
        raise StoreError(f"{action}: {' '.join(str(e).split())}") from e


def _identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"bad {what} name {name!r} (letters, digits and _ only)")
    return name


@dataclass(slots=True)
class _Embedded:
    """The process's one chDB engine: its path, client and how many open stores use it."""

    path: str
    client: Client
    users: int


# chDB hosts one engine per process: stores on its path share its client, others are refused.
_embedded: _Embedded | None = None
_embedded_lock = threading.Lock()
_CHDB_CALLS = threading.RLock()


def _connect(dsn: Dsn) -> Client:
    """The only place that knows the transport: the rest is the same code for both."""
    global _embedded
    if not dsn.embedded:
        with _clickhouse(f"cannot connect to ClickHouse at {dsn}"):
            return clickhouse_connect.get_client(**dsn.client_kwargs())  # type: ignore[arg-type]
    with _embedded_lock:
        if _embedded is not None:
            if _embedded.path != dsn.path:
                raise StoreError(
                    f"chDB runs one engine per process and this one already has {_embedded.path} "
                    f"open; close that store before opening {dsn.path}"
                )
            _embedded.users += 1
            return _embedded.client
        with _clickhouse(f"cannot open the embedded ClickHouse (chDB) at {dsn.path}"):
            client = clickhouse_connect.get_client(**dsn.client_kwargs())  # type: ignore[arg-type]
        _embedded = _Embedded(dsn.path or "", client, 1)
        return client


def _disconnect(dsn: Dsn, client: Client) -> None:
    global _embedded
    if not dsn.embedded:
        client.close()
        return
    with _embedded_lock:
        if _embedded is None or _embedded.client is not client:
            return
        _embedded.users -= 1
        if _embedded.users == 0:
            _embedded = None
            client.close()


def open_store(
    dsn: str | Dsn | None = None,
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    migrate: bool = True,
) -> Store:
    """Open the store at ``dsn`` (default: ``$STREAMGUARD_DSN`` or ``chdb://<./var/clickhouse>``)
    and, unless ``migrate=False``, bring its schema up to date.

    ``retention_days`` is the TTL given to event tables when they are created; change an
    existing store's with :meth:`Store.set_retention`.
    """
    parsed = dsn if isinstance(dsn, Dsn) else parse_dsn(dsn or default_dsn())
    if retention_days < 1:
        raise ConfigError(f"retention_days must be at least 1, got {retention_days}")
    if not migrate and parsed.embedded and not os.path.isdir(parsed.path or ""):
        raise StoreError(f"no store at {parsed.path}: nothing has been stored there yet")
    store = Store(parsed, _connect(parsed), retention_days)
    try:
        if migrate:
            store.migrate()
        else:
            store._use_database()
    except BaseException:
        store.close()
        raise
    return store


class Store:
    """StreamGuard's tables in ClickHouse. Make one with :func:`open_store`.

    Every insert takes an ``insert_deduplication_token`` (see :func:`batch_token`): inserting
    the same token twice stores the rows once, so a retried or replayed batch never duplicates.
    Every ClickHouse failure is a :class:`~streamguard.errors.StoreError` with its message.
    """

    __slots__ = ("_client", "_closed", "_lock", "dsn", "retention_days")

    def __init__(self, dsn: Dsn, client: Client, retention_days: int) -> None:
        self.dsn = dsn
        self.retention_days = retention_days
        self._client = client
        self._closed = False
        # chDB's connection is not safe to share between threads (the storage writer, the API's
        # worker threads): its calls take turns. A server's HTTP client needs no lock.
        self._lock: AbstractContextManager[Any] = _CHDB_CALLS if dsn.embedded else nullcontext()

    @property
    def database(self) -> str:
        return self.dsn.database

    # ---- schema -------------------------------------------------------------------------

    def _use_database(self) -> None:
        self._client.database = _identifier(self.database, "database")

    def migrate(self) -> list[int]:
        """Apply the migrations not yet recorded in ``schema_migrations``, in order; return
        their versions (empty when the schema is current)."""
        client = self._live()
        db = _identifier(self.database, "database")
        with self._lock, _clickhouse("migrating the store"):
            client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
            self._use_database()
            client.command(t.MIGRATIONS_DDL)
            done = set(self.applied_migrations())
            applied: list[int] = []
            for migration in mig.MIGRATIONS:
                if migration.version in done:
                    continue
                for statement in mig.render(migration, self.retention_days):
                    client.command(statement)
                self.insert_arrow(
                    t.MIGRATIONS_TABLE,
                    mig.record_batch(migration),
                    f"migration:{migration.version}",
                )
                applied.append(migration.version)
        return applied

    def applied_migrations(self) -> list[int]:
        """The versions recorded in ``schema_migrations``, ascending."""
        rows = self.rows(f"SELECT DISTINCT version FROM {t.MIGRATIONS_TABLE} ORDER BY version")
        return [int(r[0]) for r in rows]

    def set_retention(self, days: int) -> None:
        """Change how long scans, sensor readings, dead letters and engine stats are kept."""
        if days < 1:
            raise ConfigError(f"retention must be at least 1 day, got {days}")
        client = self._live()
        for table, column in t.RETAINED_TABLES.items():
            with self._lock, _clickhouse(f"changing the retention of {table}"):
                client.command(
                    f"ALTER TABLE {table} MODIFY TTL toDateTime({column}) + INTERVAL {days} DAY"
                )
        self.retention_days = days

    # ---- writes -------------------------------------------------------------------------

    def insert_arrow(self, table: str, data: pa.RecordBatch | pa.Table, token: str) -> None:
        """Insert Arrow data into ``table`` (columns matched by name; absent ones get their
        defaults) with ``insert_deduplication_token=token``. An empty batch is a no-op."""
        client = self._live()
        _identifier(table, "table")
        if not token:
            raise ConfigError("an insert needs a deduplication token")
        if data.num_rows == 0:
            return
        with self._lock, _clickhouse(f"insert into {table}"):
            client.insert_arrow(
                table,
                data,
                database=self.database,
                settings={"insert_deduplication_token": token, "insert_deduplicate": 1},
            )

    def insert_events(self, batch: pa.RecordBatch, token: str) -> str:
        """Insert one of the engine's event batches into its kind's table (``scans``,
        ``sensor_readings`` or ``shipments``, from the ``streamguard.kind`` schema metadata,
        else ``kind=``); return the table."""
        kind = (batch.schema.metadata or {}).get(b"streamguard.kind", b"").decode()
        table = t.EVENT_TABLES.get(kind)
        if table is None:
            raise ConfigError(
                f"event batch of unknown kind {kind!r}: expected the engine's batches, whose "
                f"schema metadata names one of {', '.join(t.EVENT_TABLES)}"
            )
        self.insert_arrow(table, batch, token)
        return table

    def insert_alerts(self, batch: pa.RecordBatch, token: str) -> None:
        """Insert an alert batch (the engine's schema) into ``alerts``."""
        self.insert_arrow(t.ALERTS, t.alerts_for_storage(batch), token)

    def insert_scores(self, batch: pa.RecordBatch, token: str) -> None:
        """Insert a batch of shipment scores (``Engine.scores()``, or a live engine's item)
        into ``shipment_scores``."""
        self.insert_arrow(t.SHIPMENT_SCORES, batch, token)

    def insert_dead_letters(
        self,
        rows: pa.RecordBatch | Iterable[t.DeadLetterLike | tuple[str, str, bytes]],
        token: str,
        *,
        received_ms: int | None = None,
        subject: str | None = None,
        stream_seq: int | None = None,
    ) -> None:
        """Insert dead letters: ``DeadLetter`` objects, ``(reason, detail, raw)`` tuples, or a
        batch of :data:`~streamguard.store.tables.DEAD_LETTERS_SCHEMA`. ``received_ms``
        defaults to now; ``subject``/``stream_seq`` say where they came from."""
        if isinstance(rows, pa.RecordBatch):
            batch = rows
        else:
            received = time.time_ns() // 1_000_000 if received_ms is None else received_ms
            batch = t.dead_letters_batch(rows, received, subject, stream_seq)
        self.insert_arrow(t.DEAD_LETTERS, batch, token)

    def insert_stats(
        self,
        stats: Mapping[str, Any],
        token: str,
        *,
        ts_ms: int | None = None,
        worker: str = "engine",
    ) -> None:
        """Insert one row of engine counters (``Engine.stats()``) taken at ``ts_ms`` (default
        now) by ``worker``."""
        ts = time.time_ns() // 1_000_000 if ts_ms is None else ts_ms
        self.insert_arrow(t.ENGINE_STATS, t.stats_batch(stats, ts, worker), token)

    # ---- reads --------------------------------------------------------------------------

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query; the result as a pyarrow Table (strings as Arrow strings)."""
        client = self._live()
        with self._lock, _clickhouse("query failed"):
            return client.query_arrow(
                _TRAILING.sub("", sql), parameters=dict(parameters or {}), use_strings=True
            )

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query; the result as Python tuples."""
        client = self._live()
        with self._lock, _clickhouse("query failed"):
            result = client.query(_TRAILING.sub("", sql), parameters=dict(parameters or {}))
            return [tuple(r) for r in result.result_rows]

    def query_formatted(self, sql: str, output: Literal["json", "table", "csv"] = "json") -> bytes:
        """Run a query and return ClickHouse's own rendering of the result (``json``: one
        object per line, ``table``: a text table, ``csv``: with a header line)."""
        client = self._live()
        fmt = OUTPUT_FORMATS.get(output)
        if fmt is None:
            raise ConfigError(f"unknown output format {output!r} (json, table or csv)")
        with self._lock, _clickhouse("query failed"):
            return client.raw_query(
                _TRAILING.sub("", sql),
                fmt=fmt,
                settings={"output_format_pretty_color": 0},
            )

    def table_counts(self, names: Sequence[str] | None = None) -> dict[str, int]:
        """Rows per table (active parts), for status lines and tests."""
        wanted = list(names or [*t.EVENT_TABLES.values(), t.ALERTS, t.DEAD_LETTERS])
        rows = self.rows(
            "SELECT table, sum(rows) FROM system.parts WHERE active AND database = {db:String} "
            "AND table IN {tables:Array(String)} GROUP BY table",
            {"db": self.database, "tables": wanted},
        )
        counts = dict.fromkeys(wanted, 0)
        counts.update({str(name): int(n) for name, n in rows})
        return counts

    # ---- lifetime -----------------------------------------------------------------------

    def _live(self) -> Client:
        if self._closed:
            raise StoreError(f"the store at {self.dsn} is closed")
        return self._client

    def close(self) -> None:
        """Release the connection (for chDB: the engine, once no other store uses it)."""
        if self._closed:
            return
        self._closed = True
        _disconnect(self.dsn, self._client)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Store {self.dsn} database={self.database} {state}>"
