"""Automatic insured returns: REPAIRED books the return leg at once, with an explained carrier
choice under the fragile, insurable-maximum and coverage constraints; the policy issued at the
inbound booking carries over; an operator may override."""

from __future__ import annotations

import asyncio
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from apifix import ApiStack, wait_for
from natsfix import connect, ensure_sg_events
from streamguard.domain.insurance import Tariffs


@pytest.fixture(scope="module", autouse=True)
def engine_stream(api_stack: ApiStack) -> None:
    """The engine's stream, which return legs are published into (no engine needed here)."""

    async def run() -> None:
        async with connect(api_stack.nats.url, api_stack.nats.credentials("engine")) as (nc, _):
            await ensure_sg_events(nc)

    asyncio.run(run())


def to_repaired(api: ApiStack, who: str, carrier: str, tracking: str, **intake: Any) -> str:
    order = api.create_order(who, **intake)
    oid = str(order["id"])
    api.book(oid, "inbound", carrier, tracking)
    c = api.client
    r = c.post(f"/orders/{oid}/transitions", json={"to": "INBOUND_IN_TRANSIT"},
               headers=api.as_operator())  # fmt: skip
    assert r.status_code == 200, r.text
    receipt = {"leg": "inbound", "signer_type": "depot_staff", "signer_name": "Desk",
               "staff_id": "D-1"}  # fmt: skip
    r = c.post(f"/orders/{oid}/signoffs", headers=api.as_depot(), json=receipt)
    assert r.status_code == 201, r.text
    for to in ("DIAGNOSING", "REPAIRING", "REPAIRED"):
        r = c.post(f"/orders/{oid}/transitions", json={"to": to}, headers=api.as_depot())
        assert r.status_code == 200, r.text
    return oid


def order_of(api: ApiStack, oid: str) -> dict[str, Any]:
    r = api.client.get(f"/orders/{oid}", headers=api.as_operator())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_inbound_booking_issues_the_policy(api_stack: ApiStack) -> None:
    order = api_stack.create_order("cust-policy")  # 4999.00 CNY: advanced tier
    booked = api_stack.book(order["id"], "inbound", "SF", "SFPOLICY0001")
    policy = booked["shipments"]["inbound"]["policy"]
    sf = Tariffs.load_sample()["SF"]
    # 4999.00 x the advanced rate, half-up to the fen, at least the minimum.
    rated = (Decimal(499_900) * sf.rates.advanced).quantize(Decimal(1), ROUND_HALF_UP)
    expected = max(sf.min_premium_fen, int(rated))
    assert policy["tier"] == "advanced"
    assert policy["premium"] == f"{expected // 100}.{expected % 100:02d}"
    assert policy["coverage"] == "4999.00"
    assert policy["legs"] == ["inbound", "return"]


