"""Claims: the state graph and its roles, amount caps, attribution, cycle time, fold, views."""

from __future__ import annotations

import msgspec
import pytest

from streamguard.domain.auth import Role
from streamguard.domain.claims import (
    Claim,
    ClaimError,
    ClaimEvent,
    ClaimStatus,
    allowed_targets,
    apply,
    attribute,
    claim_view,
    cycle_time_ms,
    decide,
    file_claim,
    fold,
    pay,
)
from streamguard.domain.insurance import Policy
from streamguard.domain.money import Fen, parse_cny
from streamguard.domain.orders import Actor

S = ClaimStatus
OP = Actor(role="operator", subject="ops-1")
CUSTOMER = Actor(role="customer", subject="cust-1")
T0 = 1_700_000_000_000
HOUR = 3_600_000


def policy(coverage: str = "3000.00", order_id: str = "RO-1") -> Policy:
    value = parse_cny(coverage)
    return Policy(
        policy_id=f"POL-{order_id}",
        order_id=order_id,
        carrier="SF",
        tier="advanced",
        declared_value_fen=value,
        premium_fen=Fen(1500),
        coverage_fen=value,
        created_ms=T0 - 10 * HOUR,
    )


def filed(claimed: str = "1000.00", actor: Actor = CUSTOMER, **kw: object) -> Claim:
    claim, _ = file(claimed, actor, **kw)
    return claim


def file(
    claimed: str = "1000.00", actor: Actor = CUSTOMER, **kw: object
) -> tuple[Claim, ClaimEvent]:
    args: dict[str, object] = {
        "claim_id": "CL-1",
        "order_id": "RO-1",
        "order_customer_id": "cust-1",
        "kind": "damage",
        "claimed_fen": parse_cny(claimed),
        "policy": policy(),
        "actor": actor,
        "at_ms": T0,
        "reason": "screen cracked on arrival",
        "attribution": ("inbound", "SF", T0 - 5 * HOUR),
    }
    args.update(kw)
    return file_claim(**args)  # type: ignore[arg-type]


def reviewed(claimed: str = "1000.00") -> Claim:
    claim, _ = decide(filed(claimed), S.UNDER_REVIEW, OP, T0 + HOUR, "evidence complete")
    return claim


# --- the state graph -------------------------------------------------------------------------


def test_filing_by_customer_or_operator() -> None:
    claim = filed()
    assert claim.status is S.FILED
    assert claim.claimed_fen == 100_000
    assert claim.approved_fen is None
    assert claim.paid_fen is None
    assert (claim.leg, claim.custody_holder, claim.first_anomaly_ms) == (
        "inbound",
        "SF",
        T0 - 5 * HOUR,
    )
    assert claim.history == [(S.FILED, T0, "screen cracked on arrival")]
    assert filed(actor=OP).status is S.FILED


@pytest.mark.parametrize(
    "actor",
    [
        Actor(role="customer", subject="cust-2"),
        Actor(role="depot", subject="staff-9"),
        Actor(role="carrier", subject="sf-bot", carrier="SF"),
        Actor.system("engine"),
    ],
)
def test_filing_refused_to_others(actor: Actor) -> None:
    with pytest.raises(ClaimError) as e:
        file(actor=actor)
    assert e.value.field == "actor"


def test_filing_checks_kind_policy_and_reason() -> None:
    with pytest.raises(ClaimError) as e:
        file(kind="theft")
    assert e.value.field == "kind"
    assert e.value.allowed == ["damage", "loss", "delay"]
    with pytest.raises(ClaimError) as e:
        file(policy=policy(order_id="RO-2"))
    assert e.value.field == "policy_id"
    with pytest.raises(ClaimError) as e:
        file(reason="  ")
    assert e.value.field == "reason"


