"""Webhooks (CONTROL_PLANE.md, "Notifications") through the real parts: the API, nats-server,
the engine and chDB, with a real HTTP receiver in this process.

Signatures are checked here by an independent implementation (the ``hmac`` module, as a
receiver would). Retries, disabling and the crash test use fast backoff settings; the crash
test runs the API as its own process and SIGKILLs it while a delivery is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from apifix import API_CARRIERS, API_GATEWAYS, ApiStack, api_stack_at, live_engine_for, wait_for
from natsfix import connect
from streamguard.bus.webhooks import (
    EVENT_HEADER,
    ORDER_HEADER,
    SOURCE_HEADER,
    SUBSCRIPTION_HEADER,
    WebhookSettings,
)
from streamguard.domain import webhooks as wh
from streamguard.domain.auth import Principal, Role
from streamguard.domain.orders import Actor, OrderEvent
from streamguard.errors import ConfigError
from streamguard.keys import Keys
from streamguard.live import LiveEngine
from streamguard.stack import NatsServer, free_port
from streamguard.tokens import create_token

ALL_TYPES = ["alert", "order.status_changed", "signoff.created", "claim.updated", "return.created"]
FAST = WebhookSettings(
    timeout_s=2.0, backoff_base_s=0.2, backoff_cap_s=1.0, max_failures=4, ack_wait_s=4.0
)


# ---- pure: signatures, backoff, what an order event is --------------------------------------


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    """What a receiver computes, written from the README and not from our module."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, headers: dict[str, str], body: bytes) -> bool:
    expected = independent_signature(secret, headers["streamguard-timestamp"], body)
    offered = [
        p.split("=", 1)[1]
        for p in headers["streamguard-signature"].split(",")
        if p.startswith("v1=")
    ]
    return any(hmac.compare_digest(expected, s) for s in offered)


def test_the_signature_is_hmac_sha256_over_the_timestamp_and_the_body() -> None:
    secret, body, ts = "whsec_test-secret", b'{"id":"x","type":"alert"}', 1_795_352_700_123
    assert wh.signature(secret, ts, body) == independent_signature(secret, str(ts), body)
    sub = wh.Subscription(
        id="WH-0123456789ABCDEF",
        url="https://example.com/hook",
        event_types=["alert"],
        secret=secret,
        created_ms=0,
        updated_ms=0,
    )
    headers = wh.signed_headers(sub, "alert", "WH-0123456789ABCDEF:7:alert", body, ts)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["streamguard-timestamp"] == str(ts)
    assert lowered["streamguard-event"] == "alert"
    assert lowered["streamguard-delivery"] == "WH-0123456789ABCDEF:7:alert"
    assert lowered["streamguard-signature"] == f"v1={independent_signature(secret, str(ts), body)}"
    assert signature_ok(secret, lowered, body)
    assert wh.verify(secret, headers, body, ts + 1_000)
    # Tampered body, wrong secret, a stale timestamp: refused.
    assert not wh.verify(secret, headers, body + b" ", ts)
    assert not wh.verify("whsec_other", headers, body, ts)
    assert not wh.verify(secret, headers, body, ts + wh.DEFAULT_TOLERANCE_MS + 1)
    assert not wh.verify(secret, {**headers, wh.SIGNATURE_HEADER: "v0=abc"}, body, ts)


def test_after_a_rotation_both_secrets_sign_until_the_grace_period_ends() -> None:
    body = b"{}"
    sub = wh.Subscription(
        id="WH-0123456789ABCDEF",
        url="http://127.0.0.1:9/x",
        event_types=["alert"],
        secret="whsec_new",
        previous_secret="whsec_old",
        previous_secret_until_ms=2_000,
        created_ms=0,
        updated_ms=0,
    )
    during = {k.lower(): v for k, v in wh.signed_headers(sub, "alert", "d", body, 1_000).items()}
    assert len(during["streamguard-signature"].split(",")) == 2
    assert signature_ok("whsec_new", during, body)
    assert signature_ok("whsec_old", during, body)
    after = {k.lower(): v for k, v in wh.signed_headers(sub, "alert", "d", body, 2_000).items()}
    assert signature_ok("whsec_new", after, body)
    assert not signature_ok("whsec_old", after, body)


