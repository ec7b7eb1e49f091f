"""``/webhooks``: operators subscribe URLs to events, change, disable, re-enable and delete the
subscriptions, rotate their secrets and read every delivery attempt.

Subscriptions live in NATS KV ``sg_webhooks`` (``bus.webhooks``); every write is a
compare-and-set, so an operator's change never undoes a delivery worker's failure count or the
reverse. Attempts are read from ClickHouse (``webhook_attempts``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.exceptions import HTTPException
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_204_NO_CONTENT,
    HTTP_409_CONFLICT,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from streamguard.api.auth import MAX_JSON_BODY_BYTES, current_principal, requires
from streamguard.api.common import Idem, IdempotencyKey, not_found, plane_of
from streamguard.api.problems import ERRORS, NOT_FOUND, UNAVAILABLE, unprocessable
from streamguard.api.webhooks.schemas import (
    AttemptPage,
    AttemptView,
    WebhookCreated,
    WebhookInput,
    WebhookPatch,
    WebhookView,
)
from streamguard.bus.clock import now_ms
from streamguard.bus.webhooks import SubscriptionStore, purge_queued
from streamguard.domain.auth import Role
from streamguard.domain.validation import FieldError, field_errors
from streamguard.domain.webhooks import (
    SUBSCRIPTION_ID_PATTERN,
    Subscription,
    new_secret,
    new_subscription_id,
)
from streamguard.store.webhook_tables import attempts_of

__all__ = ["WEBHOOK_ID", "WebhookController"]

WEBHOOK_ID = Annotated[
    str, PathParameter(pattern=SUBSCRIPTION_ID_PATTERN, description="WH-<16 hex>")
]
DELIVERY_ID = r"^WH-[0-9A-F]{16}:[0-9]{1,20}:[a-z._]{1,32}$"
_ATTEMPT_PARAMETERS = frozenset({"limit", "offset", "delivery_id"})
S = TypeVar("S", bound=msgspec.Struct)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


async def _strict(request: Request[Any, Any, Any], tp: type[S]) -> S:
    """The body decoded strictly: Litestar converts ``data`` leniently (``"enabled": 0`` would
    pass as false), and a subscription's switch must be a JSON boolean."""
    body = await request.body()
    try:
        return msgspec.json.decode(body, type=tp)
    except msgspec.ValidationError as e:
        errors = field_errors(tp, json.loads(body)) or [FieldError("body", str(e))]
        raise unprocessable(errors) from None


async def _subscriptions(request: Request[Any, Any, Any]) -> SubscriptionStore:
    return await SubscriptionStore.open(plane_of(request).js)


async def _existing(subs: SubscriptionStore, webhook_id: str) -> Subscription:
    sub = await subs.get(webhook_id)
    if sub is None:
        raise not_found("webhook")
    return sub


