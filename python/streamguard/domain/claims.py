"""Insurance claims: filing, the decision graph, who is liable, and claim cycle time.

A claim (``damage``, ``loss``, ``delay``) is filed against an order's policy and moves
``FILED -> UNDER_REVIEW -> APPROVED | PARTIALLY_APPROVED | REJECTED``, then an approval is
``PAID`` (CONTROL_PLANE.md, "Insurance"). Every move carries a time and a reason, so the cycle
time is measured, and every move is an immutable :class:`ClaimEvent`: the claim is the fold of
its events (:func:`apply`), like an order.

Assembling the evidence bundle (alerts with locked readings, scans, verified sign-offs, photos)
needs the store and belongs to the API; this module only decides, from the anomaly times and the
depot sign-off, which leg and which custody holder the first anomaly falls in
(:func:`attribute`). Money is integer fen inside and CNY decimal strings in views.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from streamguard.domain.auth import Role
from streamguard.domain.insurance import Policy
from streamguard.domain.money import Fen, fen_to_str
from streamguard.domain.orders import Actor
from streamguard.domain.shipments import Leg

__all__ = [
    "DECISIONS",
    "Attribution",
    "Claim",
    "ClaimError",
    "ClaimEvent",
    "ClaimKind",
    "ClaimStatus",
    "allowed_targets",
    "apply",
    "attribute",
    "claim_view",
    "cycle_time_ms",
    "decide",
    "file_claim",
    "fold",
    "pay",
]


class ClaimKind(enum.StrEnum):
    DAMAGE = "damage"
    LOSS = "loss"
    DELAY = "delay"


class ClaimStatus(enum.StrEnum):
    FILED = "FILED"
    UNDER_REVIEW = "UNDER_REVIEW"
    APPROVED = "APPROVED"
    PARTIALLY_APPROVED = "PARTIALLY_APPROVED"
    REJECTED = "REJECTED"
    PAID = "PAID"


C = ClaimStatus
#: The decisions a review ends in.
DECISIONS = frozenset({C.APPROVED, C.PARTIALLY_APPROVED, C.REJECTED})
_GRAPH: Mapping[ClaimStatus, frozenset[ClaimStatus]] = {
    C.FILED: frozenset({C.UNDER_REVIEW}),
    C.UNDER_REVIEW: DECISIONS,
    C.APPROVED: frozenset({C.PAID}),
    C.PARTIALLY_APPROVED: frozenset({C.PAID}),
    C.REJECTED: frozenset(),
    C.PAID: frozenset(),
}
_ORDER = list(ClaimStatus)

#: (leg, custody holder, first anomaly time); all ``None`` when there is no anomaly.
Attribution = tuple[Leg | None, str | None, int | None]


class ClaimError(ValueError):
    """A refused claim operation. ``field`` names what is wrong (``claimed_amount``,
    ``approved_amount``, ``reason``, ``to_status``, ``actor``...); ``allowed`` lists what the
    caller could ask for instead (the legal targets of an illegal move)."""

    def __init__(self, field: str, message: str, allowed: Iterable[str] = ()) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.allowed = list(allowed)


ClaimEventType = Literal["filed", "status"]


class ClaimEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One immutable change of a claim. ``amount_fen`` is the claimed amount (``filed``), the
    approved amount (a decision) or the paid amount (``PAID``); ``data`` carries a filing's
    details (order, kind, policy, coverage, attribution)."""

    type: ClaimEventType
    claim_id: str
    at_ms: int
    actor: Actor
    from_status: ClaimStatus | None = None
    to_status: ClaimStatus | None = None
    reason: str | None = None
    amount_fen: int | None = None
    data: dict[str, Any] = {}


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """A claim as its events leave it. ``history`` is every status it went through, each as
    ``(status, at_ms, reason)``, first ``FILED``."""

    id: str
    order_id: str
    kind: ClaimKind
    claimed_fen: Fen
    approved_fen: Fen | None = None
    paid_fen: Fen | None = None
    status: ClaimStatus = C.FILED
    leg: Leg | None = None
    custody_holder: str | None = None
    first_anomaly_ms: int | None = None
    policy_id: str
    coverage_fen: Fen
    history: list[tuple[ClaimStatus, int, str]] = []
    #: The SHA-256 of the evidence bundle assembled when the claim was filed.
    evidence_sha256: str | None = None

    def at(self, status: ClaimStatus) -> int | None:
        """When the claim entered ``status``, if it did."""
        return next((t for s, t, _ in self.history if s == status), None)


