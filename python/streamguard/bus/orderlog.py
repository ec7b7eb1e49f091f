"""The order log: every order's events on its own JetStream subject, ``sg.order.<id>``.

Each message is one :class:`~streamguard.domain.orders.OrderEvent` together with the order as it
stands after it, so reading an order is one direct get of its subject's last message, and its
version (the ``ETag``) is that message's stream sequence. Writes are compare-and-set: a publish
carries ``Nats-Expected-Last-Subject-Sequence``, so the server refuses one made from a stale
read and no update is ever lost. ``Nats-Msg-Id`` carries the request's ``Idempotency-Key``, so a
retried POST lands once and answers with the first result: the server drops a repeated
``Nats-Msg-Id`` while it is the order's last event, and the ``sg_idempotency`` bucket (kept a
day) maps each key to its event once written, so a retry finds its result even after the
order has moved on. A retry that arrives between the event and its index entry (or after a
crash there) and is refused finds its event by its ``Nats-Msg-Id`` among the order's own.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from streamguard.bus.kv import bucket
from streamguard.domain.orders import Order, OrderEvent, apply

__all__ = [
    "IDEMPOTENCY_WINDOW_S",
    "ORDERS_STREAM",
    "Conflict",
    "IdempotencyMismatch",
    "OrderLog",
    "OrderRecord",
    "PreconditionFailed",
    "Versioned",
]

ORDERS_STREAM = "SG_ORDERS"
ORDERS_SUBJECTS = ["sg.order.>"]
#: Idempotency-Key (hashed with the caller) -> the sequence of the event it produced.
IDEMPOTENCY_BUCKET = "sg_idempotency"
#: How long a repeated Idempotency-Key answers with its first result.
IDEMPOTENCY_WINDOW_S = 24 * 3600
# A write from a fresh read rarely loses a race more than a few times; past this, say so.
MAX_CAS_RETRIES = 50
_WRONG_LAST_SEQUENCE = (10071, 10164)
_REQUEST_HASH = "Sg-Request-Hash"


class OrderRecord(msgspec.Struct, frozen=True):
    """One message of the log: the event and the order after it."""

    event: OrderEvent
    order: Order


@dataclass(frozen=True, slots=True)
class Versioned:
    """An order at a version (the stream sequence of its last event). ``replayed`` is set when
    an Idempotency-Key matched an earlier request and this is that request's result."""

    order: Order
    version: int
    event: OrderEvent | None = None
    replayed: bool = False


class PreconditionFailed(Exception):
    """``If-Match`` named a version that is no longer current."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the order is at version {current}")
        self.current = current


class Conflict(Exception):
    """The write kept losing races (or found the order gone)."""


class IdempotencyMismatch(Exception):
    """An Idempotency-Key was reused with a different request."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(OrderRecord)


def subject_of(order_id: str) -> str:
    return f"sg.order.{order_id}"


def request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def idempotency_key(caller: str, key: str) -> str:
    """The stored form of a caller's Idempotency-Key (a KV key and a Nats-Msg-Id)."""
    return hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()


