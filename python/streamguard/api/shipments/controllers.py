"""Shipments: booking an order's legs, and the routes carriers use (read their shipments,
record delivery sign-offs). A carrier asking for another carrier's shipment gets 404."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.params import JSONBody, PathParameter
from litestar.status_codes import HTTP_201_CREATED

from streamguard.api.auth import MAX_JSON_BODY_BYTES, current_principal, requires
from streamguard.api.common import (
    Idem,
    IdempotencyKey,
    IfMatch,
    not_found,
    parse_if_match,
    plane_of,
    write_errors,
)
from streamguard.api.orders.controllers import ORDER_ID, load_visible, order_response, visible
from streamguard.api.orders.schemas import OrderView, ShipmentView
from streamguard.api.problems import CONFLICTS, ERRORS, NOT_FOUND
from streamguard.api.signoffs.controllers import signoff_request
from streamguard.api.signoffs.schemas import DepotStaffSignOff, SignOffInput, SignOffView
from streamguard.bus.plane import now_ms
from streamguard.domain import signoffs as so
from streamguard.domain.auth import Role
from streamguard.domain.orders import Actor, OrderStatus, TransitionError
from streamguard.domain.shipments import ShipmentInput

__all__ = ["OrderShipmentController", "ShipmentController"]

SHIPMENT = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{4,40}$")]


class ShipmentDetail(msgspec.Struct, kw_only=True):
    """A shipment with the order it belongs to (as far as the caller may see it)."""

    order_id: str
    order_status: OrderStatus
    shipment: ShipmentView


class OrderShipmentController(Controller):
    path = "/orders/{order_id:str}/shipments"
    tags = ("shipments",)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @post(
        "/",
        guards=[requires(Role.OPERATOR, Role.DEPOT, Role.CUSTOMER)],
        status_code=HTTP_201_CREATED,
        responses={**ERRORS, **NOT_FOUND, **CONFLICTS},
        summary="Book a leg (the engine is told the shipment's carrier, tier and fragility)",
    )
    async def book(
        self,
        request: Request[Any, Any, Any],
        order_id: ORDER_ID,
        data: JSONBody[ShipmentInput],
        if_match: IfMatch,
        idempotency_key: IdempotencyKey,
    ) -> Response[OrderView]:
        principal = current_principal(request)
        plane = plane_of(request)
        expected = parse_if_match(if_match)
        await load_visible(plane, principal, order_id)
        if principal.role == Role.CUSTOMER and data.leg != "inbound":
            raise PermissionDeniedException(detail="customers book only the inbound leg")
        existing = plane.links.get(data.tracking)
        if existing is not None and existing.order != order_id:
            raise write_errors(
                TransitionError(f"tracking number {data.tracking} belongs to another order", [])
            )
        idem = Idem(principal, idempotency_key, await request.body())
        try:
            result = await plane.ops.book_shipment(
                order_id,
                data,
                Actor.of(principal),
                now_ms(),
                expected=expected,
                idempotency=idem.key,
                body_hash=idem.body_hash,
            )
        except Exception as e:
            raise write_errors(e) from None
        return order_response(result, principal, HTTP_201_CREATED)


class ShipmentController(Controller):
    path = "/shipments"
    tags = ("shipments",)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @get(
        "/{shipment:str}",
        guards=[requires(Role.OPERATOR, Role.DEPOT, Role.CUSTOMER, Role.CARRIER)],
        responses={**ERRORS, **NOT_FOUND},
        summary="A shipment and its order's status (a carrier sees only its own)",
    )
    async def read(self, request: Request[Any, Any, Any], shipment: SHIPMENT) -> ShipmentDetail:
        principal = current_principal(request)
        plane = plane_of(request)
        link = plane.links.get(shipment)
        if link is None:
            raise not_found("shipment")
        if principal.role == Role.CARRIER and link.carrier != principal.carrier:
            raise not_found("shipment")
        current = await plane.log.get(link.order)
        if current is None or not visible(principal, current.order):
            raise not_found("shipment")
        record = current.order.shipments.get(link.leg)
        if record is None or record.get("shipment") != shipment:
            raise not_found("shipment")
        return ShipmentDetail(
            order_id=current.order.id,
            order_status=current.order.status,
            shipment=msgspec.convert(record, ShipmentView),
        )

    @post(
        "/{shipment:str}/signoffs",
        guards=[requires(Role.CARRIER)],
        status_code=HTTP_201_CREATED,
        responses={**ERRORS, **NOT_FOUND, **CONFLICTS},
        summary="A carrier records the delivery sign-off of its shipment",
    )
    async def sign(
        self,
        request: Request[Any, Any, Any],
        shipment: SHIPMENT,
        data: JSONBody[SignOffInput],
        idempotency_key: IdempotencyKey,
    ) -> Response[SignOffView]:
        principal = current_principal(request)
        plane = plane_of(request)
        link = plane.links.get(shipment)
        if link is None or link.carrier != principal.carrier:
            raise not_found("shipment")
        if data.leg != link.leg:
            raise write_errors(TransitionError(f"shipment {shipment} is the {link.leg} leg", []))
        if (link.leg == "inbound") != isinstance(data, DepotStaffSignOff):
            raise PermissionDeniedException(
                detail="depot_staff signs the inbound leg; self, proxy or locker the return leg"
            )
        signoff = signoff_request(
            data, so.Channel.CARRIER_API, plane.proxy_salt, carrier=link.carrier, shipment=shipment
        )
        idem = Idem(principal, idempotency_key, await request.body())
        try:
            result = await plane.ops.sign_off(
                link.order,
                signoff,
                Actor.of(principal),
                idempotency=idem.key,
                body_hash=idem.body_hash,
            )
        except Exception as e:
            raise write_errors(e) from None
        sealed = (
            msgspec.convert(result.event.data["sealed"], so.SealedSignOff) if result.event else None
        )
        if sealed is None:  # pragma: no cover - a sign-off append always carries its event
            raise not_found("sign-off")
        return Response(SignOffView.of(sealed), status_code=HTTP_201_CREATED)
