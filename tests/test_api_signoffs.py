"""Sign-offs through the API (CONTROL_PLANE.md, "Sign-offs"): the depot's receipt and the
customer's delivery are sealed and chained; verification reports an edit or a deletion made in
the database behind the API's back, naming what changed; no route updates or deletes a
sign-off; a proxy's document number is never kept or shown."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats.js.errors
import pytest

from apifix import ApiStack, wait_for
from natsfix import connect
from streamguard.bus.orderlog import ORDERS_STREAM

DEPOT_RECEIPT = {
    "signer_type": "depot_staff",
    "leg": "inbound",
    "signer_name": "Wang Fang",
    "staff_id": "D-0042",
    "region": "CN-440305",
    "position": {"lat": "22.543096", "lon": "114.057865"},
}
DOCUMENT_NUMBER = "E12345678Q"
PROXY_RECEIPT = {
    "signer_type": "proxy",
    "leg": "return",
    "signer_name": "Li Ming",
    "proxy": {
        "name": "Li Ming",
        "document_type": "passport",
        "document_number": DOCUMENT_NUMBER,
        "relationship": "neighbour",
    },
    "region": "CN-440305",
}


def post(s: ApiStack, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    r = s.client.post(path, json=body, headers=headers)
    assert r.status_code in (200, 201), r.text
    out: dict[str, Any] = r.json()
    return out


def received_order(s: ApiStack, customer: str, tracking: str) -> tuple[str, str]:
    """An order the depot has signed for: (order id, sign-off id)."""
    oid = s.create_order(customer)["id"]
    s.book(oid, "inbound", "SF", tracking)
    # The first PICKED_UP scan does this in production; operators may do it by hand.
    moved = post(s, f"/orders/{oid}/transitions", {"to": "INBOUND_IN_TRANSIT"}, s.as_operator())
    assert moved["status"] == "INBOUND_IN_TRANSIT"
    order = post(s, f"/orders/{oid}/signoffs", DEPOT_RECEIPT, s.as_depot())
    assert order["status"] == "RECEIVED"
    [summary] = order["signoffs"]
    assert summary["leg"] == "inbound"
    assert summary["index"] == 0
    assert summary["signer_type"] == "depot_staff"
    return oid, summary["id"]


def stored(s: ApiStack, signoff_id: str) -> list[tuple[Any, ...]]:
    return s.store.rows(
        "SELECT signer_name, `index`, hash FROM signoffs WHERE id = {id:String}",
        {"id": signoff_id},
    )


def order_log(s: ApiStack, oid: str) -> list[bytes]:
    """The raw messages of the order's subject in the order log, headers included."""

    async def read() -> list[bytes]:
        async with connect(s.nats.url, s.nats.credentials("control")) as (nc, _errors):
            js = nc.jetstream()
            out: list[bytes] = []
            seq = 0
            while True:
                try:
                    msg = await js.get_msg(
                        ORDERS_STREAM,
                        seq=seq + 1,
                        subject=f"sg.order.{oid}",
                        next=True,
                        direct=True,
                    )
                except nats.js.errors.NotFoundError:
                    return out
                seq = int(msg.seq or 0)
                out.append(json.dumps(msg.headers or {}).encode() + (msg.data or b""))

    return asyncio.run(read())