def test_the_backoff_doubles_up_to_its_cap_with_jitter_that_never_shrinks_it() -> None:
    top = [wh.backoff_s(n, 1.0, 60.0, 1.0) for n in range(1, 10)]
    assert top == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert [wh.backoff_s(n, 1.0, 60.0, 0.0) for n in (1, 2, 3, 8)] == [0.5, 1.0, 2.0, 60.0]
    # Whatever the jitter, attempt n+1 waits at least as long as attempt n could have.
    for n in range(1, 12):
        assert wh.backoff_s(n + 1, 0.2, 30.0, 0.0) >= wh.backoff_s(n, 0.2, 30.0, 1.0)
    assert wh.backoff_s(10_000, 1.0, 600.0, 1.0) == 600.0
    with pytest.raises(ValueError, match="attempt"):
        wh.backoff_s(0, 1.0, 2.0, 0.5)


def test_settings_come_from_the_environment_and_are_checked() -> None:
    s = WebhookSettings.from_env(
        {"STREAMGUARD_WEBHOOK_BACKOFF_BASE_S": "0.5", "STREAMGUARD_WEBHOOK_MAX_FAILURES": "3"}
    )
    assert (s.backoff_base_s, s.max_failures, s.timeout_s) == (0.5, 3, 10.0)
    assert s.ack_wait == 30.0
    with pytest.raises(ConfigError, match="MAX_FAILURES"):
        WebhookSettings.from_env({"STREAMGUARD_WEBHOOK_MAX_FAILURES": "many"})
    with pytest.raises(ConfigError, match="ack_wait"):
        WebhookSettings(timeout_s=10, ack_wait_s=5)


def _shipment_event(data: dict[str, Any], moved: bool) -> OrderEvent:
    from streamguard.domain.orders import OrderStatus

    return OrderEvent(
        type="shipment",
        at_ms=1,
        actor=Actor.system("test"),
        from_status=OrderStatus.REPAIRED if moved else None,
        to_status=OrderStatus.RETURN_IN_TRANSIT if moved else None,
        data=data,
    )


def test_a_return_is_created_by_its_first_booking_and_by_an_override_only() -> None:
    from streamguard.domain.orders import Intake, apply, new_order

    intake = msgspec.convert(
        {
            "customer": {
                "name": "Li Lei",
                "phone": "+86 138 0013 8000",
                "address": {"line": "1 Keyuan Road", "region": "CN-440305"},
            },
            "product": {"category": "phone", "brand": "Huawei", "model": "P60"},
            "purchase_channel": "jd.com",
            "fault_type": "screen",
            "declared_value": "4999.00",
        },
        Intake,
    )
    order = apply(None, new_order("RO-0123456789ABCDEF", intake, "cust-1", Actor.system("t"), 1))
    leg = {"leg": "return", "shipment": "JDR1", "carrier": "JD"}
    first = wh.webhook_events(_shipment_event(leg, moved=True), order)
    assert [t for t, _ in first] == ["return.created", "order.status_changed"]
    override = {**leg, "shipment": "SFR1", "replaces": {"shipment": "JDR1", "carrier": "JD"}}
    events = wh.webhook_events(_shipment_event(override, moved=False), order)
    assert [t for t, _ in events] == ["return.created"]
    assert events[0][1]["shipment"]["replaces"]["shipment"] == "JDR1"
    # The same tracking booked again changes no leg: nothing to tell.
    assert wh.webhook_events(_shipment_event(leg, moved=False), order) == []
    # The order view carries no contact details.
    assert "Li Lei" not in json.dumps(first)


# ---- a receiver ---------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.body)
        return body


