"""Each report's answer computed in Python from the seed lists (reportfix.py), following its
definition (streamguard.store.reports), never its SQL: the latest known value of an attribute,
the first event of a kind, the half-open range, exact quantiles at rank floor(q * n), NULLs
sorted last (or first where the report says so).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from reportfix import Row, Seed
from streamguard.domain.money import fen_to_str
from streamguard.domain.regions import provinces


def _latest(rows: Iterable[Row], column: str, order: str) -> Any:
    """The value of ``column`` in the latest row (by ``order``) where it is not None."""
    known = [r for r in rows if r.get(column) is not None]
    return max(known, key=lambda r: r[order])[column] if known else None


def quantile(values: list[int], level: float) -> int:
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


def _in(ms: int, lo: int, hi: int) -> bool:
    return lo <= ms < hi


def _week(ms: int) -> str:
    year, week, _ = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isocalendar()
    return f"{year}-W{week:02d}"


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def _key(*values: Any) -> tuple[Any, ...]:
    # ClickHouse's ascending order: NULLs last.
    return tuple((v is None, v) for v in values)


def _nulls_first(value: Any) -> tuple[bool, Any]:
    return (value is not None, value)


def _by_key(rows: list[Row], key: str) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        out[r[key]].append(r)
    return out


def _first(rows: list[Row], status: str) -> dict[str, int]:
    """shipment -> its first scan of ``status``."""
    out: dict[str, int] = {}
    for r in rows:
        if r["status"] == status:
            out[r["shipment"]] = min(r["ts"], out.get(r["shipment"], r["ts"]))
    return out


def _rollup(
    items: list[Row], keys: tuple[str, ...], carrier: str, make: Callable[[list[Row]], Row]
) -> list[Row]:
    """One row per ``keys`` (carrier ``None``: all carriers) and one per ``keys`` + carrier
    (a known carrier), each ``{keys..., carrier, **make(items)}``."""
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for item in items:
        base = tuple(item[k] for k in keys)
        groups[(*base, None)].append(item)
        if item[carrier] is not None:
            groups[(*base, item[carrier])].append(item)
    return [
        {**dict(zip((*keys, carrier), group, strict=True)), **make(members)}
        for group, members in groups.items()
    ]


def anomalies(seed: Seed, lo: int, hi: int) -> list[Row]:
    ids: dict[str, set[str]] = defaultdict(set)
    for aid, rows in _by_key(seed.rows["alerts"], "id").items():
        states = {r["state"] for r in rows}
        if "firing" in states and "retracted" not in states:
            ids[rows[0]["shipment"]].add(aid)
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for ship, rows in _by_key(seed.rows["shipments"], "shipment").items():
        first = min(r["ts"] for r in rows)
        if _in(first, lo, hi):
            attrs = tuple(_latest(rows, c, "ts") for c in ("carrier", "origin", "dest"))
            groups[(_week(first), *attrs)].append(len(ids[ship]))
    out = [
        {
            "week": k[0],
            "carrier": k[1],
            "origin": k[2],
            "dest": k[3],
            "shipments": len(n),
            "shipments_alerted": sum(1 for a in n if a),
            "alerts": sum(n),
            "alerts_per_100": _rate(sum(n), len(n)),
        }
        for k, n in groups.items()
    ]
    return sorted(out, key=lambda r: _key(r["week"], r["carrier"], r["origin"], r["dest"]))


def signoffs(seed: Seed, lo: int, hi: int) -> list[Row]:
    delivered = _first(seed.rows["scans"], "DELIVERED")
    signed = {(r["order"], r["leg"]) for r in seed.rows["signoffs"]}
    legs = []
    for oid, rows in _by_key(seed.rows["order_events"], "order_id").items():
        for leg, prefix in (("inbound", "inbound"), ("return", "return")):
            ship = _latest(rows, f"{prefix}_shipment", "version")
            if ship is not None and ship in delivered and _in(delivered[ship], lo, hi):
                carrier = _latest(rows, f"{prefix}_carrier", "version")
                legs.append({"leg": leg, "carrier": carrier, "signed": (oid, leg) in signed})

    def make(members: list[Row]) -> Row:
        n, s = len(members), sum(1 for m in members if m["signed"])
        return {"delivered": n, "signed_off": s, "completion_pct": _rate(s, n)}

    out = _rollup(legs, ("leg",), "carrier", make)
    return sorted(out, key=lambda r: (r["leg"], _nulls_first(r["carrier"])))


def _timed(make_count: str, done: str, p50: str, p90: str) -> Callable[[list[Row]], Row]:
    def make(members: list[Row]) -> Row:
        times = [m["ms"] for m in members if m["ms"] is not None]
        return {
            make_count: len(members),
            done: len(times),
            p50: quantile(times, 0.5) if times else None,
            p90: quantile(times, 0.9) if times else None,
        }

    return make


def return_turnaround(seed: Seed, lo: int, hi: int) -> list[Row]:
    items = []
    for rows in _by_key(seed.rows["order_events"], "order_id").values():
        repaired = [r["at"] for r in rows if r["to_status"] == "REPAIRED"]
        if not repaired or not _in(min(repaired), lo, hi):
            continue
        delivered = [r["at"] for r in rows if r["to_status"] == "DELIVERED"]
        items.append(
            {
                "return_carrier": _latest(rows, "return_carrier", "version"),
                "ms": min(delivered) - min(repaired) if delivered else None,
            }
        )
    make = _timed("repaired", "delivered", "p50_ms", "p90_ms")
    # The row for all orders is there even when there are none.
    out = _rollup(items, (), "return_carrier", make) or [{"return_carrier": None, **make([])}]
    return sorted(out, key=lambda r: _nulls_first(r["return_carrier"]))


_CLAIM_ORDER = ("FILED", "UNDER_REVIEW", "APPROVED", "PARTIALLY_APPROVED", "REJECTED", "PAID")


def claims(seed: Seed, lo: int, hi: int) -> list[Row]:
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for rows in _by_key(seed.rows["claim_events"], "claim_id").values():
        last = max(rows, key=lambda r: r["version"])
        if not _in(last["filed_at"], lo, hi):
            continue
        ends = [r["at"] for r in rows if r["to_status"] in ("PAID", "REJECTED")]
        last = {**last, "cycle": min(ends) - last["filed_at"] if ends else None}
        groups[(last["kind"], last["status"], last["custody_holder"])].append(last)
    out = []
    for (kind, status, custody), members in groups.items():
        cycles = [m["cycle"] for m in members if m["cycle"] is not None]
        out.append(
            {
                "kind": kind,
                "status": status,
                "custody_holder": custody,
                "claims": len(members),
                "claimed": fen_to_str(sum(m["claimed_fen"] for m in members)),
                "approved": fen_to_str(sum(m["approved_fen"] or 0 for m in members)),
                "paid": fen_to_str(sum(m["paid_fen"] or 0 for m in members)),
                "closed": len(cycles),
                "cycle_p50_ms": quantile(cycles, 0.5) if cycles else None,
                "cycle_p90_ms": quantile(cycles, 0.9) if cycles else None,
            }
        )
    return sorted(
        out,
        key=lambda r: (
            r["kind"],
            _CLAIM_ORDER.index(r["status"]),
            _nulls_first(r["custody_holder"]),
        ),
    )


def lane_transit(seed: Seed, lo: int, hi: int) -> list[Row]:
    picked, delivered = (
        _first(seed.rows["scans"], "PICKED_UP"),
        _first(seed.rows["scans"], "DELIVERED"),
    )
    ships = _by_key(seed.rows["shipments"], "shipment")
    items = []
    for ship, at in picked.items():
        if not _in(at, lo, hi) or ship not in delivered or delivered[ship] < at:
            continue
        if ship not in ships:
            continue
        attrs = {c: _latest(ships[ship], c, "ts") for c in ("carrier", "origin", "dest")}
        if attrs["origin"] is None or attrs["dest"] is None:
            continue
        items.append({**attrs, "ms": delivered[ship] - at})

    def make(members: list[Row]) -> Row:
        times = [m["ms"] for m in members]
        return {
            "shipments": len(times),
            "p50_ms": quantile(times, 0.5),
            "p90_ms": quantile(times, 0.9),
        }

    out = _rollup(items, ("origin", "dest"), "carrier", make)
    return sorted(out, key=lambda r: (r["origin"], r["dest"], _nulls_first(r["carrier"])))


def _created(seed: Seed, lo: int, hi: int) -> list[Row]:
    return [
        r
        for r in seed.rows["order_events"]
        if r["type"] == "created" and _in(r["created_at"], lo, hi)
    ]


def faults(seed: Seed, lo: int, hi: int) -> list[Row]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for r in _created(seed, lo, hi):
        counts[(f"CN-{r['customer_region'][3:5]}0000", r["fault_type"])] += 1
    return [
        {"province": p, "province_name": provinces()[p[3:5]].name_en, "fault_type": f, "orders": n}
        for (p, f), n in sorted(counts.items())
    ]


def recall(
    seed: Seed, lo: int, hi: int, product_code: str | None = None, batch: str | None = None
) -> list[Row]:
    by_order = _by_key(seed.rows["order_events"], "order_id")
    out = []
    for c in _created(seed, lo, hi):
        if product_code is not None and c["product_code"] != product_code:
            continue
        if batch is not None and c["product_batch"] != batch:
            continue
        last = max(by_order[c["order_id"]], key=lambda r: r["version"])
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=c["created_at"])
        out.append(
            {
                "order_id": c["order_id"],
                "created_at": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{c['created_at'] % 1000:03d}Z",
                "status": last["status"],
                "customer_id": c["customer_id"],
                "customer_region": c["customer_region"],
                "province": f"CN-{c['customer_region'][3:5]}0000",
                **{
                    k: c[k]
                    for k in (
                        "product_category",
                        "product_brand",
                        "product_model",
                        "product_code",
                        "product_batch",
                        "fault_type",
                    )
                },
            }
        )
    return sorted(out, key=lambda r: (r["created_at"], r["order_id"]))


EXPECTED: dict[str, Callable[[Seed, int, int], list[Row]]] = {
    "anomalies": anomalies,
    "signoffs": signoffs,
    "return-turnaround": return_turnaround,
    "claims": claims,
    "lane-transit": lane_transit,
    "faults": faults,
}
