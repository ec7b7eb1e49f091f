"""``/rules``: the engine's rule set, read and replaced through KV ``sg_rules``/``active`` (the
engine watches the key and applies a valid set within 1 s), and backtests over stored events.

The KV revision is the set's ETag. A set is validated by the engine's own parser before it is
saved, so the engine never sees a set the API accepted and it would reject.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post, put
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from streamguard.api.auth import MAX_JSON_BODY_BYTES, requires
from streamguard.api.common import IfMatch, etag, not_found, parse_if_match, plane_of
from streamguard.api.kvdoc import PRECONDITIONS, current_entry, replace
from streamguard.api.problems import ERRORS, NOT_FOUND, UNAVAILABLE, unprocessable
from streamguard.api.rules.schemas import BacktestRequest, BacktestView, RuleSet
from streamguard.bus.kv import bucket
from streamguard.domain.auth import Role
from streamguard.domain.backtest import BacktestResult, backtest, validate_rules
from streamguard.domain.validation import FieldError
from streamguard.errors import ConfigError
from streamguard.store.backtest import stored_batches
from streamguard.store.store import Store

__all__ = [
    "MAX_BACKTEST_EVENTS",
    "MAX_BACKTEST_RANGE_MS",
    "RULES_BUCKET",
    "RULES_KEY",
    "RulesController",
    "rules_bucket",
]

#: Where the engine reads its rule set (core/src/nats/subjects.rs).
RULES_BUCKET = "sg_rules"
RULES_KEY = "active"
#: Revisions kept, as the engine creates the bucket (core/src/nats/setup.rs ``rules_bucket``).
RULES_HISTORY = 16
RULES_DESCRIPTION = "StreamGuard rule sets; key 'active' is the live set"
#: A backtest covers at most 31 days and reads at most this many stored events.
MAX_BACKTEST_RANGE_MS = 31 * 86_400_000
MAX_BACKTEST_EVENTS = 1_000_000

FIRST_SAVE = {
    201: ResponseSpec(
        data_container=RuleSet,
        description="The first rule set saved (ETag: its revision)",
        generate_examples=False,
    )
}


async def rules_bucket(js: JetStreamContext) -> KeyValue:
    """The rules bucket, created as the engine creates it when neither has yet."""
    return await bucket(
        js, RULES_BUCKET, history=RULES_HISTORY, description=RULES_DESCRIPTION, direct=True
    )


def _rule_set_response(value: bytes, revision: int, status_code: int) -> Response[RuleSet]:
    # The stored bytes as they are: exactly what the engine reads, even if written by other means.
    response: Response[Any] = Response(
        value,
        status_code=status_code,
        media_type=MediaType.JSON,
        headers={"ETag": etag(revision)},
    )
    return response


def _range_errors(from_ms: int, to_ms: int) -> list[FieldError]:
    if from_ms >= to_ms:
        return [FieldError("to_ms", "must be after from_ms")]
    if to_ms - from_ms > MAX_BACKTEST_RANGE_MS:
        return [FieldError("to_ms", "the range may span at most 31 days")]
    return []


def _run_backtest(store: Store, rules_json: bytes, request: BacktestRequest) -> BacktestResult:
    batches = stored_batches(store, request.from_ms, request.to_ms, MAX_BACKTEST_EVENTS)
    return backtest(rules_json, batches, max_alerts=request.max_alerts)


class RulesController(Controller):
    path = "/rules"
    tags = ("rules",)
    guards = (requires(Role.OPERATOR),)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @get(
        "/",
        responses={**ERRORS, **NOT_FOUND},
        summary="The active rule set, with its revision as ETag",
    )
    async def read(self, request: Request[Any, Any, Any]) -> Response[RuleSet]:
        entry = await current_entry(await rules_bucket(plane_of(request).js), RULES_KEY)
        if entry is None or entry.value is None:
            raise not_found("rule set")
        return _rule_set_response(entry.value, int(entry.revision or 0), HTTP_200_OK)

    @put(
        "/",
        responses={**ERRORS, **PRECONDITIONS, **FIRST_SAVE},
        summary="Replace the rule set (If-Match its ETag; the engine applies it within 1 s)",
        description="The set is validated by the engine's parser first: an invalid one gets a "
        "422 naming the rule and the field (`rules[<id>].<field>`) and nothing is saved. "
        'Without a saved set, send no If-Match (or `"0"`); the first save answers 201.',
    )
    async def replace(
        self, request: Request[Any, Any, Any], data: JSONBody[RuleSet], if_match: IfMatch
    ) -> Response[RuleSet]:
        expected = parse_if_match(if_match)
        value = msgspec.json.encode(data)
        errors = validate_rules(value)
        if errors:
            raise unprocessable(errors, "invalid rule set")
        kv = await rules_bucket(plane_of(request).js)
        revision, created = await replace(kv, RULES_KEY, value, expected, "rule set")
        status = HTTP_201_CREATED if created else HTTP_200_OK
        return _rule_set_response(value, revision, status)

    @post(
        "/backtest",
        status_code=HTTP_200_OK,
        responses={**ERRORS, **UNAVAILABLE},
        summary="Run a rule set over stored events and see the alerts it would have raised",
        description="Events are replayed in the order the engine received them, on a fresh "
        "engine, exactly as `streamguard replay` would; nothing is saved or published.",
    )
    async def run_backtest(
        self, request: Request[Any, Any, Any], data: JSONBody[BacktestRequest]
    ) -> BacktestView:
        rules_json = msgspec.json.encode(data.rules)
        errors = _range_errors(data.from_ms, data.to_ms) + validate_rules(rules_json, at="rules.")
        if errors:
            raise unprocessable(errors)
        store = plane_of(request).store
        if store is None:
            raise HTTPException(
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                detail="this API process has no storage attached; a backtest reads stored events",
            )
        try:
            result = await asyncio.to_thread(_run_backtest, store, rules_json, data)
        except ConfigError as e:
            # The range holds more events than a backtest may read.
            raise unprocessable([FieldError("to_ms", str(e))]) from None
        return BacktestView(
            alerts=result.alerts,
            total_alerts=result.total_alerts,
            by_rule=result.by_rule,
            by_severity=result.by_severity,
            events=result.events,
            dead_letters=result.dead_letters,
            truncated=result.truncated,
        )
