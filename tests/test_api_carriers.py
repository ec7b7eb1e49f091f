"""``GET /carriers/score`` and the operators' weights: the ranking a return would get, each
carrier with its component scores or the constraints that exclude it."""

from __future__ import annotations

from typing import Any

from apifix import ApiStack, wait_for
from streamguard.domain.insurance import Tariffs
from streamguard.domain.money import parse_cny
from streamguard.domain.returns import ReturnRequest, ScoringChooser

SCORE = "/carriers/score?origin=CN-440300&dest={dest}&declared_value={value}&fragile={fragile}"


def score(api: ApiStack, dest: str = "CN-310101", value: str = "1500.00", fragile: bool = False
          ) -> Any:  # fmt: skip
    r = api.client.get(
        SCORE.format(dest=dest, value=value, fragile=str(fragile).lower()),
        headers=api.as_operator(),
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_the_score_ranks_every_carrier_with_its_reasons(api_stack: ApiStack) -> None:
    ranked = score(api_stack, fragile=True)
    expected = ScoringChooser(Tariffs.load_sample()).choose(
        ReturnRequest(origin="CN-440300", dest="CN-310101",
                      declared_value_fen=parse_cny("1500.00"), fragile=True)
    )  # fmt: skip
    assert ranked["chosen"] == expected.chosen
    assert [o["carrier"] for o in ranked["options"]] == [o.carrier for o in expected.options]
    sample = Tariffs.load_sample()
    for option in ranked["options"]:
        # Fragile: a carrier without shock-proof packaging is excluded, and says so.
        assert option["eligible"] == sample[option["carrier"]].shock_proof
        if not option["eligible"]:
            assert any("shock-proof" in why for why in option["excluded_because"])
        assert set(option["scores"]) == {"cost", "time", "coverage", "quality"}
        assert option["lane"] is None  # no engine has published lane statistics here
    assert ranked["request"]["declared_value"] == "1500.00"


def test_operators_weigh_the_components(api_stack: ApiStack) -> None:
    c = api_stack.client
    current = c.get("/carriers/weights", headers=api_stack.as_depot())
    assert current.status_code == 200
    cheapest_first = {"cost": 1.0, "time": 0.0, "coverage": 0.0, "quality": 0.0}
    r = c.put("/carriers/weights", json=cheapest_first,
              headers={**api_stack.as_operator(), "If-Match": current.headers["ETag"]})  # fmt: skip
    assert r.status_code in (200, 201), r.text

    def chosen_is_cheapest() -> bool:
        ranked = score(api_stack)
        eligible = [o for o in ranked["options"] if o["eligible"]]
        cheapest = min(parse_cny(o["cost"]) for o in eligible)
        return parse_cny(eligible[0]["cost"]) == cheapest and ranked["weights"] == cheapest_first

    wait_for(chosen_is_cheapest)
    stale = c.put("/carriers/weights", json=cheapest_first,
                  headers={**api_stack.as_operator(), "If-Match": '"999999"'})  # fmt: skip
    assert stale.status_code == 412
    assert stale.headers["ETag"] == r.headers["ETag"]
    none = c.put("/carriers/weights", json={"cost": 0, "time": 0, "coverage": 0, "quality": 0},
                 headers={**api_stack.as_operator(), "If-Match": r.headers["ETag"]})  # fmt: skip
    assert none.status_code == 422
    assert [e["field"] for e in none.json()["errors"]] == ["weights"]


def test_unknown_regions_and_parameters_are_named(api_stack: ApiStack) -> None:
    c = api_stack.client
    r = c.get("/carriers/score?origin=CN-990000&dest=CN-310101&declared_value=1.00",
              headers=api_stack.as_operator())  # fmt: skip
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["origin"]
    r = c.get("/carriers/score?origin=CN-440300&dest=CN-310101&declared_value=1.00&speed=9",
              headers=api_stack.as_operator())  # fmt: skip
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["speed"]
