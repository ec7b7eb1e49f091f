"""Backtesting a rule set: a fresh engine over stored events, and the rule set's validation as
field errors. Pure logic over the engine; the API and the store feed it.

A backtest answers "which alerts would this set have raised?", so it must give exactly what
``streamguard replay`` gives for the same events in the same order: one engine, batches in
arrival order, and nothing more at the end of input. Replay advances no wall clock — the
watermark ends at (largest scan ``ts``) - ``lateness_ms``, which the engine has already reached
after the last scan, and every timer it made due has fired then (EVENTS_AND_RULES.md §2, §3.2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from streamguard.domain.validation import FieldError
from streamguard.engine import KINDS, Engine
from streamguard.errors import ConfigError, RuleError

__all__ = ["BacktestResult", "backtest", "rule_error_field", "validate_rules"]

# How the engine names "the whole document" and "the whole rule" in a RuleError.
_DOCUMENT = "(document)"
_RULE = "(rule)"


@dataclass(slots=True)
class BacktestResult:
    """What a rule set raised over a run of events.

    ``alerts`` holds the first ``max_alerts`` alerts, each as the engine's JSON writes it;
    the counts cover every alert. ``by_rule`` and ``by_severity`` count alert records by state
    (``{"shock-3g": {"firing": 2, "resolved": 1}}``).
    """

    alerts: list[dict[str, Any]] = field(default_factory=list)
    total_alerts: int = 0
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    by_severity: dict[str, dict[str, int]] = field(default_factory=dict)
    events: int = 0
    dead_letters: int = 0

    @property
    def truncated(self) -> bool:
        return self.total_alerts > len(self.alerts)


def _count(counts: dict[str, dict[str, int]], key: str, state: str) -> None:
    states = counts.setdefault(key, {})
    states[state] = states.get(state, 0) + 1


def backtest(
    rules_json: str | bytes,
    batches: Iterable[tuple[str, pa.RecordBatch]],
    *,
    max_alerts: int | None = None,
) -> BacktestResult:
    """Run ``rules_json`` on a fresh engine over ``(kind, batch)`` pairs in arrival order.

    Raises :class:`~streamguard.errors.RuleError` for an invalid set (see
    :func:`validate_rules` for the 422 form) and ConfigError for an unknown kind. Alerts beyond
    ``max_alerts`` are counted, not kept, so a noisy rule cannot exhaust memory.
    """
    engine = Engine(rules_json)
    result = BacktestResult()
    for kind, batch in batches:
        if kind not in KINDS:
            raise ConfigError(f"unknown event kind {kind!r} (expected one of {', '.join(KINDS)})")
        ndjson = engine.process_json(batch, kind=kind)
        result.dead_letters += engine.discard_dead_letters()
        for line in ndjson.splitlines():
            alert = json.loads(line)
            result.total_alerts += 1
            _count(result.by_rule, str(alert["rule"]), str(alert["state"]))
            _count(result.by_severity, str(alert["severity"]), str(alert["state"]))
            if max_alerts is None or len(result.alerts) < max_alerts:
                result.alerts.append(alert)
    result.events = engine.stats()["events_in"]
    return result


def rule_error_field(e: RuleError, at: str = "") -> str:
    """The dotted path of what ``e`` is about: ``rules[shock-3g].op``, ``rules[2].id`` (a rule
    without a usable id), ``lateness_ms``; ``at`` prefixes it when the set is nested in a body
    (``rules.`` in a backtest request). The whole document is ``body`` (or ``at`` itself)."""
    where = e.field or _DOCUMENT
    if e.rule is None:
        if where == _DOCUMENT:
            return at.rstrip(".") or "body"
        return f"{at}{where}"
    # The engine names a rule without an id by its index, already as ``rules[i]``.
    rule = e.rule if e.rule.startswith("rules[") else f"rules[{e.rule}]"
    return f"{at}{rule}" if where == _RULE else f"{at}{rule}.{where}"


def _message(e: RuleError) -> str:
    """The engine's message without the ``rule 'x': field 'y': `` the field path now carries."""
    prefix = f"field '{e.field}': "
    if e.rule is not None:
        prefix = f"rule '{e.rule}': {prefix}"
    return e.message.removeprefix(prefix) if e.message.startswith(prefix) else e.message


def validate_rules(rules_json: str | bytes, *, at: str = "") -> list[FieldError]:
    """The rule set's errors as the API reports them (empty when the engine accepts it).

    The engine stops at the first error, so this is at most one; it names the rule and the
    field. A body that is not JSON, or not a JSON object, is reported before the engine sees it.
    """
    where = at.rstrip(".") or "body"
    try:
        doc = json.loads(rules_json)
    except (ValueError, UnicodeDecodeError) as e:
        return [FieldError(where, f"not valid JSON: {e}")]
    if not isinstance(doc, dict):
        return [FieldError(where, f"a rule set must be a JSON object, not {type(doc).__name__}")]
    try:
        Engine(rules_json)
    except RuleError as e:
        return [FieldError(rule_error_field(e, at), _message(e))]
    return []
