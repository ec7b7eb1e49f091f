"""The control plane's runtime: one NATS connection, the order log, the shipment links, the
consumers, and (where this process owns storage) the projector into ClickHouse.

``ControlPlane.start`` is what ``streamguard up`` and ``streamguard api`` run before serving;
the API reads everything it needs from the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from streamguard.bus.clock import now_ms
from streamguard.bus.consumers import (
    ALERTS_DURABLE,
    RELAY_DURABLE,
    SCANS_DURABLE,
    Consumer,
    alert_handler,
    relay_handler,
    scan_handler,
)
from streamguard.bus.deliveries import Webhooks
from streamguard.bus.lanes import LaneWatch
from streamguard.bus.links import ShipmentLinks
from streamguard.bus.operations import Operations
from streamguard.bus.orderlog import ORDERS_STREAM, OrderLog
from streamguard.bus.projector import Projector
from streamguard.bus.returns import RETURNS_DURABLE, returns_handler
from streamguard.bus.tariffs import TariffWatch
from streamguard.bus.webhooks import WebhookSettings
from streamguard.domain.regions import DEFAULT_DEPOT_REGION, check_region
from streamguard.domain.signoffs import PlatformSigner
from streamguard.errors import NatsError
from streamguard.keys import Keys
from streamguard.stack import NatsCredentials
from streamguard.store.store import Store

__all__ = ["DEFAULT_DEPOT_REGION", "ControlConfig", "ControlPlane", "now_ms"]

EVENTS_STREAM = "SG_EVENTS"
ALERTS_STREAM = "SG_ALERTS"


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """How the control plane reaches NATS, where its keys are, and where the depot is."""

    nats_url: str
    credentials: NatsCredentials | None
    keys: Keys
    depot_region: str = DEFAULT_DEPOT_REGION
    #: Consume scans and alerts (one API replica per deployment is enough, more share them).
    consumers: bool = True
    #: Webhook delivery: timeout, backoff, when to disable (the worker runs with consumers).
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)


@dataclass(slots=True)
class ControlPlane:
    config: ControlConfig
    nc: NatsClient
    js: JetStreamContext
    log: OrderLog
    links: ShipmentLinks
    ops: Operations
    jwt_secret: bytes
    proxy_salt: bytes
    store: Store | None = None
    projector: Projector | None = None
    consumers: list[Consumer] = field(default_factory=list)
    _waiter: asyncio.Task[None] | None = None
    tariff_watch: TariffWatch | None = None
    lane_watch: LaneWatch | None = None
    webhooks: Webhooks | None = None

    @classmethod
    async def start(cls, config: ControlConfig, store: Store | None = None) -> ControlPlane:
        """Connect, create what is missing (stream, buckets, consumers) and start consuming.
        With ``store``, this process also keeps ClickHouse's copy of the orders."""
        check_region(config.depot_region)
        jwt_secret = config.keys.load_jwt_secret(create=True)
        proxy_salt = config.keys.load_proxy_salt(create=True)
        signer = PlatformSigner.load_or_create(config.keys.signing_key)
        kwargs: dict[str, Any] = (
            dict(config.credentials.connect_kwargs()) if config.credentials else {}
        )
        try:
            nc = await nats.connect(
                config.nats_url.split(","),
                name="streamguard-control",
                max_reconnect_attempts=-1,
                **kwargs,
            )
        except Exception as e:
            raise NatsError(
                f"control plane cannot connect to NATS at {config.nats_url}: {e}"
            ) from e
        js = nc.jetstream(timeout=10)
        log = OrderLog(js)
        await log.ensure()
        links = await ShipmentLinks.open(js)
        ops = Operations(log, links, js, signer, config.depot_region)
        plane = cls(config, nc, js, log, links, ops, jwt_secret, proxy_salt, store)
        try:
            plane.tariff_watch = await TariffWatch.start(js, ops)
            plane.lane_watch = LaneWatch.start(js)
            ops.lanes = plane.lane_watch
            if store is not None:
                plane.projector = Projector(js, store)
                await plane.projector.start()
            if config.consumers:
                await plane._start_consumers()
                plane.webhooks = await Webhooks.start(js, store, config.webhooks)
        except BaseException:
            await plane.stop()
            raise
        return plane

    async def _start_consumers(self) -> None:
        """Consume scans and alerts, and relay booked legs to the engine. Each waits, in the
        background, for the engine's stream it needs, so the API can start first."""
        # Nothing before the first shipment link can concern an order: a new consumer starts
        # when the links bucket was created, so scans published before it existed are not lost.
        since = await self.links.created()
        wanted: list[tuple[str, Callable[[], Consumer]]] = [
            (
                EVENTS_STREAM,
                lambda: Consumer(
                    self.js,
                    EVENTS_STREAM,
                    "sg.scan.>",
                    SCANS_DURABLE,
                    scan_handler(self.ops, now_ms, self.proxy_salt),
                    since=since,
                ),
            ),
            (
                ALERTS_STREAM,
                lambda: Consumer(
                    self.js,
                    ALERTS_STREAM,
                    "sg.alert.>",
                    ALERTS_DURABLE,
                    alert_handler(self.ops),
                    since=since,
                ),
            ),
            # Returns are booked from the order log; their legs go to the engine's stream.
            (
                EVENTS_STREAM,
                lambda: Consumer(
                    self.js,
                    ORDERS_STREAM,
                    "sg.order.>",
                    RETURNS_DURABLE,
                    returns_handler(self.ops),
                    deliver_all=True,
                ),
            ),
            # The relay reads the order log but publishes into the engine's stream.
            (
                EVENTS_STREAM,
                lambda: Consumer(
                    self.js,
                    ORDERS_STREAM,
                    "sg.order.>",
                    RELAY_DURABLE,
                    relay_handler(self.ops),
                    deliver_all=True,
                ),
            ),
        ]
        if not await self._start_present(wanted):
            logging.getLogger("streamguard.bus").info("waiting for the engine's streams")
            self._waiter = asyncio.create_task(self._wait_for_streams(wanted))

    async def _start_present(self, wanted: list[tuple[str, Callable[[], Consumer]]]) -> bool:
        """Start the consumers whose streams exist; True once none is left to start."""
        present = {info.config.name for info in await self.js.streams_info()}
        for item in [w for w in wanted if w[0] in present]:
            wanted.remove(item)
            consumer = item[1]()
            await consumer.start()
            self.consumers.append(consumer)
        return not wanted

    async def _wait_for_streams(self, wanted: list[tuple[str, Callable[[], Consumer]]]) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                if await self._start_present(wanted):
                    return
            except Exception:
                logging.getLogger("streamguard.bus").exception("starting consumers failed")

    @property
    def signer(self) -> PlatformSigner:
        return self.ops.signer

    async def health(self) -> dict[str, Any]:
        """NATS, storage and the engine, each ``ok`` or why not."""
        report: dict[str, Any] = {}
        report["nats"] = {
            "ok": self.nc.is_connected,
            "url": self.nc.connected_url.netloc if self.nc.connected_url else None,
        }
        engine: dict[str, Any] = {"ok": False}
        with contextlib.suppress(Exception):
            info = await self.js.consumers_info(EVENTS_STREAM)
            durables = [c for c in info if str(c.name).startswith("sg-engine")]
            engine = {
                "ok": bool(durables),
                "workers": len(durables),
                "pending": sum(int(c.num_pending or 0) for c in durables),
            }
        report["engine"] = engine
        if self.store is None:
            report["storage"] = {"ok": None, "detail": "not attached to this process"}
        else:
            try:
                self.store.rows("SELECT 1")
                report["storage"] = {
                    "ok": True,
                    "projected": self.projector.stored if self.projector else 0,
                }
            except Exception as e:
                report["storage"] = {"ok": False, "detail": str(e)}
        report["ok"] = bool(report["nats"]["ok"] and report["storage"]["ok"] is not False)
        return report

    async def stop(self) -> None:
        if self._waiter is not None:
            self._waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._waiter
        for consumer in self.consumers:
            await consumer.stop()
        if self.projector is not None:
            await self.projector.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.tariff_watch is not None:
            await self.tariff_watch.stop()
        if self.lane_watch is not None:
            await self.lane_watch.stop()
        await self.links.close()
        # close, not drain: every task that could still use the connection has stopped, and a
        # drain can wait on the cancelled pull subscriptions' inboxes.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.close(), timeout=5)


def var_keys(var_dir: Path) -> Keys:
    return Keys.from_env(var_dir)
