"""``/orders/{id}/claims`` and ``/claims``: file a claim (the customer on its own order, or an
operator), follow it, and, for operators, review, decide and pay it. Filing assembles the
evidence bundle by itself; ``/claims/{id}/evidence`` exports it as JSON and
``/claims/{id}/report`` as a readable HTML report with a chart per anomaly.

A claim lives in its order's log (a ``claim`` event per change), so it is written with the
order's compare-and-set and reaches storage, webhooks and the live stream like any order change.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import (
    HTTP_201_CREATED,
    HTTP_409_CONFLICT,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from streamguard.api.auth import MAX_JSON_BODY_BYTES, current_principal, requires
from streamguard.api.claims.evidence import assemble, export, load
from streamguard.api.claims.schemas import ClaimInput, ClaimMove, ClaimView
from streamguard.api.common import (
    Idem,
    IdempotencyKey,
    not_found,
    plane_of,
    reject_unknown_query,
    write_errors,
)
from streamguard.api.orders.controllers import ORDER_ID, load_visible
from streamguard.api.problems import CONFLICTS, ERRORS, NOT_FOUND, UNAVAILABLE, unprocessable
from streamguard.bus.operations import new_claim_id
from streamguard.bus.orderlog import Versioned
from streamguard.bus.plane import ControlPlane, now_ms
from streamguard.domain import claims as cl
from streamguard.domain.auth import Principal, Role
from streamguard.domain.claim_report import render_html
from streamguard.domain.insurance import policy_of
from streamguard.domain.money import parse_cny
from streamguard.domain.orders import Actor, Order, TransitionError
from streamguard.domain.validation import FieldError
from streamguard.store.control_tables import CLAIM_EVENTS

__all__ = ["ClaimController", "OrderClaimController"]

CLAIM_ID_PATTERN = r"^CL-[0-9A-F]{16}-[1-9][0-9]{0,5}$"
CLAIM_ID = Annotated[
    str, PathParameter(pattern=CLAIM_ID_PATTERN, description="CL-<the order's 16 hex>-<n>")
]
_READERS = (Role.OPERATOR, Role.DEPOT, Role.CUSTOMER)
_LIST_PARAMETERS = frozenset({"status", "kind", "limit", "offset"})
# Amount fields as the API names them, for the domain's field names.
_FIELDS = {"approved_amount": "amount", "paid_amount": "amount", "to_status": "to"}


def _no_storage() -> HTTPException:
    return HTTPException(
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        detail="claims read their evidence from storage; this process has none",
    )


def _claim_errors(e: Exception) -> HTTPException:
    """A refused claim operation: an illegal move is a 409 listing the legal ones, a bad value
    a 422 naming its field."""
    if isinstance(e, cl.ClaimError):
        if e.field == "to_status":
            return HTTPException(
                status_code=HTTP_409_CONFLICT, detail=e.message, extra={"allowed": e.allowed}
            )
        return unprocessable([FieldError(_FIELDS.get(e.field, e.field), e.message)])
    return write_errors(e)


def _order_of(claim_id: str) -> str:
    return "RO-" + claim_id.split("-")[1]


def _claim(order: Order, claim_id: str) -> cl.Claim:
    raw = order.claims.get(claim_id)
    if raw is None:
        raise not_found("claim")
    return msgspec.convert(raw, cl.Claim)


async def _load_claim(
    plane: ControlPlane, principal: Principal, claim_id: str
) -> tuple[Versioned, cl.Claim]:
    current = await load_visible(plane, principal, _order_of(claim_id))
    return current, _claim(current.order, claim_id)


def _claim_response(
    claim: cl.Claim, result: Versioned, status_code: int = 200
) -> Response[ClaimView]:
    headers = {"Location": f"/claims/{claim.id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(ClaimView.of(claim), status_code=status_code, headers=headers)


class OrderClaimController(Controller):
    path = "/orders/{order_id:str}/claims"
    tags = ("claims",)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @post(
        "/",
        guards=[requires(Role.OPERATOR, Role.CUSTOMER)],
        status_code=HTTP_201_CREATED,
        responses={**ERRORS, **NOT_FOUND, **CONFLICTS, **UNAVAILABLE},
        summary="File a claim: the evidence bundle is assembled and frozen with it",
    )
    async def file(
        self,
        request: Request[Any, Any, Any],
        order_id: ORDER_ID,
        data: JSONBody[ClaimInput],
        idempotency_key: IdempotencyKey,
    ) -> Response[ClaimView]:
        principal = current_principal(request)
        plane = plane_of(request)
        current = await load_visible(plane, principal, order_id)
        if plane.store is None:
            raise _no_storage()
        if current.order.shipments.get("inbound", {}).get("policy") is None:
            raise HTTPException(
                status_code=HTTP_409_CONFLICT,
                detail="the order has no insurance policy yet: it is issued when the inbound "
                "leg is booked",
                extra={"allowed": []},
            )
        claimed = parse_cny(data.claimed_amount)
        evidence = await assemble(plane, current.order)
        actor = Actor.of(principal)
        at = now_ms()

        def step(order: Order) -> tuple[cl.Claim, cl.ClaimEvent]:
            policy = order.shipments.get("inbound", {}).get("policy")
            if policy is None:
                raise TransitionError("the order has no insurance policy", [])
            return cl.file_claim(
                claim_id=new_claim_id(order),
                order_id=order.id,
                order_customer_id=order.customer_id,
                kind=data.kind,
                claimed_fen=claimed,
                policy=policy_of(policy),
                actor=actor,
                at_ms=at,
                reason=data.reason,
                attribution=evidence.attribution,
                evidence_sha256=evidence.sha256,
            )

        idem = Idem(principal, idempotency_key, await request.body())
        try:
            result = await plane.ops.claim(
                order_id, step, idempotency=idem.key, body_hash=idem.body_hash
            )
        except Exception as e:
            raise _claim_errors(e) from None
        assert result.event is not None
        claim = _claim(result.order, str(result.event.data["claim_id"]))
        return _claim_response(claim, result, HTTP_201_CREATED)

    @get(
        "/",
        guards=[requires(*_READERS)],
        responses={**ERRORS, **NOT_FOUND},
        summary="The order's claims",
    )
    async def list_claims(
        self, request: Request[Any, Any, Any], order_id: ORDER_ID
    ) -> list[ClaimView]:
        current = await load_visible(plane_of(request), current_principal(request), order_id)
        return [ClaimView.of(_claim(current.order, cid)) for cid in current.order.claims]


class ClaimController(Controller):
    path = "/claims"
    tags = ("claims",)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @get(
        "/",
        guards=[requires(Role.OPERATOR, Role.DEPOT)],
        responses={**ERRORS, **UNAVAILABLE},
        summary="Claims, newest first, from storage (filter by status and kind)",
    )
    async def list_all(
        self,
        request: Request[Any, Any, Any],
        status: Annotated[
            cl.ClaimStatus | None, QueryParameter(required=False, description="current status")
        ] = None,
        kind: Annotated[cl.ClaimKind | None, QueryParameter(required=False)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> list[ClaimView]:
        reject_unknown_query(request, _LIST_PARAMETERS)
        plane = plane_of(request)
        if plane.store is None:
            raise _no_storage()
        store = plane.store
        sql = f"""
            SELECT claim_id, order_id FROM (
                SELECT claim_id, argMax(order_id, version) AS order_id,
                       argMax(status, version) AS status, argMax(kind, version) AS kind,
                       min(filed_at) AS filed
                FROM {CLAIM_EVENTS} GROUP BY claim_id
            )
            WHERE ({{status:Nullable(String)}} IS NULL OR status = {{status:Nullable(String)}})
              AND ({{kind:Nullable(String)}} IS NULL OR kind = {{kind:Nullable(String)}})
            ORDER BY filed DESC, claim_id
            LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
        """
        params = {
            "status": status.value if status else None,
            "kind": kind.value if kind else None,
            "limit": limit,
            "offset": offset,
        }
        rows = await asyncio.to_thread(store.rows, sql, params)
        views = []
        for claim_id, order_id in rows:
            current = await plane.log.get(str(order_id))
            raw = current.order.claims.get(str(claim_id)) if current else None
            if raw is not None:
                views.append(ClaimView.of(msgspec.convert(raw, cl.Claim)))
        return views

    @get(
        "/{claim_id:str}",
        guards=[requires(*_READERS)],
        responses={**ERRORS, **NOT_FOUND},
        summary="A claim, with its history and the moves an operator may make",
    )
    async def read(self, request: Request[Any, Any, Any], claim_id: CLAIM_ID) -> ClaimView:
        _, claim = await _load_claim(plane_of(request), current_principal(request), claim_id)
        return ClaimView.of(claim)

    @post(
        "/{claim_id:str}/transitions",
        guards=[requires(Role.OPERATOR)],
        status_code=200,
        responses={**ERRORS, **NOT_FOUND, **CONFLICTS},
        summary="Review, decide (approve, approve in part, reject) or pay a claim",
    )
    async def move(
        self,
        request: Request[Any, Any, Any],
        claim_id: CLAIM_ID,
        data: JSONBody[ClaimMove],
        idempotency_key: IdempotencyKey,
    ) -> Response[ClaimView]:
        principal = current_principal(request)
        plane = plane_of(request)
        await _load_claim(plane, principal, claim_id)
        amount = parse_cny(data.amount) if data.amount is not None else None
        actor = Actor.of(principal)
        at = now_ms()

        def step(order: Order) -> tuple[cl.Claim, cl.ClaimEvent]:
            return cl.decide(_claim(order, claim_id), data.to, actor, at, data.reason, amount)

        idem = Idem(principal, idempotency_key, await request.body())
        try:
            result = await plane.ops.claim(
                _order_of(claim_id), step, idempotency=idem.key, body_hash=idem.body_hash
            )
        except HTTPException:
            raise
        except Exception as e:
            raise _claim_errors(e) from None
        return _claim_response(_claim(result.order, claim_id), result)

    @get(
        "/{claim_id:str}/evidence",
        guards=[requires(*_READERS)],
        responses={**ERRORS, **NOT_FOUND, **UNAVAILABLE},
        summary="The evidence bundle as one JSON document (frozen at filing, with its SHA-256)",
    )
    async def evidence(
        self, request: Request[Any, Any, Any], claim_id: CLAIM_ID
    ) -> Response[dict[str, Any]]:
        bundle = await self._bundle(request, claim_id)
        return Response(
            bundle,
            headers={"Content-Disposition": f'attachment; filename="{claim_id}-evidence.json"'},
        )

    @get(
        "/{claim_id:str}/report",
        guards=[requires(*_READERS)],
        media_type=MediaType.HTML,
        responses={**ERRORS, **NOT_FOUND, **UNAVAILABLE},
        summary="The evidence as a readable HTML report, a chart per anomaly (print to PDF)",
    )
    async def report(self, request: Request[Any, Any, Any], claim_id: CLAIM_ID) -> str:
        bundle = await self._bundle(request, claim_id)
        # The report is read saved or printed, away from the API: its photo links are absolute.
        base = str(request.base_url).rstrip("/")
        for photo in bundle.get("photos", []):
            photo["url"] = base + photo["url"]
        return render_html(bundle)

    async def _bundle(self, request: Request[Any, Any, Any], claim_id: str) -> dict[str, Any]:
        plane = plane_of(request)
        _, claim = await _load_claim(plane, current_principal(request), claim_id)
        if plane.store is None:
            raise _no_storage()
        if claim.evidence_sha256 is None:
            raise not_found("evidence bundle")
        bundle = await asyncio.to_thread(load, plane, claim.evidence_sha256)
        if bundle is None:
            raise not_found("evidence bundle")
        return export(bundle, claim.evidence_sha256, claim)
