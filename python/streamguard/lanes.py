"""Lane statistics learned by the engine: what a carrier's lane (origin province → destination
province) looks like, smoothed toward the carrier as a whole.

Per lane the engine keeps, decayed with a 14-day half-life: the transit time (PICKED_UP →
DELIVERED) in a mergeable quantile sketch (1 % relative accuracy), the share delivered within
the SLA (72 h), and dwell and shock alerts per shipment. An estimate blends the lane with its
carrier (empirical Bayes, prior strength 10 shipments): a lane with few deliveries reads mostly
as its carrier.

:class:`LaneTable` is the engine's own object (``Engine.lanes()``, ``LiveEngine.lanes()``, or
the bytes a live worker puts in NATS KV ``sg_lanes``); tables of several engines (partitions)
merge into one, carriers matched by code::

    table = LaneTable.from_bytes(kv_value)
    table.merge(LaneTable.from_bytes(other_value))
    table.estimate("SF", "CN-310115", "CN-110105")   # {"p50_ms": ..., "on_time_rate": ...}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from streamguard._core import LaneTable

__all__ = ["LaneEstimate", "LaneRow", "LaneTable", "merge_tables"]


class LaneEstimate(TypedDict):
    """A lane's figures, smoothed toward its carrier's (``LaneTable.estimate``)."""

    #: Median and 90th-percentile transit time (PICKED_UP → DELIVERED), ms.
    p50_ms: float
    p90_ms: float
    #: Share delivered within the SLA.
    on_time_rate: float
    dwell_per_shipment: float
    shock_per_shipment: float
    #: The lane's effective (decayed) number of delivered shipments.
    shipments: float
    #: The weight of the lane's own data in the transit and on-time figures, ``n/(n+10)``.
    lane_weight: float


class LaneRow(LaneEstimate):
    """One lane of ``LaneTable.estimates()``: ``origin``/``dest`` are province region codes
    (``CN-31``), both None for the carrier's aggregate."""

    carrier: str
    origin: str | None
    dest: str | None


def merge_tables(tables: Iterable[LaneTable | bytes]) -> LaneTable:
    """One table of several (objects, or their ``to_bytes()``, e.g. every key of KV
    ``sg_lanes``): what a single engine over all their input would have learned, up to float
    rounding."""
    out = LaneTable()
    for t in tables:
        out.merge(LaneTable.from_bytes(t) if isinstance(t, bytes) else t)
    return out
