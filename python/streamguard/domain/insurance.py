"""Insurance: carrier tariffs, the premium for a declared value, and the policy of an order.

Tariffs are operator data (rates per tier, a minimum premium, what a carrier can insure and
where it delivers), so they load from JSON and are checked field by field: a bad edit must say
which carrier and which field, and must never half-apply. Money stays integer fen inside and
travels as a CNY decimal string in JSON; rates are :class:`~decimal.Decimal` fractions, so a
premium is computed without a float anywhere (CONTROL_PLANE.md, "Insurance").

One policy covers both legs of an order: the return inherits the inbound policy, so the
customer never insures twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from streamguard.domain.money import Fen, fen_to_str, parse_cny, round_fen
from streamguard.domain.regions import REGION_PATTERN
from streamguard.domain.shipments import (
    ADVANCED_MAX_FEN,
    BASIC_MAX_FEN,
    Leg,
    Tier,
    tier_for,
)
from streamguard.domain.validation import FieldError, field_errors
from streamguard.errors import ConfigError

__all__ = [
    "ADVANCED_MAX_FEN",
    "BASIC_MAX_FEN",
    "CarrierDoc",
    "CarrierTariff",
    "Coverage",
    "CoverageDoc",
    "Policy",
    "Rates",
    "RatesDoc",
    "TariffError",
    "Tariffs",
    "TariffsDoc",
    "Tier",
    "covers",
    "new_policy",
    "policy_of",
    "policy_view",
    "premium_fen",
    "tier_for",
]

_CARRIER_CODE = re.compile(r"^[A-Z0-9]{2,8}$")
_MONEY_FIELDS = ("min_premium", "base_price", "remote_surcharge", "insurable_max")


class TariffError(ConfigError):
    """A tariff document that does not load; ``errors`` lists every bad field
    (``carriers.SF.min_premium``), not just the first, so one edit fixes them all."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("bad tariffs: " + "; ".join(f"{e.field}: {e.message}" for e in errors))


class Rates(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Premium rate per tier, as a fraction of the declared value (``0.005`` = 0.5 %)."""

    basic: Decimal
    advanced: Decimal
    premium: Decimal

    def for_tier(self, tier: Tier) -> Decimal:
        return {"basic": self.basic, "advanced": self.advanced, "premium": self.premium}[tier]


class Coverage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where a carrier delivers: ``excluded`` region prefixes (``CN-54``, ``CN-4403``) and
    whether it serves the remote provinces at all."""

    excluded: tuple[str, ...] = ()
    remote: bool = True


class CarrierTariff(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One carrier's tariff, money already in fen (the JSON form is :meth:`Tariffs.to_json`)."""

    code: str
    name: str
    rates: Rates
    min_premium_fen: Fen
    base_price_fen: Fen
    remote_surcharge_fen: Fen
    insurable_max_fen: Fen
    shock_proof: bool
    coverage: Coverage
    sla_days: int


# The JSON shape: money and rates as strings, so no float ever reaches a price.
class RatesDoc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    basic: str
    advanced: str
    premium: str


class CoverageDoc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    remote: bool
    excluded: list[str] = []


class CarrierDoc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=80)]
    rates: RatesDoc
    min_premium: str
    base_price: str
    remote_surcharge: str
    insurable_max: str
    shock_proof: bool
    coverage: CoverageDoc
    sla_days: Annotated[int, Meta(ge=1, le=60)]


