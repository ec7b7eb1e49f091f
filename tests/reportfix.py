"""A seeded data set for the reports, written straight into the tables (no engine, no order
log). reportexpect.py computes each report's answer from the same lists.

Items sit exactly on the edges of ``RANGE`` (``FROM`` is in, ``TO`` is out) for every report,
and on the cases each definition rules on: a re-sent shipment (its latest known attributes),
repeated pickups and deliveries (the first counts), a retracted alert, a delivery before its
pickup, an order back from ON_HOLD (its first REPAIRED counts), unsigned deliveries.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from streamguard.store import Store

HOUR = 3_600_000
DAY = 24 * HOUR
# 2026-06-21T06:40:00Z: the seed's epoch. The test range is two weeks from it.
BASE = 1_782_024_000_000
FROM = BASE
TO = BASE + 14 * DAY
RANGE = (FROM, TO)
#: Everything in the seed (the seed spans BASE - 10 days .. BASE + 40 days).
ALL = (BASE - 30 * DAY, BASE + 60 * DAY)

CARRIERS = ("SF", "JD", "YTO")
ORIGINS = ("CN-440300", "CN-110000", "CN-310000")
DESTS = ("CN-510100", "CN-440300", "CN-650000")
CUSTOMER_REGIONS = ("CN-440305", "CN-4403", "CN-110105", "CN-31", "CN-650102")
PRODUCTS = (
    ("phone", "Huawei", "P60 Pro", "P60P-256"),
    ("phone", "Huawei", "Mate X5", "MATE-X5"),
    ("watch", "Huawei", "Watch 4", "WATCH-4"),
)
BATCHES = ("B2026-01", "B2026-02", None)
FAULTS = ("screen", "battery", "water_damage")
CUSTODY = (None, "SF", "JD", "depot")
#: An order whose model a spreadsheet would run as a formula; only its own product code finds it.
EVIL_CODE = "EVIL-1"
EVIL_MODEL = '=HYPERLINK("http://x")'

_TS = pa.timestamp("ms", tz="UTC")
Row = dict[str, Any]


def _schema(**columns: pa.DataType) -> pa.Schema:
    return pa.schema([pa.field(k, v) for k, v in columns.items()])


S = pa.string()
SCHEMAS = {
    "shipments": _schema(shipment=S, ts=_TS, carrier=S, origin=S, dest=S),
    "scans": _schema(shipment=S, ts=_TS, carrier=S, status=S),
    "alerts": _schema(
        id=S, rule=S, kind=S, severity=S, state=S, shipment=S, carrier=S, ts=_TS, started_ts=_TS
    ),
    "order_events": _schema(
        order_id=S,
        version=pa.uint64(),
        type=S,
        at=_TS,
        actor_role=S,
        from_status=S,
        to_status=S,
        status=S,
        customer_id=S,
        customer_region=S,
        product_category=S,
        product_brand=S,
        product_model=S,
        product_code=S,
        product_batch=S,
        fault_type=S,
        service=S,
        inbound_shipment=S,
        inbound_carrier=S,
        return_shipment=S,
        return_carrier=S,
        created_at=_TS,
    ),
    "signoffs": _schema(id=S, order=S, leg=S, index=pa.uint32(), ts=_TS),
    "claim_events": _schema(
        claim_id=S,
        order_id=S,
        version=pa.uint64(),
        at=_TS,
        event_type=S,
        from_status=S,
        to_status=S,
        kind=S,
        status=S,
        claimed_fen=pa.int64(),
        approved_fen=pa.int64(),
        paid_fen=pa.int64(),
        custody_holder=S,
        filed_at=_TS,
    ),
}


@dataclass
class Seed:
    rows: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))

    def insert(self, store: Store) -> None:
        for table, schema in SCHEMAS.items():
            batch = pa.Table.from_pylist(self.rows[table], schema=schema)
            store.insert_arrow(table, batch, f"report-seed:{table}")


def _shipments(rng: random.Random, seed: Seed) -> None:
    """Registered shipments (some updated later), their scans and alerts."""
    rows = seed.rows
    for i in range(90):
        ship = f"T{i:04d}"
        first = BASE - 10 * DAY + rng.randrange(40 * DAY)
        first = {0: FROM, 1: TO, 2: FROM - 1, 3: TO - 1}.get(i, first)
        carrier, origin, dest = rng.choice(CARRIERS), rng.choice(ORIGINS), rng.choice(DESTS)
        if i == 4:
            dest = None  # a lane without its destination is on no lane
        rows["shipments"].append(
            {"shipment": ship, "ts": first, "carrier": carrier, "origin": origin, "dest": dest}
        )
        if i % 4 == 1 or i == 5:
            # A later update: the latest known attributes win (a null carrier is not known).
            rows["shipments"].append(
                {
                    "shipment": ship,
                    "ts": first + rng.randrange(HOUR, 2 * DAY),
                    "carrier": None if i == 5 else rng.choice(CARRIERS),
                    "origin": origin,
                    "dest": rng.choice(DESTS),
                }
            )
        _scans(rng, seed, i, ship, carrier, first)
        _alerts(rng, seed, i, ship, carrier, first)
    # Scans of a shipment never registered: on no lane.
    rows["scans"] += [
        {"shipment": "GHOST1", "ts": BASE + DAY, "carrier": "SF", "status": "PICKED_UP"},
        {"shipment": "GHOST1", "ts": BASE + 2 * DAY, "carrier": "SF", "status": "DELIVERED"},
    ]


def _scans(rng: random.Random, seed: Seed, i: int, ship: str, carrier: str, first: int) -> None:
    if i % 9 == 8:
        if i == 17:  # the carrier's feed missed the pickup: no transit time to measure
            seed.rows["scans"].append(
                {"shipment": ship, "ts": first + DAY, "carrier": carrier, "status": "DELIVERED"}
            )
        return  # never picked up
    pickup = first + rng.randrange(6 * HOUR)
    pickup = {10: FROM, 11: TO, 12: FROM - 1, 13: TO - 1}.get(i, pickup)
    scans = [("PICKED_UP", pickup), ("IN_TRANSIT", pickup + rng.randrange(HOUR, 10 * HOUR))]
    if i % 5 == 0:
        scans.append(("PICKED_UP", pickup + HOUR))  # a repeated pickup: the first one counts
    if i % 7 != 6:
        delivered = pickup + rng.randrange(12 * HOUR, 5 * DAY)
        scans.append(("DELIVERED", delivered))
        if i % 6 == 0:
            scans.append(("DELIVERED", delivered + 3 * HOUR))
    if i == 14:
        scans.append(("DELIVERED", pickup - HOUR))  # delivered before pickup: bad data
    seed.rows["scans"] += [
        {"shipment": ship, "ts": ts, "carrier": carrier, "status": status} for status, ts in scans
    ]


def _alerts(rng: random.Random, seed: Seed, i: int, ship: str, carrier: str, first: int) -> None:
    if i % 3 != 0 and i not in (1, 2):
        return
    for k in range(1 + i % 3):
        fired = first + rng.randrange(-2 * HOUR, 3 * DAY)  # some before the shipment event
        aid = f"shock:{ship}:{k}"
        base = {"id": aid, "rule": "shock", "kind": "threshold", "severity": "critical"}
        seed.rows["alerts"].append(
            {
                **base,
                "state": "firing",
                "shipment": ship,
                "carrier": carrier,
                "ts": fired,
                "started_ts": fired,
            }
        )
        end = "retracted" if (i + k) % 5 == 0 else "resolved" if k % 2 == 0 else None
        if end:
            seed.rows["alerts"].append(
                {
                    **base,
                    "state": end,
                    "shipment": ship,
                    "carrier": carrier,
                    "ts": fired + HOUR,
                    "started_ts": fired,
                }
            )


class _Order:
    """An order written as order_events rows: each the order after its event."""

    def __init__(self, seed: Seed, oid: str, created: int, attrs: Row) -> None:
        self.seed, self.oid, self.at = seed, oid, created
        self.state: Row = {**attrs, "order_id": oid, "created_at": created, "status": "CREATED"}
        self.emit("created", "CREATED")

    def emit(self, type_: str, to_status: str | None, **changes: Any) -> None:
        version = len(self.seed.rows["order_events"]) + 1
        from_status = self.state["status"] if to_status else None
        self.state.update(changes)
        if to_status:
            self.state["status"] = to_status
        self.seed.rows["order_events"].append(
            {
                **self.state,
                "version": version,
                "type": type_,
                "at": self.at,
                "actor_role": "system",
                "from_status": from_status,
                "to_status": to_status,
            }
        )

    def step(
        self, rng: random.Random, to_status: str | None, type_: str = "status", **changes: Any
    ) -> int:
        self.at += rng.randrange(HOUR, 2 * DAY)
        self.emit(type_, to_status, **changes)
        return self.at


def _orders(rng: random.Random, seed: Seed) -> None:
    for i in range(48):
        created = BASE - 10 * DAY + rng.randrange(30 * DAY)
        # On the edges; and early enough for the legs (3-5) and repairs (6, 7) put on them.
        edges = {0: FROM, 1: TO, 2: FROM - 1, 3: FROM - 3 * DAY, 4: TO - 3 * DAY}
        edges |= {5: FROM - 3 * DAY, 6: FROM - 5 * DAY, 7: TO - 5 * DAY, 11: FROM - 3 * DAY}
        created = edges.get(i, created)
        category, brand, model, code = rng.choice(PRODUCTS)
        if i == 47:
            model, code = EVIL_MODEL, EVIL_CODE
        attrs = {
            "customer_id": f"cust-{i % 11}",
            "customer_region": rng.choice(CUSTOMER_REGIONS),
            "product_category": category,
            "product_brand": brand,
            "product_model": model,
            "product_code": code,
            "product_batch": rng.choice(BATCHES),
            "fault_type": rng.choice(FAULTS),
            "service": "repair",
        }
        _lifecycle(rng, seed, _Order(seed, f"RO-{i:04d}", created, attrs), i)


def _lifecycle(rng: random.Random, seed: Seed, o: _Order, i: int) -> None:
    """Move the order as far as its number says; legs get DELIVERED scans and sign-offs."""
    scans, signoffs = seed.rows["scans"], seed.rows["signoffs"]
    stage = i % 8
    o.step(rng, "AWAITING_PICKUP")
    if stage == 0:
        o.step(rng, "CANCELLED")
        return
    inbound, carrier_in = f"IN-{i:04d}", CARRIERS[i % 3]
    o.step(rng, None, "shipment", inbound_shipment=inbound, inbound_carrier=carrier_in)
    o.step(rng, "INBOUND_IN_TRANSIT")
    if stage == 1:
        return
    arrived = {3: FROM, 4: TO, 5: FROM - 1, 11: FROM + DAY}.get(i, o.at + rng.randrange(HOUR, DAY))
    scans.append({"shipment": inbound, "ts": arrived, "carrier": carrier_in, "status": "DELIVERED"})
    if i == 11:
        scans.append(
            {"shipment": inbound, "ts": FROM - DAY, "carrier": carrier_in, "status": "DELIVERED"}
        )  # an earlier DELIVERED: that one is first
    if stage == 2:
        return  # delivered to the depot, never signed for
    o.step(rng, "RECEIVED", "signoff")
    signoffs.append({"id": f"SO-{i}-IN", "order": o.oid, "leg": "inbound", "index": 0, "ts": o.at})
    for status in ("DIAGNOSING", "REPAIRING", "REPAIRED"):
        o.step(rng, status)
    if i in (6, 7):
        o.at += {6: FROM, 7: TO}[i] - o.at  # no event since; the next one is at this time
        o.seed.rows["order_events"][-1]["at"] = o.at
    if stage == 3:
        return  # repaired, return not booked
    if i % 5 == 0:
        o.step(rng, "ON_HOLD")
        o.step(rng, "REPAIRED")  # back from hold: the first REPAIRED counts
    carrier_ret = CARRIERS[(i + 1) % 3]
    o.step(
        rng,
        "RETURN_IN_TRANSIT",
        "shipment",
        return_shipment=f"RT-{i:04d}",
        return_carrier=carrier_ret,
    )
    if stage == 4:
        return
    scans.append(
        {
            "shipment": f"RT-{i:04d}",
            "ts": o.at + rng.randrange(HOUR, 3 * DAY),
            "carrier": carrier_ret,
            "status": "DELIVERED",
        }
    )
    if stage == 5:
        return  # delivered by the carrier, the customer has not signed
    o.step(rng, "DELIVERED", "signoff")
    signoffs.append({"id": f"SO-{i}-RT", "order": o.oid, "leg": "return", "index": 1, "ts": o.at})
    if stage == 7:
        o.step(rng, "CLOSED")


def _claims(rng: random.Random, seed: Seed) -> None:
    for i in range(30):
        filed = BASE - 10 * DAY + rng.randrange(30 * DAY)
        filed = {0: FROM, 1: TO, 2: FROM - 1}.get(i, filed)
        claimed = rng.randrange(100, 900_000)
        state: Row = {
            "claim_id": f"CL-{i:03d}",
            "order_id": f"RO-{i:04d}",
            "kind": ("damage", "loss", "delay")[i % 3],
            "claimed_fen": claimed,
            "approved_fen": None,
            "paid_fen": None,
            "custody_holder": CUSTODY[i % 4],
            "filed_at": filed,
        }
        at = filed
        path: list[tuple[str, Row]] = [("FILED", {})]
        stage = i % 6
        if stage >= 1:
            path.append(("UNDER_REVIEW", {}))
        decision = ("APPROVED", "PARTIALLY_APPROVED", "REJECTED")[i % 3]
        if stage >= 2:
            approved = {"APPROVED": claimed, "PARTIALLY_APPROVED": claimed // 2}.get(decision, 0)
            path.append((decision, {"approved_fen": approved}))
        if stage >= 3 and decision != "REJECTED":
            path.append(
                (
                    "PAID",
                    {"paid_fen": state["claimed_fen"] if decision == "APPROVED" else claimed // 2},
                )
            )
        previous = None
        for status, changes in path:
            state.update(changes)
            version = len(seed.rows["claim_events"]) + 1
            seed.rows["claim_events"].append(
                {
                    **state,
                    "version": version,
                    "at": at,
                    "status": status,
                    "to_status": status,
                    "from_status": previous,
                    "event_type": "filed" if previous is None else "status",
                }
            )
            previous = status
            at += rng.randrange(HOUR, 5 * DAY)


def make_seed() -> Seed:
    rng = random.Random(20260621)
    seed = Seed()
    _shipments(rng, seed)
    _orders(rng, seed)
    _claims(rng, seed)
    return seed
