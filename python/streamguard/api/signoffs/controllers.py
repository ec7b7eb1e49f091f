"""``/orders/{id}/signoffs``: take, list and verify sign-offs. There is no update or delete
route: a sign-off, once sealed, only ever gets verified."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.params import JSONBody, PathParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_503_SERVICE_UNAVAILABLE

from streamguard.api.auth import MAX_JSON_BODY_BYTES, current_principal, requires
from streamguard.api.common import Idem, IdempotencyKey, not_found, plane_of, write_errors
from streamguard.api.orders.controllers import ORDER_ID, load_visible, order_response
from streamguard.api.orders.schemas import OrderView
from streamguard.api.problems import CONFLICTS, ERRORS, NOT_FOUND, UNAVAILABLE
from streamguard.api.signoffs.schemas import (
    DepotStaffSignOff,
    ProxySignOff,
    SignOffInput,
    SignOffView,
    VerificationView,
)
from streamguard.bus.operations import unbound
from streamguard.bus.plane import ControlPlane, now_ms
from streamguard.domain import signoffs as so
from streamguard.domain.auth import Principal, Role
from streamguard.domain.orders import Actor
from streamguard.store import signoffs as signoff_store

__all__ = ["SIGNOFF_ID", "SignOffController", "sealed_of_order", "signoff_request", "verify_stored"]

SIGNOFF_ID = Annotated[str, PathParameter(pattern=r"^SO-[0-9A-Z]{4,32}$")]
# How long verify waits for storage to catch up with a sign-off made a moment ago.
_STORE_WAIT_S = 3.0


def signoff_request(
    data: SignOffInput,
    channel: so.Channel,
    salt: bytes,
    *,
    carrier: str | None = None,
    shipment: str | None = None,
) -> so.SignOffRecord:
    proxy = None
    if isinstance(data, ProxySignOff):
        p = data.proxy
        proxy = so.proxy_identity(
            name=p.name,
            document_type=p.document_type,
            document_number=p.document_number,
            relationship=p.relationship,
            salt=salt,
        )
    return unbound(
        id=f"SO-{secrets.token_hex(8).upper()}",
        leg=so.Leg(data.leg),
        signer_name=data.signer_name,
        signer_type=so.SignerType(_tag(data)),
        ts_ms=now_ms(),
        channel=channel,
        proxy=proxy,
        staff_id=data.staff_id if isinstance(data, DepotStaffSignOff) else None,
        region=data.region,
        lat=data.position.lat if data.position else None,
        lon=data.position.lon if data.position else None,
        carrier=carrier,
        shipment=shipment,
        signature_image_sha256=data.signature_image_sha256,
        photo_sha256=tuple(data.photo_sha256),
    )


def _tag(data: SignOffInput) -> str:
    return str(type(data).__struct_config__.tag)


def _check_role(principal: Principal, data: SignOffInput) -> None:
    """The depot signs for what it receives; the customer (or a proxy, or a locker) for what
    comes back. Operators may record either."""
    if principal.role == Role.OPERATOR:
        return
    inbound = data.leg == "inbound"
    if inbound and principal.role != Role.DEPOT:
        raise PermissionDeniedException(detail="the inbound sign-off is the depot's receipt")
    if not inbound and principal.role != Role.CUSTOMER:
        raise PermissionDeniedException(detail="the return sign-off is the customer's")
    if inbound != isinstance(data, DepotStaffSignOff):
        raise PermissionDeniedException(
            detail="depot_staff signs the inbound leg; self, proxy or locker the return leg"
        )


async def sealed_of_order(plane: ControlPlane, order_id: str) -> list[so.SealedSignOff]:
    """The order's sign-offs as signed, from the order log (not from the database)."""
    return [
        msgspec.convert(event.data["sealed"], so.SealedSignOff)
        for _, event in await plane.log.timeline(order_id)
        if event.type == "signoff"
    ]