@pytest.mark.parametrize(
    ("path", "amount"),
    [
        ([S.UNDER_REVIEW, S.APPROVED, S.PAID], "1000.00"),
        ([S.UNDER_REVIEW, S.PARTIALLY_APPROVED, S.PAID], "400.00"),
        ([S.UNDER_REVIEW, S.REJECTED], None),
    ],
)
def test_every_legal_move(path: list[ClaimStatus], amount: str | None) -> None:
    claim = filed()
    for i, to in enumerate(path):
        fen = parse_cny(amount) if amount and to is S.PARTIALLY_APPROVED else None
        claim, event = decide(claim, to, OP, T0 + (i + 1) * HOUR, f"step {i}", fen)
        assert claim.status is to
        assert event.from_status is not to
        assert event.to_status is to
    assert [s for s, _, _ in claim.history] == [S.FILED, *path]
    if amount is None:
        assert claim.approved_fen is None
        assert claim.paid_fen is None
    else:
        assert claim.approved_fen == parse_cny(amount)
        assert claim.paid_fen == parse_cny(amount)
    assert allowed_targets(claim) == []


@pytest.mark.parametrize(
    ("status_path", "to", "allowed"),
    [
        ([], S.APPROVED, ["UNDER_REVIEW"]),
        ([], S.PAID, ["UNDER_REVIEW"]),
        ([S.UNDER_REVIEW], S.PAID, ["APPROVED", "PARTIALLY_APPROVED", "REJECTED"]),
        ([S.UNDER_REVIEW], S.FILED, ["APPROVED", "PARTIALLY_APPROVED", "REJECTED"]),
        ([S.UNDER_REVIEW, S.APPROVED], S.REJECTED, ["PAID"]),
        ([S.UNDER_REVIEW, S.REJECTED], S.PAID, []),
        ([S.UNDER_REVIEW, S.APPROVED, S.PAID], S.UNDER_REVIEW, []),
    ],
)
def test_illegal_moves_list_the_allowed(
    status_path: list[ClaimStatus], to: ClaimStatus, allowed: list[str]
) -> None:
    claim = filed()
    for i, step in enumerate(status_path):
        claim, _ = decide(claim, step, OP, T0 + i + 1, "ok")
    with pytest.raises(ClaimError) as e:
        decide(claim, to, OP, T0 + HOUR, "try")
    assert e.value.field == "to_status"
    assert e.value.allowed == allowed


def test_unknown_target_status() -> None:
    with pytest.raises(ClaimError) as e:
        decide(filed(), "CLOSED", OP, T0, "x")
    assert e.value.field == "to_status"
    assert e.value.allowed == ["UNDER_REVIEW"]


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.DEPOT, Role.CARRIER])
def test_only_operators_review_decide_and_pay(role: Role) -> None:
    with pytest.raises(ClaimError) as e:
        decide(filed(), S.UNDER_REVIEW, role, T0, "mine")
    assert e.value.field == "actor"
    with pytest.raises(ClaimError) as e:
        decide(reviewed(), S.APPROVED, CUSTOMER, T0, "approve myself")
    assert e.value.field == "actor"
    approved, _ = decide(reviewed(), S.APPROVED, Role.OPERATOR, T0 + 2 * HOUR, "ok")
    with pytest.raises(ClaimError):
        pay(approved, role, T0 + 3 * HOUR, "pay me")
    assert allowed_targets(approved, role) == []
    assert allowed_targets(approved, Role.OPERATOR) == ["PAID"]


def test_every_move_needs_a_reason() -> None:
    for reason in (None, "", "   "):
        with pytest.raises(ClaimError) as e:
            decide(filed(), S.UNDER_REVIEW, OP, T0, reason)
        assert e.value.field == "reason"


# --- amounts ---------------------------------------------------------------------------------


def test_claimed_above_coverage_is_refused() -> None:
    with pytest.raises(ClaimError) as e:
        file("3000.01")
    assert e.value.field == "claimed_amount"
    assert "3000.00" in e.value.message
    assert filed("3000.00").claimed_fen == 300_000
    with pytest.raises(ClaimError) as e:
        file("0")
    assert e.value.field == "claimed_amount"