def attribute(
    anomaly_times_ms: Iterable[int],
    depot_signoff_ms: int | None,
    inbound_carrier: str | None,
    return_carrier: str | None,
) -> Attribution:
    """Which leg and custody holder the first anomaly falls in.

    The first (earliest) anomaly before the depot's sign-off, or any anomaly while there is no
    depot sign-off yet, is on the inbound leg and its carrier's; one after the sign-off is on the
    return leg and the return carrier's. Boundary: an anomaly at exactly the sign-off time is
    **inbound** -- custody passes when the depot signs, so a reading taken at that instant was
    still taken in the inbound carrier's hands (and the sign-off is the depot's acknowledgement
    of what it received, not of what happened after). The holder is ``None`` when that leg's
    carrier is not known. No anomaly: ``(None, None, None)``.
    """
    first = min(anomaly_times_ms, default=None)
    if first is None:
        return None, None, None
    if depot_signoff_ms is None or first <= depot_signoff_ms:
        return "inbound", inbound_carrier, first
    return "return", return_carrier, first


def _reason(reason: str | None) -> str:
    if reason is None or not reason.strip():
        raise ClaimError("reason", "a reason is required for every claim move")
    return reason.strip()


def _role(actor: Actor) -> Role | None:
    try:
        return Role(actor.role)
    except ValueError:
        return None


def allowed_targets(claim: Claim, role: Role | None = None) -> list[str]:
    """The statuses ``claim`` may move to now, in graph order; only an operator moves a claim
    after filing, so any other role gets an empty list."""
    if role is not None and role is not Role.OPERATOR:
        return []
    return [s.value for s in _ORDER if s in _GRAPH[claim.status]]


def file_claim(
    *,
    claim_id: str,
    order_id: str,
    order_customer_id: str,
    kind: ClaimKind | str,
    claimed_fen: int,
    policy: Policy,
    actor: Actor,
    at_ms: int,
    reason: str,
    attribution: Attribution = (None, None, None),
    evidence_sha256: str | None = None,
) -> tuple[Claim, ClaimEvent]:
    """File a claim on ``order_id`` under its ``policy``: the new claim and its ``filed`` event.

    The customer files on its own order only, or an operator does. ``claimed_fen`` must be
    positive and at most the policy's coverage. ``attribution`` is :func:`attribute`'s answer.
    """
    role = _role(actor)
    if role is Role.CUSTOMER:
        if actor.subject != order_customer_id:
            raise ClaimError("actor", "a customer files claims on its own orders only")
    elif role is not Role.OPERATOR:
        raise ClaimError("actor", "only the order's customer or an operator files a claim")
    try:
        claim_kind = ClaimKind(kind)
    except ValueError:
        raise ClaimError(
            "kind", f"unknown claim kind {kind!r}", [k.value for k in ClaimKind]
        ) from None
    if policy.order_id != order_id:
        raise ClaimError("policy_id", f"policy {policy.policy_id} is not order {order_id}'s")
    if claimed_fen <= 0:
        raise ClaimError("claimed_amount", "must be more than 0")
    if claimed_fen > policy.coverage_fen:
        raise ClaimError(
            "claimed_amount",
            f"{fen_to_str(claimed_fen)} CNY is above the coverage "
            f"{fen_to_str(policy.coverage_fen)} CNY",
        )
    leg, holder, first_ms = attribution
    event = ClaimEvent(
        type="filed",
        claim_id=claim_id,
        at_ms=at_ms,
        actor=actor,
        to_status=C.FILED,
        reason=_reason(reason),
        amount_fen=claimed_fen,
        data={
            "order_id": order_id,
            "kind": claim_kind.value,
            "policy_id": policy.policy_id,
            "coverage_fen": policy.coverage_fen,
            "leg": leg,
            "custody_holder": holder,
            "first_anomaly_ms": first_ms,
            "evidence_sha256": evidence_sha256,
        },
    )
    return apply(None, event), event


