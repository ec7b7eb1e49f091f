"""The operator reports (CONTROL_PLANE.md, "Reports (from ClickHouse)"): what each one counts,
its columns, and running it over a time range.

Every report covers a half-open range ``[from_ms, to_ms)`` of UTC ms, applied to one time that
the report names (its *basis*): by default the last 90 days (the recall: 3 years), at most 366
days (the recall: 10 years). Durations are integer ms and their p50/p90 are ``quantileExact``
(an observed value: rank ``floor(q * n)`` of the sorted values, no interpolation); money is
integer fen in ClickHouse and CNY decimal strings here; rates are numbers rounded to 2 decimals,
next to the counts they come from. In the rows that roll up over carriers, ``carrier`` (or
``return_carrier``) is ``None``: "all carriers".

- ``anomalies``: shipments whose first ``shipment`` event is in range, by ISO week of that
  event, carrier and lane (origin region -> dest region, the latest known attributes); alerts =
  distinct alerts of those shipments that fired and were never retracted, whenever raised;
  ``alerts_per_100`` = 100 * alerts / shipments.
- ``signoffs``: order legs (inbound, return) whose shipment's first ``DELIVERED`` scan is in
  range; signed off = the order has a sign-off of that leg (taken at any time).
- ``return-turnaround``: orders whose first move to ``REPAIRED`` is in range; turnaround = from
  it to the first ``DELIVERED``, over the orders delivered so far.
- ``claims``: claims filed in range, by kind, current status and custody holder (``None``: no
  anomaly attributed); cycle = ``FILED`` to the first ``PAID`` or ``REJECTED``.
- ``lane-transit``: shipments whose first ``PICKED_UP`` scan is in range and that have a first
  ``DELIVERED`` scan at or after it; transit = between the two.
- ``faults``: orders created in range, by the province of the customer's region and fault type.
- ``recall``: every order created in range whose product code and/or batch is the one asked for
  (exact match; both given: both must match), with its region and current status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from streamguard.domain.money import fen_to_str
from streamguard.domain.regions import province_of
from streamguard.domain.validation import FieldError
from streamguard.errors import ConfigError
from streamguard.store import report_sql as sql
from streamguard.store.store import Store

__all__ = [
    "DAY_MS",
    "REPORTS",
    "Column",
    "Report",
    "ReportParams",
    "ReportParamsError",
    "report_params",
    "run_report",
]

DAY_MS = 86_400_000

ColumnType = Literal["string", "integer", "number", "money", "duration_ms", "timestamp"]
Row = dict[str, Any]
Columns = dict[str, list[Any]]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a report. ``money`` is a CNY decimal string, ``duration_ms`` integer ms,
    ``timestamp`` ISO 8601 UTC; ``None`` where there is nothing to say."""

    name: str
    type: ColumnType
    description: str


@dataclass(frozen=True, slots=True)
class Report:
    """A report: its SQL (see :mod:`streamguard.store.report_sql`), the columns it answers in
    order, and ``finish``, which adds the columns computed from the SQL's (fen to CNY, rates)."""

    name: str
    title: str
    definition: str
    basis: str
    columns: tuple[Column, ...]
    sql: str
    finish: Callable[[Columns], Columns]
    #: Filters besides the time range (query parameters of the same names).
    filters: tuple[str, ...] = ()
    default_days: int = 90
    max_days: int = 366


@dataclass(frozen=True, slots=True)
class ReportParams:
    """A report's inputs, checked (see :func:`report_params`)."""

    from_ms: int
    to_ms: int
    product_code: str | None = None
    batch: str | None = None


