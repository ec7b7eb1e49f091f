"""schemathesis against the API's OpenAPI document: every check, a bounded number of examples per
operation, a fixed seed.

The document is the app's own (built at import, so pytest gets one test per operation), and the
first test proves it is exactly what the live server serves at /schema/openapi.json. The
requests go to the live API (real NATS, real chDB), as an operator and as a customer: every
operation on its own (examples, coverage and fuzzing phases), then workflows along the links
schemathesis infers between operations (stateful), where use_after_free and
ensure_resource_availability have earlier responses to look at. object_level_authorization
needs schemathesis' WFC peer identities, which this file does not set up: test_api_access.py
checks every role on every route instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from litestar.serialization import encode_json
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES

from apifix import ApiStack
from streamguard.api.app import create_app
from streamguard.bus.plane import ControlConfig
from streamguard.keys import Keys
from streamguard.store.reports import REPORTS

SEED = 20261122
MAX_EXAMPLES = 20

load_all_checks()
# Every check schemathesis has, by name, so one added in a later release is run too.
ALL_CHECKS = [CHECKS.get_one(name) for name in CHECKS.get_all_names()]

# The app is not started: building it reads no key and opens no connection.
_APP = create_app(ControlConfig("nats://127.0.0.1:1", None, Keys.in_dir(Path("/nonexistent"))))
DOCUMENT: dict[str, Any] = json.loads(encode_json(_APP.openapi_schema.to_schema()))


def _operations() -> Iterator[tuple[str, str, set[str]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            yield method.upper(), path, headers


# ---- schema-valid requests the API rightly refuses -------------------------------------------
#
# positive_data_acceptance expects schema-valid data to be accepted. Four refusals of valid data
# are right by the spec, because what decides them is state or a rule across fields, which no
# JSON schema states. For the operations concerned the check's expected statuses gain exactly
# that status, and `refusals_of_valid_data_are_justified` below checks that each such answer is
# for that reason and no other:
#  - 412: If-Match names a version that is not current (state: the version moved on);
#  - 428: PUT /rules or /carriers/tariffs without If-Match once one was saved (state);
#  - 422 naming Idempotency-Key: the caller used the key before for another request (state);
#  - 422 naming the fields of a rule across fields or roles, listed in CROSS_FIELD_422.
CROSS_FIELD_422: dict[tuple[str, str], set[str]] = {
    # customer_id: an operator must name the customer, a customer only itself ("Roles").
    ("POST", "/orders"): {"customer_id"},
    # The document declares a rule as an object; what is in it is checked by the engine's own
    # parser (EVENTS_AND_RULES.md section 3), whose errors name rules[<i>].<field>.
    ("PUT", "/rules"): {"rules"},
    # to_ms after from_ms, at most 31 days; and each rule, as above.
    ("POST", "/rules/backtest"): {"to_ms", "rules"},
    # The carrier must have a tariff (operators edit them) whose insurable maximum covers the
    # order's declared value (CONTROL_PLANE.md, "Insurance"): state of other objects.
    ("POST", "/orders/{order_id}/shipments"): {"carrier"},
    # Money must also be a sane amount and region prefixes real provinces: the domain's check
    # of each carrier (Tariffs.from_json), whose errors name carriers.<code>.<field>.
    ("PUT", "/carriers/tariffs"): {"carriers"},
    # At least one weight must be positive.
    ("PUT", "/carriers/weights"): {"weights"},
    # A region code of the right shape that GB/T 2260 does not have.
    ("GET", "/carriers/score"): {"origin", "dest"},
}
# Documents kept in NATS KV and replaced with If-Match on their revision: 428 once one exists.
# A report's range: to_ms after from_ms and no longer than the report allows (either may be
# left out, and defaults from the other or now); a recall needs a product code or a batch.
for _report in REPORTS.values():
    for _suffix in ("", ".csv"):
        CROSS_FIELD_422["GET", f"/reports/{_report.name}{_suffix}"] = {
            "from_ms",
            "to_ms",
            *_report.filters,
        }
KV_DOCUMENTS = {("PUT", "/rules"), ("PUT", "/carriers/tariffs"), ("PUT", "/carriers/weights")}
EXTRA_STATUSES: dict[tuple[str, str], set[str]] = {}
for _method, _path, _headers in _operations():
    extra = set()
    if "If-Match" in _headers:
        extra.add("412")
    if "Idempotency-Key" in _headers or (_method, _path) in CROSS_FIELD_422:
        extra.add("422")
    if (_method, _path) in KV_DOCUMENTS:
        extra.add("428")
    if extra:
        EXTRA_STATUSES[_method, _path] = extra

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES},
        "operations": [
            {
                # By name ("POST /orders"): include-method and include-path would each match.
                "include-name": f"{method} {path}",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, *extra]
                    }
                },
            }
            for (method, path), extra in sorted(EXTRA_STATUSES.items())
        ],
    }
)
# /stream is Server-Sent Events: the response never ends, so it cannot be validated here
# (test_api_access.py covers who may open it).
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).exclude(path="/stream")

# (Authorization, Idempotency-Key) -> the (method, URL, body) of each request sent with them.
_KEYS_USED: dict[tuple[str, str], set[tuple[str, str, bytes]]] = {}


def _body(response: schemathesis.Response) -> bytes:
    body = response.request.body
    return body.encode() if isinstance(body, str) else bytes(body or b"")


def _justified(case: schemathesis.Case, response: schemathesis.Response, sent: Any) -> None:
    key = (case.method.upper(), case.path)
    status = response.status_code
    if status == 412:
        assert "If-Match" in sent, "412 without If-Match"
        etags = {k.lower(): v for k, v in response.headers.items()}.get("etag")
        assert etags, "a 412 names the current version as ETag"
    elif status == 428:
        assert key in KV_DOCUMENTS
        assert "If-Match" not in sent, "428 although If-Match was sent"
    elif status == 422:
        named = {str(e["field"]).split(".")[0].split("[")[0] for e in response.json()["errors"]}
        allowed = set(CROSS_FIELD_422.get(key, set()))
        if "Idempotency-Key" in named:
            earlier = _KEYS_USED.get(
                (sent.get("Authorization", ""), sent["Idempotency-Key"]), set()
            )
            this = (case.method.upper(), response.request.url or "", _body(response))
            assert earlier - {this}, "Idempotency-Key refused although not used before"
            allowed.add("Idempotency-Key")
        assert named <= allowed, f"schema-valid data refused for {sorted(named - allowed)}"


@schemathesis.check
def refusals_of_valid_data_are_justified(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Keeps the widened positive_data_acceptance narrow (see EXTRA_STATUSES)."""
    del ctx
    sent = response.request.headers
    meta = case.meta
    try:
        extra = EXTRA_STATUSES.get((case.method.upper(), case.path), set())
        if (
            meta is not None
            and meta.generation.mode.is_positive
            and str(response.status_code) in extra
        ):
            _justified(case, response, sent)
    finally:
        if "Idempotency-Key" in sent:
            used = _KEYS_USED.setdefault(
                (sent.get("Authorization", ""), sent["Idempotency-Key"]), set()
            )
            used.add((case.method.upper(), response.request.url or "", _body(response)))
    return True


