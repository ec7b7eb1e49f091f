"""The carrier documents as the API declares them: the tariff document is the domain's own
shape (``domain.insurance``), whose loader checks every value and names each bad one; the
weights are ``domain.returns.Weights``; a carrier ranking is a :class:`ChoiceView`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from streamguard.domain.insurance import TariffsDoc
from streamguard.domain.returns import LaneEstimate, Weights

__all__ = ["ChoiceView", "OptionView", "RequestView", "TariffsDoc", "WeightsDoc"]

Weight = Annotated[float, Meta(ge=0, le=1000)]


class WeightsDoc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How much each component of a carrier's score counts (only the ratios matter; at least
    one must be positive)."""

    cost: Weight = Weights().cost
    time: Weight = Weights().time
    coverage: Weight = Weights().coverage
    quality: Weight = Weights().quality


class OptionView(msgspec.Struct, frozen=True, kw_only=True):
    """One candidate: eligible or why not, its component scores (0..1), its total, what it
    costs (shipping + premium, CNY) and the lane statistics its time and quality came from."""

    carrier: str
    eligible: bool
    excluded_because: list[str]
    scores: dict[str, float]
    total: float
    cost: str
    premium: str
    lane: LaneEstimate | None


class RequestView(msgspec.Struct, frozen=True, kw_only=True):
    origin: str
    dest: str
    declared_value: str
    fragile: bool
    fragile_parts: list[str]


class ChoiceView(msgspec.Struct, frozen=True, kw_only=True):
    """The carriers for a lane and a shipment, best first, with the chosen one (``None``: no
    carrier meets the constraints) and why."""

    chosen: str | None
    options: list[OptionView]
    weights: WeightsDoc
    explanation: str
    request: RequestView
    override: None = None
