"""Repair orders: the intake template, the state graph and the events that move an order.

An order is never updated in place: every change is an :class:`OrderEvent` (who, when, from,
to, why), and the order is the fold of its events (:func:`apply`). The bus keeps the events, one
JetStream subject per order, so an order's timeline is its subject and its version is the
stream sequence of its last event.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from streamguard.domain.auth import Principal, Role
from streamguard.domain.money import Fen, fen_to_str, parse_cny
from streamguard.domain.regions import REGION_PATTERN, check_region

__all__ = [
    "ACTIVE_STATUSES",
    "FAULT_TYPES",
    "FRAGILE_PARTS",
    "MONEY_PATTERN",
    "PARTS",
    "Actor",
    "Address",
    "Customer",
    "Intake",
    "Order",
    "OrderEvent",
    "OrderStatus",
    "Product",
    "TransitionError",
    "allowed_targets",
    "apply",
    "new_order",
    "new_order_id",
    "transition_event",
]


class OrderStatus(enum.StrEnum):
    CREATED = "CREATED"
    AWAITING_PICKUP = "AWAITING_PICKUP"
    INBOUND_IN_TRANSIT = "INBOUND_IN_TRANSIT"
    RECEIVED = "RECEIVED"
    DIAGNOSING = "DIAGNOSING"
    REPAIRING = "REPAIRING"
    AWAITING_PARTS = "AWAITING_PARTS"
    REPAIRED = "REPAIRED"
    RETURN_IN_TRANSIT = "RETURN_IN_TRANSIT"
    DELIVERED = "DELIVERED"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"
    ON_HOLD = "ON_HOLD"


S = OrderStatus
#: Terminal states: nothing moves an order out of them.
TERMINAL = frozenset({S.CLOSED, S.CANCELLED})
#: States an order can be put ON_HOLD from (and returns to).
ACTIVE_STATUSES = frozenset(set(S) - TERMINAL - {S.ON_HOLD})

# The graph of CONTROL_PLANE.md, "Repair orders". ON_HOLD is handled apart: from any active
# state, and back to the state it was held in.
_GRAPH: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    S.CREATED: frozenset({S.AWAITING_PICKUP, S.CANCELLED}),
    S.AWAITING_PICKUP: frozenset({S.INBOUND_IN_TRANSIT, S.CANCELLED}),
    S.INBOUND_IN_TRANSIT: frozenset({S.RECEIVED}),
    S.RECEIVED: frozenset({S.DIAGNOSING}),
    S.DIAGNOSING: frozenset({S.REPAIRING, S.REPAIRED, S.CLOSED}),
    S.REPAIRING: frozenset({S.AWAITING_PARTS, S.REPAIRED}),
    S.AWAITING_PARTS: frozenset({S.REPAIRING}),
    S.REPAIRED: frozenset({S.RETURN_IN_TRANSIT}),
    S.RETURN_IN_TRANSIT: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.CLOSED}),
}

# Who may ask for a move through the transitions endpoint. Moves that need proof are made by
# the system: RECEIVED and DELIVERED only by a sign-off, INBOUND_IN_TRANSIT by the first pickup
# scan, RETURN_IN_TRANSIT by the return shipment.
_STAFF = frozenset({Role.OPERATOR, Role.DEPOT})
_MOVERS: Mapping[OrderStatus, frozenset[Role]] = {
    S.AWAITING_PICKUP: frozenset({Role.OPERATOR, Role.CUSTOMER}),
    S.INBOUND_IN_TRANSIT: frozenset({Role.OPERATOR}),
    S.DIAGNOSING: _STAFF,
    S.REPAIRING: _STAFF,
    S.AWAITING_PARTS: _STAFF,
    S.REPAIRED: _STAFF,
    S.CLOSED: _STAFF,
    S.CANCELLED: frozenset({Role.OPERATOR, Role.CUSTOMER}),
    S.ON_HOLD: frozenset({Role.OPERATOR}),
}
#: Targets reached only through their proof (a sign-off, a shipment).
PROOF_REQUIRED: Mapping[OrderStatus, str] = {
    S.RECEIVED: "the depot's sign-off (POST /orders/{id}/signoffs, leg inbound)",
    S.DELIVERED: "the customer's sign-off (POST /orders/{id}/signoffs, leg return)",
    S.RETURN_IN_TRANSIT: "the return shipment (POST /orders/{id}/shipments, leg return)",
}

#: Parts that need a carrier with shock-proof packaging.
FRAGILE_PARTS = frozenset({"screen", "mainboard"})

Name = Annotated[str, Meta(min_length=1, max_length=100)]
Phone = Annotated[str, Meta(pattern=r"^\+?[0-9][0-9 -]{5,19}$")]
Region = Annotated[str, Meta(pattern=REGION_PATTERN)]
Text = Annotated[str, Meta(max_length=2000)]
Code = Annotated[str, Meta(min_length=1, max_length=64)]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
#: CNY as a decimal string: up to 9 digits and 2 decimals.
MONEY_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,2})?$"
Money = Annotated[str, Meta(pattern=MONEY_PATTERN)]
FaultType = Literal[
    "screen",
    "battery",
    "mainboard",
    "camera",
    "charging_port",
    "speaker",
    "keyboard",
    "water_damage",
    "hardware",
    "software",
    "sole_detached",
    "zipper",
    "strap",
    "stitching",
    "other",
]
Part = Literal["screen", "mainboard", "battery", "camera", "lens", "body", "other"]
#: The catalogs, as sets.
FAULT_TYPES = frozenset(get_args(FaultType))
PARTS = frozenset(get_args(Part))
Service = Literal["repair", "exchange", "refund"]
Category = Literal["phone", "laptop", "tablet", "camera", "drone", "watch", "shoes", "bag", "other"]


class Address(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    line: Annotated[str, Meta(min_length=1, max_length=200)]
    region: Region


class Customer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    phone: Phone
    address: Address


class Product(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    category: Category
    brand: Name
    model: Name
    serial: Code | None = None
    product_code: Code | None = None
    batch: Code | None = None


class Intake(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The standard intake template. ``declared_value`` is CNY as a decimal string."""

    customer: Customer
    product: Product
    purchase_channel: Annotated[str, Meta(min_length=1, max_length=64)]
    fault_type: FaultType
    description: Text = ""
    service: Service = "repair"
    declared_value: Money
    fragile_parts: Annotated[list[Part], Meta(max_length=7)] = []
    photos: Annotated[list[Sha256], Meta(max_length=20)] = []
    #: Set by operators creating an order for a customer; a customer's own id otherwise.
    customer_id: Code | None = None


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who made a change: a principal, or the system acting on a scan, alert or sign-off."""

    role: str
    subject: str
    carrier: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(role=principal.role.value, subject=principal.subject, carrier=principal.carrier)

    @classmethod
    def system(cls, what: str) -> Actor:
        return cls(role="system", subject=what)


EventType = Literal["created", "status", "shipment", "signoff", "alert", "photo", "claim"]


class OrderEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One immutable change. ``data`` carries the type's details (a shipment, a sign-off's id
    and hash, an alert's id and rule)."""

    type: EventType
    at_ms: int
    actor: Actor
    from_status: OrderStatus | None = None
    to_status: OrderStatus | None = None
    reason: str | None = None
    data: dict[str, Any] = {}