CHECKS_RUN = [*ALL_CHECKS, refusals_of_valid_data_are_justified]


# One token per caller for the whole module: an Idempotency-Key belongs to its caller.
@pytest.fixture(scope="module")
def operator(api_stack: ApiStack) -> dict[str, str]:
    return api_stack.as_operator("op-schemathesis")


@pytest.fixture(scope="module")
def customer(api_stack: ApiStack) -> dict[str, str]:
    return api_stack.as_customer("cust-schemathesis")


def test_the_document_tested_is_the_one_served(api_stack: ApiStack) -> None:
    r = api_stack.client.get("/schema/openapi.json")
    assert r.status_code == 200
    assert r.json() == DOCUMENT


_SETTINGS = hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))


@SCHEMA.parametrize()
@_SETTINGS
def test_the_api_as_an_operator(
    case: schemathesis.Case, api_stack: ApiStack, operator: dict[str, str]
) -> None:
    case.call_and_validate(base_url=api_stack.url, headers=operator, checks=CHECKS_RUN)


@SCHEMA.parametrize()
@_SETTINGS
def test_the_api_as_a_customer(
    case: schemathesis.Case, api_stack: ApiStack, customer: dict[str, str]
) -> None:
    case.call_and_validate(base_url=api_stack.url, headers=customer, checks=CHECKS_RUN)


STATEFUL = hypothesis.settings(
    _SETTINGS,
    max_examples=MAX_EXAMPLES,
    stateful_step_count=6,
    derandomize=True,
    database=None,
)


@pytest.mark.parametrize("who", ["customer", "operator"])
def test_workflows_along_the_links_between_operations(
    api_stack: ApiStack, request: pytest.FixtureRequest, who: str
) -> None:
    """Orders created, then read, moved, booked, signed for and photographed through the ids the
    responses give (links schemathesis infers from the document): where use_after_free and
    ensure_resource_availability have something to look at."""
    headers: dict[str, str] = request.getfixturevalue(who)

    class Workflow(SCHEMA.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": api_stack.url, "headers": headers}

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                checks=CHECKS_RUN,
                headers=headers,
                transport_kwargs=kwargs,
                recorder=self.recorder,
            )

    Workflow.run(settings=STATEFUL)


def test_a_photo_form_without_its_file_part_is_a_422(
    api_stack: ApiStack, customer: dict[str, str]
) -> None:
    """Found by schemathesis: a multipart form with fields but no file was a 500 (Litestar's
    UploadFile extractor raised StopIteration)."""
    order = api_stack.create_order("cust-schemathesis")
    r = api_stack.client.post(
        f"/orders/{order['id']}/photos",
        data={"file": "not a file"},
        files={"x": ("a", b"1")},
        headers=customer,
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["file"]
    r = api_stack.client.post(
        f"/orders/{order['id']}/photos",
        files={"file": ("a.txt", b"text", "text/plain")},
        headers=customer,
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["file"]


def test_an_unknown_query_parameter_is_a_422(api_stack: ApiStack, customer: dict[str, str]) -> None:
    """Found by schemathesis: GET /orders?statuss=CLOSED listed every order, the filter ignored."""
    r = api_stack.client.get("/orders", params={"statuss": "CLOSED"}, headers=customer)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["statuss"]