class OrderLog:
    """Orders in ``SG_ORDERS``. One instance per connection; safe to share between tasks."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._idem_kv: KeyValue | None = None

    async def ensure(self) -> None:
        """Create the stream if it is missing (file storage, direct gets on)."""
        config = api.StreamConfig(
            name=ORDERS_STREAM,
            subjects=ORDERS_SUBJECTS,
            storage=api.StorageType.FILE,
            allow_direct=True,
            duplicate_window=IDEMPOTENCY_WINDOW_S,
        )
        try:
            await self._js.stream_info(ORDERS_STREAM)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(config)
        self._idem_kv = await bucket(
            self._js, IDEMPOTENCY_BUCKET, ttl=IDEMPOTENCY_WINDOW_S, history=1
        )

    async def get(self, order_id: str) -> Versioned | None:
        try:
            msg = await self._js.get_last_msg(ORDERS_STREAM, subject_of(order_id), direct=True)
        except nats.js.errors.NotFoundError:
            return None
        record = _decoder.decode(msg.data or b"")
        return Versioned(record.order, int(msg.seq or 0), record.event)

    async def timeline(self, order_id: str) -> list[tuple[int, OrderEvent]]:
        """Every event of the order, oldest first, with its version."""
        return [
            (int(msg.seq or 0), _decoder.decode(msg.data or b"").event)
            async for msg in self._messages(order_id)
        ]

    async def _messages(self, order_id: str) -> AsyncIterator[api.RawStreamMsg]:
        """The order's messages, oldest first (one direct get each)."""
        seq = 0
        while True:
            try:
                msg = await self._js.get_msg(
                    ORDERS_STREAM, seq=seq + 1, subject=subject_of(order_id), next=True, direct=True
                )
            except nats.js.errors.NotFoundError:
                return
            seq = int(msg.seq or 0)
            yield msg

    async def create(
        self, event: OrderEvent, *, idempotency: str | None = None, body_hash: str = ""
    ) -> Versioned:
        """Append the ``created`` event of a new order (refused if the subject has any)."""
        if idempotency:
            replay = await self._recorded(idempotency, body_hash)
            if replay is not None:
                return replay
        order = apply(None, event)
        return await self._publish(order, event, 0, idempotency, body_hash)

    async def append(
        self,
        order_id: str,
        make_event: Callable[[Order], OrderEvent],
        *,
        expected: int | None = None,
        idempotency: str | None = None,
        body_hash: str = "",
    ) -> Versioned:
        """Append the event ``make_event`` derives from the current order.

        With ``expected`` (the client's ``If-Match``), a stale version is
        :class:`PreconditionFailed`. Without it, a lost race re-reads and re-derives, so the
        graph is checked against the state the event really follows. ``make_event`` may raise
        (an illegal transition); a missing order is ``KeyError``.
        """
        for _ in range(MAX_CAS_RETRIES):
            if idempotency:
                replay = await self._recorded(idempotency, body_hash, order_id)
                if replay is not None:
                    return replay
            current = await self.get(order_id)
            if current is None:
                raise KeyError(order_id)
            try:
                if expected is not None and current.version != expected:
                    raise PreconditionFailed(current.version)
                event = make_event(current.order)
            except Exception:
                # A retry of a request that landed a moment ago, before its index entry was
                # written, answers with that result rather than the refusal it now meets.
                replay = await self._landed(order_id, idempotency, body_hash)
                if replay is not None:
                    return replay
                raise
            order = apply(current.order, event)
            try:
                return await self._publish(order, event, current.version, idempotency, body_hash)
            except nats.js.errors.APIError as e:
                if e.err_code not in _WRONG_LAST_SEQUENCE:
                    raise
                if expected is not None:
                    replay = await self._landed(order_id, idempotency, body_hash)
                    if replay is not None:
                        return replay
                    latest = await self.get(order_id)
                    raise PreconditionFailed(latest.version if latest else 0) from None
            await asyncio.sleep(0)
        raise Conflict(f"order {order_id} changed {MAX_CAS_RETRIES} times while writing")

    async def _publish(
        self,
        order: Order,
        event: OrderEvent,
        last: int,
        idempotency: str | None,
        body_hash: str,
    ) -> Versioned:
        headers: dict[str, Any] = {api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(last)}
        if idempotency:
            headers[api.Header.MSG_ID.value] = idempotency
            headers[_REQUEST_HASH] = body_hash
        payload = _encoder.encode(OrderRecord(event, order))
        ack = await self._js.publish(subject_of(order.id), payload, headers=headers)
        if ack.duplicate:
            # A new order's id is drawn afresh by each attempt; an event's is the order's own.
            return await self._first_result(int(ack.seq), body_hash, order.id if last else None)
        if idempotency:
            await self._record(idempotency, int(ack.seq))
        return Versioned(order, int(ack.seq), event)

    async def _first_result(
        self, seq: int, body_hash: str, order_id: str | None = None
    ) -> Versioned:
        """The result of the event at ``seq``, the first with this key. ``order_id``: the order
        the repeated request is about (the key's first use must have been about it too)."""
        msg = await self._js.get_msg(ORDERS_STREAM, seq=seq, direct=True)
        mismatch = IdempotencyMismatch(
            "this Idempotency-Key was used before with a different request"
        )
        if (msg.headers or {}).get(_REQUEST_HASH, "") != body_hash:
            raise mismatch
        record = _decoder.decode(msg.data or b"")
        if order_id is not None and record.order.id != order_id:
            raise mismatch
        return Versioned(record.order, seq, record.event, replayed=True)

    async def _landed(
        self, order_id: str, idempotency: str | None, body_hash: str
    ) -> Versioned | None:
        """The first result of ``idempotency`` found among the order's own events (the
        header the server deduplicates on), for when the index has no entry for it yet."""
        if not idempotency:
            return None
        async for msg in self._messages(order_id):
            if (msg.headers or {}).get(api.Header.MSG_ID.value) == idempotency:
                return await self._first_result(int(msg.seq or 0), body_hash, order_id)
        return None

    async def _recorded(
        self, idempotency: str, body_hash: str, order_id: str | None = None
    ) -> Versioned | None:
        """The first result of a repeated Idempotency-Key, from the index, else ``None``."""
        try:
            entry = await self._idem().get(idempotency)
        except nats.js.errors.KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return await self._first_result(int(entry.value), body_hash, order_id)

    async def _record(self, idempotency: str, seq: int) -> None:
        await self._idem().put(idempotency, str(seq).encode())

    def _idem(self) -> KeyValue:
        if self._idem_kv is None:
            raise Conflict("the order log is not ready: call ensure() first")
        return self._idem_kv