def test_a_carrier_that_cannot_insure_the_value_is_a_422(api_stack: ApiStack) -> None:
    order = api_stack.create_order("cust-cap", declared_value="9000.00")
    cap = Tariffs.load_sample()["STO"].insurable_max_fen
    assert cap < 900_000
    r = api_stack.client.post(
        f"/orders/{order['id']}/shipments",
        json={"leg": "inbound", "carrier": "STO", "tracking": "STOCAP00001"},
        headers=api_stack.as_operator(),
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["carrier"]


def test_repaired_books_the_return_at_once_with_an_explained_choice(api_stack: ApiStack) -> None:
    oid = to_repaired(api_stack, "cust-return", "SF", "SFRET0000001")
    order = wait_for(
        lambda: (o := order_of(api_stack, oid))["status"] == "RETURN_IN_TRANSIT" and o, timeout=5
    )
    back = order["shipments"]["return"]
    tariffs = Tariffs.load_sample()
    # The intake's screen is fragile: only a shock-proof carrier may take it back.
    assert tariffs[back["carrier"]].shock_proof
    assert (back["origin"], back["dest"]) == ("CN-440300", "CN-440305")
    assert back["policy"] == order["shipments"]["inbound"]["policy"]
    choice = back["choice"]
    assert choice["chosen"] == back["carrier"]
    excluded = {o["carrier"]: o["excluded_because"] for o in choice["options"] if not o["eligible"]}
    assert {"EMS", "YTO", "STO", "YUNDA"} <= set(excluded)
    assert all(reasons for reasons in excluded.values())
    assert set(choice["options"][0]["scores"]) == {"cost", "time", "coverage", "quality"}
    timeline = api_stack.client.get(f"/orders/{oid}/timeline", headers=api_stack.as_operator())
    last = timeline.json()[-1]
    assert (last["actor_role"], last["to_status"]) == ("system", "RETURN_IN_TRANSIT")
    # The carrier can read its new shipment.
    r = api_stack.client.get(
        f"/shipments/{back['shipment']}", headers=api_stack.as_carrier(back["carrier"])
    )
    assert r.status_code == 200


def test_an_exchange_ready_books_the_replacement_s_return(api_stack: ApiStack) -> None:
    """DIAGNOSING -exchange-> REPAIRED: the replacement goes back like a repaired device,
    booked at once, insured by the inbound policy."""
    order = api_stack.create_order("cust-exchange", service="exchange")
    oid = str(order["id"])
    api_stack.book(oid, "inbound", "SF", "SFEXCH000001")
    c = api_stack.client
    r = c.post(f"/orders/{oid}/transitions", json={"to": "INBOUND_IN_TRANSIT"},
               headers=api_stack.as_operator())  # fmt: skip
    assert r.status_code == 200, r.text
    receipt = {"leg": "inbound", "signer_type": "depot_staff", "signer_name": "Desk",
               "staff_id": "D-1"}  # fmt: skip
    assert c.post(f"/orders/{oid}/signoffs", headers=api_stack.as_depot(), json=receipt).is_success
    for to in ("DIAGNOSING", "REPAIRED"):
        r = c.post(f"/orders/{oid}/transitions", json={"to": to, "reason": "exchange ready"},
                   headers=api_stack.as_depot())  # fmt: skip
        assert r.status_code == 200, r.text
    done = wait_for(
        lambda: (o := order_of(api_stack, oid))["status"] == "RETURN_IN_TRANSIT" and o, timeout=5
    )
    back = done["shipments"]["return"]
    assert back["policy"] == done["shipments"]["inbound"]["policy"]
    assert back["choice"]["chosen"] == back["carrier"]
    assert Tariffs.load_sample()[back["carrier"]].shock_proof  # the screen is still fragile


def test_no_carrier_can_take_it_puts_the_order_on_hold(api_stack: ApiStack) -> None:
    # As if an operator had withdrawn SF's tariff: no other sample carrier takes a fragile
    # 25 000 CNY parcel to Lhasa (shock-proof, insurable maximum, coverage of Tibet).
    ops = api_stack.api.app.state["control_plane"].ops
    sample = ops.tariffs
    ops.tariffs = Tariffs([t for code, t in sample.items() if code != "SF"])
    try:
        _hold_case(api_stack)
    finally:
        ops.tariffs = sample


def _hold_case(api_stack: ApiStack) -> None:
    intake = {
        "declared_value": "25000.00",
        "customer": {
            "name": "Tashi", "phone": "+86 891 6000000",
            "address": {"line": "1 Beijing Middle Road", "region": "CN-540102"},
        },
    }  # fmt: skip
    oid = to_repaired(api_stack, "cust-lhasa", "JD", "JDLHASA00001", **intake)
    order = wait_for(lambda: (o := order_of(api_stack, oid))["status"] == "ON_HOLD" and o)
    assert order["held_from"] == "REPAIRED"
    assert "return" not in order["shipments"]
    last = api_stack.client.get(f"/orders/{oid}/timeline", headers=api_stack.as_operator()).json()[
        -1
    ]
    assert last["reason"].startswith("no carrier can take the return")


def test_an_operator_overrides_the_return_carrier(api_stack: ApiStack) -> None:
    oid = to_repaired(api_stack, "cust-override", "SF", "SFOVR0000001")
    auto = wait_for(lambda: order_of(api_stack, oid)["shipments"].get("return"))
    r = api_stack.client.post(
        f"/orders/{oid}/shipments",
        json={"leg": "return", "carrier": "DBL", "tracking": "DBLOVR000001"},
        headers=api_stack.as_operator(),
    )
    assert r.status_code == 201, r.text
    back = r.json()["shipments"]["return"]
    assert back["carrier"] == "DBL"
    assert back["replaces"] == {"shipment": auto["shipment"], "carrier": auto["carrier"]}
    # The replaced tracking number no longer belongs to the order.
    gone = api_stack.client.get(f"/shipments/{auto['shipment']}", headers=api_stack.as_operator())
    assert gone.status_code == 404


def test_operators_edit_the_tariffs_and_policies_follow(api_stack: ApiStack) -> None:
    c = api_stack.client
    r = c.get("/carriers/tariffs", headers=api_stack.as_depot())
    assert r.status_code == 200
    assert r.headers["ETag"] == '"0"'  # the sample, never saved
    doc = r.json()
    assert doc["_note"].startswith("SAMPLE")
    assert c.put("/carriers/tariffs", json=doc, headers=api_stack.as_depot()).status_code == 403
    doc["carriers"]["SF"]["min_premium"] = "88.00"
    saved = c.put("/carriers/tariffs", json=doc, headers=api_stack.as_operator())
    assert saved.status_code == 201, saved.text
    etag = saved.headers["ETag"]
    # A second save needs If-Match: 428 without, 412 when stale.
    assert c.put("/carriers/tariffs", json=doc, headers=api_stack.as_operator()).status_code == 428
    stale = {**api_stack.as_operator(), "If-Match": '"1"' if etag != '"1"' else '"2"'}
    assert c.put("/carriers/tariffs", json=doc, headers=stale).status_code == 412
    # Refused with the field named, and nothing saved.
    sf = {**doc["carriers"]["SF"], "insurable_max": "1.001"}
    bad = {**doc, "carriers": {**doc["carriers"], "SF": sf}}
    r = c.put("/carriers/tariffs", json=bad, headers={**api_stack.as_operator(), "If-Match": etag})
    assert r.status_code == 422
    assert all(e["field"].startswith("carriers") for e in r.json()["errors"]), r.text
    assert c.get("/carriers/tariffs", headers=api_stack.as_operator()).headers["ETag"] == etag
    # The new minimum prices the next policy.
    order = api_stack.create_order("cust-tariff", declared_value="100.00")
    booked = api_stack.book(order["id"], "inbound", "SF", "SFTARIFF0001")
    assert booked["shipments"]["inbound"]["policy"]["premium"] == "88.00"


def test_the_customer_signs_for_an_automatic_return(api_stack: ApiStack) -> None:
    # The leg's explained choice (scores are floats) is not part of the content signed for.
    oid = to_repaired(api_stack, "cust-sign-auto", "SF", "SFSIGNAUTO01")
    wait_for(lambda: order_of(api_stack, oid)["status"] == "RETURN_IN_TRANSIT")
    r = api_stack.client.post(
        f"/orders/{oid}/signoffs",
        json={"leg": "return", "signer_type": "self", "signer_name": "Li Lei"},
        headers=api_stack.as_customer("cust-sign-auto"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "DELIVERED"
