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


def test_photos_are_stored_once_by_sha256_and_served_to_the_owner(api_stack: ApiStack) -> None:
    import hashlib

    order = api_stack.create_order("cust-photo")
    other = api_stack.create_order("cust-photo-2")
    blob = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # a JPEG's magic, then bytes
    digest = hashlib.sha256(blob).hexdigest()
    for oid, who in ((order["id"], "cust-photo"), (other["id"], "cust-photo-2")):
        r = api_stack.client.post(
            f"/orders/{oid}/photos",
            files={"file": ("crack.jpg", blob, "image/jpeg")},
            headers=api_stack.as_customer(who),
        )
        assert r.status_code == 201, r.text
        assert r.json()["photos"] == [digest]
    got = api_stack.client.get(
        f"/orders/{order['id']}/photos/{digest}", headers=api_stack.as_customer("cust-photo")
    )
    assert got.status_code == 200
    assert got.content == blob
    assert got.headers["content-type"] == "image/jpeg"
    # Two orders, one copy of the bytes.
    api_stack.store.rows("OPTIMIZE TABLE attachments FINAL")
    rows = api_stack.store.rows(
        "SELECT count() FROM attachments WHERE sha256 = {d:String}", {"d": digest}
    )
    assert rows == [(1,)]
    # Not the other customer's, and not a photo the order does not have.
    stranger = api_stack.as_customer("cust-photo-2")
    assert (
        api_stack.client.get(f"/orders/{order['id']}/photos/{digest}", headers=stranger).status_code
        == 404
    )
    assert (
        api_stack.client.get(
            f"/orders/{order['id']}/photos/{'0' * 64}", headers=api_stack.as_customer("cust-photo")
        ).status_code
        == 404
    )


def test_a_photo_must_be_an_image(api_stack: ApiStack) -> None:
    order = api_stack.create_order("cust-photo-3")
    r = api_stack.client.post(
        f"/orders/{order['id']}/photos",
        files={"file": ("notes.txt", b"hello", "text/plain")},
        headers=api_stack.as_customer("cust-photo-3"),
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["file"]
