"""Webhooks (CONTROL_PLANE.md, "Notifications"): what a subscriber is sent, how it is signed,
and when a failed delivery is tried again. Pure logic: the bus delivers, the API manages.

Every event a subscriber can get is an event of the order log; :func:`webhook_events` says
which webhook events one order event is (a sign-off that moves the order is both a
``signoff.created`` and an ``order.status_changed``). A delivery is signed with HMAC-SHA256
over ``f"{timestamp}."`` and the exact body bytes (:func:`signature`), so a receiver checks
both that we sent it and that it is fresh.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from streamguard.domain.orders import Order, OrderEvent

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "SUBSCRIPTION_ID_PATTERN",
    "TIMESTAMP_HEADER",
    "URL_PATTERN",
    "Subscription",
    "WebhookEvent",
    "backoff_s",
    "delivery_id",
    "new_secret",
    "new_subscription_id",
    "signature",
    "signature_header",
    "signed_headers",
    "verify",
    "webhook_events",
]

WebhookEvent = Literal[
    "alert", "order.status_changed", "signoff.created", "claim.updated", "return.created"
]
EVENT_TYPES: tuple[str, ...] = get_args(WebhookEvent)

TIMESTAMP_HEADER = "StreamGuard-Timestamp"
SIGNATURE_HEADER = "StreamGuard-Signature"
EVENT_HEADER = "StreamGuard-Event"
DELIVERY_HEADER = "StreamGuard-Delivery"
SIGNATURE_VERSION = "v1"
#: How old a delivery's timestamp may be before :func:`verify` refuses it (replays).
DEFAULT_TOLERANCE_MS = 5 * 60_000

SUBSCRIPTION_ID_PATTERN = r"^WH-[0-9A-F]{16}$"
# http(s), a host name (or IPv4 address), an optional port and path: no user info (the
# signature is the authentication), no IPv6 literal (use a name), and nothing the HTTP client
# would refuse, so a URL the schema accepts is one a delivery can be tried at.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL_PATTERN = (
    # "$" also matches before a final newline in Python: refuse any newline outright.
    rf"^(?![\s\S]*\n)https?://{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?"
    r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
)
Url = Annotated[str, Meta(pattern=URL_PATTERN, max_length=2000)]


class Subscription(msgspec.Struct, kw_only=True):
    """One subscription as NATS KV keeps it (``sg_webhooks``/<id>), secret included.

    ``consecutive_failures`` counts failed attempts since the last success; at the configured
    limit the subscription is disabled (``enabled`` false, ``disabled_reason`` says why) until
    an operator enables it again. After a rotation the previous secret still signs until
    ``previous_secret_until_ms``, so receivers can switch without losing deliveries."""

    id: str
    url: str
    event_types: list[str]
    secret: str
    description: str = ""
    enabled: bool = True
    created_ms: int
    updated_ms: int
    created_by: str = ""
    consecutive_failures: int = 0
    disabled_reason: str | None = None
    disabled_ms: int | None = None
    previous_secret: str | None = None
    previous_secret_until_ms: int | None = None
    #: The hash of the creating request, when it carried an Idempotency-Key.
    request_hash: str | None = None

    def signing_secrets(self, now_ms: int) -> list[str]:
        """The secrets a delivery is signed with now: the current one, then the previous one
        while its grace period lasts."""
        if self.previous_secret and (self.previous_secret_until_ms or 0) > now_ms:
            return [self.secret, self.previous_secret]
        return [self.secret]


def new_subscription_id(seed: str | None = None) -> str:
    """``WH-<16 hex>``: random, or derived from ``seed`` (a stored Idempotency-Key) so a
    repeated create finds the subscription it made."""
    if seed is None:
        return f"WH-{secrets.token_hex(8).upper()}"
    return f"WH-{hashlib.sha256(seed.encode()).hexdigest()[:16].upper()}"


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def delivery_id(subscription_id: str, source_seq: int, event_type: str) -> str:
    """The same for every attempt of one event to one subscription, and for a fan-out repeated
    after a crash: receivers deduplicate on it."""
    return f"{subscription_id}:{source_seq}:{event_type}"


# ---- signing ---------------------------------------------------------------------------------


def signature(secret: str, timestamp_ms: int, body: bytes) -> str:
    """hex HMAC-SHA256, keyed by the secret's UTF-8 bytes, of ``f"{timestamp_ms}."`` + body."""
    message = f"{timestamp_ms}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: Iterable[str], timestamp_ms: int, body: bytes) -> str:
    """``v1=<hex>``, one per secret (two during a rotation's grace period), comma-separated."""
    return ",".join(
        f"{SIGNATURE_VERSION}={signature(s, timestamp_ms, body)}" for s in signing_secrets
    )


