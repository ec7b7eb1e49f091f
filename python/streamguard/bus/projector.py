"""SG_ORDERS -> ClickHouse: the order events (with the order after each) and the sealed
sign-offs, for timelines, listings, reports and verification.

At least once: a batch of messages is inserted with its stream sequence range as the
deduplication token, then acked; a crash in between re-inserts the same rows under the same
token, which ClickHouse drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
import nats.errors
import pyarrow as pa
from nats.js import JetStreamContext, api

from streamguard.bus.orderlog import ORDERS_STREAM, OrderRecord
from streamguard.domain.signoffs import SealedSignOff
from streamguard.store import signoffs as signoff_store
from streamguard.store.control_tables import CLAIM_EVENTS, ORDER_EVENTS
from streamguard.store.store import Store, batch_token

__all__ = ["PROJECTOR_DURABLE", "Projector", "claim_event_row", "order_event_row"]

log = logging.getLogger("streamguard.bus")

PROJECTOR_DURABLE = "sg-control-store"
_decoder = msgspec.json.Decoder(OrderRecord)


def order_event_row(version: int, record: OrderRecord) -> dict[str, Any]:
    """One ``order_events`` row."""
    event, order = record.event, record.order
    intake = order.intake
    inbound = order.shipments.get("inbound", {})
    back = order.shipments.get("return", {})
    return {
        "order_id": order.id,
        "version": version,
        "type": event.type,
        "at": event.at_ms,
        "actor_role": event.actor.role,
        "actor_subject": event.actor.subject,
        "actor_carrier": event.actor.carrier,
        "from_status": event.from_status.value if event.from_status else None,
        "to_status": event.to_status.value if event.to_status else None,
        "reason": event.reason,
        "data": msgspec.json.encode(event.data).decode(),
        "status": order.status.value,
        "customer_id": order.customer_id,
        "customer_region": intake.customer.address.region,
        "product_category": intake.product.category,
        "product_brand": intake.product.brand,
        "product_model": intake.product.model,
        "product_code": intake.product.product_code,
        "product_batch": intake.product.batch,
        "fault_type": intake.fault_type,
        "service": intake.service,
        "declared_value_fen": order.declared_value_fen,
        "inbound_shipment": inbound.get("shipment"),
        "inbound_carrier": inbound.get("carrier"),
        "return_shipment": back.get("shipment"),
        "return_carrier": back.get("carrier"),
        "created_at": order.created_ms,
        "alerts": order.alerts,
        "signoffs": len(order.signoffs),
    }


def claim_event_row(version: int, record: OrderRecord) -> dict[str, Any]:
    """One ``claim_events`` row, from a ``claim`` event whose ``data`` carries the claim event
    (``event``) and the claim after it (``claim``, as :class:`~streamguard.domain.claims.Claim`
    builtins)."""
    event, claim = record.event.data["event"], record.event.data["claim"]
    history = claim["history"]
    return {
        "claim_id": claim["id"],
        "order_id": claim["order_id"],
        "version": version,
        "at": event["at_ms"],
        "event_type": event["type"],
        "actor_role": event["actor"]["role"],
        "actor_subject": event["actor"]["subject"],
        "from_status": event.get("from_status"),
        "to_status": event["to_status"],
        "reason": event.get("reason") or "",
        "kind": claim["kind"],
        "status": claim["status"],
        "claimed_fen": claim["claimed_fen"],
        "approved_fen": claim.get("approved_fen"),
        "paid_fen": claim.get("paid_fen"),
        "coverage_fen": claim["coverage_fen"],
        "policy_id": claim["policy_id"],
        "leg": claim.get("leg"),
        "custody_holder": claim.get("custody_holder"),
        "first_anomaly_at": claim.get("first_anomaly_ms"),
        "filed_at": history[0][1],
    }


_TS = pa.timestamp("ms", tz="UTC")
_FIELDS: list[pa.Field[Any]] = [
    pa.field("order_id", pa.string()),
    pa.field("version", pa.uint64()),
    pa.field("type", pa.string()),
    pa.field("at", _TS),
    pa.field("actor_role", pa.string()),
    pa.field("actor_subject", pa.string()),
    pa.field("actor_carrier", pa.string()),
    pa.field("from_status", pa.string()),
    pa.field("to_status", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("data", pa.string()),
    pa.field("status", pa.string()),
    pa.field("customer_id", pa.string()),
    pa.field("customer_region", pa.string()),
    pa.field("product_category", pa.string()),
    pa.field("product_brand", pa.string()),
    pa.field("product_model", pa.string()),
    pa.field("product_code", pa.string()),
    pa.field("product_batch", pa.string()),
    pa.field("fault_type", pa.string()),
    pa.field("service", pa.string()),
    pa.field("declared_value_fen", pa.int64()),
    pa.field("inbound_shipment", pa.string()),
    pa.field("inbound_carrier", pa.string()),
    pa.field("return_shipment", pa.string()),
    pa.field("return_carrier", pa.string()),
    pa.field("created_at", _TS),
    pa.field("alerts", pa.uint32()),
    pa.field("signoffs", pa.uint32()),
]
_EVENT_SCHEMA = pa.schema(_FIELDS)
_CLAIM_FIELDS: list[pa.Field[Any]] = [
    pa.field("claim_id", pa.string()),
    pa.field("order_id", pa.string()),
    pa.field("version", pa.uint64()),
    pa.field("at", _TS),
    pa.field("event_type", pa.string()),
    pa.field("actor_role", pa.string()),
    pa.field("actor_subject", pa.string()),
    pa.field("from_status", pa.string()),
    pa.field("to_status", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("status", pa.string()),
    pa.field("claimed_fen", pa.int64()),
    pa.field("approved_fen", pa.int64()),
    pa.field("paid_fen", pa.int64()),
    pa.field("coverage_fen", pa.int64()),
    pa.field("policy_id", pa.string()),
    pa.field("leg", pa.string()),
    pa.field("custody_holder", pa.string()),
    pa.field("first_anomaly_at", _TS),
    pa.field("filed_at", _TS),
]
_CLAIM_SCHEMA = pa.schema(_CLAIM_FIELDS)


class Projector:
    """Keeps ClickHouse's copy of SG_ORDERS current. ``lag`` is how far behind it is."""

    def __init__(self, js: JetStreamContext, store: Store, batch: int = 500) -> None:
        self._js = js
        self._store = store
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self.stored = 0
        self.last_seq = 0

    async def start(self) -> None:
        config = api.ConsumerConfig(
            durable_name=PROJECTOR_DURABLE,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.ALL,
            ack_wait=60,
            max_ack_pending=20_000,
        )
        sub = await self._js.pull_subscribe(
            "sg.order.>", durable=PROJECTOR_DURABLE, stream=ORDERS_STREAM, config=config
        )
        self._task = asyncio.create_task(self._run(sub), name=PROJECTOR_DURABLE)

    async def _run(self, sub: Any) -> None:
        while True:
            try:
                messages = await sub.fetch(self._batch, timeout=0.2)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.ConnectionClosedError:
                return
            if not messages:
                continue
            try:
                await asyncio.to_thread(self._store_batch, messages)
            except Exception:
                log.exception("storing %d order events failed; retrying", len(messages))
                await asyncio.sleep(1)
                continue
            await messages[-1].ack()
            self.stored += len(messages)
            self.last_seq = int(messages[-1].metadata.sequence.stream)

    def _store_batch(self, messages: list[Any]) -> None:
        rows: list[dict[str, Any]] = []
        sealed: list[SealedSignOff] = []
        claims: list[dict[str, Any]] = []
        for msg in messages:
            if not msg.data:
                continue
            record = _decoder.decode(msg.data)
            rows.append(order_event_row(int(msg.metadata.sequence.stream), record))
            if record.event.type == "signoff":
                sealed.append(msgspec.convert(record.event.data["sealed"], SealedSignOff))
            elif record.event.type == "claim":
                claims.append(claim_event_row(int(msg.metadata.sequence.stream), record))
        first = int(messages[0].metadata.sequence.stream)
        last = int(messages[-1].metadata.sequence.stream)
        token = batch_token(ORDERS_STREAM, PROJECTOR_DURABLE, first, last)
        if rows:
            self._store.insert_arrow(
                ORDER_EVENTS, pa.RecordBatch.from_pylist(rows, schema=_EVENT_SCHEMA), token
            )
        if sealed:
            signoff_store.insert_signoffs(self._store, sealed, f"{token}:signoffs")
        if claims:
            self._store.insert_arrow(
                CLAIM_EVENTS,
                pa.RecordBatch.from_pylist(claims, schema=_CLAIM_SCHEMA),
                f"{token}:claims",
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
