"""The SQL of the operator reports (see :mod:`streamguard.store.reports` for what each means).

Every query takes the half-open range ``[{lo:Int64}, {hi:Int64})`` in UTC ms, bound server-side;
the recall query also takes ``{product_code:String}`` and ``{batch:String}`` ('' = no filter).
User text never enters the SQL text itself.

How they stay fast over 10 M stored events: no ``*_latest`` views (each is a sort of the whole
table); an entity's latest attribute is ``argMax(column, version-or-ts)`` in one ``GROUP BY``;
the range prunes partitions wherever the time filtered on bounds a partition key
(``created_at``, ``filed_at``); a join builds its hash table from the smaller side. ``argMax``
skips NULLs, so "latest" means the latest *known* value. What the anomalies, sign-off and
lane-transit reports need of each shipment (its first shipment event, PICKED_UP and DELIVERED,
its latest known carrier and lane) and of each order (its latest known legs, its sign-offs)
is kept at insert time in ``shipment_firsts`` and ``order_legs``
(:mod:`streamguard.store.summaries`), read with ``FINAL``: a streaming merge of parts sorted by
key, not a sort. Those three read every shipment's row whatever the range: their cost grows
with the shipments stored, not with the range.

Quantiles are ``quantileExact``: an observed value, the one at rank ``floor(q * n)`` of the
sorted values (no interpolation), so a test can compute the same number exactly.
"""

from __future__ import annotations

from streamguard.store.summaries import ORDER_LEGS, SHIPMENT_FIRSTS, known

__all__ = [
    "ANOMALIES",
    "CLAIMS",
    "FAULTS",
    "LANE_TRANSIT",
    "RECALL",
    "RETURN_TURNAROUND",
    "SIGNOFFS",
]

LO = "fromUnixTimestamp64Milli({lo:Int64}, 'UTC')"
HI = "fromUnixTimestamp64Milli({hi:Int64}, 'UTC')"


def _ms(column: str) -> str:
    return f"toUnixTimestamp64Milli({column})"


def _known(attribute: str) -> str:
    """The latest known ``attribute`` kept in a summary table, as ``attribute``."""
    return f"{known(f'latest_{attribute}')} AS {attribute}"


# The cohort is the shipments whose first shipment event is in range; their alerts count
# whenever raised. Grouped by the Monday of that event (one ISO week each, a number to group
# on) and the week formatted once per group, not once per shipment.
ANOMALIES = f"""
SELECT
    formatDateTime(monday, '%G-W%V') AS week,
    carrier, origin, dest,
    count() AS shipments,
    countIf(n > 0) AS shipments_alerted,
    sum(n) AS alerts
FROM (
    SELECT shipment, toMonday(first_event) AS monday,
        {_known("carrier")}, {_known("origin")}, {_known("dest")}
    FROM {SHIPMENT_FIRSTS} FINAL
    -- Before the merge: a row without a shipment event (one folded from scans) has no
    -- attribute either, so it changes nothing here and need not be merged.
    PREWHERE first_event IS NOT NULL
    WHERE first_event >= {LO} AND first_event < {HI}
) AS cohort
LEFT JOIN (
    -- An anomaly is an alert that fired and was never retracted (a late feed, not the parcel).
    -- No time filter: an alert may precede the shipment event (a device on before booking).
    SELECT shipment, count() AS n
    FROM (
        SELECT shipment, id FROM alerts
        GROUP BY shipment, id
        HAVING countIf(state = 'firing') > 0 AND countIf(state = 'retracted') = 0
    )
    GROUP BY shipment
) AS alerted USING (shipment)
GROUP BY monday, carrier, origin, dest
ORDER BY week, carrier, origin, dest
"""

# Each order's legs (its latest known inbound/return shipment and carrier), those whose first
# DELIVERED scan is in range, and whether the order has a sign-off of that leg.
SIGNOFFS = f"""
SELECT leg, carrier,
    count() AS delivered,
    countIf(signed) AS signed_off
FROM (
    SELECT shipment FROM {SHIPMENT_FIRSTS} FINAL
    -- Before the merge: a row without a DELIVERED changes no shipment's first one.
    PREWHERE first_delivered IS NOT NULL
    WHERE first_delivered >= {LO} AND first_delivered < {HI}
) AS d
-- The legs (0.2 M) on the right: the hash table is built from them, not the deliveries (1 M).
INNER JOIN (
    SELECT leg, shipment, carrier, signed
    FROM (
        SELECT {_known("inbound_shipment")}, {_known("inbound_carrier")},
            {_known("return_shipment")}, {_known("return_carrier")},
            inbound_signed, return_signed
        FROM {ORDER_LEGS} FINAL
        WHERE created_at < {HI}
    )
    ARRAY JOIN
        ['inbound', 'return'] AS leg,
        [inbound_shipment, return_shipment] AS shipment,
        [inbound_carrier, return_carrier] AS carrier,
        [inbound_signed, return_signed] AS signed
    WHERE shipment IS NOT NULL
) AS l USING (shipment)
GROUP BY GROUPING SETS ((leg), (leg, carrier))
HAVING grouping(carrier) = 1 OR carrier IS NOT NULL
ORDER BY leg, carrier NULLS FIRST
SETTINGS group_by_use_nulls = 1
"""

