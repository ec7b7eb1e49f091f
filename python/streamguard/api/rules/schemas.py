"""The rules API's shapes. The top level of a rule set is declared here (so the OpenAPI schema
shows it and unknown fields get a 422); each rule is checked by the engine itself, the one
authority on what a rule means, whose errors name the rule and the field."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

__all__ = ["BacktestRequest", "BacktestView", "RuleSet"]

#: The engine's limit: 64 threshold and 64 dwell rules per set.
MAX_RULES = 128
#: Alerts a backtest returns at most (the counts cover them all).
MAX_ALERTS = 10_000

RULES_DESCRIPTION = (
    "The rules (EVENTS_AND_RULES.md §3), each checked by the engine: `id` (1-64 chars), `kind` "
    "(`threshold` or `dwell`), `severity` (`info`, `warning`, `critical`), optional `where` "
    "(`carrier`, `tier`, `fragile`); a threshold has `metric`, `op` (`gt`, `ge`, `lt`, `le`), "
    "`value`, optional `for_ms`, `clear`, `evidence`; a dwell has `for_ms`, optional `statuses`."
)
SHOCK_EXAMPLE = {
    "id": "shock-3g",
    "kind": "threshold",
    "metric": "shock_g",
    "op": "gt",
    "value": 3.0,
    "severity": "critical",
}


# The largest integer a JSON number carries exactly (OpenAPI writes bounds as floats).
MAX_INT = 2**53


class RuleSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rule set, versioned as a whole; replacing it takes effect in the engine within 1 s."""

    version: Annotated[
        int, Meta(ge=0, le=MAX_INT, description="The set's version, reported by the engine")
    ] = 0
    lateness_ms: Annotated[
        int,
        Meta(ge=0, le=MAX_INT, description="How far the scan watermark trails the latest scan"),
    ] = 0
    rules: Annotated[
        list[dict[str, Any]],
        Meta(max_length=MAX_RULES, description=RULES_DESCRIPTION, examples=[[SHOCK_EXAMPLE]]),
    ]


class BacktestRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Run ``rules`` over the events stored with ``ts`` in ``[from_ms, to_ms)`` (at most 31
    days), in the order the engine received them."""

    rules: RuleSet
    from_ms: Annotated[int, Meta(ge=0, description="Range start (ms since the epoch, inclusive)")]
    to_ms: Annotated[int, Meta(ge=0, description="Range end (ms since the epoch, exclusive)")]
    max_alerts: Annotated[
        int, Meta(ge=0, le=MAX_ALERTS, description="Alerts to return (all are counted)")
    ] = 1_000


class BacktestView(msgspec.Struct, kw_only=True):
    """What the set would have raised: the first ``max_alerts`` alerts as the engine writes
    them, and counts of every alert record by rule and by severity, each by state."""

    alerts: list[dict[str, Any]]
    total_alerts: int
    by_rule: dict[str, dict[str, int]]
    by_severity: dict[str, dict[str, int]]
    events: int
    dead_letters: int
    truncated: bool
