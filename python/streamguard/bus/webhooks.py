"""Webhook subscriptions and the fan-out that queues their deliveries.

Subscriptions are documents in NATS KV ``sg_webhooks`` (one key per subscription id); every
change is a compare-and-set on the key's revision, so the API and any number of delivery
workers counting failures never lose one another's updates.

The fan-out is a durable consumer of the order log (``sg-control-webhook-fanout``): each order
event that is a webhook event (``domain.webhooks.webhook_events``) becomes one message per
interested subscription on ``sg.webhook.<subscription id>`` in the work-queue stream
``SG_WEBHOOKS``, with the delivery id as ``Nats-Msg-Id``, so a fan-out repeated after a crash
queues nothing twice. The message's data is the exact body every attempt sends
(``bus.deliveries`` delivers them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from streamguard.bus.clock import now_ms
from streamguard.bus.consumers import Handler
from streamguard.bus.kv import bucket
from streamguard.bus.orderlog import OrderRecord
from streamguard.domain.webhooks import Subscription, delivery_id, webhook_events
from streamguard.errors import ConfigError

__all__ = [
    "DELIVERY_DURABLE",
    "FANOUT_DURABLE",
    "SUBJECT_PREFIX",
    "WEBHOOKS_BUCKET",
    "WEBHOOKS_STREAM",
    "Directory",
    "SubscriptionStore",
    "WebhookSettings",
    "ensure_stream",
    "fanout_handler",
    "purge_queued",
]

log = logging.getLogger("streamguard.webhooks")

WEBHOOKS_BUCKET = "sg_webhooks"
WEBHOOKS_STREAM = "SG_WEBHOOKS"
SUBJECT_PREFIX = "sg.webhook."
FANOUT_DURABLE = "sg-control-webhook-fanout"
DELIVERY_DURABLE = "sg-control-webhooks"
#: A repeated fan-out (the order log's message redelivered after a crash) is dropped by the
#: server within this window; it must outlast the fan-out's ack wait and a restart.
DUPLICATE_WINDOW_S = 3600
# Headers of a queued delivery (its body is the message's data).
SUBSCRIPTION_HEADER = "Sg-Webhook-Subscription"
EVENT_HEADER = "Sg-Webhook-Event"
ORDER_HEADER = "Sg-Webhook-Order"
SOURCE_HEADER = "Sg-Webhook-Source"
# A write from a fresh read rarely loses a race more than a few times; past this, say so.
_MAX_CAS_RETRIES = 50
_ENV = "STREAMGUARD_WEBHOOK_"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """How deliveries are made and retried. ``ack_wait_s`` (default ``timeout_s`` + 20) is how
    long a delivery may be in a worker's hands before JetStream gives it to another: after a
    crash, the delivery that was in flight is retried that long after it started."""

    timeout_s: float = 10.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 600.0
    max_failures: int = 10
    ack_wait_s: float | None = None
    #: Deliveries in flight at once per worker.
    concurrency: int = 32
    #: How long the previous secret still signs after a rotation.
    rotation_grace_s: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.timeout_s <= 300:
            raise ConfigError(f"webhook timeout_s must be in (0, 300], got {self.timeout_s}")
        if not 0 < self.backoff_base_s <= self.backoff_cap_s:
            raise ConfigError("webhook backoff: need 0 < backoff_base_s <= backoff_cap_s")
        if self.max_failures < 1 or self.concurrency < 1:
            raise ConfigError("webhook max_failures and concurrency must be at least 1")
        if self.ack_wait_s is not None and self.ack_wait_s < self.timeout_s + 1:
            raise ConfigError("webhook ack_wait_s must exceed timeout_s by at least 1 s")

    @property
    def ack_wait(self) -> float:
        return self.ack_wait_s if self.ack_wait_s is not None else self.timeout_s + 20

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        """The defaults, overridden by ``$STREAMGUARD_WEBHOOK_<FIELD>`` (``TIMEOUT_S``,
        ``BACKOFF_BASE_S``, ``BACKOFF_CAP_S``, ``MAX_FAILURES``, ``ACK_WAIT_S``,
        ``CONCURRENCY``, ``ROTATION_GRACE_S``)."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, float | int] = {}
        for name, kind in (
            ("timeout_s", float),
            ("backoff_base_s", float),
            ("backoff_cap_s", float),
            ("max_failures", int),
            ("ack_wait_s", float),
            ("concurrency", int),
            ("rotation_grace_s", float),
        ):
            raw = env.get(_ENV + name.upper())
            if raw:
                try:
                    kwargs[name] = kind(raw)
                except ValueError:
                    raise ConfigError(f"${_ENV}{name.upper()}: not a number: {raw!r}") from None
        return cls(**kwargs)  # type: ignore[arg-type]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Subscription)


