"""Automatic insured returns: when an order reaches REPAIRED, its return leg is booked at once.

A durable consumer of the order log (``sg-control-returns``) sees each move to REPAIRED, asks
the carrier chooser (``domain.returns``: tariff and coverage until lane scoring exists) for the
best carrier that meets the constraints, and books the return with that choice recorded, scores
and exclusions included. The policy carries over from the inbound leg and the engine hears of
the leg like any other. With no eligible carrier the order goes ON_HOLD with the exclusions as
the reason, for an operator to decide. An operator may still book another return carrier: that
booking is an override and records whom it replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import msgspec
from nats.aio.msg import Msg

from streamguard.bus.clock import now_ms
from streamguard.bus.consumers import Handler
from streamguard.bus.operations import Operations
from streamguard.bus.orderlog import OrderRecord, idempotency_key
from streamguard.domain.orders import Actor, OrderStatus, TransitionError
from streamguard.domain.returns import (
    CarrierChooser,
    ReturnRequest,
    ScoringChooser,
    Weights,
    choice_view,
)
from streamguard.domain.shipments import ShipmentInput

__all__ = ["RETURNS_DURABLE", "return_tracking", "returns_handler"]

RETURNS_DURABLE = "sg-control-returns"
_ACTOR = Actor.system("returns")


def return_tracking(carrier: str, order_id: str) -> str:
    """The return leg's tracking number, until carriers assign theirs through an API."""
    return f"{carrier}R{order_id.removeprefix('RO-')}"


def returns_handler(
    ops: Operations,
    chooser: Callable[[], CarrierChooser] | None = None,
    weights: Weights | None = None,
) -> Handler:
    """``chooser`` makes the carrier chooser for each return (default: the tariffs and the
    engine's lane statistics in force at that moment); ``weights`` default to the operators'
    (``ops.weights``)."""
    make_chooser = chooser or (lambda: ScoringChooser(ops.tariffs, ops.lanes))

    decoder = msgspec.json.Decoder(OrderRecord)

    async def handle(msg: Msg) -> None:
        if not msg.data:
            return
        record = decoder.decode(msg.data)
        if record.event.to_status != OrderStatus.REPAIRED:
            return
        # Act on the order as it is now: a redelivery, or a history replayed to a new
        # consumer, finds it already returned (or moved on) and books nothing.
        current = await ops.log.get(record.order.id)
        if current is None or current.order.status != OrderStatus.REPAIRED:
            return
        order = current.order
        request = ReturnRequest.for_order(order, ops.depot_region)
        choice = make_chooser().choose(request, weights or ops.weights)
        key = idempotency_key("returns", order.id)
        # The order may have moved on (an operator booked the return first): nothing to do.
        with contextlib.suppress(TransitionError):
            if choice.chosen is None:
                await ops.move(
                    order.id,
                    OrderStatus.ON_HOLD,
                    _ACTOR,
                    now_ms(),
                    f"no carrier can take the return: {choice.explanation}"[:500],
                    idempotency=key,
                )
                return
            spec = ShipmentInput(
                leg="return",
                carrier=choice.chosen,
                tracking=return_tracking(choice.chosen, order.id),
            )
            await ops.book_shipment(
                order.id, spec, _ACTOR, now_ms(), idempotency=key, choice=choice_view(choice)
            )

    return handle
