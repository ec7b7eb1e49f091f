"""What the control plane does to an order, whoever asks: the API, or a consumer acting on a
scan or an alert. Each is one compare-and-set append to the order log (see orderlog.py)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from nats.js import JetStreamContext

from streamguard.bus.links import Link, ShipmentLinks
from streamguard.bus.orderlog import OrderLog, Versioned
from streamguard.domain import claims as cl
from streamguard.domain import signoffs as so
from streamguard.domain.insurance import Tariffs, new_policy, policy_view
from streamguard.domain.orders import (
    Actor,
    Order,
    OrderEvent,
    OrderStatus,
    TransitionError,
    content_view,
    transition_event,
)
from streamguard.domain.returns import DEFAULT_WEIGHTS, LaneSource, Weights
from streamguard.domain.shipments import ShipmentInput, engine_event, shipment_record

__all__ = ["ClaimStep", "Operations", "Refused", "bind", "claim_event", "new_claim_id", "unbound"]

log = logging.getLogger("streamguard.bus")

S = OrderStatus
# The sign-off of a leg moves the order from the first state to the second.
_SIGNOFF_MOVES = {
    "inbound": (S.INBOUND_IN_TRANSIT, S.RECEIVED),
    "return": (S.RETURN_IN_TRANSIT, S.DELIVERED),
}


#: Derives a claim change from the current order: the claim after it and its event.
ClaimStep = Callable[[Order], tuple[cl.Claim, cl.ClaimEvent]]


def new_claim_id(order: Order) -> str:
    """The next claim id of ``order``: ``CL-<the order's hex>-<n>``, so a claim id names its
    order and needs no index to be found."""
    return f"CL-{order.id.removeprefix('RO-')}-{len(order.claims) + 1}"


def claim_event(claim: cl.Claim, event: cl.ClaimEvent) -> OrderEvent:
    """The order-log event of a claim change: ``data`` carries the claim event and the claim
    after it (which the order keeps, and the projector stores)."""
    return OrderEvent(
        type="claim",
        at_ms=event.at_ms,
        actor=event.actor,
        reason=f"claim {claim.id} {claim.status.value}: {event.reason}",
        data={
            "claim_id": claim.id,
            "to_status": claim.status.value,
            "event": msgspec.to_builtins(event),
            "claim": msgspec.to_builtins(claim),
        },
    )


# A sign-off before it is bound into its order's chain: id, signer and time are fixed by the
# caller (so a retried compare-and-set seals the same record); bind() sets the chain fields
# (index, prev_hash) and the content it signs for.
_UNBOUND_CONTENT = "0" * 64


def unbound(**fields: Any) -> so.SignOffRecord:
    """A record waiting for :func:`bind` (its ``order`` too is set there)."""
    return so.SignOffRecord(
        order="?", index=0, prev_hash="", content_sha256=_UNBOUND_CONTENT, **fields
    )


def bind(record: so.SignOffRecord, order: Order) -> so.SignOffRecord:
    return msgspec.structs.replace(
        record,
        order=order.id,
        index=len(order.signoffs),
        prev_hash=order.last_signoff_hash,
        content_sha256=content_sha256(order),
    )


def content_sha256(order: Order) -> str:
    return hashlib.sha256(so.canonical_json(content_view(order))).hexdigest()


class Refused(Exception):
    """A request the order's rules refuse because of one of its fields (a 422 naming it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(slots=True)