class ReportParamsError(ConfigError):
    """Inputs a report refuses; ``errors`` names each field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _rates(part: list[int], whole: list[int]) -> list[float | None]:
    return [round(100 * p / w, 2) if w else None for p, w in zip(part, whole, strict=True)]


def _when(values: list[Any], counts: list[int]) -> list[Any]:
    # quantileExactIf over nothing is 0: there is no such time, not a zero one.
    return [v if n else None for v, n in zip(values, counts, strict=True)]


def _iso(ms: int) -> str:
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _province_name(code: str) -> str | None:
    province = province_of(code)
    return province.name_en if province else None


def _province(region: str) -> str | None:
    province = province_of(region)
    return f"CN-{province.code}" if province else None


# Each ``finish`` works on columns (a report may answer 50 000 rows: per-row Python would cost
# more than its query). It adds the derived columns; run_report keeps the declared ones.


def _anomalies(c: Columns) -> Columns:
    return {**c, "alerts_per_100": _rates(c["alerts"], c["shipments"])}


def _signoffs(c: Columns) -> Columns:
    return {**c, "completion_pct": _rates(c["signed_off"], c["delivered"])}


def _turnaround(c: Columns) -> Columns:
    return {**c, **{k: _when(c[k], c["delivered"]) for k in ("p50_ms", "p90_ms")}}


def _claims(c: Columns) -> Columns:
    money = {k: [fen_to_str(v) for v in c[f"{k}_fen"]] for k in ("claimed", "approved", "paid")}
    cycles = {k: _when(c[k], c["closed"]) for k in ("cycle_p50_ms", "cycle_p90_ms")}
    return {**c, **money, **cycles}


def _as_is(c: Columns) -> Columns:
    return c


def _faults(c: Columns) -> Columns:
    return {**c, "province_name": [_province_name(p) for p in c["province"]]}


def _recall(c: Columns) -> Columns:
    return {
        **c,
        "created_at": [_iso(ms) for ms in c["created_ms"]],
        "province": [_province(r) for r in c["customer_region"]],
    }


def _c(name: str, type_: ColumnType, description: str) -> Column:
    return Column(name, type_, description)


_CARRIER_ALL = "carrier code (null: all carriers)"
_P50 = "median (quantileExact)"
_P90 = "90th percentile (quantileExact)"

_REPORTS = (
    Report(
        "anomalies",
        "Transport anomaly rate",
        "Alerts per 100 shipments by ISO week, carrier and lane. The cohort: shipments whose "
        "first shipment event is in range (week = that event's ISO week; carrier and lane = the "
        "latest known attributes). Alerts: distinct alerts of the cohort's shipments that fired "
        "and were never retracted, whenever raised.",
        "the shipment's first shipment event",
        (
            _c("week", "string", "ISO week of the shipment's first event, 2026-W47"),
            _c("carrier", "string", "carrier code"),
            _c("origin", "string", "origin region code"),
            _c("dest", "string", "destination region code"),
            _c("shipments", "integer", "shipments in the cohort"),
            _c("shipments_alerted", "integer", "of which with at least one alert"),
            _c("alerts", "integer", "alerts of those shipments"),
            _c("alerts_per_100", "number", "100 * alerts / shipments"),
        ),
        sql.ANOMALIES,
        _anomalies,
    ),
    Report(
        "signoffs",
        "Sign-off completion rate",
        "Per leg (inbound: the depot's receipt; return: the customer's), the order legs whose "
        "shipment's first DELIVERED scan is in range, and how many of them the order has a "
        "sign-off of (taken at any time); per carrier and for all carriers.",
        "the leg shipment's first DELIVERED scan",
        (
            _c("leg", "string", "inbound or return"),
            _c("carrier", "string", _CARRIER_ALL),
            _c("delivered", "integer", "legs delivered (first DELIVERED scan in range)"),
            _c("signed_off", "integer", "of which the order has a sign-off of that leg"),
            _c("completion_pct", "number", "100 * signed_off / delivered"),
        ),
        sql.SIGNOFFS,
        _signoffs,
    ),
    Report(
        "return-turnaround",
        "Return turnaround",
        "Orders whose first move to REPAIRED is in range, and the time from it to their first "
        "DELIVERED (p50, p90 over the orders delivered so far); overall and by return carrier "
        "(orders with a return shipment booked).",
        "the order's first REPAIRED",
        (
            _c("return_carrier", "string", "return carrier code (null: all orders)"),
            _c("repaired", "integer", "orders repaired in range"),
            _c("delivered", "integer", "of which delivered back to the customer"),
            _c("p50_ms", "duration_ms", f"REPAIRED to DELIVERED, {_P50}"),
            _c("p90_ms", "duration_ms", f"REPAIRED to DELIVERED, {_P90}"),
        ),
        sql.RETURN_TURNAROUND,
        _turnaround,
    ),
    Report(
        "claims",
        "Insurance claims",
        "Claims filed in range by kind, current status and custody holder: their count, the "
        "amounts claimed, approved and paid, and the cycle time from FILED to the first PAID or "
        "REJECTED (p50, p90 over the claims that got there).",
        "the claim's filed_at",
        (
            _c("kind", "string", "damage, loss or delay"),
            _c("status", "string", "the claims' current status"),
            _c("custody_holder", "string", "who held the parcel at the first anomaly (null: none)"),
            _c("claims", "integer", "claims filed in range"),
            _c("claimed", "money", "total claimed, CNY"),
            _c("approved", "money", "total approved, CNY"),
            _c("paid", "money", "total paid, CNY"),
            _c("closed", "integer", "claims that reached PAID or REJECTED"),
            _c("cycle_p50_ms", "duration_ms", f"FILED to PAID/REJECTED, {_P50}"),
            _c("cycle_p90_ms", "duration_ms", f"FILED to PAID/REJECTED, {_P90}"),
        ),
        sql.CLAIMS,
        _claims,
    ),
    Report(
        "lane-transit",
        "Lane transit time",
        "Shipments whose first PICKED_UP scan is in range and that have a first DELIVERED scan "
        "at or after it: the time between them (p50, p90) by lane (origin region -> dest "
        "region, the shipment's latest known attributes), per carrier and for all carriers.",
        "the shipment's first PICKED_UP scan",
        (
            _c("origin", "string", "origin region code"),
            _c("dest", "string", "destination region code"),
            _c("carrier", "string", _CARRIER_ALL),
            _c("shipments", "integer", "shipments picked up in range and delivered"),
            _c("p50_ms", "duration_ms", f"PICKED_UP to DELIVERED, {_P50}"),
            _c("p90_ms", "duration_ms", f"PICKED_UP to DELIVERED, {_P90}"),
        ),
        sql.LANE_TRANSIT,
        _as_is,
    ),
    Report(
        "faults",
        "Fault heatmap",
        "Orders created in range by the province of the customer's region and the fault type "
        "of their intake (cancelled orders included: the fault was reported).",
        "the order's created_at",
        (
            _c("province", "string", "province region code, CN-440000"),
            _c("province_name", "string", "province name (English)"),
            _c("fault_type", "string", "fault type of the intake"),
            _c("orders", "integer", "orders"),
        ),
        sql.FAULTS,
        _faults,
    ),
    Report(
        "recall",
        "Recall trace",
        "Every order created in range whose product code and/or batch is the one asked for "
        "(exact match; both given: both must match), with the customer's region and the "
        "order's current status, oldest first.",
        "the order's created_at",
        (
            _c("order_id", "string", "order id"),
            _c("created_at", "timestamp", "when the order was created"),
            _c("status", "string", "current status"),
            _c("customer_id", "string", "customer id"),
            _c("customer_region", "string", "customer's region code"),
            _c("province", "string", "its province, CN-440000"),
            _c("product_category", "string", "product category"),
            _c("product_brand", "string", "brand"),
            _c("product_model", "string", "model"),
            _c("product_code", "string", "product code"),
            _c("product_batch", "string", "production batch"),
            _c("fault_type", "string", "fault type of the intake"),
        ),
        sql.RECALL,
        _recall,
        filters=("product_code", "batch"),
        default_days=3 * 365 + 1,
        max_days=3653,
    ),
)

#: The reports by name, in the order they are listed.
REPORTS: Mapping[str, Report] = {r.name: r for r in _REPORTS}


def report_params(
    report: Report,
    *,
    now_ms: int,
    from_ms: int | None = None,
    to_ms: int | None = None,
    product_code: str | None = None,
    batch: str | None = None,
) -> ReportParams:
    """The report's inputs with the defaults filled in (``to_ms``: now; ``from_ms``: the
    report's default span before ``to_ms``), or :class:`ReportParamsError` naming each field:
    an empty or reversed range, one longer than the report allows, a recall without a product
    code or batch, a filter the report does not take."""
    to = now_ms if to_ms is None else to_ms
    start = to - report.default_days * DAY_MS if from_ms is None else from_ms
    errors: list[FieldError] = []
    if to <= start:
        # Name what the caller sent: a defaulted to_ms is not theirs to fix.
        field = "to_ms" if to_ms is not None else "from_ms"
        errors.append(FieldError(field, f"the range is empty: to_ms {to} <= from_ms {start}"))
    elif to - start > report.max_days * DAY_MS:
        errors.append(FieldError("from_ms", f"the range may span at most {report.max_days} days"))
    given = {"product_code": product_code, "batch": batch}
    for name, value in given.items():
        if value is not None and name not in report.filters:
            errors.append(FieldError(name, f"the {report.name} report takes no {name}"))
    if report.filters and all(given[name] is None for name in report.filters):
        errors += [FieldError(name, "give product_code or batch (or both)") for name in given]
    if errors:
        raise ReportParamsError(errors)
    return ReportParams(start, to, product_code, batch)


def run_report(store: Store, name: str, params: ReportParams) -> tuple[list[str], list[Row]]:
    """Run report ``name``: its column names and its rows (one dict per row, keyed by
    column). Blocking (one ClickHouse query); :class:`ConfigError` for an unknown name."""
    report = REPORTS.get(name)
    if report is None:
        raise ConfigError(f"unknown report {name!r} (one of {', '.join(REPORTS)})")
    bound: dict[str, Any] = {"lo": params.from_ms, "hi": params.to_ms}
    if report.filters:
        bound |= {"product_code": params.product_code or "", "batch": params.batch or ""}
    table = store.query(report.sql, bound)
    names = [c.name for c in report.columns]
    done = report.finish(table.to_pydict())
    cells = zip(*(done[n] for n in names), strict=True)
    rows = [dict(zip(names, values, strict=True)) for values in cells]
    return names, rows