def test_approved_means_the_claimed_amount() -> None:
    claim, event = decide(reviewed(), S.APPROVED, OP, T0 + 2 * HOUR, "clear damage")
    assert claim.approved_fen == 100_000
    assert event.amount_fen == 100_000
    claim, _ = decide(reviewed(), S.APPROVED, OP, T0 + 2 * HOUR, "ok", Fen(100_000))
    assert claim.approved_fen == 100_000
    for wrong in (99_999, 100_001):
        with pytest.raises(ClaimError) as e:
            decide(reviewed(), S.APPROVED, OP, T0 + 2 * HOUR, "ok", wrong)
        assert e.value.field == "approved_amount"


@pytest.mark.parametrize("amount", [None, 0, 100_000, 100_001, 300_001])
def test_partial_approval_bounds(amount: int | None) -> None:
    with pytest.raises(ClaimError) as e:
        decide(reviewed(), S.PARTIALLY_APPROVED, OP, T0 + 2 * HOUR, "part", amount)
    assert e.value.field == "approved_amount"


@pytest.mark.parametrize("amount", [1, 50_000, 99_999])
def test_partial_approval_inside_bounds(amount: int) -> None:
    claim, _ = decide(reviewed(), S.PARTIALLY_APPROVED, OP, T0 + 2 * HOUR, "part", amount)
    assert claim.approved_fen == amount


def test_rejection_and_review_carry_no_amount() -> None:
    with pytest.raises(ClaimError) as e:
        decide(reviewed(), S.REJECTED, OP, T0 + 2 * HOUR, "no evidence", 100)
    assert e.value.field == "approved_amount"
    with pytest.raises(ClaimError) as e:
        decide(filed(), S.UNDER_REVIEW, OP, T0 + HOUR, "look", 100)
    assert e.value.field == "approved_amount"


def test_payment_is_the_approved_amount() -> None:
    claim, _ = decide(reviewed(), S.PARTIALLY_APPROVED, OP, T0 + 2 * HOUR, "part", 40_000)
    with pytest.raises(ClaimError) as e:
        pay(claim, OP, T0 + 3 * HOUR, "transfer", 100_000)
    assert e.value.field == "paid_amount"
    paid, event = pay(claim, OP, T0 + 3 * HOUR, "transfer 8812")
    assert paid.paid_fen == 40_000
    assert event.amount_fen == 40_000


# --- attribution -----------------------------------------------------------------------------


SIGNOFF = T0


def test_attribution_before_the_depot_signoff_is_inbound() -> None:
    assert attribute([SIGNOFF + 5, SIGNOFF - 10, SIGNOFF - 3], SIGNOFF, "SF", "JD") == (
        "inbound",
        "SF",
        SIGNOFF - 10,
    )


def test_attribution_after_the_depot_signoff_is_return() -> None:
    assert attribute([SIGNOFF + 7, SIGNOFF + 1], SIGNOFF, "SF", "JD") == (
        "return",
        "JD",
        SIGNOFF + 1,
    )
    assert attribute([SIGNOFF + 1], SIGNOFF, "SF", None) == ("return", None, SIGNOFF + 1)


def test_attribution_at_the_signoff_is_inbound() -> None:
    # Custody passes when the depot signs: a reading at that instant is the inbound carrier's.
    assert attribute([SIGNOFF], SIGNOFF, "SF", "JD") == ("inbound", "SF", SIGNOFF)


def test_attribution_without_depot_signoff_is_inbound() -> None:
    assert attribute(iter([T0 + 9 * HOUR, T0]), None, "SF", None) == ("inbound", "SF", T0)


def test_no_anomaly_no_attribution() -> None:
    assert attribute([], SIGNOFF, "SF", "JD") == (None, None, None)
    assert attribute((), None, None, None) == (None, None, None)