class Order(msgspec.Struct, kw_only=True):
    """The current state of an order: the fold of its events."""

    id: str
    customer_id: str
    intake: Intake
    declared_value_fen: Fen
    status: OrderStatus = S.CREATED
    held_from: OrderStatus | None = None
    created_ms: int = 0
    updated_ms: int = 0
    #: "inbound" / "return" -> the shipment's attributes (see domain.shipments).
    shipments: dict[str, dict[str, Any]] = {}
    #: The sign-offs' ids, hashes and legs, in chain order.
    signoffs: list[dict[str, Any]] = []
    alerts: int = 0
    photos: list[str] = []
    #: Claim id -> the claim as its last ``claim`` event left it (the builtins of a
    #: :class:`streamguard.domain.claims.Claim`; that event's ``data`` carries the claim event
    #: as ``event`` and the claim after it as ``claim``).
    claims: dict[str, dict[str, Any]] = {}

    @property
    def declared_value(self) -> str:
        return fen_to_str(self.declared_value_fen)

    @property
    def last_signoff_hash(self) -> str:
        return str(self.signoffs[-1]["hash"]) if self.signoffs else ""

    def leg_of(self, shipment: str) -> str | None:
        for leg, ship in self.shipments.items():
            if ship.get("shipment") == shipment:
                return leg
        return None


class TransitionError(Exception):
    """A move the graph or the caller's role does not allow. ``allowed`` lists the targets the
    caller could ask for now."""

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.allowed = allowed


def new_order_id() -> str:
    return f"RO-{secrets.token_hex(8).upper()}"


