"""The control plane under test: a real nats-server, real chDB, the API served by uvicorn on a
free port, and optionally the real engine (``ApiStack``, built by the ``api_stack`` fixture).

    def test_x(api_stack: ApiStack) -> None:
        r = api_stack.client.post("/orders", json=INTAKE, headers=api_stack.as_customer("c1"))
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from streamguard.api.server import ApiServer
from streamguard.bus.plane import ControlConfig
from streamguard.domain.auth import Principal, Role
from streamguard.keys import Keys
from streamguard.stack import NatsServer
from streamguard.store import Store, open_store
from streamguard.tokens import create_token

# A line per request drowns the failure in pytest's captured log.
logging.getLogger("httpx").setLevel(logging.WARNING)

# The carriers and gateways the stack's NATS knows as users.
API_CARRIERS = ("SF", "JD", "YTO", "ZTO", "STO", "EMS", "YUNDA", "DBL")
API_GATEWAYS = ("gw01",)

INTAKE: dict[str, Any] = {
    "customer": {
        "name": "Li Lei",
        "phone": "+86 138 0013 8000",
        "address": {"line": "1 Keyuan Road, Nanshan", "region": "CN-440305"},
    },
    "product": {
        "category": "phone",
        "brand": "Huawei",
        "model": "P60 Pro",
        "serial": "SN12345678",
        "product_code": "P60P-256",
        "batch": "B2026-09",
    },
    "purchase_channel": "jd.com",
    "fault_type": "screen",
    "description": "cracked after a fall",
    "service": "repair",
    "declared_value": "4999.00",
    "fragile_parts": ["screen"],
}


@dataclass
class ApiStack:
    nats: NatsServer
    store: Store
    api: ApiServer
    keys: Keys
    client: httpx.Client
    _secret: bytes = field(default=b"", repr=False)

    @property
    def url(self) -> str:
        return self.api.url

    def headers(self, role: Role, subject: str, carrier: str | None = None) -> dict[str, str]:
        if not self._secret:
            self._secret = self.keys.load_jwt_secret()
        token = create_token(self._secret, Principal(role=role, subject=subject, carrier=carrier))
        return {"Authorization": f"Bearer {token}"}

    def as_operator(self, subject: str = "op-1") -> dict[str, str]:
        return self.headers(Role.OPERATOR, subject)

    def as_depot(self, subject: str = "depot-1") -> dict[str, str]:
        return self.headers(Role.DEPOT, subject)

    def as_customer(self, subject: str) -> dict[str, str]:
        return self.headers(Role.CUSTOMER, subject)

    def as_carrier(self, carrier: str, subject: str = "bot") -> dict[str, str]:
        return self.headers(Role.CARRIER, subject, carrier)

    def create_order(self, customer: str, /, **changes: Any) -> dict[str, Any]:
        r = self.client.post(
            "/orders", json={**INTAKE, **changes}, headers=self.as_customer(customer)
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def book(self, order_id: str, leg: str, carrier: str, tracking: str) -> dict[str, Any]:
        r = self.client.post(
            f"/orders/{order_id}/shipments",
            json={"leg": leg, "carrier": carrier, "tracking": tracking},
            headers=self.as_operator(),
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body


def wait_for(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    """``check()``'s first truthy result, or AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


@contextlib.contextmanager
def api_stack_at(root: Path, *, rate_limit: int = 10_000, **config: Any) -> Iterator[ApiStack]:
    """A whole control plane under ``root`` (NATS, chDB, keys, API), stopped on exit;
    ``config``: more ControlConfig fields (``webhooks=WebhookSettings(...)``)."""
    with NatsServer(root / "var", API_CARRIERS, API_GATEWAYS) as server:
        keys = Keys.in_dir(root / "keys")
        control = ControlConfig(server.url, server.credentials("control"), keys, **config)
        with open_store(f"chdb://{root / 'ch'}") as store:
            api = ApiServer(control, store, rate_limit=rate_limit).start()
            try:
                with httpx.Client(base_url=api.url, timeout=30) as client:
                    yield ApiStack(server, store, api, keys, client)
            finally:
                api.stop()


@contextlib.contextmanager
def live_engine_for(api: ApiStack, state_dir: Path, *, stored: bool = False) -> Iterator[Any]:
    """The real engine on ``api``'s nats-server (the example rules, wall-clock time), stopped
    on exit; with ``stored``, its events and alerts are written into ``api.store`` as
    ``streamguard up`` does."""
    from streamguard.live import LiveEngine
    from streamguard.sim import example_rules
    from streamguard.store.writer import StoreWriter

    creds = api.nats.credentials("engine")
    engine = LiveEngine(
        api.nats.url,
        rules=example_rules(),
        time="wall",
        state_dir=str(state_dir),
        user=creds.user,
        password=creds.password,
        tick_ms=100,
        checkpoint_ms=200,
        store=stored,
    )
    engine.start()
    writer = StoreWriter(engine, api.store) if stored else None
    if writer is not None:
        writer.start()
    try:
        yield engine
    finally:
        engine.stop()
        if writer is not None:
            writer.stop()
