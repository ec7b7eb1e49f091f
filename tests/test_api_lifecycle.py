"""A repair order's whole life through the real parts: the API, nats-server, the engine and
chDB. Intake -> inbound booked (the engine hears of the shipment) -> the carrier's pickup scan
moves the order -> a shock reading raises an alert that lands on the order's timeline -> the
depot signs on the carrier's delivery scan -> diagnosis and repair -> the return leg -> the
customer's sign-off through the API -> CLOSED."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apifix import ApiStack, api_stack_at, live_engine_for, wait_for
from natsfix import connect
from streamguard.live import LiveEngine


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiStack, LiveEngine]]:
    root = tmp_path_factory.mktemp("lifecycle")
    with api_stack_at(root) as api, live_engine_for(api, root / "engine") as engine:
        yield api, engine


def publish(api: ApiStack, user: str, subject: str, events: list[dict[str, Any]]) -> None:
    """Publish ``events`` as ``user`` (a carrier or gateway), each its own JetStream message."""

    async def run() -> None:
        async with connect(api.nats.url, api.nats.credentials(user)) as (nc, _errors):
            js = nc.jetstream()
            for event in events:
                await js.publish(subject, json.dumps(event).encode())

    asyncio.run(run())


def status_of(api: ApiStack, order_id: str) -> str:
    r = api.client.get(f"/orders/{order_id}", headers=api.as_operator())
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


def timeline(api: ApiStack, order_id: str) -> list[dict[str, Any]]:
    r = api.client.get(f"/orders/{order_id}/timeline", headers=api.as_operator())
    assert r.status_code == 200, r.text
    body: list[dict[str, Any]] = r.json()
    return body


def move(api: ApiStack, order_id: str, to: str) -> dict[str, Any]:
    r = api.client.post(f"/orders/{order_id}/transitions", json={"to": to}, headers=api.as_depot())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_lifecycle_end_to_end(stack: tuple[ApiStack, LiveEngine]) -> None:
    api, engine = stack
    order = api.create_order("cust-life")
    oid = order["id"]
    booked = api.book(oid, "inbound", "SF", "SF7000000001")
    assert booked["status"] == "AWAITING_PICKUP"
    assert booked["shipments"]["inbound"]["tier"] == "advanced"
    assert booked["shipments"]["inbound"]["fragile"] is True

    now = int(time.time() * 1000)
    publish(api, "carrier-SF", "sg.scan.SF", [
        {"kind": "scan", "shipment": "SF7000000001", "carrier": "SF", "ts": now,
         "status": "PICKED_UP", "location": "CN-440305"},
    ])  # fmt: skip
    wait_for(lambda: status_of(api, oid) == "INBOUND_IN_TRANSIT")

    # A 9 g drop: the engine raises shock-3g (and fragile-shock-2g), the control plane
    # attaches both to the order.
    publish(api, "gateway-gw01", "sg.sensor.gw01", [
        {"kind": "sensor", "shipment": "SF7000000001", "device": "d1", "ts": now + 1_000,
         "shock_g": 9.0},
    ])  # fmt: skip

    def alerts_on_timeline() -> list[dict[str, Any]]:
        found = [e for e in timeline(api, oid) if e["type"] == "alert"]
        return found if len(found) >= 2 else []

    alerts = wait_for(alerts_on_timeline, timeout=15)
    rules = {a["data"]["rule"] for a in alerts}
    # fragile-shock-2g fires only for fragile shipments: the engine knew from our shipment event.
    assert {"shock-3g", "fragile-shock-2g"} <= rules
    assert all(a["data"]["leg"] == "inbound" for a in alerts)
    assert engine.status()["alerts_published"] >= 1

    # Delivered to the depot: the carrier's scan carries the staff member who signed.
    publish(api, "carrier-SF", "sg.scan.SF", [
        {"kind": "scan", "shipment": "SF7000000001", "carrier": "SF", "ts": now + 60_000,
         "status": "DELIVERED", "location": "CN-440300",
         "signer": {"name": "Wang Fang", "type": "self", "staff_id": "D-0042"}},
    ])  # fmt: skip
    wait_for(lambda: status_of(api, oid) == "RECEIVED")
    signoffs = api.client.get(f"/orders/{oid}/signoffs", headers=api.as_operator()).json()
    assert [s["record"]["signer_type"] for s in signoffs] == ["depot_staff"]
    assert signoffs[0]["record"]["channel"] == "carrier_scan"
    sid = signoffs[0]["record"]["id"]
    verdict = api.client.get(
        f"/orders/{oid}/signoffs/{sid}/verify", headers=api.as_customer("cust-life")
    ).json()
    assert verdict["valid"] is True, verdict

    for to in ("DIAGNOSING", "REPAIRING", "AWAITING_PARTS", "REPAIRING", "REPAIRED"):
        assert move(api, oid, to)["status"] == to

    api.book(oid, "return", "JD", "JD7000000002")
    assert status_of(api, oid) == "RETURN_IN_TRANSIT"
    r = api.client.post(
        f"/orders/{oid}/signoffs",
        json={"leg": "return", "signer_type": "self", "signer_name": "Li Lei",
              "region": "CN-440305", "position": {"lat": "22.5431", "lon": "113.9298"}},
        headers=api.as_customer("cust-life"),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "DELIVERED"
    assert move(api, oid, "CLOSED")["status"] == "CLOSED"

    events = timeline(api, oid)
    moves = [(e.get("from_status"), e.get("to_status")) for e in events if e.get("to_status")]
    assert moves == [
        (None, "CREATED"),
        ("CREATED", "AWAITING_PICKUP"),
        ("AWAITING_PICKUP", "INBOUND_IN_TRANSIT"),
        ("INBOUND_IN_TRANSIT", "RECEIVED"),
        ("RECEIVED", "DIAGNOSING"),
        ("DIAGNOSING", "REPAIRING"),
        ("REPAIRING", "AWAITING_PARTS"),
        ("AWAITING_PARTS", "REPAIRING"),
        ("REPAIRING", "REPAIRED"),
        ("REPAIRED", "RETURN_IN_TRANSIT"),
        ("RETURN_IN_TRANSIT", "DELIVERED"),
        ("DELIVERED", "CLOSED"),
    ]
    # Storage has the same timeline (the projector is at least once, stored once).
    wait_for(
        lambda: (
            api.store.rows(
                "SELECT count(), uniqExact(version) FROM order_events WHERE order_id = {o:String}",
                {"o": oid},
            )[0]
            == (len(events), len(events))
        )
    )


def test_scan_for_an_unknown_shipment_changes_nothing(stack: tuple[ApiStack, LiveEngine]) -> None:
    api, _ = stack
    order = api.create_order("cust-other")
    api.book(order["id"], "inbound", "JD", "JD7000000099")
    publish(api, "carrier-JD", "sg.scan.JD", [
        {"kind": "scan", "shipment": "JD-NOT-OURS", "carrier": "JD",
         "ts": int(time.time() * 1000), "status": "PICKED_UP", "location": "CN-110000"},
    ])  # fmt: skip
    time.sleep(0.5)
    assert status_of(api, order["id"]) == "AWAITING_PICKUP"