def signed_headers(
    subscription: Subscription, event_type: str, delivery: str, body: bytes, now_ms: int
) -> dict[str, str]:
    """Every header of one delivery attempt (a fresh timestamp and signature per attempt)."""
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(now_ms),
        SIGNATURE_HEADER: signature_header(subscription.signing_secrets(now_ms), now_ms, body),
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: delivery,
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now_ms: int,
    tolerance_ms: int = DEFAULT_TOLERANCE_MS,
) -> bool:
    """What a receiver does: a ``v1`` signature matches and the timestamp is recent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lowered[TIMESTAMP_HEADER.lower()])
    except (KeyError, ValueError):
        return False
    if abs(now_ms - timestamp) > tolerance_ms:
        return False
    expected = signature(secret, timestamp, body)
    offered = [
        value
        for version, _, value in (
            part.strip().partition("=")
            for part in lowered.get(SIGNATURE_HEADER.lower(), "").split(",")
        )
        if version == SIGNATURE_VERSION
    ]
    return any(hmac.compare_digest(expected, value) for value in offered)


# ---- retries -----------------------------------------------------------------------------------


def backoff_s(attempt: int, base_s: float, cap_s: float, jitter: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``base·2^(attempt-1)``
    scaled by ``0.5 + jitter/2`` (``jitter`` uniform in [0, 1]), so retries of many deliveries
    spread out, then capped. Whatever the jitter, the wait never shrinks from one attempt to
    the next (the least of one doubling is the most of the one before)."""
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, got {attempt}")
    raw = base_s * 2.0 ** min(attempt - 1, 62)
    return min(cap_s, raw * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0)))


# ---- what an order event is to subscribers -----------------------------------------------------


def _order_view(order: Order) -> dict[str, Any]:
    """The order as a subscriber sees it: its state and legs, none of the customer's contact
    details."""
    return {
        "id": order.id,
        "status": order.status.value,
        "customer_id": order.customer_id,
        "service": order.intake.service,
        "fault_type": order.intake.fault_type,
        "declared_value": order.declared_value,
        "updated_ms": order.updated_ms,
        "shipments": {
            leg: {k: ship.get(k) for k in ("shipment", "carrier", "origin", "dest", "tier")}
            for leg, ship in order.shipments.items()
        },
        "alerts": order.alerts,
        "claims": dict(order.claims),
    }


def _actor(event: OrderEvent) -> dict[str, Any]:
    return msgspec.to_builtins(event.actor)  # type: ignore[no-any-return]


def webhook_events(event: OrderEvent, order: Order) -> list[tuple[str, dict[str, Any]]]:
    """The webhook events one order event is, each with its ``data`` (the order after it
    included). ``order.status_changed`` includes an order's creation (``from_status`` null);
    ``return.created`` is a return leg booked with a new tracking number: the first booking and
    an operator's override (whose ``replaces`` names the leg it replaced)."""
    found: list[tuple[str, dict[str, Any]]] = []
    view = _order_view(order)
    data = event.data
    if event.type == "alert":
        found.append(("alert", {"alert": dict(data), "reason": event.reason, "order": view}))
    elif event.type == "signoff":
        found.append(("signoff.created", {"signoff": dict(data.get("summary", {})), "order": view}))
    elif event.type == "claim":
        found.append(
            (
                "claim.updated",
                {
                    "claim_id": data.get("claim_id"),
                    "to_status": data.get("to_status"),
                    "claim": data.get("claim"),
                    "actor": _actor(event),
                    "order": view,
                },
            )
        )
    elif (
        event.type == "shipment"
        and data.get("leg") == "return"
        and (event.from_status is not None or data.get("replaces"))
    ):
        leg = {k: v for k, v in data.items() if k != "choice"}
        # The choice's scores explain the carrier; a subscriber gets the chosen one's summary.
        choice = data.get("choice")
        if isinstance(choice, dict):
            leg["choice"] = {k: choice.get(k) for k in ("chosen", "explanation") if k in choice}
        found.append(("return.created", {"shipment": leg, "order": view}))
    if event.to_status is not None and event.to_status != event.from_status:
        found.append(
            (
                "order.status_changed",
                {
                    "from_status": event.from_status.value if event.from_status else None,
                    "to_status": event.to_status.value,
                    "reason": event.reason,
                    "cause": event.type,
                    "actor": _actor(event),
                    "order": view,
                },
            )
        )
    return found
