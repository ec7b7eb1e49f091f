"""Automatic returns: choosing the return carrier under hard constraints, and explaining it.

Constraints come first and are never traded against a score (CONTROL_PLANE.md, "Returns"):
fragile parts need shock-proof packaging, the declared value must fit the carrier's insurable
maximum, and the carrier must reach both ends of the lane, remote provinces included. Among the
carriers left, a weighted score picks one, and every option keeps its component scores and its
exclusion reasons, so an operator sees why and may override.

:class:`CarrierChooser` is the seam. :class:`ScoringChooser` scores cost and coverage from the
tariffs, and time and quality from the engine's lane statistics (a :class:`LaneSource`); without
lane statistics (or for a carrier the engine has not seen on the lane's carrier-wide data) it
falls back to the tariff's nominal ``sla_days`` and a neutral quality.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import msgspec

from streamguard.domain.insurance import CarrierTariff, Tariffs, premium_fen
from streamguard.domain.money import Fen, fen_to_str
from streamguard.domain.orders import FRAGILE_PARTS, Order
from streamguard.domain.regions import Province, check_region, provinces
from streamguard.errors import ConfigError

__all__ = [
    "COMPONENTS",
    "DEFAULT_WEIGHTS",
    "CarrierChooser",
    "CarrierOption",
    "Choice",
    "LaneEstimate",
    "LaneSource",
    "LaneTableSource",
    "Override",
    "OverrideRefused",
    "ReturnRequest",
    "ScoringChooser",
    "Weights",
    "choice_view",
    "override",
]

COMPONENTS = ("cost", "time", "coverage", "quality")
#: What quality scores for a carrier with no lane statistics yet.
NEUTRAL_QUALITY = 0.5
#: How strongly incidents (shock and dwell alerts per shipment) lower quality (``quality_of``).
INCIDENT_WEIGHT = 4.0
_DAY_MS = 86_400_000


class OverrideRefused(ConfigError):
    """An operator override to a carrier the constraints exclude, without ``force=True``."""


class Weights(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How much each component counts; the total is the weighted mean, so only ratios matter.

    Defaults: cost 0.4 (shipping + premium is what the platform pays on every return), time 0.3
    (turnaround is the customer's wait), quality 0.2 (neutral until it is learned), coverage 0.1
    (mostly enforced as a constraint already).
    """

    cost: float = 0.4
    time: float = 0.3
    coverage: float = 0.1
    quality: float = 0.2

    def __post_init__(self) -> None:
        values = [self.cost, self.time, self.coverage, self.quality]
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError("weights must be finite and non-negative")
        if not any(values):
            raise ValueError("at least one weight must be positive")

    def as_dict(self) -> dict[str, float]:
        return {c: float(getattr(self, c)) for c in COMPONENTS}


DEFAULT_WEIGHTS = Weights()


class ReturnRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A return to route: depot region (``origin``) to the customer's region (``dest``).

    ``fragile_parts`` names the parts behind ``fragile`` so an exclusion can say which; either
    one asks for shock-proof packaging.
    """

    origin: str
    dest: str
    declared_value_fen: Fen
    fragile: bool = False
    fragile_parts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_region(self.origin)
        check_region(self.dest)
        if self.declared_value_fen < 0:
            raise ValueError("declared value must be non-negative")

    @property
    def needs_shock_proof(self) -> bool:
        return self.fragile or bool(FRAGILE_PARTS & set(self.fragile_parts))

    @classmethod
    def for_order(cls, order: Order, depot_region: str) -> ReturnRequest:
        """The return of a repaired ``order`` from the depot back to the customer."""
        parts = tuple(sorted(FRAGILE_PARTS & set(order.intake.fragile_parts)))
        return cls(
            origin=depot_region,
            dest=order.intake.customer.address.region,
            declared_value_fen=order.declared_value_fen,
            fragile=bool(parts),
            fragile_parts=parts,
        )


class LaneEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """What the engine has learned of one carrier on one lane (province pair), smoothed toward
    the carrier's own figures when the lane has few shipments (``lane_weight`` is the lane's
    own share)."""

    p50_ms: float
    p90_ms: float
    on_time_rate: float
    dwell_per_shipment: float
    shock_per_shipment: float
    shipments: float
    lane_weight: float

    @property
    def expected_ms(self) -> float:
        """The transit time the time score compares: the mean of p50 and p90, so a carrier
        with a long tail pays for it."""
        return (self.p50_ms + self.p90_ms) / 2

    @property
    def incidents(self) -> float:
        """Shock and dwell alerts per shipment."""
        return self.dwell_per_shipment + self.shock_per_shipment


@runtime_checkable
class LaneSource(Protocol):
    """Lane statistics by carrier code and region codes (``CN-440300``); ``None`` when the
    carrier has no data at all."""

    def estimate(self, carrier: str, origin: str, dest: str) -> LaneEstimate | None: ...


class _Estimates(Protocol):
    def estimate(self, carrier: str, origin: str, dest: str) -> Mapping[str, Any] | None: ...


class LaneTableSource:
    """A :class:`LaneSource` over the engine's lane table (``streamguard.LaneTable``, or
    anything whose ``estimate`` gives the same mapping); ``None`` gives no statistics."""

    __slots__ = ("table",)

    def __init__(self, table: _Estimates | None) -> None:
        self.table = table

    def estimate(self, carrier: str, origin: str, dest: str) -> LaneEstimate | None:
        if self.table is None:
            return None
        found = self.table.estimate(carrier, origin, dest)
        return None if found is None else msgspec.convert(found, LaneEstimate)


class CarrierOption(msgspec.Struct, frozen=True, kw_only=True):
    """One candidate carrier: eligible or why not, its component scores (0..1) and total, and
    the lane statistics its time and quality came from (``None``: the tariff's nominal SLA and
    a neutral quality)."""

    carrier: str
    eligible: bool
    excluded_because: list[str]
    scores: dict[str, float]
    total: float
    cost_fen: Fen
    premium_fen: Fen
    lane: LaneEstimate | None = None


class Override(msgspec.Struct, frozen=True, kw_only=True):
    """An operator's choice over the chooser's: who replaced whom, why, and whether it went
    past a constraint (``forced``)."""

    carrier: str
    replaced: str | None
    reason: str
    forced: bool


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    """The chosen carrier (``None`` when none is eligible) and every option, best first."""

    chosen: str | None
    options: list[CarrierOption]
    weights: Weights
    explanation: str
    request: ReturnRequest
    override: Override | None = None

    def option(self, carrier: str) -> CarrierOption | None:
        return next((o for o in self.options if o.carrier == carrier), None)


@runtime_checkable
class CarrierChooser(Protocol):
    """Chooses the return carrier for a request; implementations differ in how they score."""

    def choose(self, request: ReturnRequest, weights: Weights = DEFAULT_WEIGHTS) -> Choice: ...


def _place(province: Province) -> str:
    return f"{'remote ' if province.remote else ''}{province.name_en} (CN-{province.code[:2]})"


def _unreached(t: CarrierTariff, region: str, province: Province) -> str | None:
    """Why ``t`` cannot reach ``region``, or ``None`` when it can."""
    if province.remote and not t.coverage.remote:
        return _place(province)
    for prefix in t.coverage.excluded:
        if region.startswith(prefix):
            return _place(province) if len(prefix) == 5 else f"{prefix} in {province.name_en}"
    return None


def _exclusions(
    t: CarrierTariff, req: ReturnRequest, origin: Province, dest: Province
) -> tuple[list[str], bool]:
    """Every constraint ``t`` fails, in words, and whether it reaches both ends of the lane."""
    reasons: list[str] = []
    if req.needs_shock_proof and not t.shock_proof:
        parts = ", ".join(req.fragile_parts)
        why = f"the order has fragile parts {parts}" if parts else "the shipment is fragile"
        reasons.append(f"not shock-proof: {why}")
    if req.declared_value_fen > t.insurable_max_fen:
        reasons.append(
            f"declared value {fen_to_str(req.declared_value_fen)} CNY above the insurable "
            f"maximum {fen_to_str(t.insurable_max_fen)} CNY"
        )
    pickup = _unreached(t, req.origin, origin)
    if pickup is not None:
        reasons.append(f"does not pick up in {pickup}")
    delivery = _unreached(t, req.dest, dest)
    if delivery is not None:
        reasons.append(f"does not deliver to {delivery}")
    return reasons, pickup is None and delivery is None


def _breadth(t: CarrierTariff) -> float:
    """Share of provinces the carrier serves at all (partial exclusions still count)."""
    table = provinces()
    served = [
        p
        for prefix, p in table.items()
        if (t.coverage.remote or not p.remote) and f"CN-{prefix}" not in t.coverage.excluded
    ]
    return len(served) / len(table)


def quality_of(lane: LaneEstimate | None, fewest: float = 0.0) -> float:
    """Quality in 0..1 from incidents per shipment ``x`` against the ``fewest`` any eligible
    carrier has: (1 + 4·fewest) / (1 + 4·x), so the cleanest carrier scores 1 whatever the
    rules' baseline (routine dwell alerts on line-haul legs count for every carrier alike);
    neutral without data."""
    if lane is None:
        return NEUTRAL_QUALITY
    return min(1.0, (1.0 + INCIDENT_WEIGHT * fewest) / (1.0 + INCIDENT_WEIGHT * lane.incidents))


class ScoringChooser:
    """Chooses the return carrier from the tariffs and, when given, the lane statistics.

    Components, each in 0..1 and relative to the eligible carriers (so an excluded carrier
    cannot shift the ranking of the others):
    - ``cost`` = cheapest cost / this cost, where cost is shipping (plus the remote surcharge
      when either end is remote) plus this carrier's premium for the declared value;
    - ``time`` = shortest expected transit / this carrier's, the expected transit being the
      mean of the lane's learned p50 and p90 (a long tail costs), or the tariff's nominal
      ``sla_days`` for a carrier without statistics;
    - ``coverage`` = share of provinces the carrier serves, 0 when it misses this lane;
    - ``quality`` = (1 + 4 x fewest) / (1 + 4 x incidents), incidents being the shock and
      dwell alerts per shipment on the lane (smoothed toward the carrier) and fewest the
      lowest among the eligible carriers; a neutral 0.5 without statistics.
    """

    def __init__(self, tariffs: Tariffs, lanes: LaneSource | None = None) -> None:
        if not tariffs:
            raise ValueError("no carrier tariffs to choose from")
        self.tariffs = tariffs
        self.lanes = lanes

    def _lane(self, carrier: str, request: ReturnRequest) -> LaneEstimate | None:
        if self.lanes is None:
            return None
        return self.lanes.estimate(carrier, request.origin, request.dest)

    def choose(self, request: ReturnRequest, weights: Weights = DEFAULT_WEIGHTS) -> Choice:
        origin, dest = check_region(request.origin), check_region(request.dest)
        rows = []
        for t in self.tariffs.values():
            reasons, reached = _exclusions(t, request, origin, dest)
            premium = premium_fen(t, request.declared_value_fen)
            surcharge = t.remote_surcharge_fen if origin.remote or dest.remote else 0
            lane = self._lane(t.code, request)
            expected = lane.expected_ms if lane is not None else t.sla_days * _DAY_MS
            cost = Fen(t.base_price_fen + surcharge + premium)
            rows.append((t, reasons, reached, cost, premium, lane, max(expected, 1.0)))
        pool = [r for r in rows if not r[1]] or rows
        min_cost = min(r[3] for r in pool)
        min_time = min(r[6] for r in pool)
        fewest = min((max(0.0, r[5].incidents) for r in pool if r[5] is not None), default=0.0)
        w = weights.as_dict()
        options: list[CarrierOption] = []
        for t, reasons, reached, cost, premium, lane, expected in rows:
            scores = {
                "cost": min(1.0, min_cost / cost) if cost else 1.0,
                "time": min(1.0, min_time / expected),
                "coverage": _breadth(t) if reached else 0.0,
                "quality": quality_of(lane, fewest),
            }
            total = sum(w[c] * scores[c] for c in COMPONENTS) / sum(w.values())
            options.append(
                CarrierOption(
                    carrier=t.code,
                    eligible=not reasons,
                    excluded_because=reasons,
                    scores={c: round(s, 4) for c, s in scores.items()},
                    total=round(total, 4),
                    cost_fen=cost,
                    premium_fen=premium,
                    lane=lane,
                )
            )
        # Rounded totals make near-equal floats a true tie, broken by carrier code.
        options.sort(key=lambda o: (not o.eligible, -o.total if o.eligible else 0.0, o.carrier))
        chosen = options[0].carrier if options[0].eligible else None
        return Choice(
            chosen=chosen,
            options=options,
            weights=weights,
            explanation=_explain(chosen, options, weights, request),
            request=request,
        )


def _explain(
    chosen: str | None, options: list[CarrierOption], weights: Weights, req: ReturnRequest
) -> str:
    lane = f"{req.origin} -> {req.dest}, {fen_to_str(req.declared_value_fen)} CNY"
    lane += ", fragile" if req.needs_shock_proof else ""
    excluded = "; ".join(
        f"{o.carrier}: {', '.join(o.excluded_because)}" for o in options if not o.eligible
    )
    if chosen is None:
        return f"no eligible carrier for {lane}. Excluded: {excluded}"
    best = options[0]
    parts = ", ".join(f"{c} {best.scores[c]:.2f}" for c in COMPONENTS)
    used = ", ".join(f"{c} {v:g}" for c, v in weights.as_dict().items())
    text = f"{chosen} chosen for {lane}: total {best.total:.3f} ({parts}; weights {used})"
    runner_up = [o for o in options[1:] if o.eligible]
    if runner_up:
        text += f". Runner-up {runner_up[0].carrier} {runner_up[0].total:.3f}"
    if excluded:
        text += f". Excluded: {excluded}"
    return text


def override(choice: Choice, carrier: str, reason: str, *, force: bool = False) -> Choice:
    """``choice`` with the operator's ``carrier``. An excluded carrier is refused unless
    ``force`` (the operator knows something the tariffs do not); the reason is kept either way."""
    reason = reason.strip()
    if not reason:
        raise ValueError("an override needs a reason")
    option = choice.option(carrier)
    if option is None:
        raise ValueError(
            f"unknown carrier {carrier!r}; options: {[o.carrier for o in choice.options]}"
        )
    if not option.eligible and not force:
        raise OverrideRefused(
            f"{carrier} is excluded ({'; '.join(option.excluded_because)}); "
            "pass force=True to override anyway"
        )
    forced = not option.eligible
    text = f"operator override: {carrier} instead of {choice.chosen or 'none'} ({reason})"
    if forced:
        text += f", forced past: {'; '.join(option.excluded_because)}"
    return msgspec.structs.replace(
        choice,
        chosen=carrier,
        override=Override(carrier=carrier, replaced=choice.chosen, reason=reason, forced=forced),
        explanation=f"{text}. Chooser said: {choice.explanation}",
    )


def choice_view(choice: Choice) -> dict[str, Any]:
    """The choice as JSON carries it: money as CNY decimal strings, never integers or floats."""
    view: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(choice))
    view["request"]["declared_value"] = fen_to_str(view["request"].pop("declared_value_fen"))
    view["request"]["fragile"] = choice.request.needs_shock_proof
    for o in view["options"]:
        o["cost"] = fen_to_str(o.pop("cost_fen"))
        o["premium"] = fen_to_str(o.pop("premium_fen"))
    return view
