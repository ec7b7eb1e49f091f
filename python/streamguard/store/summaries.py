"""What the anomalies, sign-off and lane-transit reports need of each shipment and order, kept
at insert time, so that they read one row per shipment or order instead of every stored event.

- ``shipment_firsts``, per shipment: its first ``shipment`` event (``first_event``), its latest
  known carrier, origin and destination (by the events' ``ts``), and its first ``PICKED_UP``
  and first ``DELIVERED`` scan. From ``shipments`` and ``scans``.
- ``order_legs``, per order: its ``created_at``, its latest known inbound and return shipment
  and carrier (by ``version``), and whether it has a sign-off of each leg. From
  ``order_events`` and ``signoffs``.

A materialized view per source table folds each inserted block into one row per key of an
``AggregatingMergeTree``, whose merges fold a key's rows into one. Every column is a ``min`` or
a ``max``: idempotent and order-free, so a key's row is the same however its rows arrive (out
of order, over many inserts, or twice: a replay, or a backfill overlapping what the views
stored). A first time is a ``min`` (``NULL`` while there is none). A latest known value is the
``max`` of the value behind its ordering key (see :func:`latest_known`): ``argMax`` over the
non-``NULL`` values, as the reports computed it, in a plain ``String`` column. (Kept as
``argMax`` states, or as the ``max`` of a (time, value) tuple, the lane-transit query took 1.5
and 3.5 times as long over 1 M shipments.)

The migration that adds them (7) creates the views first, then backfills from the rows already
stored, and may be run again whole after a crash: see the paragraph above.

Read them with ``FINAL``: the parts are each sorted by key, so ``FINAL`` merges them as they
stream, with no sort and no hash table of a million keys (measured cheaper than a ``GROUP BY``
of the same rows with 1, 2 and 32 parts). A row the shipment view writes has ``first_event``
and the attributes; one the scan view writes has neither: so a query that needs only those can
drop the rows without ``first_event`` in ``PREWHERE``, before the merge, and merge fewer.

Neither table has a TTL: a row folds rows that never expire (shipment events, order events,
sign-offs) with scans, which do. A shipment's firsts outlive its scans.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamguard.store.control_tables import ORDER_EVENTS
from streamguard.store.tables import SCANS, SHIPMENTS, TS

__all__ = [
    "MIGRATION_STATEMENTS",
    "ORDER_LEGS",
    "SHIPMENT_FIRSTS",
    "known",
    "latest_known",
]

SHIPMENT_FIRSTS = "shipment_firsts"
ORDER_LEGS = "order_legs"
# Not imported from signoffs.py: it imports the store, which imports the migrations.
_SIGNOFFS = "signoffs"

# DateTime64's first day: ms since then are >= 0 for every time the column can hold.
_EPOCH_1900_MS = 2_208_988_800_000


def _big_endian(uint64: str) -> str:
    """SQL: a UInt64 as 8 big-endian bytes, which sort as the numbers do."""
    return f"unhex(leftPad(hex({uint64}), 16, '0'))"


def _ts_key(ts: str) -> str:
    return f"toUInt64(toUnixTimestamp64Milli({ts}) + {_EPOCH_1900_MS})"


def latest_known(column: str, order_key: str) -> str:
    """SQL aggregate: the latest non-``NULL`` value of ``column`` by ``order_key`` (a UInt64),
    as 8 bytes of the key followed by the value, so the greatest string is the latest value;
    ``''`` when none is known (below every value, an empty one included). On a tie in the key
    the greater value wins, where ``argMax`` kept whichever row it read first. Read it back
    with :func:`known`."""
    tagged = f"concat({_big_endian(order_key)}, assumeNotNull({column}))"
    return f"maxIf({tagged}, {column} IS NOT NULL)"


def known(column: str) -> str:
    """SQL: the value a :func:`latest_known` column holds, or ``NULL``."""
    return f"if({column} = '', NULL, substring({column}, 9))"


@dataclass(frozen=True)
class _Fold:
    """One source table folded into a summary: grouped by ``key`` (``source_column AS key``
    where they differ), one aggregate per summary column."""

    source: str
    key: str
    columns: dict[str, str]
    where: str = ""

    @property
    def names(self) -> list[str]:
        """The summary columns it writes, key first."""
        return [self.key.rsplit(" AS ", 1)[-1], *self.columns]

    @property
    def select(self) -> str:
        aggregates = ",\n    ".join(f"{sql} AS {name}" for name, sql in self.columns.items())
        where = f"WHERE {self.where}\n" if self.where else ""
        return (
            f"SELECT {self.key},\n    {aggregates}\nFROM {self.source}\n{where}"
            f"GROUP BY {self.names[0]}\n"
        )


def _latest(attributes: tuple[str, ...], order_key: str) -> dict[str, str]:
    """``latest_<attribute>`` columns: each attribute's :func:`latest_known` by ``order_key``."""
    return {f"latest_{a}": latest_known(a, order_key) for a in attributes}