class SubscriptionStore:
    """The subscription documents in KV ``sg_webhooks``."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> SubscriptionStore:
        return cls(await bucket(js, WEBHOOKS_BUCKET, history=1, direct=True))

    async def _entry(self, sub_id: str) -> KeyValue.Entry | None:
        try:
            entry = await self.kv.get(sub_id)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.InvalidKeyError):
            return None
        return entry if entry.value else None

    async def get(self, sub_id: str) -> Subscription | None:
        entry = await self._entry(sub_id)
        return _decoder.decode(entry.value) if entry is not None and entry.value else None

    async def all(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        watcher = await self.kv.watchall(ignore_deletes=True)
        found: list[Subscription] = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.value:
                    found.append(_decoder.decode(entry.value))
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
        return sorted(found, key=lambda s: (s.created_ms, s.id))

    async def create(self, sub: Subscription) -> bool:
        """Store a new subscription; False when its id was ever used (a deleted subscription
        leaves its delete marker, so a replayed create does not bring it back)."""
        try:
            # Expected last revision 0: the key has no history at all.
            await self.kv.update(sub.id, _encoder.encode(sub), last=0)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def change(
        self, sub_id: str, change: Callable[[Subscription], Subscription]
    ) -> Subscription | None:
        """Apply ``change`` to the current document, compare-and-set on its revision, retried
        from a fresh read when another writer won; the result (None: no such subscription)."""
        for _ in range(_MAX_CAS_RETRIES):
            entry = await self._entry(sub_id)
            if entry is None or not entry.value:
                return None
            current = _decoder.decode(entry.value)
            changed = change(current)
            if changed == current:
                return current
            try:
                await self.kv.update(sub_id, _encoder.encode(changed), last=entry.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                await asyncio.sleep(0)
                continue
            return changed
        raise ConfigError(f"webhook {sub_id} changed {_MAX_CAS_RETRIES} times while writing")

    async def delete(self, sub_id: str) -> bool:
        entry = await self._entry(sub_id)
        if entry is None:
            return False
        await self.kv.delete(sub_id)
        return True


async def ensure_stream(js: JetStreamContext) -> None:
    """The work queue of deliveries: each message is removed once acked (or terminated)."""
    config = api.StreamConfig(
        name=WEBHOOKS_STREAM,
        subjects=[f"{SUBJECT_PREFIX}>"],
        retention=api.RetentionPolicy.WORK_QUEUE,
        storage=api.StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
    )
    try:
        await js.stream_info(WEBHOOKS_STREAM)
    except nats.js.errors.NotFoundError:
        with contextlib.suppress(nats.js.errors.BadRequestError):  # created meanwhile
            await js.add_stream(config)


async def purge_queued(js: JetStreamContext, sub_id: str) -> None:
    """Drop a deleted subscription's queued deliveries (there is nowhere to send them)."""
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.purge_stream(WEBHOOKS_STREAM, subject=f"{SUBJECT_PREFIX}{sub_id}")


@dataclass
class Directory:
    """Every subscription, kept current by a KV watch, for the fan-out to match events with."""

    js: JetStreamContext
    kv: KeyValue
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    revision: int = 0
    _synced_at: int = 0
    _task: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sg-webhooks-directory")
        await asyncio.wait_for(self._ready.wait(), timeout=30)

    async def _run(self) -> None:
        watcher = await self.kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    self._ready.set()
                    continue
                self.revision = max(self.revision, int(entry.revision or 0))
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self.subscriptions.pop(entry.key, None)
                    continue
                try:
                    self.subscriptions[entry.key] = _decoder.decode(entry.value)
                except msgspec.DecodeError as e:
                    log.error("webhook %s: unreadable document ignored: %s", entry.key, e)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def sync_for(self, at_ms: int, margin_ms: int = 1_000) -> None:
        """Make sure every subscription written before an event at ``at_ms`` is known: a
        subscription created a moment before an order change must get it, even when this
        watch has not heard of it yet. Events older than the last sync need no new one."""
        if at_ms + margin_ms < self._synced_at:
            return
        started = now_ms()
        info = await self.js.stream_info(f"KV_{WEBHOOKS_BUCKET}")
        last = int(info.state.last_seq or 0)
        deadline = asyncio.get_running_loop().time() + 5
        while self.revision < last and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.002)
        if self.revision < last:
            log.warning("webhook directory at revision %d, bucket at %d", self.revision, last)
        self._synced_at = started

    def matching(self, event_type: str, at_ms: int) -> list[Subscription]:
        """Enabled subscriptions to ``event_type`` that existed when the event happened."""
        return [
            s
            for s in self.subscriptions.values()
            if s.enabled and event_type in s.event_types and s.created_ms <= at_ms
        ]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _stored_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def fanout_handler(js: JetStreamContext, directory: Directory) -> Handler:
    """Order-log messages -> one queued delivery per (interested subscription, webhook event).
    Raising leaves the message to be redelivered; what was queued already is deduplicated."""
    decoder = msgspec.json.Decoder(OrderRecord)

    async def handle(msg: Msg) -> None:
        if not msg.data:
            return
        record = decoder.decode(msg.data)
        events = webhook_events(record.event, record.order)
        if not events:
            return
        stored_ms = _stored_ms(msg.metadata.timestamp)
        await directory.sync_for(stored_ms)
        seq = int(msg.metadata.sequence.stream)
        for event_type, data in events:
            for sub in directory.matching(event_type, stored_ms):
                did = delivery_id(sub.id, seq, event_type)
                body = _encoder.encode(
                    {
                        "id": did,
                        "type": event_type,
                        "at_ms": record.event.at_ms,
                        "order_id": record.order.id,
                        "version": seq,
                        "data": data,
                    }
                )
                headers = {
                    api.Header.MSG_ID.value: did,
                    SUBSCRIPTION_HEADER: sub.id,
                    EVENT_HEADER: event_type,
                    ORDER_HEADER: record.order.id,
                    SOURCE_HEADER: str(seq),
                }
                await js.publish(
                    f"{SUBJECT_PREFIX}{sub.id}", body, stream=WEBHOOKS_STREAM, headers=headers
                )

    return handle