def new_order(
    order_id: str, intake: Intake, customer_id: str, actor: Actor, at_ms: int
) -> OrderEvent:
    """The ``created`` event of a new order (the intake travels in ``data``)."""
    for region in (intake.customer.address.region,):
        check_region(region)
    parse_cny(intake.declared_value)
    return OrderEvent(
        type="created",
        at_ms=at_ms,
        actor=actor,
        to_status=S.CREATED,
        data={"id": order_id, "customer_id": customer_id, "intake": msgspec.to_builtins(intake)},
    )


def _targets(order: Order) -> set[OrderStatus]:
    if order.status == S.ON_HOLD:
        return {order.held_from} if order.held_from else set()
    targets = set(_GRAPH.get(order.status, frozenset()))
    if order.status in ACTIVE_STATUSES:
        targets.add(S.ON_HOLD)
    return targets


def allowed_targets(order: Order, role: Role | None = None) -> list[str]:
    """The states ``order`` may move to next, for ``role`` (or by anyone, system included)."""
    targets = _targets(order)
    if role is not None:
        targets = {t for t in targets if t not in PROOF_REQUIRED and _may_move(role, order, t)}
    return sorted(t.value for t in targets)


def _may_move(role: Role, order: Order, target: OrderStatus) -> bool:
    if order.status == S.ON_HOLD:
        return role == Role.OPERATOR
    return role in _MOVERS.get(target, frozenset())


def transition_event(
    order: Order,
    target: OrderStatus,
    actor: Actor,
    at_ms: int,
    reason: str | None = None,
    *,
    role: Role | None = None,
    data: dict[str, Any] | None = None,
) -> OrderEvent:
    """The event that moves ``order`` to ``target``, or :class:`TransitionError`.

    ``role`` is the caller's role for a request through the API (it may not make the moves that
    need proof); ``None`` is the system itself, acting on a scan, a sign-off or a shipment.
    """
    if target not in _targets(order):
        raise TransitionError(
            f"{order.status.value} -> {target.value} is not a transition of the order graph",
            allowed_targets(order, role),
        )
    if role is not None:
        if target in PROOF_REQUIRED and order.status != S.ON_HOLD:
            raise TransitionError(
                f"{target.value} is reached only through {PROOF_REQUIRED[target]}",
                allowed_targets(order, role),
            )
        if not _may_move(role, order, target):
            raise TransitionError(
                f"a {role.value} may not move an order to {target.value}",
                allowed_targets(order, role),
            )
    return OrderEvent(
        type="status",
        at_ms=at_ms,
        actor=actor,
        from_status=order.status,
        to_status=target,
        reason=reason,
        data=data or {},
    )


def apply(order: Order | None, event: OrderEvent) -> Order:
    """The order after ``event``. Pure: the same events always fold to the same order."""
    if event.type == "created":
        intake = msgspec.convert(event.data["intake"], Intake)
        return Order(
            id=str(event.data["id"]),
            customer_id=str(event.data["customer_id"]),
            intake=intake,
            declared_value_fen=parse_cny(intake.declared_value),
            created_ms=event.at_ms,
            updated_ms=event.at_ms,
            photos=list(intake.photos),
        )
    if order is None:
        raise ValueError(f"a {event.type!r} event needs an existing order")
    new = msgspec.structs.replace(order, updated_ms=event.at_ms)
    if event.to_status is not None and event.to_status != order.status:
        new.held_from = order.status if event.to_status == S.ON_HOLD else None
        new.status = event.to_status
    if event.type == "shipment":
        new.shipments = {**order.shipments, str(event.data["leg"]): dict(event.data)}
    elif event.type == "signoff":
        new.signoffs = [*order.signoffs, dict(event.data["summary"])]
    elif event.type == "alert":
        new.alerts = order.alerts + 1
    elif event.type == "photo":
        new.photos = [*order.photos, str(event.data["sha256"])]
    elif event.type == "claim":
        new.claims = {**order.claims, str(event.data["claim_id"]): dict(event.data["claim"])}
    return new


def content_view(order: Order) -> dict[str, Any]:
    """What a sign-off binds to: the order's identity, intake and shipments (not its status,
    which the sign-off itself changes, nor how a return carrier was chosen, which explains the
    shipment rather than being part of it)."""
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "intake": msgspec.to_builtins(order.intake),
        "declared_value": fen_to_str(order.declared_value_fen),
        "shipments": {
            leg: {k: v for k, v in ship.items() if k != "choice"}
            for leg, ship in order.shipments.items()
        },
    }