class TariffsDoc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole document, as the API declares it: every carrier's premium rates per tier,
    minimum premium, shipping price, remote surcharge and insurable maximum (CNY as decimal
    strings), shock-proof packaging, coverage and nominal transit days. :meth:`Tariffs.from_json`
    checks every value and names each bad one."""

    carriers: Annotated[dict[str, CarrierDoc], Meta(min_length=1, max_length=64)]
    note: str = msgspec.field(default="", name="_note")


def _rate(text: str) -> Decimal:
    try:
        rate = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal rate such as '0.005'") from None
    if not rate.is_finite() or not 0 <= rate < 1:
        raise ValueError(f"{text!r} must be a fraction of the declared value in [0, 1)")
    return rate


def _region_prefix(entry: str) -> str:
    code = entry if entry.startswith("CN-") else f"CN-{entry}"
    if not re.match(REGION_PATTERN, code):
        raise ValueError(f"{entry!r} is not a province prefix ('65') or a CN- region code")
    return code


def _carrier(code: str, raw: Any) -> CarrierTariff | list[FieldError]:
    where = f"carriers.{code}"
    if not _CARRIER_CODE.match(code):
        return [FieldError(where, "carrier code must be 2-8 uppercase letters or digits")]
    errors = field_errors(CarrierDoc, raw, where)
    if errors:
        return errors
    doc = msgspec.convert(raw, CarrierDoc)
    money: dict[str, Fen] = {}
    for name in _MONEY_FIELDS:
        try:
            money[name] = parse_cny(getattr(doc, name))
        except ValueError as e:
            errors.append(FieldError(f"{where}.{name}", str(e)))
    rates: dict[str, Decimal] = {}
    for tier in ("basic", "advanced", "premium"):
        try:
            rates[tier] = _rate(getattr(doc.rates, tier))
        except ValueError as e:
            errors.append(FieldError(f"{where}.rates.{tier}", str(e)))
    excluded: list[str] = []
    for i, entry in enumerate(doc.coverage.excluded):
        try:
            excluded.append(_region_prefix(entry))
        except ValueError as e:
            errors.append(FieldError(f"{where}.coverage.excluded[{i}]", str(e)))
    if errors:
        return errors
    return CarrierTariff(
        code=code,
        name=doc.name,
        rates=Rates(**rates),
        min_premium_fen=money["min_premium"],
        base_price_fen=money["base_price"],
        remote_surcharge_fen=money["remote_surcharge"],
        insurable_max_fen=money["insurable_max"],
        shock_proof=doc.shock_proof,
        coverage=Coverage(excluded=tuple(excluded), remote=doc.coverage.remote),
        sla_days=doc.sla_days,
    )


def _carrier_doc(t: CarrierTariff) -> dict[str, Any]:
    return {
        "name": t.name,
        "rates": {tier: str(t.rates.for_tier(tier)) for tier in ("basic", "advanced", "premium")},
        "min_premium": fen_to_str(t.min_premium_fen),
        "base_price": fen_to_str(t.base_price_fen),
        "remote_surcharge": fen_to_str(t.remote_surcharge_fen),
        "insurable_max": fen_to_str(t.insurable_max_fen),
        "shock_proof": t.shock_proof,
        "coverage": {"excluded": list(t.coverage.excluded), "remote": t.coverage.remote},
        "sla_days": t.sla_days,
    }


class Tariffs(Mapping[str, CarrierTariff]):
    """Every carrier's tariff by code; ``note`` says where the numbers come from (the packaged
    sample says it is sample data)."""

    __slots__ = ("_by_code", "note")

    def __init__(self, carriers: Iterable[CarrierTariff], note: str = "") -> None:
        by_code: dict[str, CarrierTariff] = {}
        for t in carriers:
            if t.code in by_code:
                raise ValueError(f"carrier {t.code!r} appears twice")
            by_code[t.code] = t
        self._by_code = dict(sorted(by_code.items()))
        self.note = note

    def __getitem__(self, code: str) -> CarrierTariff:
        return self._by_code[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_code)

    def __len__(self) -> int:
        return len(self._by_code)

    def __repr__(self) -> str:
        return f"Tariffs({', '.join(self._by_code)})"

    @classmethod
    def from_json(cls, data: bytes | str) -> Tariffs:
        """The tariffs of a JSON document, or :class:`TariffError` listing every bad field."""
        try:
            raw = msgspec.json.decode(data)
        except msgspec.DecodeError as e:
            raise TariffError([FieldError("body", str(e))]) from None
        if not isinstance(raw, dict):
            raise TariffError([FieldError("body", "expected a JSON object")])
        errors = [FieldError(k, "unknown field") for k in raw if k not in {"_note", "carriers"}]
        note = raw.get("_note", "")
        if not isinstance(note, str):
            errors.append(FieldError("_note", "expected a string"))
        carriers = raw.get("carriers")
        if not isinstance(carriers, dict) or not carriers:
            errors.append(FieldError("carriers", "expected a non-empty object keyed by code"))
            raise TariffError(errors)
        tariffs: list[CarrierTariff] = []
        for code, body in carriers.items():
            loaded = _carrier(code, body)
            if isinstance(loaded, list):
                errors.extend(loaded)
            else:
                tariffs.append(loaded)
        if errors:
            raise TariffError(errors)
        return cls(tariffs, note=str(note))

    @classmethod
    def load_sample(cls) -> Tariffs:
        """The SAMPLE tariffs shipped with the package (illustrative, not real prices)."""
        path = resources.files("streamguard.data").joinpath("tariffs.json")
        return cls.from_json(path.read_bytes())

    def to_json(self) -> bytes:
        """The document :meth:`from_json` reads back: money as CNY strings, rates as strings."""
        doc: dict[str, Any] = {"_note": self.note} if self.note else {}
        doc["carriers"] = {code: _carrier_doc(t) for code, t in self._by_code.items()}
        return msgspec.json.format(msgspec.json.encode(doc), indent=2)


def premium_fen(tariff: CarrierTariff, declared_value_fen: int) -> Fen:
    """rate(tier, carrier) x declared value, rounded half-up to the fen, never below the
    carrier's minimum premium. Decimal only: a float would lose fen on large values."""
    if declared_value_fen < 0:
        raise ValueError("declared value must be non-negative")
    rate = tariff.rates.for_tier(tier_for(declared_value_fen))
    amount = round_fen(rate * Decimal(declared_value_fen).scaleb(-2))
    return Fen(max(tariff.min_premium_fen, amount))


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An order's insurance. ``carrier`` is the inbound leg's; ``legs`` is both legs because
    the return inherits this policy rather than buying another."""

    policy_id: str
    order_id: str
    carrier: str
    tier: Tier
    declared_value_fen: Fen
    premium_fen: Fen
    coverage_fen: Fen
    legs: tuple[Leg, ...] = ("inbound", "return")
    created_ms: int


def new_policy(
    order_id: str, carrier_tariff: CarrierTariff, declared_value_fen: int, at_ms: int
) -> Policy:
    """The policy of an order insured with its inbound carrier's tariff.

    The id derives from the order's, so issuing twice for one order yields the same policy id
    (one policy per order) instead of a second, silently paid, premium.
    """
    if declared_value_fen > carrier_tariff.insurable_max_fen:
        raise ValueError(
            f"declared value {fen_to_str(declared_value_fen)} CNY above the insurable maximum "
            f"{fen_to_str(carrier_tariff.insurable_max_fen)} CNY of {carrier_tariff.code}"
        )
    return Policy(
        policy_id=f"POL-{order_id}",
        order_id=order_id,
        carrier=carrier_tariff.code,
        tier=tier_for(declared_value_fen),
        declared_value_fen=Fen(declared_value_fen),
        premium_fen=premium_fen(carrier_tariff, declared_value_fen),
        coverage_fen=Fen(declared_value_fen),
        created_ms=at_ms,
    )


def covers(policy: Policy, leg: str) -> bool:
    """Whether ``policy`` insures the ``leg`` ("inbound" or "return") of its order."""
    return leg in policy.legs


def policy_of(view: Mapping[str, Any]) -> Policy:
    """The policy a :func:`policy_view` shows (the inverse: money back to fen)."""
    return Policy(
        policy_id=str(view["policy_id"]),
        order_id=str(view["order_id"]),
        carrier=str(view["carrier"]),
        tier=view["tier"],
        declared_value_fen=parse_cny(str(view["declared_value"])),
        premium_fen=parse_cny(str(view["premium"])),
        coverage_fen=parse_cny(str(view["coverage"])),
        legs=tuple(view.get("legs", ("inbound", "return"))),
        created_ms=int(view["created_ms"]),
    )


def policy_view(policy: Policy) -> dict[str, Any]:
    """The policy as JSON carries it: money as CNY decimal strings."""
    return {
        "policy_id": policy.policy_id,
        "order_id": policy.order_id,
        "carrier": policy.carrier,
        "tier": policy.tier,
        "declared_value": fen_to_str(policy.declared_value_fen),
        "premium": fen_to_str(policy.premium_fen),
        "coverage": fen_to_str(policy.coverage_fen),
        "legs": list(policy.legs),
        "created_ms": policy.created_ms,
    }
