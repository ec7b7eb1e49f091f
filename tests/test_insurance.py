"""Insurance and automatic returns, pure: tiers, premiums to the fen, the sample tariffs, tariff
errors that name carrier and field, and the return-carrier choice under its constraints."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from streamguard.domain import shipments
from streamguard.domain.insurance import (
    CarrierTariff,
    Coverage,
    Rates,
    TariffError,
    Tariffs,
    covers,
    new_policy,
    policy_view,
    premium_fen,
    tier_for,
)
from streamguard.domain.money import Fen, parse_cny
from streamguard.domain.orders import Actor, Intake, apply, new_order
from streamguard.domain.returns import (
    COMPONENTS,
    CarrierChooser,
    OverrideRefused,
    ReturnRequest,
    ScoringChooser,
    Weights,
    choice_view,
    override,
)

CODES = {"SF", "JD", "EMS", "ZTO", "YTO", "STO", "YUNDA", "DBL"}
SHENZHEN, SHANGHAI, URUMQI, LHASA = "CN-440305", "CN-310101", "CN-650102", "CN-540102"


def tariff(code: str, **changes: Any) -> CarrierTariff:
    """A plain tariff: shock-proof, remote-covering, 5 000 CNY insurable, 3 days."""
    fields: dict[str, Any] = {
        "code": code,
        "name": f"Carrier {code}",
        "rates": Rates(basic=Decimal("0.005"), advanced=Decimal("0.004"), premium=Decimal("0.003")),
        "min_premium_fen": Fen(100),
        "base_price_fen": Fen(1500),
        "remote_surcharge_fen": Fen(1000),
        "insurable_max_fen": Fen(500000),
        "shock_proof": True,
        "coverage": Coverage(),
        "sla_days": 3,
    }
    return CarrierTariff(**(fields | changes))


def sample_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Tariffs.load_sample().to_json())
    return doc


def request(dest: str = SHANGHAI, value: str = "1500.00", *parts: str) -> ReturnRequest:
    return ReturnRequest(
        origin=SHENZHEN, dest=dest, declared_value_fen=parse_cny(value), fragile_parts=parts
    )


# -- tiers and premiums --


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        ("0.00", "basic"),
        ("500.00", "basic"),
        ("500.01", "advanced"),
        ("5000.00", "advanced"),
        ("5000.01", "premium"),
    ],
)
def test_tier_boundaries(value: str, tier: str) -> None:
    assert tier_for(parse_cny(value)) == tier
    assert tier_for is shipments.tier_for  # one definition, shared with the shipment event


def test_premium_rounds_half_up_to_the_fen() -> None:
    t = tariff("XX", min_premium_fen=Fen(0))
    # 1001.00 CNY x 0.004 (advanced) = 400.4 fen -> 400
    assert premium_fen(t, parse_cny("1001.00")) == 400
    # 5.00 CNY x 0.005 = 2.5 fen exactly: half-up gives 3 (half-even would give 2)
    assert premium_fen(t, parse_cny("5.00")) == 3
    # 1001.00 CNY x 0.005 = 500.5 fen -> 501
    t5 = tariff("XX", rates=Rates(basic=Decimal(0), advanced=Decimal("0.005"), premium=Decimal(0)))
    assert premium_fen(t5, parse_cny("1001.00")) == 501
    # premium tier: 5000.01 CNY x 0.003 = 1500.003 fen -> 1500
    assert premium_fen(t, parse_cny("5000.01")) == 1500
    assert type(premium_fen(t, parse_cny("5000.01"))) is int


def test_premium_never_below_the_minimum() -> None:
    t = tariff("XX", min_premium_fen=parse_cny("2.00"))
    assert premium_fen(t, parse_cny("100.00")) == 200  # 0.50 CNY by rate, 2.00 by minimum
    assert premium_fen(t, 0) == 200
    assert premium_fen(t, parse_cny("4000.00")) == 1600  # 16.00 CNY by rate
    with pytest.raises(ValueError, match="non-negative"):
        premium_fen(t, -1)


def test_huge_values_stay_exact() -> None:
    # 999 999 999.99 CNY x 0.003 = 299 999 999.997 fen -> 300 000 000 fen, no float drift
    assert premium_fen(tariff("XX"), 99_999_999_999) == 300_000_000


# -- tariffs --


def test_sample_tariffs_load_with_every_carrier_and_sane_values() -> None:
    tariffs = Tariffs.load_sample()
    assert set(tariffs) == CODES
    assert "sample" in tariffs.note.lower()
    assert "not real" in tariffs.note.lower()
    for code, t in tariffs.items():
        assert t.code == code
        assert t.name
        for tier in ("basic", "advanced", "premium"):
            assert Decimal(0) < t.rates.for_tier(tier) < Decimal("0.05"), code
        assert 0 < t.min_premium_fen <= 1000
        assert 500 <= t.base_price_fen <= 5000
        assert 0 <= t.remote_surcharge_fen <= 5000
        assert t.insurable_max_fen >= parse_cny("1000.00")
        assert 1 <= t.sla_days <= 10
        assert all(p.startswith("CN-") for p in t.coverage.excluded)
    # The constraints must bite on the sample: not everyone is shock-proof, remote or rich.
    assert {c for c, t in tariffs.items() if not t.shock_proof} == {"EMS", "YTO", "STO", "YUNDA"}
    assert {c for c, t in tariffs.items() if not t.coverage.remote} == {
        "ZTO",
        "YTO",
        "STO",
        "YUNDA",
    }
    assert min(t.insurable_max_fen for t in tariffs.values()) < parse_cny("5000.00")


def test_tariffs_round_trip_with_money_as_strings() -> None:
    tariffs = Tariffs.load_sample()
    assert Tariffs.from_json(tariffs.to_json()) == tariffs
    sf = json.loads(tariffs.to_json())["carriers"]["SF"]
    assert sf["min_premium"] == "1.00"
    assert sf["rates"]["basic"] == "0.005"
    assert all(isinstance(sf[k], str) for k in ("base_price", "insurable_max", "remote_surcharge"))


def test_bad_tariffs_name_the_carrier_and_the_field() -> None:
    doc = sample_doc()
    carriers = doc["carriers"]
    carriers["SF"]["min_premium"] = "1.001"
    carriers["JD"]["rates"]["basic"] = 0.005  # a float: money never travels as a number
    carriers["EMS"]["sla_days"] = 0
    carriers["YTO"]["colour"] = "yellow"
    carriers["ZTO"]["coverage"]["excluded"] = ["65", "99"]
    carriers["STO"]["rates"]["premium"] = "1.5"
    del carriers["YUNDA"]["insurable_max"]
    carriers["dbl"] = carriers.pop("DBL")
    with pytest.raises(TariffError) as e:
        Tariffs.from_json(json.dumps(doc))
    fields = {err.field for err in e.value.errors}
    assert fields == {
        "carriers.SF.min_premium",
        "carriers.JD.rates.basic",
        "carriers.EMS.sla_days",
        "carriers.YTO.colour",
        "carriers.ZTO.coverage.excluded[1]",
        "carriers.STO.rates.premium",
        "carriers.YUNDA.insurable_max",
        "carriers.dbl",
    }
    assert isinstance(e.value, ValueError)
    assert "carriers.SF.min_premium: '1.001' has more than two decimals" in str(e.value)
    messages = {err.field: err.message for err in e.value.errors}
    assert messages["carriers.YUNDA.insurable_max"] == "required"
    assert messages["carriers.YTO.colour"] == "unknown field"


@pytest.mark.parametrize(
    ("data", "field"),
    [(b"{not json", "body"), (b"[]", "body"), (b'{"_note": "x"}', "carriers")],
)
def test_unreadable_tariff_documents(data: bytes, field: str) -> None:
    with pytest.raises(TariffError) as e:
        Tariffs.from_json(data)
    assert [err.field for err in e.value.errors] == [field]


# -- policies --


def test_one_policy_covers_both_legs() -> None:
    sf = Tariffs.load_sample()["SF"]
    policy = new_policy("RO-1", sf, parse_cny("4999.00"), at_ms=1_700_000_000_000)
    assert policy.policy_id == "POL-RO-1"
    assert (policy.carrier, policy.tier) == ("SF", "advanced")
    assert policy.premium_fen == premium_fen(sf, parse_cny("4999.00")) == 2000  # 19.996 -> 20.00
    assert policy.coverage_fen == policy.declared_value_fen == 499900
    assert covers(policy, "inbound")
    assert covers(policy, "return")
    assert not covers(policy, "outbound")
    view = policy_view(policy)
    assert (view["premium"], view["coverage"], view["legs"]) == (
        "20.00",
        "4999.00",
        ["inbound", "return"],
    )
    assert msgspec.json.decode(msgspec.json.encode(policy), type=type(policy)) == policy


def test_policy_refuses_a_value_the_carrier_cannot_insure() -> None:
    with pytest.raises(ValueError, match=r"8000.00 CNY above the insurable maximum 3000.00 CNY"):
        new_policy("RO-2", Tariffs.load_sample()["ZTO"], parse_cny("8000.00"), at_ms=0)


# -- choosing the return carrier --


def test_fragile_parts_need_shock_proof_carriers() -> None:
    choice = ScoringChooser(Tariffs.load_sample()).choose(request(SHANGHAI, "1500.00", "screen"))
    eligible = {o.carrier for o in choice.options if o.eligible}
    assert eligible == {"SF", "JD", "ZTO", "DBL"}
    ems = choice.option("EMS")
    assert ems is not None
    assert ems.excluded_because == ["not shock-proof: the order has fragile parts screen"]


def test_value_above_the_insurable_maximum_is_excluded() -> None:
    choice = ScoringChooser(Tariffs.load_sample()).choose(request(SHANGHAI, "8000.00"))
    assert {o.carrier for o in choice.options if not o.eligible} == {"ZTO", "YTO", "STO", "YUNDA"}
    zto = choice.option("ZTO")
    assert zto is not None
    assert zto.excluded_because == [
        "declared value 8000.00 CNY above the insurable maximum 3000.00 CNY"
    ]


@pytest.mark.parametrize(
    ("dest", "name", "without"),
    [
        (URUMQI, "Xinjiang (CN-65)", {"ZTO", "YTO", "STO", "YUNDA", "DBL"}),
        (LHASA, "Tibet (CN-54)", {"ZTO", "YTO", "STO", "YUNDA", "DBL", "JD"}),
    ],
)
def test_remote_destinations_exclude_carriers_that_do_not_reach_them(
    dest: str, name: str, without: set[str]
) -> None:
    choice = ScoringChooser(Tariffs.load_sample()).choose(request(dest, "300.00"))
    excluded = {o.carrier: o.excluded_because for o in choice.options if not o.eligible}
    assert set(excluded) == without
    assert excluded["YTO"] == [f"does not deliver to remote {name}"]
    # The remote surcharge is part of the cost.
    sf = choice.option("SF")
    assert sf is not None
    assert sf.cost_fen == 2300 + 1500 + sf.premium_fen


def test_a_carrier_excluding_part_of_a_province() -> None:
    t = tariff("AA", coverage=Coverage(excluded=("CN-6501",)))
    chooser = ScoringChooser(Tariffs([t, tariff("BB")]))
    option = chooser.choose(request(URUMQI)).option("AA")
    assert option is not None
    assert option.excluded_because == ["does not deliver to CN-6501 in Xinjiang"]
    karamay = chooser.choose(request("CN-650202")).option("AA")  # same province, other city
    assert karamay is not None
    assert karamay.eligible


def test_the_choice_is_explained_by_its_component_scores() -> None:
    chooser = ScoringChooser(Tariffs.load_sample())
    assert isinstance(chooser, CarrierChooser)
    choice = chooser.choose(request(URUMQI, "8000.00", "screen"))
    assert choice.chosen == choice.options[0].carrier
    assert choice.chosen in {"SF", "JD"}
    for o in choice.options:
        assert set(o.scores) == set(COMPONENTS)
        assert all(0.0 <= s <= 1.0 for s in o.scores.values())
        assert 0.0 <= o.total <= 1.0
        assert o.scores["quality"] == 0.5  # neutral until the scoring model exists
        assert o.cost_fen > o.premium_fen > 0
    eligible = [o for o in choice.options if o.eligible]
    assert [o.total for o in eligible] == sorted((o.total for o in eligible), reverse=True)
    assert choice.options.index(eligible[-1]) < min(
        i for i, o in enumerate(choice.options) if not o.eligible
    )
    text = choice.explanation
    assert text.startswith(f"{choice.chosen} chosen for {SHENZHEN} -> {URUMQI}, 8000.00 CNY")
    assert all(f"{c} " in text for c in COMPONENTS)
    assert "EMS: not shock-proof: the order has fragile parts screen" in text
    view = choice_view(choice)
    assert view["request"]["declared_value"] == "8000.00"
    assert view["request"]["fragile"] is True
    assert all(isinstance(o["cost"], str) and "cost_fen" not in o for o in view["options"])
    assert json.loads(json.dumps(view)) == view


def test_weights_change_the_winner() -> None:
    fast = tariff("FAST", sla_days=1, base_price_fen=Fen(4000))
    cheap = tariff("CHEAP", sla_days=5, base_price_fen=Fen(800))
    chooser = ScoringChooser(Tariffs([fast, cheap]))
    by_cost = chooser.choose(request(), Weights(cost=1, time=0.1, coverage=0, quality=0))
    by_time = chooser.choose(request(), Weights(cost=0.1, time=1, coverage=0, quality=0))
    assert (by_cost.chosen, by_time.chosen) == ("CHEAP", "FAST")
    fast_option = by_time.option("FAST")
    assert fast_option is not None
    assert fast_option.scores["time"] == 1.0
    assert by_time.weights == Weights(cost=0.1, time=1, coverage=0, quality=0)


def test_ties_are_broken_by_carrier_code() -> None:
    for order in (["BB", "AA", "CC"], ["CC", "AA", "BB"]):
        choice = ScoringChooser(Tariffs([tariff(c) for c in order])).choose(request())
        assert [o.carrier for o in choice.options] == ["AA", "BB", "CC"]
        assert choice.chosen == "AA"


@pytest.mark.parametrize(
    "weights",
    [
        {"cost": -0.1},
        {"cost": 0, "time": 0, "coverage": 0, "quality": 0},
        {"time": float("nan")},
    ],
)
def test_weights_are_validated(weights: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="weight"):
        Weights(**weights)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(weights, Weights)


def test_operator_override_to_an_eligible_carrier() -> None:
    choice = ScoringChooser(Tariffs.load_sample()).choose(request(SHANGHAI, "1500.00", "screen"))
    assert choice.chosen != "DBL"
    chosen = override(choice, "DBL", "customer asked for Deppon")
    assert chosen.chosen == "DBL"
    assert chosen.override is not None
    assert (chosen.override.replaced, chosen.override.forced) == (choice.chosen, False)
    assert chosen.explanation.startswith(
        f"operator override: DBL instead of {choice.chosen} (customer asked for Deppon)"
    )
    assert chosen.options == choice.options  # the scores stay as the chooser saw them


def test_operator_override_to_an_excluded_carrier_needs_force() -> None:
    choice = ScoringChooser(Tariffs.load_sample()).choose(request(SHANGHAI, "1500.00", "screen"))
    with pytest.raises(OverrideRefused, match=r"EMS is excluded \(not shock-proof"):
        override(choice, "EMS", "cheaper")
    forced = override(choice, "EMS", "depot packs it in a crate", force=True)
    assert forced.chosen == "EMS"
    assert forced.override is not None
    assert forced.override.forced
    assert forced.override.reason == "depot packs it in a crate"
    assert "forced past: not shock-proof" in forced.explanation
    with pytest.raises(ValueError, match="unknown carrier"):
        override(choice, "UPS", "why not")
    with pytest.raises(ValueError, match="reason"):
        override(choice, "SF", "  ")


def test_no_eligible_carrier_reports_every_exclusion() -> None:
    choice = ScoringChooser(Tariffs.load_sample()).choose(
        request(LHASA, "60000.00", "screen", "mainboard")
    )
    assert choice.chosen is None
    assert not any(o.eligible for o in choice.options)
    assert [o.carrier for o in choice.options] == sorted(CODES)
    assert choice.explanation.startswith("no eligible carrier")
    for o in choice.options:
        assert o.excluded_because
        assert f"{o.carrier}: {', '.join(o.excluded_because)}" in choice.explanation
    sf = choice.option("SF")
    assert sf is not None
    assert sf.excluded_because == [
        "declared value 60000.00 CNY above the insurable maximum 50000.00 CNY"
    ]


def test_return_request_from_an_order() -> None:
    intake = msgspec.convert(
        {
            "customer": {
                "name": "Li Lei",
                "phone": "+86 138 0013 8000",
                "address": {"line": "1 Beijing Road", "region": URUMQI},
            },
            "product": {"category": "phone", "brand": "Huawei", "model": "P60 Pro"},
            "purchase_channel": "jd.com",
            "fault_type": "screen",
            "declared_value": "4999.00",
            "fragile_parts": ["battery", "screen"],
        },
        Intake,
    )
    order = apply(None, new_order("RO-3", intake, "cust-1", Actor.system("test"), at_ms=0))
    req = ReturnRequest.for_order(order, depot_region=SHENZHEN)
    assert (req.origin, req.dest, req.declared_value_fen) == (SHENZHEN, URUMQI, 499900)
    assert (req.fragile, req.fragile_parts) == (True, ("screen",))
    with pytest.raises(ValueError, match="unknown region"):
        ReturnRequest(origin="CN-99", dest=URUMQI, declared_value_fen=Fen(1))
