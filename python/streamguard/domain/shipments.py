"""Shipments: an order's inbound and return legs, and the ``shipment`` event the engine needs
(EVENTS_AND_RULES.md section 1) to know a shipment's carrier, tier and fragility."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from streamguard.domain.money import fen_to_str
from streamguard.domain.orders import FRAGILE_PARTS, Order, Region
from streamguard.domain.regions import check_region

__all__ = [
    "LEGS",
    "ShipmentInput",
    "engine_event",
    "shipment_record",
    "tier_for",
]

LEGS = ("inbound", "return")
Leg = Literal["inbound", "return"]
Tier = Literal["basic", "advanced", "premium"]
#: A tracking number becomes the engine's shipment key and one NATS subject token.
Tracking = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{4,40}$")]
CarrierCode = Annotated[str, Meta(pattern=r"^[A-Z0-9]{2,8}$")]

BASIC_MAX_FEN = 500_00
ADVANCED_MAX_FEN = 5_000_00


class ShipmentInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A leg as operators, depots or customers book it. Regions default to the order's: the
    customer's address on one end, the depot's region on the other."""

    leg: Leg
    carrier: CarrierCode
    tracking: Tracking
    origin: Region | None = None
    dest: Region | None = None
    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None


def tier_for(declared_value_fen: int) -> Tier:
    """basic <= 500 CNY < advanced <= 5 000 CNY < premium."""
    if declared_value_fen <= BASIC_MAX_FEN:
        return "basic"
    if declared_value_fen <= ADVANCED_MAX_FEN:
        return "advanced"
    return "premium"


def shipment_record(
    order: Order, spec: ShipmentInput, depot_region: str, at_ms: int
) -> dict[str, Any]:
    """The leg as the order keeps it (the ``data`` of its ``shipment`` event)."""
    home = order.intake.customer.address.region
    origin = spec.origin or (home if spec.leg == "inbound" else depot_region)
    dest = spec.dest or (depot_region if spec.leg == "inbound" else home)
    check_region(origin)
    check_region(dest)
    return {
        "leg": spec.leg,
        "shipment": spec.tracking,
        "carrier": spec.carrier,
        "origin": origin,
        "dest": dest,
        "device": spec.device,
        "tier": tier_for(order.declared_value_fen),
        "fragile": bool(FRAGILE_PARTS & set(order.intake.fragile_parts)),
        "declared_value": fen_to_str(order.declared_value_fen),
        "booked_ms": at_ms,
    }


def engine_event(order_id: str, record: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """The engine's ``shipment`` event for a leg."""
    return {
        "kind": "shipment",
        "id": f"{order_id}:{record['leg']}:{at_ms}",
        "shipment": record["shipment"],
        "carrier": record["carrier"],
        "origin": record["origin"],
        "dest": record["dest"],
        "tier": record["tier"],
        "fragile": record["fragile"],
        "order": order_id,
        "declared_value": record["declared_value"],
        "ts": at_ms,
    }
