"""Webhook subscriptions as the API takes and shows them. The secret is in the answer to a
create (and to a rotation) only: it signs deliveries and is never shown again."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from streamguard.domain.webhooks import URL_PATTERN, Subscription, WebhookEvent

__all__ = [
    "AttemptPage",
    "AttemptView",
    "WebhookCreated",
    "WebhookInput",
    "WebhookPatch",
    "WebhookView",
]

Url = Annotated[
    str,
    Meta(
        pattern=URL_PATTERN,
        max_length=2000,
        description="http(s)://host[:port][/path]: where deliveries are POSTed",
    ),
]
EventTypes = Annotated[list[WebhookEvent], Meta(min_length=1, max_length=20)]
Description = Annotated[str, Meta(max_length=200)]


class WebhookInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Url
    event_types: EventTypes
    description: Description = ""
    enabled: bool = True


class WebhookPatch(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """The fields to change; the others stay. ``enabled: true`` re-enables a subscription that
    was disabled after failing, and resets its failure count."""

    url: Url | UnsetType = UNSET
    event_types: EventTypes | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class WebhookView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    created_ms: int
    updated_ms: int
    #: Failed attempts since the last success; the subscription is disabled at the limit.
    consecutive_failures: int
    disabled_reason: str | None = None
    disabled_ms: int | None = None
    #: After a rotation, until when the previous secret also signs.
    previous_secret_until_ms: int | None = None

    @classmethod
    def fields_of(cls, sub: Subscription) -> dict[str, Any]:
        return {
            "id": sub.id,
            "url": sub.url,
            "event_types": list(sub.event_types),
            "description": sub.description,
            "enabled": sub.enabled,
            "created_ms": sub.created_ms,
            "updated_ms": sub.updated_ms,
            "consecutive_failures": sub.consecutive_failures,
            "disabled_reason": sub.disabled_reason,
            "disabled_ms": sub.disabled_ms,
            "previous_secret_until_ms": sub.previous_secret_until_ms,
        }

    @classmethod
    def of(cls, sub: Subscription) -> WebhookView:
        return cls(**cls.fields_of(sub))


class WebhookCreated(WebhookView, frozen=True, kw_only=True):
    """The subscription with its signing secret, shown this once."""

    secret: str

    @classmethod
    def with_secret(cls, sub: Subscription) -> WebhookCreated:
        return cls(**cls.fields_of(sub), secret=sub.secret)


class AttemptView(msgspec.Struct, frozen=True, kw_only=True):
    """One delivery attempt. ``outcome``: ``delivered``; ``failed`` (retried after
    ``retry_in_ms``); ``disabled`` (failed and disabled the subscription); ``dropped_disabled``
    / ``dropped_deleted`` (not sent: the subscription was disabled or deleted)."""

    delivery_id: str
    event_type: str
    order_id: str
    source_seq: int
    attempt: int
    at_ms: int
    url: str
    status_code: int | None
    error: str | None
    duration_ms: int
    outcome: str
    retry_in_ms: int | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> AttemptView:
        return cls(
            delivery_id=row["delivery_id"],
            event_type=row["event_type"],
            order_id=row["order_id"],
            source_seq=int(row["source_seq"]),
            attempt=int(row["attempt"]),
            at_ms=int(row["at"]),
            url=row["url"],
            status_code=row["status_code"],
            error=row["error"],
            duration_ms=int(row["duration_ms"]),
            outcome=row["outcome"],
            retry_in_ms=row["retry_in_ms"],
        )


class AttemptPage(msgspec.Struct, frozen=True, kw_only=True):
    """Attempts, newest first."""

    attempts: list[AttemptView]
    limit: int
    offset: int