class SignOffController(Controller):
    path = "/orders/{order_id:str}/signoffs"
    tags = ("signoffs",)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @post(
        "/",
        guards=[requires(Role.OPERATOR, Role.DEPOT, Role.CUSTOMER)],
        status_code=HTTP_201_CREATED,
        responses={**ERRORS, **NOT_FOUND, **CONFLICTS},
        summary="Take a sign-off: the depot's receipt or the customer's delivery",
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        order_id: ORDER_ID,
        data: JSONBody[SignOffInput],
        idempotency_key: IdempotencyKey,
    ) -> Response[OrderView]:
        principal = current_principal(request)
        plane = plane_of(request)
        await load_visible(plane, principal, order_id)
        _check_role(principal, data)
        signoff = signoff_request(data, so.Channel.API, plane.proxy_salt)
        idem = Idem(principal, idempotency_key, await request.body())
        try:
            result = await plane.ops.sign_off(
                order_id,
                signoff,
                Actor.of(principal),
                idempotency=idem.key,
                body_hash=idem.body_hash,
            )
        except Exception as e:
            raise write_errors(e) from None
        return order_response(result, principal, HTTP_201_CREATED)

    @get(
        "/",
        guards=[requires(Role.OPERATOR, Role.DEPOT, Role.CUSTOMER)],
        responses={**ERRORS, **NOT_FOUND},
        summary="The order's sign-offs, sealed",
    )
    async def list_signoffs(
        self, request: Request[Any, Any, Any], order_id: ORDER_ID
    ) -> list[SignOffView]:
        plane = plane_of(request)
        await load_visible(plane, current_principal(request), order_id)
        return [SignOffView.of(s) for s in await sealed_of_order(plane, order_id)]

    @get(
        "/{signoff_id:str}/verify",
        guards=[requires(Role.OPERATOR, Role.DEPOT, Role.CUSTOMER)],
        responses={**ERRORS, **NOT_FOUND, **UNAVAILABLE},
        summary="Recompute a stored sign-off: valid, or exactly what changed",
    )
    async def verify(
        self, request: Request[Any, Any, Any], order_id: ORDER_ID, signoff_id: SIGNOFF_ID
    ) -> VerificationView:
        plane = plane_of(request)
        await load_visible(plane, current_principal(request), order_id)
        originals = {s.record.id: s for s in await sealed_of_order(plane, order_id)}
        original = originals.get(signoff_id)
        if original is None:
            raise not_found("sign-off")
        if plane.store is None:
            raise HTTPException(
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                detail="verification reads the stored copy; this process has no storage",
            )
        return await asyncio.to_thread(verify_stored, plane, order_id, original)


def verify_stored(
    plane: ControlPlane, order_id: str, original: so.SealedSignOff
) -> VerificationView:
    """Check the database's copy against the signature, the chain and the signed original."""
    store = plane.store
    assert store is not None
    sid = original.record.id
    deadline = now_ms() + int(_STORE_WAIT_S * 1000)
    while True:
        try:
            stored = signoff_store.signoffs_of_order(store, order_id)
        except signoff_store.StoredSignOffError as e:
            return _broken(sid, f"the stored record is no longer a valid sign-off: {e}")
        mine = [s for s in stored if s.record.id == sid]
        if mine or now_ms() > deadline:
            break
        # Not projected yet (it was taken a moment ago): storage lags the order log by ms.
        time.sleep(0.05)
    if not mine:
        return _broken(sid, "the sign-off is missing from storage (deleted behind the API?)")
    if len(mine) > 1:
        return _broken(sid, f"storage holds {len(mine)} different records with this id")
    record = mine[0]
    index = original.record.index
    previous = next((s for s in stored if s.record.index == index - 1), None) if index else None
    if index and previous is None:
        return _broken(sid, f"the previous sign-off (index {index - 1}) is missing from storage")
    verdict = so.verify(record, signer=plane.signer, previous=previous, original=original)
    return VerificationView(
        signoff_id=sid,
        valid=verdict.valid,
        hash_ok=verdict.hash_ok,
        signature_ok=verdict.signature_ok,
        chain_ok=verdict.chain_ok,
        changes=[msgspec.to_builtins(c) for c in verdict.changes],
        problems=verdict.problems,
    )


def _broken(sid: str, problem: str) -> VerificationView:
    return VerificationView(
        signoff_id=sid,
        valid=False,
        hash_ok=False,
        signature_ok=False,
        chain_ok=False,
        changes=[],
        problems=[problem],
    )
