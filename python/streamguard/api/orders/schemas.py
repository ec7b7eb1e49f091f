"""The orders API's request and response shapes (msgspec Structs; the OpenAPI schema is made
from them, so constraints live here, exactly as they are checked)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from streamguard.domain.money import fen_to_str
from streamguard.domain.orders import (
    Customer,
    Order,
    OrderEvent,
    OrderStatus,
    Product,
)

__all__ = ["OrderPage", "OrderSummary", "OrderView", "TimelineEntry", "TransitionRequest"]


class TransitionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Move an order: ``to`` one of the states the order may go to next."""

    to: OrderStatus
    reason: Annotated[str, Meta(max_length=500)] | None = None


class ShipmentView(msgspec.Struct, kw_only=True):
    leg: str
    shipment: str
    carrier: str
    origin: str
    dest: str
    device: str | None = None
    tier: str
    fragile: bool
    declared_value: str
    booked_ms: int
    #: The order's insurance policy (issued at the inbound booking, inherited by the return).
    policy: dict[str, Any] | None = None
    #: How the automatic return chose its carrier: every candidate's scores or exclusions.
    choice: dict[str, Any] | None = None
    #: The leg this booking replaced (an operator's override).
    replaces: dict[str, Any] | None = None


class SignOffSummary(msgspec.Struct, kw_only=True):
    id: str
    leg: str
    index: int
    hash: str
    signer_type: str
    ts_ms: int


class OrderView(msgspec.Struct, kw_only=True):
    """An order as its callers see it. ``version`` is also the ``ETag``."""

    id: str
    version: int
    status: OrderStatus
    held_from: OrderStatus | None
    customer_id: str
    customer: Customer
    product: Product
    purchase_channel: str
    fault_type: str
    description: str
    service: str
    declared_value: str
    fragile_parts: list[str]
    photos: list[str]
    shipments: dict[str, ShipmentView]
    signoffs: list[SignOffSummary]
    alerts: int
    created_ms: int
    updated_ms: int
    allowed_transitions: list[str]

    @classmethod
    def of(cls, order: Order, version: int, allowed: list[str]) -> OrderView:
        intake = order.intake
        return cls(
            id=order.id,
            version=version,
            status=order.status,
            held_from=order.held_from,
            customer_id=order.customer_id,
            customer=intake.customer,
            product=intake.product,
            purchase_channel=intake.purchase_channel,
            fault_type=intake.fault_type,
            description=intake.description,
            service=intake.service,
            declared_value=fen_to_str(order.declared_value_fen),
            fragile_parts=list(intake.fragile_parts),
            photos=list(order.photos),
            shipments={leg: msgspec.convert(s, ShipmentView) for leg, s in order.shipments.items()},
            signoffs=[msgspec.convert(s, SignOffSummary) for s in order.signoffs],
            alerts=order.alerts,
            created_ms=order.created_ms,
            updated_ms=order.updated_ms,
            allowed_transitions=allowed,
        )


class TimelineEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One event of the order's timeline (who, when, from, to, why)."""

    version: int
    type: str
    at_ms: int
    actor_role: str
    actor_subject: str
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None
    data: dict[str, Any] = {}

    @classmethod
    def of(cls, version: int, event: OrderEvent) -> TimelineEntry:
        data = dict(event.data)
        # The full sealed record is served by the sign-off routes; the timeline links to it.
        data.pop("sealed", None)
        if event.type == "created":
            data = {"id": data.get("id"), "customer_id": data.get("customer_id")}
        return cls(
            version=version,
            type=event.type,
            at_ms=event.at_ms,
            actor_role=event.actor.role,
            actor_subject=event.actor.subject,
            from_status=event.from_status.value if event.from_status else None,
            to_status=event.to_status.value if event.to_status else None,
            reason=event.reason,
            data=data,
        )


class OrderSummary(msgspec.Struct, kw_only=True):
    id: str
    version: int
    status: str
    customer_id: str
    fault_type: str
    declared_value: str
    created_ms: int
    updated_ms: int


class OrderPage(msgspec.Struct, kw_only=True):
    orders: list[OrderSummary]
    limit: int
    offset: int
