"""``/orders``: intake, read, list, move, timeline and photos, scoped to the caller."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException
from litestar.openapi.spec import (
    Encoding,
    OpenAPIFormat,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import JSONBody, MultipartBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_503_SERVICE_UNAVAILABLE

from streamguard.api.auth import MAX_JSON_BODY_BYTES, current_principal, requires
from streamguard.api.common import (
    Idem,
    IdempotencyKey,
    IfMatch,
    etag,
    not_found,
    parse_if_match,
    plane_of,
    reject_unknown_query,
    write_errors,
)
from streamguard.api.orders.schemas import (
    OrderPage,
    OrderSummary,
    OrderView,
    TimelineEntry,
    TransitionRequest,
)
from streamguard.api.problems import CONFLICTS, ERRORS, NOT_FOUND, UNAVAILABLE, unprocessable
from streamguard.bus.orderlog import Versioned
from streamguard.bus.plane import ControlPlane, now_ms
from streamguard.domain.auth import Principal, Role
from streamguard.domain.money import fen_to_str
from streamguard.domain.orders import (
    Actor,
    Intake,
    Order,
    OrderEvent,
    OrderStatus,
    allowed_targets,
    new_order,
    new_order_id,
)
from streamguard.domain.validation import FieldError
from streamguard.store import attachments

__all__ = ["ORDER_ID", "OrderController", "load_visible", "order_response", "visible"]

ORDER_ID_PATTERN = r"^RO-[0-9A-F]{16}$"
ORDER_ID = Annotated[str, PathParameter(pattern=ORDER_ID_PATTERN, description="RO-<16 hex>")]
_LIST_PARAMETERS = frozenset({"status", "limit", "offset"})
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic"})
MAX_PHOTO_BYTES = 10 * 1024 * 1024


def visible(principal: Principal, order: Order) -> bool:
    """Staff see every order, a customer only its own, a carrier those it carries."""
    if principal.role in (Role.OPERATOR, Role.DEPOT):
        return True
    if principal.role == Role.CUSTOMER:
        return order.customer_id == principal.subject
    return any(s.get("carrier") == principal.carrier for s in order.shipments.values())


async def load_visible(plane: ControlPlane, principal: Principal, order_id: str) -> Versioned:
    """The order, or 404 when it does not exist *or* the caller may not see it."""
    current = await plane.log.get(order_id)
    if current is None or not visible(principal, current.order):
        raise not_found("order")
    return current


def order_response(
    result: Versioned, principal: Principal, status_code: int = 200
) -> Response[OrderView]:
    view = OrderView.of(result.order, result.version, allowed_targets(result.order, principal.role))
    headers = {"ETag": etag(result.version)}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(view, status_code=status_code, headers=headers)


def _customer_id(principal: Principal, intake: Intake) -> str:
    if principal.role == Role.CUSTOMER:
        if intake.customer_id not in (None, principal.subject):
            raise unprocessable(
                [FieldError("customer_id", "a customer creates orders only for itself")]
            )
        return principal.subject
    if not intake.customer_id:
        raise unprocessable(
            [FieldError("customer_id", "required when an operator creates an order")]
        )
    return intake.customer_id


@dataclass
class _PhotoOperation(Operation):
    """The photo form as ``add_photo`` reads it: one part, ``file``, required, an image of 1
    byte to ``MAX_PHOTO_BYTES``."""

    def __post_init__(self) -> None:
        body = self.request_body
        media = body.content.get("multipart/form-data") if isinstance(body, RequestBody) else None
        if media is None:  # pragma: no cover
            return
        media.schema = Schema(
            type=OpenAPIType.OBJECT,
            required=["file"],
            properties={
                "file": Schema(
                    type=OpenAPIType.STRING,
                    format=OpenAPIFormat.BINARY,
                    min_length=1,
                    max_length=MAX_PHOTO_BYTES,
                )
            },
        )
        media.encoding = {"file": Encoding(content_type=", ".join(sorted(PHOTO_TYPES)))}


class OrderController(Controller):
    path = "/orders"
    tags = ("orders",)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @post(
        "/",
        guards=[requires(Role.CUSTOMER, Role.OPERATOR)],
        status_code=HTTP_201_CREATED,
        responses=ERRORS,
        summary="Create a repair order from the intake template",
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[Intake],
        idempotency_key: IdempotencyKey,
    ) -> Response[OrderView]:
        principal = current_principal(request)
        plane = plane_of(request)
        customer_id = _customer_id(principal, data)
        idem = Idem(principal, idempotency_key, await request.body())
        try:
            event = new_order(new_order_id(), data, customer_id, Actor.of(principal), now_ms())
        except ValueError as e:
            raise unprocessable([FieldError("customer.address.region", str(e))]) from None
        try:
            result = await plane.log.create(event, idempotency=idem.key, body_hash=idem.body_hash)
        except Exception as e:
            raise write_errors(e) from None
        response = order_response(result, principal, HTTP_201_CREATED)
        response.headers["Location"] = f"/orders/{result.order.id}"
        return response

    @get(
        "/",
        guards=[requires(Role.CUSTOMER, Role.OPERATOR, Role.DEPOT)],
        responses={**ERRORS, **UNAVAILABLE},
        summary="List orders (a customer sees its own)",
    )
    async def list_orders(
        self,
        request: Request[Any, Any, Any],
        status: Annotated[OrderStatus | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> OrderPage:
        principal = current_principal(request)
        reject_unknown_query(request, _LIST_PARAMETERS)
        plane = plane_of(request)
        store = plane.store
        if store is None:
            raise HTTPException(
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                detail="this API process has no storage attached; listing needs it",
            )
        where = ["1"]
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if principal.role == Role.CUSTOMER:
            where.append("customer_id = {customer:String}")
            params["customer"] = principal.subject
        if status is not None:
            where.append("status = {status:String}")
            params["status"] = status.value
        sql = (
            "SELECT order_id, version, status, customer_id, fault_type, declared_value_fen, "
            "toUnixTimestamp64Milli(created_at), toUnixTimestamp64Milli(at) "
            f"FROM orders_latest WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, order_id LIMIT {limit:UInt32} OFFSET {offset:UInt32}"
        )
        rows = await asyncio.to_thread(store.rows, sql, params)
        return OrderPage(
            orders=[
                OrderSummary(
                    id=r[0],
                    version=int(r[1]),
                    status=r[2],
                    customer_id=r[3],
                    fault_type=r[4],
                    declared_value=fen_to_str(int(r[5])),
                    created_ms=int(r[6]),
                    updated_ms=int(r[7]),
                )
                for r in rows
            ],
            limit=limit,
            offset=offset,
        )

    @get(
        "/{order_id:str}",
        guards=[requires(Role.CUSTOMER, Role.OPERATOR, Role.DEPOT)],
        responses={**ERRORS, **NOT_FOUND},
        summary="One order, with its version as ETag",
    )
    async def read(
        self, request: Request[Any, Any, Any], order_id: ORDER_ID
    ) -> Response[OrderView]:
        principal = current_principal(request)
        return order_response(await load_visible(plane_of(request), principal, order_id), principal)

    @post(
        "/{order_id:str}/transitions",
        guards=[requires(Role.CUSTOMER, Role.OPERATOR, Role.DEPOT)],
        status_code=200,
        responses={**ERRORS, **NOT_FOUND, **CONFLICTS},
        summary="Move an order along its state graph (If-Match for optimistic concurrency)",
    )
    async def transition(
        self,
        request: Request[Any, Any, Any],
        order_id: ORDER_ID,
        data: JSONBody[TransitionRequest],
        if_match: IfMatch,
        idempotency_key: IdempotencyKey,
    ) -> Response[OrderView]:
        principal = current_principal(request)
        plane = plane_of(request)
        expected = parse_if_match(if_match)
        await load_visible(plane, principal, order_id)
        idem = Idem(principal, idempotency_key, await request.body())
        try:
            result = await plane.ops.move(
                order_id,
                data.to,
                Actor.of(principal),
                now_ms(),
                data.reason,
                role=principal.role,
                expected=expected,
                idempotency=idem.key,
                body_hash=idem.body_hash,
            )
        except Exception as e:
            raise write_errors(e) from None
        return order_response(result, principal)

    @get(
        "/{order_id:str}/timeline",
        guards=[requires(Role.CUSTOMER, Role.OPERATOR, Role.DEPOT)],
        responses={**ERRORS, **NOT_FOUND},
        summary="Every change of the order, oldest first",
    )
    async def timeline(
        self, request: Request[Any, Any, Any], order_id: ORDER_ID
    ) -> list[TimelineEntry]:
        plane = plane_of(request)
        await load_visible(plane, current_principal(request), order_id)
        return [TimelineEntry.of(v, e) for v, e in await plane.log.timeline(order_id)]

    @post(
        "/{order_id:str}/photos",
        guards=[requires(Role.CUSTOMER, Role.OPERATOR, Role.DEPOT)],
        status_code=HTTP_201_CREATED,
        request_max_body_size=MAX_PHOTO_BYTES + 64 * 1024,
        responses={**ERRORS, **NOT_FOUND, **UNAVAILABLE},
        summary="Attach a photo (stored once per SHA-256)",
        operation_class=_PhotoOperation,
    )
    async def add_photo(
        self,
        request: Request[Any, Any, Any],
        order_id: ORDER_ID,
        # The raw form, not MultipartBody[UploadFile]: Litestar 2 answers 500 to a form
        # without a file part (StopIteration in its extractor).
        data: MultipartBody[dict[str, Any]],
        idempotency_key: IdempotencyKey,
    ) -> Response[OrderView]:
        principal = current_principal(request)
        plane = plane_of(request)
        upload = data.get("file")
        if not isinstance(upload, UploadFile):
            raise unprocessable([FieldError("file", "required: the photo, as a file part")])
        await load_visible(plane, principal, order_id)
        content_type = (upload.content_type or "").split(";")[0].strip().lower()
        if content_type not in PHOTO_TYPES:
            raise unprocessable(
                [
                    FieldError(
                        "file", f"content type must be one of {', '.join(sorted(PHOTO_TYPES))}"
                    )
                ]
            )
        blob = await upload.read()
        if not blob or len(blob) > MAX_PHOTO_BYTES:
            raise unprocessable([FieldError("file", f"1 byte to {MAX_PHOTO_BYTES} bytes")])
        store = plane.store
        if store is None:
            raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail="no storage")
        digest = hashlib.sha256(blob).hexdigest()
        await asyncio.to_thread(attachments.put, store, digest, content_type, blob)
        idem = Idem(principal, idempotency_key, digest.encode())
        event = OrderEvent(
            type="photo",
            at_ms=now_ms(),
            actor=Actor.of(principal),
            data={"sha256": digest, "content_type": content_type, "size": len(blob)},
        )
        try:
            result = await plane.log.append(
                order_id, lambda _o: event, idempotency=idem.key, body_hash=idem.body_hash
            )
        except Exception as e:
            raise write_errors(e) from None
        return order_response(result, principal, HTTP_201_CREATED)

    @get(
        "/{order_id:str}/photos/{sha256:str}",
        guards=[requires(Role.CUSTOMER, Role.OPERATOR, Role.DEPOT)],
        responses={**ERRORS, **NOT_FOUND},
        media_type="application/octet-stream",
        summary="A photo of the order, by its SHA-256",
    )
    async def photo(
        self,
        request: Request[Any, Any, Any],
        order_id: ORDER_ID,
        sha256: Annotated[str, PathParameter(pattern=r"^[0-9a-f]{64}$")],
    ) -> Response[bytes]:
        plane = plane_of(request)
        current = await load_visible(plane, current_principal(request), order_id)
        if sha256 not in current.order.photos or plane.store is None:
            raise not_found("photo")
        found = await asyncio.to_thread(attachments.get, plane.store, sha256)
        if found is None:
            raise not_found("photo")
        content_type, blob = found
        return Response(blob, media_type=content_type, headers={"ETag": f'"{sha256}"'})