class Operations:
    log: OrderLog
    links: ShipmentLinks
    js: JetStreamContext
    signer: so.PlatformSigner
    depot_region: str
    tariffs: Tariffs = field(default_factory=Tariffs.load_sample)
    #: How the return carrier's components weigh (operators edit them: KV sg_tariffs/weights).
    weights: Weights = DEFAULT_WEIGHTS
    #: The engine's lane statistics (bus.lanes.LaneWatch), when this process follows them.
    lanes: LaneSource | None = None

    async def book_shipment(
        self,
        order_id: str,
        spec: ShipmentInput,
        actor: Actor,
        at_ms: int,
        *,
        expected: int | None = None,
        idempotency: str | None = None,
        body_hash: str = "",
        choice: dict[str, Any] | None = None,
    ) -> Versioned:
        """Add (or change) a leg; the first inbound booking moves CREATED to AWAITING_PICKUP
        and the return booking moves REPAIRED to RETURN_IN_TRANSIT. The engine hears of it
        through the relay.

        The inbound booking issues the order's insurance policy from its carrier's tariff; the
        return leg inherits it (the customer never insures twice). ``choice`` is the automatic
        return's explained carrier choice; booking a return leg over an existing one is an
        operator's override, and says whom it replaced."""

        def make(order: Order) -> OrderEvent:
            # The automatic return books only a REPAIRED order: never over a leg someone
            # booked between its read and its write.
            if choice is not None and order.status != S.REPAIRED:
                raise TransitionError(
                    f"the automatic return books a REPAIRED order (it is {order.status})", []
                )
            if spec.leg == "return" and order.status not in {S.REPAIRED, S.RETURN_IN_TRANSIT}:
                raise TransitionError(
                    f"a return leg is booked once the order is REPAIRED (it is {order.status})",
                    [],
                )
            if spec.leg == "inbound" and order.status not in {S.CREATED, S.AWAITING_PICKUP}:
                raise TransitionError(
                    f"the inbound leg is booked before pickup (the order is {order.status})", []
                )
            record = shipment_record(order, spec, self.depot_region, at_ms)
            record["policy"] = self._policy(order, spec, at_ms)
            if choice is not None:
                record["choice"] = choice
            previous = order.shipments.get(spec.leg)
            if previous is not None and previous.get("shipment") != spec.tracking:
                record["replaces"] = {
                    "shipment": previous.get("shipment"),
                    "carrier": previous.get("carrier"),
                }
            target = {S.CREATED: S.AWAITING_PICKUP, S.REPAIRED: S.RETURN_IN_TRANSIT}.get(
                order.status
            )
            return OrderEvent(
                type="shipment",
                at_ms=at_ms,
                actor=actor,
                from_status=order.status if target else None,
                to_status=target,
                reason=f"{spec.leg} leg booked with {spec.carrier}",
                data=record,
            )

        result = await self.log.append(
            order_id, make, expected=expected, idempotency=idempotency, body_hash=body_hash
        )
        # Scans, reads and the engine need the leg at once. The relay (consumers.py) does both
        # again from the order log, so a crash or an engine not yet up loses neither; the
        # event's Nats-Msg-Id makes the second telling a no-op.
        record = result.order.shipments[spec.leg]
        replaced = record.get("replaces")
        if replaced and replaced.get("shipment"):
            await self.links.delete(str(replaced["shipment"]))
        await self.link(result.order.id, record)
        try:
            await self.tell_engine(result.order.id, record)
        except Exception as e:
            log.info("shipment %s: the relay will tell the engine (%r)", record["shipment"], e)
        return result

    def _policy(self, order: Order, spec: ShipmentInput, at_ms: int) -> dict[str, Any] | None:
        """The order's policy: issued at the inbound booking, inherited by the return."""
        inbound = order.shipments.get("inbound", {})
        if inbound.get("policy") is not None or spec.leg == "return":
            return inbound.get("policy")
        tariff = self.tariffs.get(spec.carrier)
        if tariff is None:
            raise Refused("carrier", f"{spec.carrier} has no tariff: it cannot insure the order")
        try:
            policy = new_policy(order.id, tariff, order.declared_value_fen, at_ms)
        except ValueError as e:
            raise Refused("carrier", str(e)) from None
        return policy_view(policy)

    async def link(self, order_id: str, record: dict[str, Any]) -> None:
        await self.links.put(
            str(record["shipment"]), Link(order_id, str(record["leg"]), str(record["carrier"]))
        )

    async def tell_engine(self, order_id: str, record: dict[str, Any]) -> None:
        """Publish the leg's ``shipment`` event (deduplicated by its id)."""
        event = engine_event(order_id, record, int(record["booked_ms"]))
        await self.js.publish(
            f"sg.ship.control.{record['shipment']}",
            msgspec.json.encode(event),
            headers={"Nats-Msg-Id": str(event["id"])},
        )

    async def sign_off(
        self,
        order_id: str,
        request: so.SignOffRecord,
        actor: Actor,
        *,
        idempotency: str | None = None,
        body_hash: str = "",
    ) -> Versioned:
        """Seal a sign-off into the order's chain and make the move it proves."""

        def make(order: Order) -> OrderEvent:
            before, after = _SIGNOFF_MOVES[request.leg.value]
            if order.status != before:
                raise TransitionError(
                    f"a {request.leg.value} sign-off is taken while the order is {before.value} "
                    f"(it is {order.status.value})",
                    [],
                )
            record = bind(request, order)
            sealed = so.seal(record, self.signer)
            summary = {
                "id": record.id,
                "leg": request.leg.value,
                "index": record.index,
                "hash": sealed.hash,
                "signer_type": record.signer_type.value,
                "ts_ms": record.ts_ms,
            }
            return OrderEvent(
                type="signoff",
                at_ms=request.ts_ms,
                actor=actor,
                from_status=order.status,
                to_status=after,
                reason=f"{request.leg.value} sign-off by {record.signer_type.value}",
                data={"summary": summary, "sealed": msgspec.to_builtins(sealed)},
            )

        return await self.log.append(order_id, make, idempotency=idempotency, body_hash=body_hash)

    async def move(
        self,
        order_id: str,
        target: OrderStatus,
        actor: Actor,
        at_ms: int,
        reason: str | None = None,
        *,
        role: Any = None,
        expected: int | None = None,
        idempotency: str | None = None,
        body_hash: str = "",
    ) -> Versioned:
        return await self.log.append(
            order_id,
            lambda order: transition_event(order, target, actor, at_ms, reason, role=role),
            expected=expected,
            idempotency=idempotency,
            body_hash=body_hash,
        )

    async def claim(
        self,
        order_id: str,
        step: ClaimStep,
        *,
        idempotency: str | None = None,
        body_hash: str = "",
    ) -> Versioned:
        """File or move a claim of ``order_id``: one append to the order's log, so a claim
        decision can never be lost to a concurrent one (the second meets the first's state)."""
        return await self.log.append(
            order_id,
            lambda order: claim_event(*step(order)),
            idempotency=idempotency,
            body_hash=body_hash,
        )
