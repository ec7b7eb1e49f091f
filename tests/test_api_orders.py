"""Orders through the API: intake, reading, moving, timeline (real NATS, real chDB)."""

from __future__ import annotations

from apifix import INTAKE, ApiStack


def test_intake_creates_an_order_with_its_version_as_etag(api_stack: ApiStack) -> None:
    order = api_stack.create_order("cust-intake")
    assert order["status"] == "CREATED"
    assert order["declared_value"] == "4999.00"
    r = api_stack.client.get(f"/orders/{order['id']}", headers=api_stack.as_customer("cust-intake"))
    assert r.status_code == 200
    assert r.headers["ETag"] == f'"{order["version"]}"'
    assert r.json()["customer"] == INTAKE["customer"]


def test_intake_422_names_every_bad_field(api_stack: ApiStack) -> None:
    bad = {
        **INTAKE,
        "declared_value": 12.5,
        "fault_type": "melted",
        "extra": 1,
        "customer": {**INTAKE["customer"], "phone": "call me"},
    }
    del bad["purchase_channel"]
    r = api_stack.client.post("/orders", json=bad, headers=api_stack.as_customer("cust-bad"))
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"declared_value", "fault_type", "extra", "customer.phone", "purchase_channel"}
