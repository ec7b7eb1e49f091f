"""The control plane's own durable consumers: scans move orders (and carry sign-offs), alerts
land on the order's timeline. Each is at least once; every effect carries an idempotency key
made from the message's stream sequence, so a redelivery changes nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from streamguard import _core
from streamguard.bus.links import Link
from streamguard.bus.operations import Operations, unbound
from streamguard.bus.orderlog import OrderRecord, idempotency_key
from streamguard.domain import signoffs as so
from streamguard.domain.orders import Actor, OrderEvent, OrderStatus, TransitionError

__all__ = [
    "ALERTS_DURABLE",
    "RELAY_DURABLE",
    "SCANS_DURABLE",
    "Consumer",
    "alert_handler",
    "relay_handler",
    "scan_handler",
]

log = logging.getLogger("streamguard.bus")

SCANS_DURABLE = "sg-control-scans"
ALERTS_DURABLE = "sg-control-alerts"
RELAY_DURABLE = "sg-control-relay"
_FORMATS = {
    "application/x-protobuf": "protobuf",
    "application/vnd.apache.arrow.stream": "arrow",
}

Handler = Callable[[Msg], Awaitable[None]]


def _json_events(msg: Msg) -> Iterator[Any]:
    """The events of a message, whatever its wire format (JSON object, array or NDJSON)."""
    fmt = _FORMATS.get((msg.headers or {}).get("Content-Type", ""), "json")
    data = msg.data
    if fmt != "json":
        data, _ = _core.convert(data, fmt, "json", "scan")
    with contextlib.suppress(msgspec.DecodeError):
        one = msgspec.json.decode(data)
        yield from (one if isinstance(one, list) else [one])
        return
    for line in data.splitlines():
        with contextlib.suppress(msgspec.DecodeError):
            yield msgspec.json.decode(line)


class Consumer:
    """One durable pull consumer and the task that feeds its messages to a handler."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        durable: str,
        handler: Handler,
        batch: int = 256,
        since: datetime | None = None,
        deliver_all: bool = False,
    ) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._durable = durable
        self._handler = handler
        self._batch = batch
        self._since = since
        self._deliver_all = deliver_all
        self._task: asyncio.Task[None] | None = None
        self.handled = 0
        self.failed = 0

    async def start(self) -> None:
        # A new durable starts where anything it could act on may begin (see ControlPlane);
        # an existing one resumes where it stopped, whatever this says.
        policy = api.DeliverPolicy.BY_START_TIME if self._since else api.DeliverPolicy.NEW
        config = api.ConsumerConfig(
            durable_name=self._durable,
            deliver_policy=api.DeliverPolicy.ALL if self._deliver_all else policy,
            opt_start_time=None if self._deliver_all else self._since,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30,
            max_ack_pending=10_000,
            filter_subject=self._subject,
        )
        sub = await self._js.pull_subscribe(
            self._subject, durable=self._durable, stream=self._stream, config=config
        )
        self._task = asyncio.create_task(self._run(sub), name=self._durable)

    async def _run(self, sub: Any) -> None:
        while True:
            try:
                messages = await sub.fetch(self._batch, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.ConnectionClosedError:
                return
            for msg in messages:
                try:
                    await self._handler(msg)
                    self.handled += 1
                    await msg.ack()
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    # Redelivered after a pause: a broker hiccup must not lose a scan.
                    self.failed += 1
                    if self.failed == 1 or self.failed % 100 == 0:
                        log.warning(
                            "%s: %s failed (%d so far): %r",
                            self._durable,
                            msg.subject,
                            self.failed,
                            e,
                        )
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _seq(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)


def _signer_type(signer: dict[str, Any]) -> so.SignerType:
    if signer.get("staff_id"):
        return so.SignerType.DEPOT_STAFF
    return so.SignerType(str(signer.get("type") or "self"))


def scan_handler(ops: Operations, now_ms: Callable[[], int], proxy_salt: bytes) -> Handler:
    """Scans of linked shipments: the first PICKED_UP of the inbound leg starts the transit; a
    DELIVERED scan with a ``signer`` is the sign-off of its leg."""

    async def handle(msg: Msg) -> None:
        seq = _seq(msg)
        for i, scan in enumerate(_json_events(msg)):
            if not isinstance(scan, dict):
                continue
            link = ops.links.get(str(scan.get("shipment", "")))
            if link is None or scan.get("kind", "scan") != "scan":
                continue
            key = idempotency_key("scan", f"{seq}:{i}")
            try:
                await _on_scan(ops, link, scan, key, now_ms, proxy_salt)
            except (TransitionError, ValueError) as e:
                # Not retryable: a scan the order's state or the record's rules refuse.
                log.warning("scan %s of %s ignored: %s", seq, link.order, e)

    return handle


async def _on_scan(
    ops: Operations,
    link: Link,
    scan: dict[str, Any],
    key: str,
    now_ms: Callable[[], int],
    proxy_salt: bytes,
) -> None:
    status = scan.get("status")
    actor = Actor(role="carrier", subject=f"scan:{link.carrier}", carrier=link.carrier)
    if status == "PICKED_UP" and link.leg == "inbound":
        current = await ops.log.get(link.order)
        if current is not None and current.order.status == OrderStatus.AWAITING_PICKUP:
            await ops.move(
                link.order,
                OrderStatus.INBOUND_IN_TRANSIT,
                actor,
                now_ms(),
                "first PICKED_UP scan of the inbound leg",
                idempotency=key,
            )
        return
    signer = scan.get("signer")
    if status != "DELIVERED" or not isinstance(signer, dict) or not signer.get("name"):
        return
    kind = _signer_type(signer)
    proxy = None
    if kind is so.SignerType.PROXY:
        proxy = so.proxy_identity(
            name=str(signer["name"]),
            document_type="carrier_recorded",
            document_number=str(signer.get("proxy_id") or "unknown"),
            relationship="not recorded by the carrier",
            salt=proxy_salt,
        )
    region = scan.get("location")
    request = unbound(
        id=f"SO-{key[:20].upper()}",
        leg=so.Leg(link.leg),
        signer_name=str(signer["name"]),
        signer_type=kind,
        ts_ms=_ts_ms(scan.get("ts"), now_ms),
        channel=so.Channel.CARRIER_SCAN,
        proxy=proxy,
        staff_id=signer.get("staff_id"),
        region=region if isinstance(region, str) and region.startswith("CN-") else None,
        carrier=link.carrier,
        shipment=str(scan["shipment"]),
    )
    await ops.sign_off(link.order, request, actor, idempotency=key)


def _ts_ms(ts: Any, now_ms: Callable[[], int]) -> int:
    return ts if isinstance(ts, int) and ts > 0 else now_ms()


def relay_handler(ops: Operations) -> Handler:
    """Booked legs, from the order log to the links and the engine: the outbox that makes
    "the engine hears of every shipment" hold through crashes and a late-starting engine."""
    decoder = msgspec.json.Decoder(OrderRecord)

    async def handle(msg: Msg) -> None:
        if not msg.data:
            return
        record = decoder.decode(msg.data)
        if record.event.type != "shipment":
            return
        await ops.link(record.order.id, record.event.data)
        await ops.tell_engine(record.order.id, record.event.data)

    return handle


def alert_handler(ops: Operations) -> Handler:
    """Alerts on a linked shipment become ``alert`` events of its order."""

    async def handle(msg: Msg) -> None:
        alert = msgspec.json.decode(msg.data)
        if not isinstance(alert, dict):
            return
        link = ops.links.get(str(alert.get("shipment", "")))
        if link is None:
            return
        summary = {
            k: alert.get(k)
            for k in ("id", "rule", "kind", "severity", "state", "ts", "metric", "value")
        }
        summary["leg"] = link.leg
        event = OrderEvent(
            type="alert",
            at_ms=int(alert.get("ts") or 0),
            actor=Actor.system("engine"),
            reason=f"{alert.get('severity')} alert {alert.get('rule')} ({alert.get('state')})",
            data=summary,
        )
        with contextlib.suppress(KeyError):
            await ops.log.append(
                link.order,
                lambda _order: event,
                idempotency=idempotency_key("alert", f"{alert.get('id')}:{alert.get('state')}"),
            )

    return handle
