"""Claim requests and answers. Money travels as CNY decimal strings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from streamguard.domain.claims import Claim, claim_view
from streamguard.domain.orders import Money

__all__ = ["ClaimInput", "ClaimMove", "ClaimView", "HistoryEntry"]

Reason = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"\S")]


class ClaimInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """File a claim: what kind, how much (CNY, at most the policy's coverage), and why."""

    kind: Literal["damage", "loss", "delay"]
    claimed_amount: Money
    reason: Reason


class ClaimMove(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Review, decide or pay a claim. ``amount`` is the approved amount of a
    PARTIALLY_APPROVED decision (APPROVED is the claimed amount, PAID the approved one)."""

    to: Literal["UNDER_REVIEW", "APPROVED", "PARTIALLY_APPROVED", "REJECTED", "PAID"]
    reason: Reason
    amount: Money | None = None


class HistoryEntry(msgspec.Struct, frozen=True):
    status: str
    at_ms: int
    reason: str


class ClaimView(msgspec.Struct, frozen=True, kw_only=True):
    """A claim: its amounts, the leg and custody holder of the first anomaly, every status it
    went through with time and reason, and the moves an operator may make next."""

    id: str
    order_id: str
    kind: str
    status: str
    claimed_amount: str
    approved_amount: str | None
    paid_amount: str | None
    policy_id: str
    coverage: str
    leg: str | None
    custody_holder: str | None
    first_anomaly_ms: int | None
    evidence_sha256: str | None
    history: list[HistoryEntry]
    decision_time_ms: int | None
    cycle_time_ms: int | None
    allowed: list[str]

    @classmethod
    def of(cls, claim: Claim) -> ClaimView:
        view: dict[str, Any] = claim_view(claim)
        return msgspec.convert(view, cls)
