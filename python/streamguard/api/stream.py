"""``/stream``: Server-Sent Events for the operator console — every order change and every
alert, as they happen, from any API replica (they come from NATS, not from this process)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from streamguard.api.auth import current_principal, requires
from streamguard.api.common import plane_of
from streamguard.api.problems import ERRORS
from streamguard.bus.orderlog import OrderRecord
from streamguard.domain.auth import Role

__all__ = ["QUEUE_LIMIT", "stream"]

#: Events buffered per client; a client that falls further behind is told it lost some.
QUEUE_LIMIT = 1_000
# A comment line this often keeps proxies from closing an idle stream.
_KEEPALIVE_S = 15.0
_records = msgspec.json.Decoder(OrderRecord)


def _order_change(data: bytes) -> bytes | None:
    if not data:
        return None
    record = _records.decode(data)
    event, order = record.event, record.order
    return msgspec.json.encode(
        {
            "order_id": order.id,
            "type": event.type,
            "at_ms": event.at_ms,
            "from_status": event.from_status,
            "to_status": event.to_status,
            "status": order.status,
            "reason": event.reason,
        }
    )


@get(
    "/stream",
    guards=[requires(Role.OPERATOR, Role.DEPOT)],
    tags=["stream"],
    responses=ERRORS,
    summary="Live order changes and alerts (text/event-stream)",
)
async def stream(
    request: Request[Any, Any, Any],
    events: Annotated[
        Literal["all", "orders", "alerts"],
        QueryParameter(description="which events to receive"),
    ] = "all",
) -> ServerSentEvent:
    current_principal(request)
    plane = plane_of(request)
    queue: asyncio.Queue[ServerSentEventMessage] = asyncio.Queue(QUEUE_LIMIT)
    lost = 0

    def offer(message: ServerSentEventMessage) -> None:
        nonlocal lost
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            lost += 1

    async def on_order(msg: Any) -> None:
        body = _order_change(msg.data)
        if body is not None:
            offer(ServerSentEventMessage(data=body.decode(), event="order"))

    async def on_alert(msg: Any) -> None:
        offer(ServerSentEventMessage(data=msg.data.decode(), event="alert"))

    subs = []
    if events in ("all", "orders"):
        subs.append(await plane.nc.subscribe("sg.order.>", cb=on_order))
    if events in ("all", "alerts"):
        subs.append(await plane.nc.subscribe("sg.alert.>", cb=on_alert))

    async def generate() -> AsyncIterator[ServerSentEventMessage]:
        nonlocal lost
        try:
            yield ServerSentEventMessage(comment="streamguard: connected")
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), _KEEPALIVE_S)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keepalive")
                    continue
                if lost:
                    yield ServerSentEventMessage(data=str(lost), event="lost")
                    lost = 0
                yield message
        finally:
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    return ServerSentEvent(generate())
