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


def _view(name: str, target: str, select: str) -> str:
    # The SELECT's types are the table's: reading the view reads the table through them.
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} TO {target} AS {select}"


def _backfill(target: str, select: str, columns: list[str]) -> str:
    return f"INSERT INTO {target} ({', '.join(columns)}) {select}"


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

_FROM_SHIPMENTS_COLUMNS = [
    "shipment",
    "first_event",
    *(f"latest_{a}" for a in _SHIPMENT_ATTRIBUTES),
]
_FROM_SHIPMENTS = f"""
SELECT shipment,
    toNullable(min(ts)) AS first_event,
    {", ".join(f"{latest_known(a, _ts_key('ts'))} AS latest_{a}" for a in _SHIPMENT_ATTRIBUTES)}
FROM {SHIPMENTS}
GROUP BY shipment
"""

_FROM_SCANS_COLUMNS = ["shipment", "first_picked_up", "first_delivered"]
_FROM_SCANS = f"""
SELECT shipment,
    minIf(toNullable(ts), status = 'PICKED_UP') AS first_picked_up,
    minIf(toNullable(ts), status = 'DELIVERED') AS first_delivered
FROM {SCANS}
WHERE status IN ('PICKED_UP', 'DELIVERED')
GROUP BY shipment
"""

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

_FROM_ORDER_EVENTS_COLUMNS = ["order_id", "created_at", *(f"latest_{a}" for a in _LEG_ATTRIBUTES)]
_FROM_ORDER_EVENTS = f"""
SELECT order_id,
    toNullable(min(created_at)) AS created_at,
    {", ".join(f"{latest_known(a, 'version')} AS latest_{a}" for a in _LEG_ATTRIBUTES)}
FROM {ORDER_EVENTS}
GROUP BY order_id
"""

_FROM_SIGNOFFS_COLUMNS = ["order_id", "inbound_signed", "return_signed"]
_FROM_SIGNOFFS = f"""
SELECT `order` AS order_id,
    toBool(max(leg = 'inbound')) AS inbound_signed,
    toBool(max(leg = 'return')) AS return_signed
FROM {_SIGNOFFS}
GROUP BY order_id
"""

#: Migration 7: the tables, their views, then the backfill of the rows stored before the
#: views existed. Views first, so an insert made meanwhile reaches a table through a view, the
#: backfill, or both; ``min`` and ``max`` make a row folded in twice the same as once.
MIGRATION_STATEMENTS: tuple[str, ...] = (
    SHIPMENT_FIRSTS_DDL,
    _view(f"{SHIPMENT_FIRSTS}_from_shipments", SHIPMENT_FIRSTS, _FROM_SHIPMENTS),
    _view(f"{SHIPMENT_FIRSTS}_from_scans", SHIPMENT_FIRSTS, _FROM_SCANS),
    ORDER_LEGS_DDL,
    _view(f"{ORDER_LEGS}_from_order_events", ORDER_LEGS, _FROM_ORDER_EVENTS),
    _view(f"{ORDER_LEGS}_from_signoffs", ORDER_LEGS, _FROM_SIGNOFFS),
    _backfill(SHIPMENT_FIRSTS, _FROM_SHIPMENTS, _FROM_SHIPMENTS_COLUMNS),
    _backfill(SHIPMENT_FIRSTS, _FROM_SCANS, _FROM_SCANS_COLUMNS),
    _backfill(ORDER_LEGS, _FROM_ORDER_EVENTS, _FROM_ORDER_EVENTS_COLUMNS),
    _backfill(ORDER_LEGS, _FROM_SIGNOFFS, _FROM_SIGNOFFS_COLUMNS),
)
