"""The demo's repair orders: ``streamguard up --demo`` walks a few orders through their whole
life, through the same doors real users use (the HTTP API with each role's token, and NATS as
the carriers and a gateway), so a newcomer sees orders, alerts, sign-offs, claims and returns
within a minute of starting the stack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx
from nats.aio.client import Client

from streamguard.domain.auth import Principal, Role
from streamguard.stack import NatsCredentials, NatsServer
from streamguard.tokens import create_token

__all__ = ["DemoOrders"]

# One log line per demo request would bury the status lines.
logging.getLogger("httpx").setLevel(logging.WARNING)

_REGIONS = ("CN-110105", "CN-310115", "CN-330106", "CN-510107", "CN-650102", "CN-460105")
_PRODUCTS: tuple[tuple[str, str, str, str, str, list[str]], ...] = (
    ("phone", "Huawei", "Mate 60", "screen", "4299.00", ["screen"]),
    ("laptop", "Lenovo", "ThinkPad X1", "keyboard", "8999.00", []),
    ("camera", "Sony", "A7 IV", "mainboard", "13999.00", ["mainboard"]),
    ("shoes", "Li-Ning", "Way of Wade 10", "sole_detached", "1299.00", []),
    ("drone", "DJI", "Mini 4 Pro", "camera", "4788.00", ["mainboard"]),
)
_STAFF_MOVES = ("DIAGNOSING", "REPAIRING", "REPAIRED")


@dataclass
class DemoOrders:
    """Start with :meth:`start`; every ``every`` seconds a new order begins, and each order
    takes one step of its life per tick. ``done`` counts orders that reached CLOSED."""

    api_url: str
    server: NatsServer
    jwt_secret: bytes
    stop: threading.Event
    every: float = 4.0
    out: TextIO = sys.stderr
    seed: int = 11
    done: int = 0
    started: int = 0
    _orders: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="streamguard-demo-orders", daemon=True)
        thread.start()
        return thread

    def _token(self, role: Role, subject: str, carrier: str | None = None) -> dict[str, str]:
        token = create_token(
            self.jwt_secret, Principal(role=role, subject=subject, carrier=carrier)
        )
        return {"Authorization": f"Bearer {token}"}

    def _run(self) -> None:
        rng = random.Random(self.seed)
        try:
            with httpx.Client(base_url=self.api_url, timeout=10) as http:
                asyncio.run(self._loop(http, rng))
        except Exception as e:  # the stack is going down
            if not self.stop.is_set():
                self.out.write(f"streamguard up: demo orders stopped: {e}\n")

    async def _loop(self, http: httpx.Client, rng: random.Random) -> None:
        carriers: dict[str, Client] = {}
        try:
            next_order = 0.0
            while not self.stop.is_set():
                if time.monotonic() >= next_order:
                    self._orders.append(self._new_order(http, rng))
                    next_order = time.monotonic() + self.every
                for order in list(self._orders):
                    await self._step(http, order, rng, lambda c: self._carrier(carriers, c))
                    if order["phase"] == "closed":
                        self._orders.remove(order)
                        self.done += 1
                await asyncio.sleep(1.0)
        finally:
            for nc in carriers.values():
                await nc.close()

    async def _carrier(self, cache: dict[str, Client], user: str) -> Client:
        if user not in cache:
            creds: NatsCredentials = self.server.credentials(user)
            nc = Client()
            await nc.connect(self.server.url, **creds.connect_kwargs(), allow_reconnect=False)
            cache[user] = nc
        return cache[user]

    def _new_order(self, http: httpx.Client, rng: random.Random) -> dict[str, Any]:
        self.started += 1
        n = self.started
        category, brand, model, fault, value, fragile = rng.choice(_PRODUCTS)
        customer = f"demo-customer-{n}"
        intake = {
            "customer": {
                "name": f"Customer {n}",
                "phone": f"+86 139 {rng.randrange(10**7, 10**8)}",
                "address": {"line": f"{n} Demo Road", "region": rng.choice(_REGIONS)},
            },
            "product": {"category": category, "brand": brand, "model": model},
            "purchase_channel": rng.choice(["jd.com", "tmall", "offline"]),
            "fault_type": fault,
            "declared_value": value,
            "fragile_parts": fragile,
        }
        r = http.post("/orders", json=intake, headers=self._token(Role.CUSTOMER, customer))
        r.raise_for_status()
        carrier = rng.choice(("SF", "JD", "EMS"))
        order = {
            "id": r.json()["id"],
            "customer": customer,
            "carrier": carrier,
            "tracking": f"{carrier}DEMO{int(time.time())}{n:04d}",
            "phase": "created",
            "moves": 0,
        }
        self._book(http, order, "inbound", carrier, order["tracking"])
        return order

    def _book(self, http: httpx.Client, order: dict[str, Any], leg: str, carrier: str,
              tracking: str) -> None:  # fmt: skip
        r = http.post(
            f"/orders/{order['id']}/shipments",
            json={"leg": leg, "carrier": carrier, "tracking": tracking},
            headers=self._token(Role.OPERATOR, "demo-operator"),
        )
        r.raise_for_status()

    async def _step(
        self,
        http: httpx.Client,
        order: dict[str, Any],
        rng: random.Random,
        carrier: Callable[[str], Any],
    ) -> None:
        phase = order["phase"]
        now = int(time.time() * 1000)
        if phase == "created":
            await self._scan(await carrier(f"carrier-{order['carrier']}"), order, now, "PICKED_UP")
            if rng.random() < 0.5:
                # A rough ride: a gateway reports a drop, the engine raises shock alerts.
                gw = await carrier("gateway-gw01")
                reading = {"kind": "sensor", "shipment": order["tracking"], "device": "demo",
                           "ts": now + 1, "shock_g": round(rng.uniform(3.5, 9.0), 1)}  # fmt: skip
                await gw.jetstream().publish("sg.sensor.gw01", json.dumps(reading).encode())
                order["rough"] = True
            order["phase"] = "in_transit"
        elif phase == "in_transit":
            signer = {"name": "Depot Desk", "type": "self", "staff_id": "D-0007"}
            nc = await carrier(f"carrier-{order['carrier']}")
            await self._scan(nc, order, now, "DELIVERED", signer)
            order["phase"] = "at_depot"
        elif phase == "at_depot" and order.get("rough") and "claim" not in order:
            # The drop shows on arrival: the customer claims, the evidence assembles itself.
            r = http.post(
                f"/orders/{order['id']}/claims",
                json={"kind": "damage", "claimed_amount": "300.00",
                      "reason": "the case arrived cracked"},
                headers=self._token(Role.CUSTOMER, order["customer"]),
            )  # fmt: skip
            order["claim"] = r.json().get("id") if r.status_code == 201 else None
            if order["claim"]:
                http.post(
                    f"/claims/{order['claim']}/transitions",
                    json={"to": "UNDER_REVIEW", "reason": "evidence received"},
                    headers=self._token(Role.OPERATOR, "demo-operator"),
                )
        elif phase == "at_depot" and order["moves"] < len(_STAFF_MOVES):
            r = http.post(
                f"/orders/{order['id']}/transitions",
                json={"to": _STAFF_MOVES[order["moves"]]},
                headers=self._token(Role.DEPOT, "demo-technician"),
            )
            if r.status_code == 200:
                order["moves"] += 1
            if order["moves"] == len(_STAFF_MOVES):
                back = f"JDRET{order['tracking'][-10:]}"
                self._book(http, order, "return", "JD", back)
                order["phase"] = "returning"
        elif phase == "returning":
            r = http.post(
                f"/orders/{order['id']}/signoffs",
                json={"leg": "return", "signer_type": "self", "signer_name": "Customer"},
                headers=self._token(Role.CUSTOMER, order["customer"]),
            )
            if r.status_code == 201:
                http.post(
                    f"/orders/{order['id']}/transitions",
                    json={"to": "CLOSED", "reason": "customer confirmed"},
                    headers=self._token(Role.OPERATOR, "demo-operator"),
                )
                order["phase"] = "closed"

    @staticmethod
    async def _scan(
        nc: Client,
        order: dict[str, Any],
        ts: int,
        status: str,
        signer: dict[str, str] | None = None,
    ) -> None:
        scan: dict[str, Any] = {
            "kind": "scan",
            "shipment": order["tracking"],
            "carrier": order["carrier"],
            "ts": ts,
            "status": status,
        }
        if signer:
            scan["signer"] = signer
        await nc.jetstream().publish(f"sg.scan.{order['carrier']}", json.dumps(scan).encode())