@dataclass
class Receiver:
    """A real HTTP server on a free port of 127.0.0.1, in a thread. Each path answers the
    statuses given to :meth:`answer` in turn (the last repeats; 200 by default). A path in
    ``hold`` keeps its first request open until that event is set."""

    requests: list[Received] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    hold: dict[str, threading.Event] = field(default_factory=dict)
    holding: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def answer(self, path: str, *statuses: int) -> str:
        self.statuses[path] = list(statuses)
        return self.url(path)

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def _status(self, path: str, n: int) -> int:
        statuses = self.statuses.get(path) or [200]
        return statuses[min(n, len(statuses) - 1)]

    @contextlib.contextmanager
    def running(self) -> Iterator[Receiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                got = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                with receiver.lock:
                    n = len([r for r in receiver.requests if r.path == self.path])
                    receiver.requests.append(got)
                release = receiver.hold.get(self.path)
                if release is not None and n == 0:
                    receiver.holding.set()
                    release.wait(60)
                with contextlib.suppress(OSError):
                    self.send_response(receiver._status(self.path, n))
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.server = server
        thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            for event in self.hold.values():
                event.set()
            server.shutdown()
            server.server_close()
            thread.join(5)


# ---- the stack: API, engine, receiver ------------------------------------------------------------


@dataclass
class World:
    api: ApiStack
    engine: LiveEngine
    receiver: Receiver


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("webhooks")
    with (
        api_stack_at(root, webhooks=FAST) as api,
        Receiver().running() as receiver,
        live_engine_for(api, root / "engine") as engine,
    ):
        yield World(api, engine, receiver)


def subscribe(api: ApiStack, url: str, types: list[str], **more: Any) -> dict[str, Any]:
    r = api.client.post(
        "/webhooks", json={"url": url, "event_types": types, **more}, headers=api.as_operator()
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def webhook(api: ApiStack, sub_id: str) -> dict[str, Any]:
    r = api.client.get(f"/webhooks/{sub_id}", headers=api.as_operator())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def attempts(api: ApiStack, sub_id: str, **params: Any) -> list[dict[str, Any]]:
    r = api.client.get(f"/webhooks/{sub_id}/attempts", params=params, headers=api.as_operator())
    assert r.status_code == 200, r.text
    return list(r.json()["attempts"])


def move(api: ApiStack, order_id: str, to: str, headers: dict[str, str] | None = None) -> None:
    r = api.client.post(
        f"/orders/{order_id}/transitions", json={"to": to}, headers=headers or api.as_depot()
    )
    assert r.status_code == 200, r.text


def publish(api: ApiStack, user: str, subject: str, event: dict[str, Any]) -> None:
    async def run() -> None:
        async with connect(api.nats.url, api.nats.credentials(user)) as (nc, _errors):
            await nc.jetstream().publish(subject, json.dumps(event).encode())

    asyncio.run(run())


def file_claim(api: ApiStack, order_id: str, customer: str) -> None:
    """The customer files a claim through the claims API."""
    r = api.client.post(
        f"/orders/{order_id}/claims",
        json={"kind": "damage", "claimed_amount": "500.00", "reason": "cracked in transit"},
        headers=api.as_customer(customer),
    )
    assert r.status_code == 201, r.text


# ---- deliveries of real order changes ----------------------------------------------------------


def test_every_event_type_is_delivered_signed(world: World) -> None:
    api, receiver = world.api, world.receiver
    sub = subscribe(api, receiver.answer("/all"), ALL_TYPES, description="everything")
    secret = sub["secret"]
    assert secret.startswith("whsec_")
    # The secret is shown once: never in a read or a listing.
    assert "secret" not in webhook(api, sub["id"])
    assert secret not in api.client.get("/webhooks", headers=api.as_operator()).text

    customer = "cust-webhooks"
    oid = api.create_order(customer)["id"]
    api.book(oid, "inbound", "SF", "SFWH00000001")
    now = int(time.time() * 1000)
    publish(api, "carrier-SF", "sg.scan.SF", {
        "kind": "scan", "shipment": "SFWH00000001", "carrier": "SF", "ts": now,
        "status": "PICKED_UP", "location": "CN-440305",
    })  # fmt: skip
    # A 9 g drop: the engine's alerts on the leg land on the order's timeline.
    publish(api, "gateway-gw01", "sg.sensor.gw01", {
        "kind": "sensor", "shipment": "SFWH00000001", "device": "d1", "ts": now + 1_000,
        "shock_g": 9.0,
    })  # fmt: skip
    wait_for(
        lambda: (
            api.client.get(f"/orders/{oid}", headers=api.as_operator()).json()["status"]
            == "INBOUND_IN_TRANSIT"
        )
    )
    r = api.client.post(
        f"/orders/{oid}/signoffs",
        json={"signer_type": "depot_staff", "leg": "inbound", "signer_name": "Depot Desk",
              "staff_id": "D-07"},
        headers=api.as_depot(),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    for to in ("DIAGNOSING", "REPAIRING", "REPAIRED"):
        move(api, oid, to)
    file_claim(api, oid, customer)

    # Every type, and the last move (its delivery and the return's come from one event).
    wanted = {(t, None) for t in ALL_TYPES} | {("order.status_changed", "RETURN_IN_TRANSIT")}

    def everything_delivered() -> bool:
        seen = set()
        for r in receiver.at("/all"):
            if r.payload["order_id"] == oid:
                seen |= {
                    (r.payload["type"], None),
                    (r.payload["type"], r.payload["data"].get("to_status")),
                }
        return seen >= wanted

    wait_for(everything_delivered, timeout=30)
    mine = [r for r in receiver.at("/all") if r.payload["order_id"] == oid]
    for got in mine:
        body = got.payload
        assert signature_ok(secret, got.headers, got.body), got.headers
        assert abs(int(got.headers["streamguard-timestamp"]) - time.time() * 1000) < 60_000
        assert got.headers["streamguard-event"] == body["type"]
        assert got.headers["streamguard-delivery"] == body["id"]
        assert body["id"] == f"{sub['id']}:{body['version']}:{body['type']}"
        assert body["data"]["order"]["id"] == oid
        # Compact, and without the customer's contact details.
        assert "Li Lei" not in got.body.decode()
        assert "sealed" not in got.body.decode()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for got in mine:
        by_type.setdefault(got.payload["type"], []).append(got.payload["data"])
    moves = [(d["from_status"], d["to_status"]) for d in by_type["order.status_changed"]]
    assert (None, "CREATED") in moves
    assert ("REPAIRED", "RETURN_IN_TRANSIT") in moves
    assert {d["alert"]["rule"] for d in by_type["alert"]} >= {"shock-3g"}
    assert by_type["signoff.created"][0]["signoff"]["leg"] == "inbound"
    assert by_type["return.created"][0]["shipment"]["leg"] == "return"
    assert by_type["claim.updated"][0]["to_status"] == "FILED"
    # Each was delivered once, first time, and recorded.
    ids = [got.payload["id"] for got in mine]
    assert len(ids) == len(set(ids))

    def recorded() -> list[dict[str, Any]] | None:
        rows = [r for r in attempts(api, sub["id"], limit=500) if r["delivery_id"] in ids]
        return rows if len(rows) >= len(ids) else None

    rows = wait_for(recorded)
    assert sorted(r["delivery_id"] for r in rows) == sorted(ids)
    assert {(r["outcome"], r["status_code"], r["attempt"]) for r in rows} == {("delivered", 200, 1)}
    assert api.client.delete(f"/webhooks/{sub['id']}", headers=api.as_operator()).status_code == 204


def test_a_failing_receiver_gets_retries_with_growing_delays_then_success(world: World) -> None:
    api, receiver = world.api, world.receiver
    url = receiver.answer("/flaky", 500, 502, 503, 200)
    sub = subscribe(api, url, ["order.status_changed"])
    oid = api.create_order("cust-webhooks-flaky")["id"]
    got = wait_for(lambda: (r := receiver.at("/flaky")) and len(r) >= 4 and r, timeout=20)
    assert len(got) == 4
    assert {r.payload["order_id"] for r in got} == {oid}
    assert len({r.headers["streamguard-delivery"] for r in got}) == 1
    assert len({r.body for r in got}) == 1
    assert all(signature_ok(sub["secret"], r.headers, r.body) for r in got)

    rows = wait_for(lambda: (a := attempts(api, sub["id"])) and len(a) == 4 and a)
    rows.sort(key=lambda r: r["attempt"])
    assert [r["attempt"] for r in rows] == [1, 2, 3, 4]
    assert [r["status_code"] for r in rows] == [500, 502, 503, 200]
    assert [r["outcome"] for r in rows] == ["failed", "failed", "failed", "delivered"]
    assert rows[0]["error"] == "HTTP 500"
    waits = [r["retry_in_ms"] for r in rows[:3]]
    assert waits == sorted(waits), waits
    assert rows[3]["retry_in_ms"] is None
    # The receiver saw the waits: each gap at least the recorded backoff, and growing.
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert all(gap >= wait / 1000 - 0.05 for gap, wait in zip(gaps, waits, strict=True)), gaps
    assert gaps[2] > gaps[0], gaps
    # Only one attempt at a time is filtered by delivery id, and the success reset the count.
    assert len(attempts(api, sub["id"], delivery_id=rows[0]["delivery_id"], limit=2)) == 2
    assert webhook(api, sub["id"])["consecutive_failures"] == 0
    assert webhook(api, sub["id"])["enabled"] is True


def test_repeated_failures_disable_a_subscription_until_an_operator_enables_it(
    world: World,
) -> None:
    api, receiver = world.api, world.receiver
    url = receiver.answer("/down", 503)
    sub = subscribe(api, url, ["order.status_changed"])
    oid = api.create_order("cust-webhooks-down")["id"]
    api.book(oid, "inbound", "JD", "JDWH00000001")

    disabled = wait_for(lambda: (w := webhook(api, sub["id"]))["enabled"] is False and w, 20)
    assert disabled["consecutive_failures"] >= FAST.max_failures
    assert "consecutive failed deliveries" in disabled["disabled_reason"]
    assert "HTTP 503" in disabled["disabled_reason"]

    def settled() -> list[dict[str, Any]] | None:
        rows = attempts(api, sub["id"])
        last: dict[str, dict[str, Any]] = {}
        for r in sorted(rows, key=lambda r: r["attempt"]):
            last[r["delivery_id"]] = r
        ended = [r for r in last.values() if r["outcome"] != "failed"]
        return rows if len(last) == 2 and len(ended) == 2 else None

    rows = wait_for(settled, timeout=15)
    failed = [r for r in rows if r["status_code"] == 503]
    assert len(failed) >= FAST.max_failures
    ends = {r["outcome"] for r in rows if r["outcome"] != "failed"}
    # The failure that reached the limit ends its delivery; the other delivery ends when it
    # meets the disabled subscription (or, in flight at that moment, with its own failure).
    assert "disabled" in ends
    assert ends <= {"disabled", "dropped_disabled"}
    seen = len(receiver.at("/down"))

    # Disabled: nothing is queued for it.
    move(api, oid, "CANCELLED", api.as_operator())
    time.sleep(1.0)
    assert len(receiver.at("/down")) == seen

    receiver.answer("/down", 200)
    r = api.client.patch(
        f"/webhooks/{sub['id']}", json={"enabled": True}, headers=api.as_operator()
    )
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is True
    assert r.json()["consecutive_failures"] == 0
    assert r.json()["disabled_reason"] is None
    other = api.create_order("cust-webhooks-down")["id"]
    wait_for(lambda: any(x.payload["order_id"] == other for x in receiver.at("/down")))
    # The dropped deliveries are not sent again.
    assert [x.payload["order_id"] for x in receiver.at("/down")[seen:]] == [other]


def test_a_queued_delivery_of_a_disabled_subscription_is_dropped_and_recorded(
    world: World,
) -> None:
    api, receiver = world.api, world.receiver
    sub = subscribe(api, receiver.answer("/off"), ["alert"])
    r = api.client.patch(
        f"/webhooks/{sub['id']}", json={"enabled": False}, headers=api.as_operator()
    )
    assert r.status_code == 200, r.text
    assert r.json()["disabled_reason"] == "disabled by op-1"
    delivery = wh.delivery_id(sub["id"], 999_999, "alert")

    async def queue() -> None:
        # As the fan-out queues a delivery that was due before the subscription was disabled.
        async with connect(api.nats.url, api.nats.credentials("control")) as (nc, _errors):
            await nc.jetstream().publish(
                f"sg.webhook.{sub['id']}",
                b'{"id": "queued"}',
                stream="SG_WEBHOOKS",
                headers={
                    "Nats-Msg-Id": delivery,
                    SUBSCRIPTION_HEADER: sub["id"],
                    EVENT_HEADER: "alert",
                    ORDER_HEADER: "RO-0000000000000000",
                    SOURCE_HEADER: "999999",
                },
            )

    asyncio.run(queue())
    rows = wait_for(lambda: attempts(api, sub["id"], delivery_id=delivery))
    assert [(r["outcome"], r["status_code"], r["error"]) for r in rows] == [
        ("dropped_disabled", None, "disabled by op-1")
    ]
    assert receiver.at("/off") == []


def test_subscriptions_are_validated_and_managed(world: World) -> None:
    api = world.api
    op = api.as_operator()
    r = api.client.post(
        "/webhooks", json={"url": "ftp://example.com/x", "event_types": ["nope"]}, headers=op
    )
    assert r.status_code == 422, r.text
    fields = {e["field"].split("[")[0] for e in r.json()["errors"]}
    assert fields == {"url", "event_types"}
    # Found by schemathesis: the URL pattern let through what the HTTP client refuses.
    bad_urls = (
        "http://user:pw@example.com/",
        "example.com/hook",
        "http:///x",
        "http://[4D]/",
        "http://example.com:99999/",
        "http://example.com/\n",
    )
    for bad in bad_urls:
        r = api.client.post("/webhooks", json={"url": bad, "event_types": ["alert"]}, headers=op)
        assert r.status_code == 422, bad
        assert [e["field"] for e in r.json()["errors"]] == ["url"]
    empty = {"url": "https://x.example", "event_types": []}
    r = api.client.post("/webhooks", json=empty, headers=op)
    assert [e["field"] for e in r.json()["errors"]] == ["event_types"]

    # Idempotency-Key: the same request creates one subscription and shows the same secret.
    body = {"url": "https://hooks.example.com/sg", "event_types": ["alert", "alert"]}
    first = api.client.post("/webhooks", json=body, headers={**op, "Idempotency-Key": "wh-1"})
    again = api.client.post("/webhooks", json=body, headers={**op, "Idempotency-Key": "wh-1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["event_types"] == ["alert"]
    other = api.client.post(
        "/webhooks",
        json={**body, "url": "https://b.example"},
        headers={**op, "Idempotency-Key": "wh-1"},
    )
    assert other.status_code == 422
    assert [e["field"] for e in other.json()["errors"]] == ["Idempotency-Key"]
    sid = first.json()["id"]

    change = {"url": "https://new.example/h", "event_types": ["claim.updated"]}
    r = api.client.patch(f"/webhooks/{sid}", json=change, headers=op)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in change} == change
    r = api.client.patch(f"/webhooks/{sid}", json={"secret": "mine"}, headers=op)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["secret"]
    # A switch is a JSON boolean, not something that converts to one.
    r = api.client.patch(f"/webhooks/{sid}", json={"enabled": 0}, headers=op)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["enabled"]
    assert webhook(api, sid)["enabled"] is True

    rotated = api.client.post(f"/webhooks/{sid}/rotate-secret", headers=op)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] not in (first.json()["secret"], "")
    assert rotated.json()["previous_secret_until_ms"] > time.time() * 1000

    assert sid in [w["id"] for w in api.client.get("/webhooks", headers=op).json()]
    assert api.client.delete(f"/webhooks/{sid}", headers=op).status_code == 204
    # Replaying the create does not bring a deleted subscription back.
    r = api.client.post("/webhooks", json=body, headers={**op, "Idempotency-Key": "wh-1"})
    assert r.status_code == 409, r.text
    for method in ("GET", "PATCH", "DELETE"):
        r = api.client.request(
            method, f"/webhooks/{sid}", headers=op, json={} if method == "PATCH" else None
        )
        assert r.status_code == 404, (method, r.text)
    assert api.client.get(f"/webhooks/{sid}/attempts", headers=op).status_code == 404
    r = api.client.get(f"/webhooks/{sid}/attempts", params={"limitt": 3}, headers=op)
    assert r.status_code == 422
    # Only operators manage webhooks.
    for headers in (api.as_depot(), api.as_customer("c"), api.as_carrier("SF")):
        assert api.client.get("/webhooks", headers=headers).status_code == 403
        assert api.client.post("/webhooks", json=body, headers=headers).status_code == 403


# ---- a crash mid-delivery ----------------------------------------------------------------------


class ApiProcess:
    """``streamguard api`` as its own process, on a fixed port, against the test's NATS."""

    def __init__(self, nats_url: str, var_dir: Path, dsn: str, port: int, log: Path) -> None:
        self.args = [
            sys.executable, "-m", "streamguard", "api", "--nats-url", nats_url,
            "--var", str(var_dir), "--dsn", dsn, "--port", str(port),
        ]  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGUARD_")} | {
            "STREAMGUARD_WEBHOOK_TIMEOUT_S": "3",
            "STREAMGUARD_WEBHOOK_ACK_WAIT_S": "4",
            "STREAMGUARD_WEBHOOK_BACKOFF_BASE_S": "0.2",
            "STREAMGUARD_WEBHOOK_BACKOFF_CAP_S": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, headers: Callable[[], dict[str, str]]) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

        def healthy() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError, FileNotFoundError):
                return httpx.get(f"{self.url}/health", headers=headers()).status_code == 200
            return False

        wait_for(healthy, timeout=90, every=0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def test_a_delivery_in_flight_when_the_api_is_killed_arrives_after_the_restart(
    tmp_path: Path,
) -> None:
    with NatsServer(tmp_path / "var", API_CARRIERS, API_GATEWAYS) as nats_server:
        var_dir = nats_server.var_dir
        api = ApiProcess(
            nats_server.url, var_dir, f"chdb://{tmp_path / 'ch'}", free_port(), tmp_path / "api.log"
        )
        keys = Keys.in_dir(var_dir / "keys")
        keys.load_jwt_secret(create=True)  # the API uses it; the test makes tokens from it

        def as_(role: Role, subject: str) -> dict[str, str]:
            token = create_token(keys.load_jwt_secret(), Principal(role=role, subject=subject))
            return {"Authorization": f"Bearer {token}"}

        release = threading.Event()
        receiver = Receiver(hold={"/crash": release})
        with receiver.running():
            try:
                api.start(lambda: as_(Role.OPERATOR, "op"))
                with httpx.Client(base_url=api.url, timeout=30) as client:
                    r = client.post(
                        "/webhooks",
                        json={
                            "url": receiver.url("/crash"),
                            "event_types": ["order.status_changed"],
                        },
                        headers=as_(Role.OPERATOR, "op"),
                    )
                    assert r.status_code == 201, r.text
                    sub = r.json()
                    from apifix import INTAKE

                    r = client.post(
                        "/orders", json=INTAKE, headers=as_(Role.CUSTOMER, "cust-crash")
                    )
                    assert r.status_code == 201, r.text
                    oid = r.json()["id"]
                # The first attempt is held open by the receiver: kill the API now.
                assert receiver.holding.wait(30), api.log.read_text()[-3000:]
                api.kill()
                release.set()
                api.start(lambda: as_(Role.OPERATOR, "op"))
                got = wait_for(lambda: (r := receiver.at("/crash")) and len(r) >= 2 and r, 30)
                first, second = got[0], got[1]
                assert first.payload["order_id"] == second.payload["order_id"] == oid
                assert (
                    first.headers["streamguard-delivery"] == second.headers["streamguard-delivery"]
                )
                assert first.body == second.body
                assert signature_ok(sub["secret"], second.headers, second.body)

                def recorded() -> list[dict[str, Any]]:
                    r = httpx.get(
                        f"{api.url}/webhooks/{sub['id']}/attempts", headers=as_(Role.OPERATOR, "op")
                    )
                    assert r.status_code == 200, r.text
                    return [a for a in r.json()["attempts"] if a["outcome"] == "delivered"]

                rows = wait_for(recorded, timeout=15)
                # The killed attempt left no record; the one after the restart is the second.
                assert [(a["attempt"], a["status_code"]) for a in rows] == [(2, 200)]
                time.sleep(0.5)
                assert len(receiver.at("/crash")) == 2
            finally:
                api.stop()