class WebhookController(Controller):
    path = "/webhooks"
    tags = ("webhooks",)
    guards = (requires(Role.OPERATOR),)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        responses={**ERRORS},
        summary="Subscribe a URL to events; the answer carries the signing secret, once",
        description="Deliveries are POSTed with `StreamGuard-Timestamp` (unix ms), "
        '`StreamGuard-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>`, '
        "`StreamGuard-Event` and `StreamGuard-Delivery` (the same id on every retry: delivery "
        "is at least once).",
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[WebhookInput],
        idempotency_key: IdempotencyKey,
    ) -> Response[WebhookCreated]:
        data = await _strict(request, WebhookInput)  # Litestar's lenient copy, checked
        principal = current_principal(request)
        idem = Idem(principal, idempotency_key, await request.body())
        subs = await _subscriptions(request)
        now = now_ms()
        sub = Subscription(
            id=new_subscription_id(idem.key),
            url=data.url,
            event_types=_unique(list(data.event_types)),
            secret=new_secret(),
            description=data.description,
            enabled=data.enabled,
            created_ms=now,
            updated_ms=now,
            created_by=principal.subject,
            request_hash=idem.body_hash if idem.key else None,
        )
        if not await subs.create(sub):
            existing = await subs.get(sub.id)
            if idem.key is None:
                # 64 random bits taken: retrying draws others.
                raise HTTPException(status_code=HTTP_409_CONFLICT, detail="try again")
            if existing is None:
                raise HTTPException(
                    status_code=HTTP_409_CONFLICT,
                    detail="the subscription this Idempotency-Key created has been deleted",
                )
            if existing.request_hash != idem.body_hash:
                raise unprocessable(
                    [
                        FieldError(
                            "Idempotency-Key",
                            "this Idempotency-Key was used before with a different request",
                        )
                    ]
                )
            return Response(
                WebhookCreated.with_secret(existing),
                status_code=HTTP_201_CREATED,
                headers={"Idempotent-Replayed": "true", "Location": f"/webhooks/{existing.id}"},
            )
        return Response(
            WebhookCreated.with_secret(sub),
            status_code=HTTP_201_CREATED,
            headers={"Location": f"/webhooks/{sub.id}"},
        )

    @get("/", responses={**ERRORS}, summary="Every webhook subscription, oldest first")
    async def list_webhooks(self, request: Request[Any, Any, Any]) -> list[WebhookView]:
        return [WebhookView.of(s) for s in await (await _subscriptions(request)).all()]

    @get("/{webhook_id:str}", responses={**ERRORS, **NOT_FOUND}, summary="One subscription")
    async def read(self, request: Request[Any, Any, Any], webhook_id: WEBHOOK_ID) -> WebhookView:
        return WebhookView.of(await _existing(await _subscriptions(request), webhook_id))

    @patch(
        "/{webhook_id:str}",
        responses={**ERRORS, **NOT_FOUND},
        summary="Change a subscription: url, event_types, description, enabled",
        description="`enabled: true` re-enables a subscription disabled after repeated "
        "failures and resets its failure count. Deliveries still queued are sent to the URL "
        "in force when each is attempted.",
    )
    async def change(
        self,
        request: Request[Any, Any, Any],
        webhook_id: WEBHOOK_ID,
        data: JSONBody[WebhookPatch],
    ) -> WebhookView:
        data = await _strict(request, WebhookPatch)  # Litestar's lenient copy, checked
        who = current_principal(request).subject

        def apply(sub: Subscription) -> Subscription:
            changes: dict[str, Any] = {}
            if not isinstance(data.url, msgspec.UnsetType):
                changes["url"] = data.url
            if not isinstance(data.event_types, msgspec.UnsetType):
                changes["event_types"] = _unique(list(data.event_types))
            if not isinstance(data.description, msgspec.UnsetType):
                changes["description"] = data.description
            if data.enabled is True and not sub.enabled:
                changes |= {
                    "enabled": True,
                    "consecutive_failures": 0,
                    "disabled_reason": None,
                    "disabled_ms": None,
                }
            elif data.enabled is False and sub.enabled:
                changes |= {
                    "enabled": False,
                    "disabled_reason": f"disabled by {who}",
                    "disabled_ms": now_ms(),
                }
            if not changes:
                return sub
            return msgspec.structs.replace(sub, updated_ms=now_ms(), **changes)

        changed = await (await _subscriptions(request)).change(webhook_id, apply)
        if changed is None:
            raise not_found("webhook")
        return WebhookView.of(changed)

    @delete(
        "/{webhook_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        responses={**ERRORS, **NOT_FOUND},
        summary="Delete a subscription and its queued deliveries",
    )
    async def remove(self, request: Request[Any, Any, Any], webhook_id: WEBHOOK_ID) -> None:
        if not await (await _subscriptions(request)).delete(webhook_id):
            raise not_found("webhook")
        await purge_queued(plane_of(request).js, webhook_id)

    @post(
        "/{webhook_id:str}/rotate-secret",
        status_code=HTTP_200_OK,
        responses={**ERRORS, **NOT_FOUND},
        summary="A new signing secret, shown once; the previous one also signs for a grace "
        "period (a second v1= in StreamGuard-Signature)",
    )
    async def rotate_secret(
        self, request: Request[Any, Any, Any], webhook_id: WEBHOOK_ID
    ) -> WebhookCreated:
        grace_ms = int(plane_of(request).config.webhooks.rotation_grace_s * 1000)
        fresh = new_secret()

        def rotate(sub: Subscription) -> Subscription:
            now = now_ms()
            return msgspec.structs.replace(
                sub,
                secret=fresh,
                previous_secret=sub.secret,
                previous_secret_until_ms=now + grace_ms,
                updated_ms=now,
            )

        rotated = await (await _subscriptions(request)).change(webhook_id, rotate)
        if rotated is None:
            raise not_found("webhook")
        return WebhookCreated.with_secret(rotated)

    @get(
        "/{webhook_id:str}/attempts",
        responses={**ERRORS, **NOT_FOUND, **UNAVAILABLE},
        summary="The subscription's delivery attempts, newest first",
    )
    async def attempts(
        self,
        request: Request[Any, Any, Any],
        webhook_id: WEBHOOK_ID,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
        delivery_id: Annotated[
            str | None,
            QueryParameter(
                pattern=DELIVERY_ID,
                description="only this delivery's attempts",
                schema_extra={"one_of": None, "type": "string"},
            ),
        ] = None,
    ) -> AttemptPage:
        unknown = sorted(set(request.query_params) - _ATTEMPT_PARAMETERS)
        if unknown:
            raise unprocessable([FieldError(k, "unknown query parameter") for k in unknown])
        plane = plane_of(request)
        await _existing(await _subscriptions(request), webhook_id)
        store = plane.store
        if store is None:
            raise HTTPException(
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                detail="this API process has no storage attached; attempts are stored there",
            )
        rows = await asyncio.to_thread(
            attempts_of, store, webhook_id, limit=limit, offset=offset, delivery_id=delivery_id
        )
        return AttemptPage(attempts=[AttemptView.of(r) for r in rows], limit=limit, offset=offset)