# Orders whose first REPAIRED is in range; the DELIVERED that follows (the graph allows none
# before it). An order's events all carry its created_at, which bounds the partitions read.
RETURN_TURNAROUND = f"""
SELECT return_carrier,
    count() AS repaired,
    countIf(done) AS delivered,
    quantileExactIf(0.5)(turnaround_ms, done) AS p50_ms,
    quantileExactIf(0.9)(turnaround_ms, done) AS p90_ms
FROM (
    SELECT order_id,
        minIf(at, to_status = 'REPAIRED') AS repaired_at,
        countIf(to_status = 'DELIVERED') > 0 AS done,
        {_ms("minIf(at, to_status = 'DELIVERED')")} - {_ms("repaired_at")} AS turnaround_ms,
        argMax(return_carrier, version) AS return_carrier
    FROM order_events
    WHERE created_at < {HI}
        AND order_id IN (
            SELECT order_id FROM order_events
            WHERE to_status = 'REPAIRED' AND created_at < {HI} AND at >= {LO} AND at < {HI}
        )
    GROUP BY order_id
    HAVING repaired_at >= {LO} AND repaired_at < {HI}
)
GROUP BY GROUPING SETS ((), (return_carrier))
HAVING grouping(return_carrier) = 1 OR return_carrier IS NOT NULL
ORDER BY return_carrier NULLS FIRST
SETTINGS group_by_use_nulls = 1
"""

# Claims filed in range, each as its latest event leaves it; the cycle ends at the first move
# to PAID or REJECTED. Every event of a claim carries its filed_at (the partition key).
CLAIMS = f"""
SELECT kind, status, custody_holder,
    count() AS claims,
    sum(claimed) AS claimed_fen,
    sum(ifNull(approved, 0)) AS approved_fen,
    sum(ifNull(paid, 0)) AS paid_fen,
    countIf(done) AS closed,
    quantileExactIf(0.5)(cycle_ms, done) AS cycle_p50_ms,
    quantileExactIf(0.9)(cycle_ms, done) AS cycle_p90_ms
FROM (
    SELECT claim_id,
        argMax(kind, version) AS kind,
        argMax(status, version) AS status,
        argMax(custody_holder, version) AS custody_holder,
        argMax(claimed_fen, version) AS claimed,
        argMax(approved_fen, version) AS approved,
        argMax(paid_fen, version) AS paid,
        countIf(to_status IN ('PAID', 'REJECTED')) > 0 AS done,
        {_ms("minIf(at, to_status IN ('PAID', 'REJECTED'))")} - {_ms("min(filed_at)")} AS cycle_ms
    FROM claim_events
    WHERE filed_at >= {LO} AND filed_at < {HI}
    GROUP BY claim_id
)
GROUP BY kind, status, custody_holder
ORDER BY kind,
    indexOf(['FILED', 'UNDER_REVIEW', 'APPROVED', 'PARTIALLY_APPROVED', 'REJECTED', 'PAID'],
        status),
    status, custody_holder NULLS FIRST
"""

# Shipments whose first PICKED_UP scan is in range and whose first DELIVERED scan is at or
# after it; the lane and carrier are the shipment's latest known attributes (none: no lane).
LANE_TRANSIT = f"""
SELECT origin, dest, carrier,
    count() AS shipments,
    quantileExact(0.5)(transit_ms) AS p50_ms,
    quantileExact(0.9)(transit_ms) AS p90_ms
FROM (
    SELECT
        {_ms("assumeNotNull(first_delivered)")} - {_ms("assumeNotNull(first_picked_up)")}
            AS transit_ms,
        {_known("carrier")}, {_known("origin")}, {_known("dest")}
    FROM {SHIPMENT_FIRSTS} FINAL
    WHERE first_picked_up >= {LO} AND first_picked_up < {HI}
        AND first_delivered >= first_picked_up
)
WHERE origin IS NOT NULL AND dest IS NOT NULL
GROUP BY GROUPING SETS ((origin, dest), (origin, dest, carrier))
HAVING grouping(carrier) = 1 OR carrier IS NOT NULL
ORDER BY origin, dest, carrier NULLS FIRST
SETTINGS group_by_use_nulls = 1
"""

# The intake (region, fault) is fixed at creation: the ``created`` event row has it, once.
FAULTS = f"""
SELECT concat('CN-', substring(customer_region, 4, 2), '0000') AS province,
    fault_type,
    uniqExact(order_id) AS orders
FROM order_events
WHERE type = 'created' AND created_at >= {LO} AND created_at < {HI}
GROUP BY province, fault_type
ORDER BY province, fault_type
"""

# Every row of an order carries its product, so the filter keeps all of a matching order's rows
# and argMax gives its current status.
RECALL = f"""
SELECT order_id,
    {_ms("min(created_at)")} AS created_ms,
    argMax(status, version) AS status,
    argMax(customer_id, version) AS customer_id,
    argMax(customer_region, version) AS customer_region,
    argMax(product_category, version) AS product_category,
    argMax(product_brand, version) AS product_brand,
    argMax(product_model, version) AS product_model,
    argMax(product_code, version) AS product_code,
    argMax(product_batch, version) AS product_batch,
    argMax(fault_type, version) AS fault_type
FROM order_events AS e
WHERE e.created_at >= {LO} AND e.created_at < {HI}
    AND ({{product_code:String}} = '' OR e.product_code = {{product_code:String}})
    AND ({{batch:String}} = '' OR e.product_batch = {{batch:String}})
GROUP BY order_id
ORDER BY created_ms, order_id
"""