def _view(target: str, fold: _Fold) -> str:
    # The SELECT's types are the table's: reading the view reads the table through them.
    name = f"{target}_from_{fold.source}"
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} TO {target} AS {fold.select}"


def _backfill(target: str, fold: _Fold) -> str:
    return f"INSERT INTO {target} ({', '.join(fold.names)}) {fold.select}"


# ---- shipment_firsts ---------------------------------------------------------------------

_SHIPMENT_ATTRIBUTES = ("carrier", "origin", "dest")

SHIPMENT_FIRSTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {SHIPMENT_FIRSTS} (
    shipment String,
    first_event SimpleAggregateFunction(min, Nullable({TS})),
    latest_carrier SimpleAggregateFunction(max, String),
    latest_origin SimpleAggregateFunction(max, String),
    latest_dest SimpleAggregateFunction(max, String),
    first_picked_up SimpleAggregateFunction(min, Nullable({TS})),
    first_delivered SimpleAggregateFunction(min, Nullable({TS}))
)
ENGINE = AggregatingMergeTree
ORDER BY shipment
"""

_FROM_SHIPMENTS = _Fold(
    SHIPMENTS,
    "shipment",
    {
        "first_event": "toNullable(min(ts))",
        **_latest(_SHIPMENT_ATTRIBUTES, _ts_key("ts")),
    },
)
_FROM_SCANS = _Fold(
    SCANS,
    "shipment",
    {
        "first_picked_up": "minIf(toNullable(ts), status = 'PICKED_UP')",
        "first_delivered": "minIf(toNullable(ts), status = 'DELIVERED')",
    },
    where="status IN ('PICKED_UP', 'DELIVERED')",
)

# ---- order_legs --------------------------------------------------------------------------

_LEG_ATTRIBUTES = ("inbound_shipment", "inbound_carrier", "return_shipment", "return_carrier")

# Every event of an order carries its created_at, so the min is the order's.
ORDER_LEGS_DDL = f"""
CREATE TABLE IF NOT EXISTS {ORDER_LEGS} (
    order_id String,
    created_at SimpleAggregateFunction(min, Nullable({TS})),
    latest_inbound_shipment SimpleAggregateFunction(max, String),
    latest_inbound_carrier SimpleAggregateFunction(max, String),
    latest_return_shipment SimpleAggregateFunction(max, String),
    latest_return_carrier SimpleAggregateFunction(max, String),
    inbound_signed SimpleAggregateFunction(max, Bool),
    return_signed SimpleAggregateFunction(max, Bool)
)
ENGINE = AggregatingMergeTree
ORDER BY order_id
"""

_FROM_ORDER_EVENTS = _Fold(
    ORDER_EVENTS,
    "order_id",
    {"created_at": "toNullable(min(created_at))", **_latest(_LEG_ATTRIBUTES, "version")},
)
_FROM_SIGNOFFS = _Fold(
    _SIGNOFFS,
    "`order` AS order_id",
    {
        "inbound_signed": "toBool(max(leg = 'inbound'))",
        "return_signed": "toBool(max(leg = 'return'))",
    },
)

#: Migration 7: the tables, their views, then the backfill of the rows stored before the
#: views existed. Views first, so an insert made meanwhile reaches a table through a view, the
#: backfill, or both; ``min`` and ``max`` make a row folded in twice the same as once.
MIGRATION_STATEMENTS: tuple[str, ...] = (
    SHIPMENT_FIRSTS_DDL,
    _view(SHIPMENT_FIRSTS, _FROM_SHIPMENTS),
    _view(SHIPMENT_FIRSTS, _FROM_SCANS),
    ORDER_LEGS_DDL,
    _view(ORDER_LEGS, _FROM_ORDER_EVENTS),
    _view(ORDER_LEGS, _FROM_SIGNOFFS),
    _backfill(SHIPMENT_FIRSTS, _FROM_SHIPMENTS),
    _backfill(SHIPMENT_FIRSTS, _FROM_SCANS),
    _backfill(ORDER_LEGS, _FROM_ORDER_EVENTS),
    _backfill(ORDER_LEGS, _FROM_SIGNOFFS),
)