def test_filing_without_anomaly() -> None:
    claim = filed(kind="loss", attribution=(None, None, None))
    assert (claim.leg, claim.custody_holder, claim.first_anomaly_ms) == (None, None, None)


# --- cycle time, fold, view ------------------------------------------------------------------


def test_cycle_time() -> None:
    claim = filed()
    assert cycle_time_ms(claim) is None
    assert cycle_time_ms(claim, "decision") is None
    claim, _ = decide(claim, S.UNDER_REVIEW, OP, T0 + HOUR, "look")
    claim, _ = decide(claim, S.APPROVED, OP, T0 + 5 * HOUR, "ok")
    assert cycle_time_ms(claim, "decision") == 5 * HOUR
    assert cycle_time_ms(claim) is None
    assert cycle_time_ms(claim, "paid") is None
    claim, _ = pay(claim, OP, T0 + 30 * HOUR, "paid")
    assert cycle_time_ms(claim) == 30 * HOUR
    assert cycle_time_ms(claim, "paid") == 30 * HOUR
    assert cycle_time_ms(claim, "decision") == 5 * HOUR


def test_cycle_time_of_a_rejection_ends_at_the_decision() -> None:
    claim, _ = decide(reviewed(), S.REJECTED, OP, T0 + 3 * HOUR, "packaging inadequate")
    assert cycle_time_ms(claim) == 3 * HOUR
    assert cycle_time_ms(claim, "paid") is None


def test_fold_of_events_equals_the_claim() -> None:
    claim, e1 = file()
    claim, e2 = decide(claim, S.UNDER_REVIEW, OP, T0 + HOUR, "look")
    claim, e3 = decide(claim, S.PARTIALLY_APPROVED, OP, T0 + 2 * HOUR, "part", 25_050)
    claim, e4 = pay(claim, OP, T0 + 3 * HOUR, "paid")
    events = [e1, e2, e3, e4]
    assert fold(events) == claim
    # Through the wire form too: events survive JSON and fold to the same claim.
    wire = msgspec.json.encode(events)
    assert fold(msgspec.json.decode(wire, type=list[ClaimEvent])) == claim
    assert fold([]) is None


def test_fold_refuses_out_of_order_events() -> None:
    claim, e1 = file()
    _, e2 = decide(claim, S.UNDER_REVIEW, OP, T0 + HOUR, "look")
    with pytest.raises(ClaimError):
        apply(None, e2)
    with pytest.raises(ClaimError):
        apply(claim, e1)
    reviewed_claim = apply(claim, e2)
    with pytest.raises(ClaimError) as e:
        apply(reviewed_claim, e2)
    assert e.value.field == "from_status"


def test_view_carries_money_as_strings() -> None:
    claim, _ = decide(reviewed(), S.PARTIALLY_APPROVED, OP, T0 + 2 * HOUR, "part", 25_050)
    view = claim_view(claim)
    assert view["claimed_amount"] == "1000.00"
    assert view["approved_amount"] == "250.50"
    assert view["paid_amount"] is None
    assert view["coverage"] == "3000.00"
    assert view["status"] == "PARTIALLY_APPROVED"
    assert view["kind"] == "damage"
    assert view["leg"] == "inbound"
    assert view["custody_holder"] == "SF"
    assert view["allowed"] == ["PAID"]
    assert view["decision_time_ms"] == 2 * HOUR
    assert [h["status"] for h in view["history"]] == ["FILED", "UNDER_REVIEW", "PARTIALLY_APPROVED"]
    assert all(isinstance(h["reason"], str) and h["reason"] for h in view["history"])
    paid, _ = pay(claim, OP, T0 + 4 * HOUR, "paid")
    assert claim_view(paid)["paid_amount"] == "250.50"
    # No float anywhere in the JSON form.
    assert b"250.5," not in msgspec.json.encode(claim_view(paid))