def verify(s: ApiStack, oid: str, sid: str, headers: dict[str, str]) -> dict[str, Any]:
    r = s.client.get(f"/orders/{oid}/signoffs/{sid}/verify", headers=headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_the_depot_receipt_is_sealed_and_verifies(api_stack: ApiStack) -> None:
    s = api_stack
    oid, sid = received_order(s, "cust-so-ok", "SOOK00001")
    for headers in (s.as_operator(), s.as_depot(), s.as_customer("cust-so-ok")):
        v = verify(s, oid, sid, headers)
        assert v == {
            "signoff_id": sid,
            "valid": True,
            "hash_ok": True,
            "signature_ok": True,
            "chain_ok": True,
            "changes": [],
            "problems": [],
        }
    r = s.client.get(f"/orders/{oid}/signoffs", headers=s.as_depot())
    assert r.status_code == 200
    [sealed] = r.json()
    record = sealed["record"]
    assert record["id"] == sid
    assert record["staff_id"] == "D-0042"
    assert record["signer_name"] == "Wang Fang"
    assert record["channel"] == "api"
    assert record["prev_hash"] == ""
    assert (record["lat"], record["lon"]) == ("22.543096", "114.057865")
    assert len(sealed["hash"]) == 64
    assert sealed["signature"]
    # The timeline says who moved the order, and links the sign-off.
    timeline = s.client.get(f"/orders/{oid}/timeline", headers=s.as_depot()).json()
    last = timeline[-1]
    assert last["type"] == "signoff"
    assert (last["from_status"], last["to_status"]) == ("INBOUND_IN_TRANSIT", "RECEIVED")
    assert last["actor_role"] == "depot"
    assert last["data"]["summary"]["id"] == sid


def test_an_edit_in_the_database_is_reported_with_what_changed(api_stack: ApiStack) -> None:
    s = api_stack
    oid, sid = received_order(s, "cust-so-edit", "SOED00001")
    wait_for(lambda: stored(s, sid))
    s.store.rows(
        "ALTER TABLE signoffs UPDATE signer_name = 'Mallory' WHERE id = {id:String} "
        "SETTINGS mutations_sync = 2",
        {"id": sid},
    )
    assert stored(s, sid)[0][0] == "Mallory"
    v = verify(s, oid, sid, s.as_operator())
    assert v["valid"] is False
    assert v["hash_ok"] is False  # the record no longer hashes to the stored hash
    assert v["signature_ok"] is True  # the stored hash is still the one the platform signed
    assert v["chain_ok"] is True
    assert v["changes"] == [{"field": "signer_name", "stored": "Mallory", "signed": "Wang Fang"}]
    assert any("signer_name" in p and "Mallory" in p for p in v["problems"])
    # The order's own account of the sign-off is untouched: the API never reads it back from
    # the database.
    [sealed] = s.client.get(f"/orders/{oid}/signoffs", headers=s.as_depot()).json()
    assert sealed["record"]["signer_name"] == "Wang Fang"


def test_an_edited_hash_is_caught_by_the_signature_and_breaks_the_chain(
    api_stack: ApiStack,
) -> None:
    """Recomputing the hash after an edit does not help: the platform's signature is over the
    original hash, and the next record links to it."""
    s = api_stack
    oid, first, second = delivered_order(s, "cust-so-rehash", "SORH00001", "SORH00002")
    wait_for(lambda: stored(s, second))
    s.store.rows(
        "ALTER TABLE signoffs UPDATE staff_id = 'D-9999', hash = lower(hex(SHA256('forged'))) "
        "WHERE id = {id:String} SETTINGS mutations_sync = 2",
        {"id": first},
    )
    v = verify(s, oid, first, s.as_operator())
    assert v["valid"] is False
    assert v["signature_ok"] is False
    assert {c["field"] for c in v["changes"]} == {"staff_id", "hash"}
    staff = next(c for c in v["changes"] if c["field"] == "staff_id")
    assert (staff["stored"], staff["signed"]) == ("D-9999", "D-0042")
    later = verify(s, oid, second, s.as_operator())
    assert later["valid"] is False
    assert later["chain_ok"] is False
    assert any("prev_hash" in p for p in later["problems"])
    assert later["changes"] == []


def test_a_deleted_row_is_reported_missing(api_stack: ApiStack) -> None:
    s = api_stack
    oid, sid = received_order(s, "cust-so-del", "SODL00001")
    wait_for(lambda: stored(s, sid))
    s.store.rows(
        "ALTER TABLE signoffs DELETE WHERE id = {id:String} SETTINGS mutations_sync = 2",
        {"id": sid},
    )
    assert stored(s, sid) == []
    v = verify(s, oid, sid, s.as_operator())
    assert v["valid"] is False
    assert any("missing" in p for p in v["problems"]), v["problems"]


def delivered_order(
    s: ApiStack, customer: str, inbound: str, back: str, receipt: dict[str, Any] | None = None
) -> tuple[str, str, str]:
    """An order received, repaired, sent back and signed for by the customer's side:
    (order id, depot sign-off id, delivery sign-off id)."""
    oid, first = received_order(s, customer, inbound)
    for target in ("DIAGNOSING", "REPAIRING", "REPAIRED"):
        post(s, f"/orders/{oid}/transitions", {"to": target}, s.as_depot())
    assert s.book(oid, "return", "JD", back)["status"] == "RETURN_IN_TRANSIT"
    body = receipt or {"signer_type": "self", "leg": "return", "signer_name": "Li Lei"}
    order = post(s, f"/orders/{oid}/signoffs", body, s.as_customer(customer))
    assert order["status"] == "DELIVERED"
    assert [so["index"] for so in order["signoffs"]] == [0, 1]
    return oid, first, order["signoffs"][1]["id"]


def test_a_proxy_delivery_chains_to_the_receipt_and_keeps_no_document_number(
    api_stack: ApiStack,
) -> None:
    s = api_stack
    customer = "cust-so-proxy"
    oid, _first, second = delivered_order(s, customer, "SOPX00001", "SOPX00002", PROXY_RECEIPT)
    answers: list[str] = []
    for headers in (s.as_operator(), s.as_depot(), s.as_customer(customer)):
        v = verify(s, oid, second, headers)
        assert v["valid"] is True, v
        assert v["chain_ok"] is True
        answers.append(json.dumps(v))
    r = s.client.get(f"/orders/{oid}/signoffs", headers=s.as_customer(customer))
    assert r.status_code == 200
    answers.append(r.text)
    sealed = r.json()
    assert [x["record"]["index"] for x in sealed] == [0, 1]
    assert sealed[1]["record"]["prev_hash"] == sealed[0]["hash"]
    proxy = sealed[1]["record"]["proxy"]
    assert proxy["document_last4"] == DOCUMENT_NUMBER[-4:]
    assert len(proxy["document_hash"]) == 64
    assert proxy["relationship"] == "neighbour"
    for path in ("", "/timeline"):
        r = s.client.get(f"/orders/{oid}{path}", headers=s.as_operator())
        assert r.status_code == 200
        answers.append(r.text)
    r = s.client.get("/shipments/SOPX00002", headers=s.as_carrier("JD"))
    assert r.status_code == 200
    answers.append(r.text)
    for text in answers:
        assert DOCUMENT_NUMBER not in text
        assert DOCUMENT_NUMBER.lower() not in text.lower()

    # Nor in the order log (the NATS stream the order is the fold of).
    log = order_log(s, oid)
    assert any(b"document_hash" in m for m in log)
    assert not any(DOCUMENT_NUMBER.lower().encode() in m.lower() for m in log)

    # Nor in any row of any table of the store.
    wait_for(lambda: stored(s, second))
    tables = [r[0] for r in s.store.rows("SHOW TABLES")]
    assert "signoffs" in tables
    for table in tables:
        dump = s.store.query_formatted(f"SELECT * FROM `{table}`", "json").decode()
        assert DOCUMENT_NUMBER.lower() not in dump.lower(), table
    [row] = s.store.rows(
        "SELECT proxy_document_last4, proxy_document_hash FROM signoffs WHERE id = {id:String}",
        {"id": second},
    )
    assert row[0] == DOCUMENT_NUMBER[-4:]
    assert row[1] == proxy["document_hash"]


def test_the_same_document_number_always_hashes_alike(api_stack: ApiStack) -> None:
    """The hash is what lets a presented document be matched later: it must not depend on the
    sign-off (case is normalized; the salt is the platform's, not the record's)."""
    s = api_stack
    lower = {**PROXY_RECEIPT, "proxy": {**PROXY_RECEIPT["proxy"], "document_number": "e12345678q"}}
    a = delivered_order(s, "cust-so-px-a", "SOPA00001", "SOPA00002", PROXY_RECEIPT)
    b = delivered_order(s, "cust-so-px-b", "SOPB00001", "SOPB00002", lower)
    hashes = set()
    for oid, _first, _second in (a, b):
        sealed = s.client.get(f"/orders/{oid}/signoffs", headers=s.as_operator()).json()
        hashes.add(sealed[1]["record"]["proxy"]["document_hash"])
    assert len(hashes) == 1


# ---- no route changes a sign-off -------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_no_route_updates_or_deletes_a_sign_off(api_stack: ApiStack, method: str) -> None:
    s = api_stack
    oid, sid = received_order(s, f"cust-so-{method.lower()}", f"SOMU{method}1")
    body = {**DEPOT_RECEIPT, "signer_name": "Mallory"}
    paths = [
        f"/orders/{oid}/signoffs",
        f"/orders/{oid}/signoffs/{sid}",
        f"/orders/{oid}/signoffs/{sid}/verify",
        "/shipments/SOMU0001/signoffs",
    ]
    for path in paths:
        r = s.client.request(method, path, json=body, headers=s.as_operator())
        assert r.status_code in (404, 405), f"{method} {path}: {r.status_code} {r.text}"
    assert verify(s, oid, sid, s.as_operator())["valid"] is True
    [sealed] = s.client.get(f"/orders/{oid}/signoffs", headers=s.as_operator()).json()
    assert sealed["record"]["signer_name"] == "Wang Fang"


def test_the_openapi_document_has_no_write_but_post_on_sign_offs(api_stack: ApiStack) -> None:
    paths = api_stack.client.get("/schema/openapi.json").json()["paths"]
    signoff_paths = {p: item for p, item in paths.items() if "signoffs" in p}
    assert signoff_paths
    for path, item in signoff_paths.items():
        assert not {"put", "patch", "delete"} & set(item), path


def test_a_second_receipt_cannot_replace_the_first(api_stack: ApiStack) -> None:
    """Signing again is refused by the order's state, and fields the platform sets (index,
    hash, prev_hash) cannot be sent at all."""
    s = api_stack
    oid, sid = received_order(s, "cust-so-again", "SOAG00001")
    r = s.client.post(
        f"/orders/{oid}/signoffs",
        json={**DEPOT_RECEIPT, "signer_name": "Mallory"},
        headers=s.as_depot(),
    )
    assert r.status_code == 409, r.text
    forged = {**DEPOT_RECEIPT, "index": 0, "prev_hash": "", "hash": "0" * 64}
    r = s.client.post(f"/orders/{oid}/signoffs", json=forged, headers=s.as_depot())
    assert r.status_code == 422, r.text
    assert {e["field"] for e in r.json()["errors"]} == {"index", "prev_hash", "hash"}
    order = s.client.get(f"/orders/{oid}", headers=s.as_depot()).json()
    assert [x["id"] for x in order["signoffs"]] == [sid]


def test_a_carrier_records_the_delivery_of_its_own_shipment(api_stack: ApiStack) -> None:
    """The return carrier's own call: sealed with its code and shipment, chained, valid."""
    s = api_stack
    oid, _first = received_order(s, "cust-so-carrier", "SOCA00001")
    for target in ("DIAGNOSING", "REPAIRING", "REPAIRED"):
        post(s, f"/orders/{oid}/transitions", {"to": target}, s.as_depot())
    s.book(oid, "return", "JD", "SOCA00002")
    body = {"signer_type": "locker", "leg": "return", "signer_name": "Locker 17"}
    r = s.client.post("/shipments/SOCA00002/signoffs", json=body, headers=s.as_carrier("SF"))
    assert r.status_code == 404, r.text
    r = s.client.post("/shipments/SOCA00002/signoffs", json=body, headers=s.as_carrier("JD"))
    assert r.status_code == 201, r.text
    record = r.json()["record"]
    assert (record["carrier"], record["shipment"], record["channel"]) == (
        "JD",
        "SOCA00002",
        "carrier_api",
    )
    assert record["index"] == 1
    # Visible on the order at once.
    order = s.client.get(f"/orders/{oid}", headers=s.as_operator()).json()
    assert order["status"] == "DELIVERED"
    v = verify(s, oid, record["id"], s.as_operator())
    assert v["valid"] is True, v
