"""The SQL of the operator reports (see :mod:`streamguard.store.reports` for what each means).

Every query takes the half-open range ``[{lo:Int64}, {hi:Int64})`` in UTC ms, bound server-side;
the recall query also takes ``{product_code:String}`` and ``{batch:String}`` ('' = no filter).
User text never enters the SQL text itself.

How they stay fast over 10 M stored events: no ``FINAL`` and no ``*_latest`` views (each is a
sort of the whole table); an entity's latest attribute is ``argMax(column, version-or-ts)`` in
one ``GROUP BY``; the range prunes partitions wherever the time filtered on bounds a partition
key (``created_at``, ``filed_at``; a scan's ``ts`` from above); a join builds its hash table
from the smaller side. ``argMax`` skips NULLs, so "latest" means the latest *known* value.
The reports that need a shipment's first scan or event (anomalies, lane transit, sign-offs)
read every stored scan or shipment event of the kinds they use, whatever the range: their cost
grows with the store, not the range.

Quantiles are ``quantileExact``: an observed value, the one at rank ``floor(q * n)`` of the
sorted values (no interpolation), so a test can compute the same number exactly.
"""

from __future__ import annotations

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


# The cohort is the shipments whose first shipment event is in range; their alerts count
# whenever raised. No pre-filter of candidates by the range: their first event and latest
# attributes need all their events anyway, and a set of candidates to match 1 M shipment keys
# against doubled the time over a year of data (measured: `streamguard bench --reports`).
ANOMALIES = f"""
SELECT
    formatDateTime(first_ts, '%G-W%V') AS week,
    carrier, origin, dest,
    count() AS shipments,
    countIf(n > 0) AS shipments_alerted,
    sum(n) AS alerts
FROM (
    SELECT shipment, min(ts) AS first_ts,
        argMax(carrier, ts) AS carrier, argMax(origin, ts) AS origin, argMax(dest, ts) AS dest
    FROM shipments
    GROUP BY shipment
    HAVING first_ts >= {LO} AND first_ts < {HI}
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
GROUP BY week, carrier, origin, dest
ORDER BY week, carrier, origin, dest
"""

# Each order's legs (its latest known inbound/return shipment and carrier), those whose first
# DELIVERED scan is in range, and whether the order has a sign-off of that leg.
SIGNOFFS = f"""
SELECT l.leg AS leg, l.carrier AS carrier,
    count() AS delivered,
    countIf(s.order_id != '') AS signed_off
FROM (
    SELECT shipment, min(ts) AS delivered_ts
    FROM scans
    WHERE status = 'DELIVERED' AND ts < {HI}
        -- Only the shipments ever booked as a leg (a shipment event sets them): the join
        -- below is exact, this spares aggregating the deliveries of every other shipment.
        AND shipment IN (
            SELECT arrayJoin([inbound_shipment, return_shipment]) FROM order_events
            WHERE type = 'shipment' AND created_at < {HI}
        )
    GROUP BY shipment
    HAVING delivered_ts >= {LO}
) AS d
-- The legs (0.2 M) on the right: the hash table is built from them, not the deliveries (1 M).
INNER JOIN (
    SELECT order_id, leg, shipment, carrier
    FROM (
        SELECT order_id,
            argMax(inbound_shipment, version) AS in_shipment,
            argMax(inbound_carrier, version) AS in_carrier,
            argMax(return_shipment, version) AS ret_shipment,
            argMax(return_carrier, version) AS ret_carrier
        FROM order_events
        WHERE created_at < {HI}
        GROUP BY order_id
    )
    ARRAY JOIN
        ['inbound', 'return'] AS leg,
        [in_shipment, ret_shipment] AS shipment,
        [in_carrier, ret_carrier] AS carrier
    WHERE shipment IS NOT NULL
) AS l ON l.shipment = d.shipment
LEFT JOIN (SELECT DISTINCT `order` AS order_id, leg FROM signoffs) AS s
    ON s.order_id = l.order_id AND s.leg = l.leg
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

# Shipments whose first PICKED_UP scan is in range and that have a DELIVERED scan after it;
# the lane and carrier are the shipment's latest known attributes. One aggregation over the
# scans and the shipment events together (src 0: shipment event, 1: pickup, 2: delivery):
# 10-15 % less CPU than aggregating each and joining 1 M rows to 1 M (measured over a year of
# data). As for anomalies, no pre-filter of candidates (with one: 4.5 s instead of 2).
LANE_TRANSIT = f"""
SELECT origin, dest, carrier,
    count() AS shipments,
    quantileExact(0.5)(transit_ms) AS p50_ms,
    quantileExact(0.9)(transit_ms) AS p90_ms
FROM (
    SELECT
        minIf(ts, src = 1) AS picked_up,
        minIf(ts, src = 2) AS delivered,
        {_ms("delivered")} - {_ms("picked_up")} AS transit_ms,
        argMaxIf(carrier, ts, src = 0) AS carrier,
        argMaxIf(origin, ts, src = 0) AS origin,
        argMaxIf(dest, ts, src = 0) AS dest
    FROM (
        SELECT shipment, ts, if(status = 'PICKED_UP', 1, 2) AS src,
            NULL AS carrier, NULL AS origin, NULL AS dest
        FROM scans
        WHERE status IN ('PICKED_UP', 'DELIVERED')
        UNION ALL
        SELECT shipment, ts, 0, carrier, origin, dest FROM shipments
    )
    GROUP BY shipment
    HAVING countIf(src = 1) > 0 AND countIf(src = 2) > 0
        AND picked_up >= {LO} AND picked_up < {HI} AND delivered >= picked_up
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