def _check_amount(claim: Claim, to: ClaimStatus, amount: int | None) -> int | None:
    """The amount a move to ``to`` records, or :class:`ClaimError` naming the amount."""
    cap = min(claim.claimed_fen, claim.coverage_fen)
    if to is C.APPROVED:
        amount = claim.claimed_fen if amount is None else amount
        if amount != claim.claimed_fen:
            raise ClaimError(
                "approved_amount",
                f"APPROVED pays the claimed {fen_to_str(claim.claimed_fen)} CNY in full; "
                "use PARTIALLY_APPROVED for less",
            )
        if amount > claim.coverage_fen:
            raise ClaimError("approved_amount", "above the coverage")
        return amount
    if to is C.PARTIALLY_APPROVED:
        if amount is None:
            raise ClaimError("approved_amount", "PARTIALLY_APPROVED needs the approved amount")
        if amount > cap:
            raise ClaimError(
                "approved_amount",
                f"{fen_to_str(amount)} CNY is above the claimed amount or the coverage "
                f"({fen_to_str(cap)} CNY)",
            )
        if not 0 < amount < claim.claimed_fen:
            raise ClaimError(
                "approved_amount",
                f"a partial approval is more than 0 and less than the claimed "
                f"{fen_to_str(claim.claimed_fen)} CNY",
            )
        return amount
    if to is C.PAID:
        approved = claim.approved_fen
        amount = approved if amount is None else amount
        if amount != approved:
            raise ClaimError(
                "paid_amount",
                f"pays the approved {fen_to_str(approved or 0)} CNY, not {fen_to_str(amount or 0)}",
            )
        return amount
    if amount is not None:
        raise ClaimError("approved_amount", f"a move to {to.value} carries no amount")
    return None


def decide(
    claim: Claim,
    to: ClaimStatus | str,
    actor: Actor | Role,
    at_ms: int,
    reason: str | None,
    approved_fen: int | None = None,
) -> tuple[Claim, ClaimEvent]:
    """Move ``claim`` to ``to`` (review, a decision, or payment): the moved claim and its event.

    Only an operator moves a claim after filing. ``APPROVED`` means the claimed amount in full
    (``approved_fen`` may be omitted); ``PARTIALLY_APPROVED`` needs ``0 < approved_fen <
    claimed``; ``REJECTED`` and ``UNDER_REVIEW`` take no amount. An illegal move raises
    :class:`ClaimError` on ``to_status`` listing the legal targets.
    """
    who = actor if isinstance(actor, Actor) else Actor(role=actor.value, subject=actor.value)
    role = _role(who)
    if role is not Role.OPERATOR:
        raise ClaimError("actor", "only an operator reviews, decides and pays claims")
    try:
        target = ClaimStatus(to)
    except ValueError:
        raise ClaimError(
            "to_status", f"unknown claim status {to!r}", allowed_targets(claim, role)
        ) from None
    if target not in _GRAPH[claim.status]:
        raise ClaimError(
            "to_status",
            f"a {claim.status.value} claim cannot move to {target.value}",
            allowed_targets(claim, role),
        )
    why = _reason(reason)
    amount = _check_amount(claim, target, approved_fen)
    event = ClaimEvent(
        type="status",
        claim_id=claim.id,
        at_ms=at_ms,
        actor=who,
        from_status=claim.status,
        to_status=target,
        reason=why,
        amount_fen=amount,
    )
    return apply(claim, event), event


