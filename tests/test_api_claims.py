"""Claims through the real parts (API, nats-server, the engine, chDB): filing assembles the
evidence bundle by itself from a scenario whose alerts are known, names the leg and custody
holder of the first anomaly, and freezes the bundle under its SHA-256; operators review, decide
and pay, each move with its time and reason, never above the coverage."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from apifix import ApiStack, api_stack_at, live_engine_for, wait_for
from natsfix import connect

PNG = b"\x89PNG\r\n\x1a\n" + b"crushed-corner" * 16
PHOTO_SHA = hashlib.sha256(PNG).hexdigest()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    """The API with a live engine whose alerts, scans and readings are stored."""
    root = tmp_path_factory.mktemp("claims")
    with api_stack_at(root) as api, live_engine_for(api, root / "engine", stored=True):
        yield api


def publish(api: ApiStack, user: str, subject: str, events: list[dict[str, Any]]) -> None:
    async def run() -> None:
        async with connect(api.nats.url, api.nats.credentials(user)) as (nc, _errors):
            js = nc.jetstream()
            for event in events:
                await js.publish(subject, json.dumps(event).encode())

    asyncio.run(run())


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def scan(ship: str, carrier: str, ts: int, status: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "scan", "shipment": ship, "carrier": carrier, "ts": ts, "status": status,
            "location": "CN-440300", **extra}  # fmt: skip


def readings(ship: str, metric: str, points: list[tuple[int, float]]) -> list[dict[str, Any]]:
    return [
        {"kind": "sensor", "shipment": ship, "device": "d-claim", "ts": ts, metric: value}
        for ts, value in points
    ]


def alert_states(api: ApiStack, oid: str) -> set[tuple[str, str]]:
    events = ok(api.client.get(f"/orders/{oid}/timeline", headers=api.as_operator()))
    return {(e["data"]["id"], e["data"]["state"]) for e in events if e["type"] == "alert"}


def received(api: ApiStack, who: str, ship: str, t0: int) -> str:
    """An order booked with SF on ``ship``, picked up at ``t0``, with a photo."""
    oid = str(api.create_order(who)["id"])
    r = api.client.post(
        f"/orders/{oid}/photos",
        files={"file": ("p.png", PNG, "image/png")},
        headers=api.as_customer(who),
    )
    ok(r, 201)
    api.book(oid, "inbound", "SF", ship)
    publish(api, "carrier-SF", "sg.scan.SF", [scan(ship, "SF", t0, "PICKED_UP")])
    wait_for(lambda: ok(api.client.get(f"/orders/{oid}", headers=api.as_operator()))["status"]
             == "INBOUND_IN_TRANSIT")  # fmt: skip
    return oid


def deliver_to_depot(api: ApiStack, oid: str, ship: str, ts: int) -> None:
    signer = {"name": "Wang Fang", "type": "self", "staff_id": "D-0042"}
    publish(api, "carrier-SF", "sg.scan.SF", [scan(ship, "SF", ts, "DELIVERED", signer=signer)])
    wait_for(lambda: ok(api.client.get(f"/orders/{oid}", headers=api.as_operator()))["status"]
             == "RECEIVED")  # fmt: skip


def file(api: ApiStack, oid: str, who: str, amount: str, kind: str = "damage") -> Any:
    return api.client.post(
        f"/orders/{oid}/claims",
        json={"kind": kind, "claimed_amount": amount, "reason": "the screen arrived crushed"},
        headers=api.as_customer(who),
    )


def move(api: ApiStack, cid: str, to: str, amount: str | None = None, key: str = "") -> Any:
    body: dict[str, Any] = {"to": to, "reason": f"adjuster: {to.lower()}"}
    if amount is not None:
        body["amount"] = amount
    return api.client.post(
        f"/claims/{cid}/transitions",
        json=body,
        headers={**api.as_operator(), **({"Idempotency-Key": key} if key else {})},
    )


def test_a_claim_carries_its_evidence_and_names_the_inbound_carrier(stack: ApiStack) -> None:
    api = stack
    who, ship = "cust-claim-in", "SFCLAIM00001"
    t0 = int(time.time() * 1000) - 60_000
    oid = received(api, who, ship, t0)
    # A 9 g drop at t0+1000 between calm readings: shock-3g and (the screen is fragile)
    # fragile-shock-2g fire at t0+1000 and resolve at t0+1500.
    calm = [(t0 + 200, 0.4), (t0 + 600, 1.1)]
    drop = [(t0 + 1_000, 9.0)]
    after = [(t0 + 1_500, 1.2), (t0 + 2_000, 0.5)]
    publish(api, "gateway-gw01", "sg.sensor.gw01", readings(ship, "shock_g", calm + drop + after))
    ids = {f"shock-3g:{ship}:{t0 + 1_000}", f"fragile-shock-2g:{ship}:{t0 + 1_000}"}
    expected = {(i, s) for i in ids for s in ("firing", "resolved")}
    wait_for(lambda: alert_states(api, oid) >= expected, timeout=15)
    # The bundle is frozen when the claim is filed: wait for every reading to be stored too
    # (they reach ClickHouse on the sink's own flush, which the alerts do not wait for).
    stored = "SELECT count() FROM sensor_readings WHERE shipment = {s:String}"
    wait_for(lambda: api.store.rows(stored, {"s": ship}) == [(5,)], timeout=15)
    deliver_to_depot(api, oid, ship, t0 + 30_000)

    claim = ok(file(api, oid, who, "2000.00"), 201)
    assert claim["id"].startswith("CL-")
    assert claim["order_id"] == oid
    assert (claim["status"], claim["kind"], claim["claimed_amount"]) == (
        "FILED",
        "damage",
        "2000.00",
    )
    assert claim["coverage"] == "4999.00"
    # The first anomaly started at t0+1000, before the depot signed: the inbound carrier's.
    assert (claim["leg"], claim["custody_holder"]) == ("inbound", "SF")
    assert claim["first_anomaly_ms"] == t0 + 1_000
    assert claim["allowed"] == ["UNDER_REVIEW"]

    bundle = ok(api.client.get(f"/claims/{claim['id']}/evidence", headers=api.as_depot()))
    # Frozen: the digest is that of the bundle without the export's additions.
    frozen = {k: v for k, v in bundle.items() if k not in ("sha256", "claim")}
    digest = hashlib.sha256(msgspec.json.encode(frozen, order="sorted")).hexdigest()
    assert digest == bundle["sha256"] == claim["evidence_sha256"]
    assert bundle["claim"]["id"] == claim["id"]
    assert bundle["missing_alerts"] == []
    alerts = {a["id"]: a for a in bundle["alerts"]}
    assert set(alerts) == ids
    for alert in alerts.values():
        assert alert["state"] == "resolved"
        assert alert["leg"] == "inbound"
        assert alert["carrier"] == "SF"
        assert alert["peak"] == 9.0
        assert [s["state"] for s in alert["states"]] == ["firing", "resolved"]
        # The locked readings end with the firing one; the stored ones surround the episode.
        assert alert["evidence"][-1] == {"ts_ms": t0 + 1_000, "value": 9.0}
        assert [(p["ts_ms"], p["value"]) for p in alert["readings"]] == calm + drop + after
    trail = [(s["leg"], s["status"], s["ts_ms"]) for s in bundle["scans"]]
    assert trail == [("inbound", "PICKED_UP", t0), ("inbound", "DELIVERED", t0 + 30_000)]
    assert bundle["scans"][1]["signer"] == {"name": "Wang Fang", "type": "self",
                                            "staff_id": "D-0042"}  # fmt: skip
    (signoff,) = bundle["signoffs"]
    assert signoff["leg"] == "inbound"
    assert signoff["verification"]["valid"] is True
    assert bundle["photos"] == [{"sha256": PHOTO_SHA, "content_type": "image/png",
                                 "size": len(PNG),
                                 "url": f"/orders/{oid}/photos/{PHOTO_SHA}"}]  # fmt: skip
    assert bundle["attribution"]["depot_signoff_ms"] == signoff["ts_ms"]

    report = api.client.get(f"/claims/{claim['id']}/report", headers=api.as_customer(who))
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith("text/html")
    assert report.text.count("<svg") >= 2  # a chart per shock alert
    assert claim["id"] in report.text
    assert "SF" in report.text
    # Saved or printed away from the API, the photo links still resolve.
    assert f'href="{api.url}/orders/{oid}/photos/{PHOTO_SHA}"' in report.text


def test_an_anomaly_after_the_depot_signed_is_the_return_carrier_s(stack: ApiStack) -> None:
    api = stack
    who, ship = "cust-claim-ret", "SFCLAIM00002"
    t0 = int(time.time() * 1000) - 60_000
    oid = received(api, who, ship, t0)
    deliver_to_depot(api, oid, ship, t0 + 10_000)
    for to in ("DIAGNOSING", "REPAIRING", "REPAIRED"):
        ok(api.client.post(f"/orders/{oid}/transitions", json={"to": to},
                           headers=api.as_depot()))  # fmt: skip
    order = wait_for(
        lambda: (
            (o := ok(api.client.get(f"/orders/{oid}", headers=api.as_operator())))["status"]
            == "RETURN_IN_TRANSIT"
            and o
        )
    )
    back = order["shipments"]["return"]
    # The parcel is opened on the way back: light-open-50lux fires on the return leg.
    t1 = int(time.time() * 1000)
    publish(api, "gateway-gw01", "sg.sensor.gw01",
            readings(back["shipment"], "light_lux", [(t1, 2.0), (t1 + 500, 120.0)]))  # fmt: skip
    wait_for(lambda: any(s == "firing" for _, s in alert_states(api, oid)), timeout=15)

    claim = ok(file(api, oid, who, "4999.00"), 201)
    assert (claim["leg"], claim["custody_holder"]) == ("return", back["carrier"])
    assert claim["first_anomaly_ms"] == t1 + 500
    bundle = ok(api.client.get(f"/claims/{claim['id']}/evidence", headers=api.as_operator()))
    assert [(a["rule"], a["leg"], a["state"]) for a in bundle["alerts"]] == [
        ("light-open-50lux", "return", "firing")
    ]


def test_operators_decide_and_pay_within_the_coverage(stack: ApiStack) -> None:
    api = stack
    who, ship = "cust-claim-pay", "SFCLAIM00003"
    oid = received(api, who, ship, int(time.time() * 1000) - 60_000)

    above = file(api, oid, who, "5000.00")  # the coverage is the declared 4999.00
    assert above.status_code == 422, above.text
    assert [e["field"] for e in above.json()["errors"]] == ["claimed_amount"]
    bad = api.client.post(f"/orders/{oid}/claims", json={"kind": "theft", "claimed_amount": "1",
                          "reason": " "}, headers=api.as_customer(who))  # fmt: skip
    assert bad.status_code == 422
    # Another customer never sees the order; a carrier or the depot cannot file.
    assert file(api, oid, "cust-someone-else", "10.00").status_code == 404
    loss = {"kind": "loss", "claimed_amount": "10.00", "reason": "x"}
    depot = api.client.post(f"/orders/{oid}/claims", headers=api.as_depot(), json=loss)
    assert depot.status_code == 403

    claim = ok(file(api, oid, who, "3000.00", kind="delay"), 201)
    cid = claim["id"]
    assert claim["leg"] is None
    assert claim["custody_holder"] is None
    # Only operators move a claim; an illegal move is a 409 with the legal ones.
    customer_move = api.client.post(f"/claims/{cid}/transitions", headers=api.as_customer(who),
                                    json={"to": "PAID", "reason": "pay me"})  # fmt: skip
    assert customer_move.status_code == 403
    early = move(api, cid, "PAID")
    assert early.status_code == 409
    assert early.json()["allowed"] == ["UNDER_REVIEW"]
    ok(move(api, cid, "UNDER_REVIEW"))
    too_much = move(api, cid, "PARTIALLY_APPROVED", "3000.01")
    assert too_much.status_code == 422
    assert [e["field"] for e in too_much.json()["errors"]] == ["amount"]
    decided = ok(move(api, cid, "PARTIALLY_APPROVED", "1200.50"))
    assert (decided["status"], decided["approved_amount"]) == ("PARTIALLY_APPROVED", "1200.50")
    assert decided["allowed"] == ["PAID"]
    paid = ok(move(api, cid, "PAID", key="pay-1"))
    again = move(api, cid, "PAID", key="pay-1")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == paid
    assert (paid["status"], paid["paid_amount"]) == ("PAID", "1200.50")
    history = [(h["status"], h["reason"]) for h in paid["history"]]
    assert history == [
        ("FILED", "the screen arrived crushed"),
        ("UNDER_REVIEW", "adjuster: under_review"),
        ("PARTIALLY_APPROVED", "adjuster: partially_approved"),
        ("PAID", "adjuster: paid"),
    ]
    times = [h["at_ms"] for h in paid["history"]]
    assert times == sorted(times)
    assert paid["cycle_time_ms"] == times[-1] - times[0]
    assert paid["decision_time_ms"] == times[2] - times[0]

    # The customer follows its claim; the order lists it; storage and the listing have it.
    mine = ok(api.client.get(f"/claims/{cid}", headers=api.as_customer(who)))
    assert mine["status"] == "PAID"
    assert api.client.get(f"/claims/{cid}", headers=api.as_customer("cust-x")).status_code == 404
    assert api.client.get(f"/claims/{cid}", headers=api.as_carrier("SF")).status_code == 403
    listed = ok(api.client.get(f"/orders/{oid}/claims", headers=api.as_customer(who)))
    assert [c["id"] for c in listed] == [cid]

    def stored() -> list[Any]:
        return api.store.rows(
            "SELECT status, claimed_fen, approved_fen, paid_fen FROM claims_latest "
            "WHERE claim_id = {c:String}",
            {"c": cid},
        )

    assert wait_for(lambda: stored() == [("PAID", 300_000, 120_050, 120_050)])
    paid_claims = ok(api.client.get("/claims?status=PAID&kind=delay", headers=api.as_operator()))
    assert cid in [c["id"] for c in paid_claims]
    assert all(c["status"] == "PAID" for c in paid_claims)