def pay(
    claim: Claim,
    actor: Actor | Role,
    at_ms: int,
    reason: str | None,
    paid_fen: int | None = None,
) -> tuple[Claim, ClaimEvent]:
    """Pay an approved (or partially approved) claim its approved amount."""
    return decide(claim, C.PAID, actor, at_ms, reason, paid_fen)


def apply(claim: Claim | None, event: ClaimEvent) -> Claim:
    """The claim after ``event``: the fold step. A ``filed`` event starts a claim; a ``status``
    event must start from the claim's current status."""
    if event.type == "filed":
        if claim is not None:
            raise ClaimError("type", f"claim {claim.id} is already filed")
        d = event.data
        return Claim(
            id=event.claim_id,
            order_id=d["order_id"],
            kind=ClaimKind(d["kind"]),
            claimed_fen=Fen(event.amount_fen or 0),
            leg=d.get("leg"),
            custody_holder=d.get("custody_holder"),
            first_anomaly_ms=d.get("first_anomaly_ms"),
            policy_id=d["policy_id"],
            coverage_fen=Fen(d["coverage_fen"]),
            history=[(C.FILED, event.at_ms, event.reason or "")],
            evidence_sha256=d.get("evidence_sha256"),
        )
    if claim is None:
        raise ClaimError("type", "a claim starts with its filed event")
    if event.from_status is not claim.status or event.to_status is None:
        raise ClaimError(
            "from_status",
            f"event moves from {event.from_status}, the claim is {claim.status.value}",
        )
    to = event.to_status
    changes: dict[str, Any] = {}
    if to in (C.APPROVED, C.PARTIALLY_APPROVED):
        changes["approved_fen"] = Fen(event.amount_fen or 0)
    elif to is C.PAID:
        changes["paid_fen"] = Fen(event.amount_fen or 0)
    return msgspec.structs.replace(
        claim,
        status=to,
        history=[*claim.history, (to, event.at_ms, event.reason or "")],
        **changes,
    )


def fold(events: Iterable[ClaimEvent]) -> Claim | None:
    """The claim its events make, in order (``None`` for no events)."""
    claim: Claim | None = None
    for event in events:
        claim = apply(claim, event)
    return claim


def cycle_time_ms(claim: Claim, until: Literal["decision", "paid"] | None = None) -> int | None:
    """Claim cycle time: from ``FILED`` to the decision (``until="decision"``), to ``PAID``
    (``until="paid"``), or by default to where the claim ends (``PAID``, or ``REJECTED``).
    ``None`` while that point is not reached."""
    filed = claim.at(C.FILED)
    decided = next((t for s, t, _ in claim.history if s in DECISIONS), None)
    paid = claim.at(C.PAID)
    if until == "decision":
        end = decided
    elif until == "paid":
        end = paid
    else:
        end = paid if paid is not None else (decided if claim.status is C.REJECTED else None)
    if filed is None or end is None:
        return None
    return end - filed


def _money(fen: int | None) -> str | None:
    return None if fen is None else fen_to_str(fen)


def claim_view(claim: Claim) -> dict[str, Any]:
    """The claim as JSON carries it: money as CNY decimal strings, the history with its times
    and reasons, and the cycle times measured so far."""
    return {
        "id": claim.id,
        "order_id": claim.order_id,
        "kind": claim.kind.value,
        "status": claim.status.value,
        "claimed_amount": fen_to_str(claim.claimed_fen),
        "approved_amount": _money(claim.approved_fen),
        "paid_amount": _money(claim.paid_fen),
        "policy_id": claim.policy_id,
        "coverage": fen_to_str(claim.coverage_fen),
        "leg": claim.leg,
        "custody_holder": claim.custody_holder,
        "first_anomaly_ms": claim.first_anomaly_ms,
        "evidence_sha256": claim.evidence_sha256,
        "history": [
            {"status": s.value, "at_ms": t, "reason": reason} for s, t, reason in claim.history
        ],
        "decision_time_ms": cycle_time_ms(claim, "decision"),
        "cycle_time_ms": cycle_time_ms(claim),
        "allowed": allowed_targets(claim, Role.OPERATOR),
    }
