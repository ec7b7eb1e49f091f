"""The role x endpoint matrix (CONTROL_PLANE.md, "Roles"): every route of the app, called by
every kind of caller, against one real order with both legs booked.

A customer never reaches another customer's order and a carrier never another carrier's
shipment: both get 404, and the answer carries none of the object's data. A role a route is not
for gets 403; no token or a bad one gets 401 everywhere but the OpenAPI documents.

The matrix is keyed by (method, route path) and checked against the live app's routes and its
OpenAPI document, so a route added without a matrix entry fails here.

The order is put ON_HOLD once it has both legs, a photo and a sign-off, so every write the
matrix makes either is refused by the order's state (409) or leaves the status alone (a photo,
content-addressed): the rows do not depend on the order in which they run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from apifix import INTAKE, ApiStack
from streamguard.domain.auth import Principal, Role
from streamguard.domain.insurance import Tariffs
from streamguard.store.reports import REPORTS
from streamguard.tokens import create_token

OWNER = "cust-acc-owner"
OTHER = "cust-acc-other"
CARRIER_IN = "SF"  # carries the inbound leg
CARRIER_RET = "JD"  # carries the return leg
CARRIER_OTHER = "YTO"  # carries nothing of this order
TRACK_IN = "ACCIN00001"
TRACK_RET = "ACCRET00001"
# Distinctive values of the order: none may appear in an answer to a caller who may not see it.
SECRET_NAME = "Han Meimei Accessmatrix"
SECRET_SERIAL = "SNACCESS7781"
SECRET_LINE = "88 Secret Lane, Futian"
PNG = b"\x89PNG\r\n\x1a\n" + b"access-matrix-photo" * 8
PHOTO_SHA = hashlib.sha256(PNG).hexdigest()

CALLERS = (
    "operator",
    "depot",
    "carrier",  # the carrier of the shipment the row targets (SF, the inbound leg)
    "other_carrier",  # a carrier with no leg of the order
    "owner",  # the customer whose order it is
    "other_customer",
    "no_token",
    "bad_token",
)


@dataclass
class World:
    stack: ApiStack
    order_id: str
    signoff_id: str
    headers: dict[str, dict[str, str]]
    claim_id: str = ""

    @property
    def secrets(self) -> list[str]:
        return [self.order_id, SECRET_NAME, SECRET_SERIAL, SECRET_LINE, self.signoff_id]


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture(scope="module")
def world(api_stack: ApiStack) -> World:
    s = api_stack
    c = s.client
    customer = {
        "name": SECRET_NAME,
        "phone": "+86 139 0000 1111",
        "address": {"line": SECRET_LINE, "region": "CN-440304"},
    }
    intake = {
        **INTAKE,
        "customer": customer,
        "product": {**INTAKE["product"], "serial": SECRET_SERIAL},
    }
    oid = _ok(c.post("/orders", json=intake, headers=s.as_customer(OWNER)), 201)["id"]
    r = c.post(
        f"/orders/{oid}/photos",
        files={"file": ("p.png", PNG, "image/png")},
        headers=s.as_customer(OWNER),
    )
    _ok(r, 201)
    s.book(oid, "inbound", CARRIER_IN, TRACK_IN)
    _ok(
        c.post(
            f"/orders/{oid}/transitions",
            json={"to": "INBOUND_IN_TRANSIT"},
            headers=s.as_operator(),
        )
    )
    signed = _ok(
        c.post(
            f"/orders/{oid}/signoffs",
            json={
                "signer_type": "depot_staff",
                "leg": "inbound",
                "signer_name": "Depot Desk",
                "staff_id": "D-07",
            },
            headers=s.as_depot(),
        ),
        201,
    )
    assert signed["status"] == "RECEIVED"
    for target in ("DIAGNOSING", "REPAIRING", "REPAIRED"):
        _ok(c.post(f"/orders/{oid}/transitions", json={"to": target}, headers=s.as_depot()))
    back = s.book(oid, "return", CARRIER_RET, TRACK_RET)
    assert back["status"] == "RETURN_IN_TRANSIT"
    held = _ok(
        c.post(f"/orders/{oid}/transitions", json={"to": "ON_HOLD"}, headers=s.as_operator())
    )
    assert held["status"] == "ON_HOLD"
    assert PHOTO_SHA in held["photos"]
    # A saved rule set, so reading it answers 200 and replacing it without If-Match 428.
    _ok(c.put("/rules", json=RULES, headers=s.as_operator()), 201)
    _ok(c.put("/carriers/tariffs", json=TARIFFS, headers=s.as_operator()), 201)
    _ok(c.put("/carriers/weights", json=WEIGHTS, headers=s.as_operator()), 201)

    wrong_secret = create_token(
        b"not-the-api-secret-0123456789abcdef", Principal(role=Role.OPERATOR, subject="x")
    )
    headers = {
        "operator": s.as_operator(),
        "depot": s.as_depot(),
        "carrier": s.as_carrier(CARRIER_IN),
        "other_carrier": s.as_carrier(CARRIER_OTHER),
        "owner": s.as_customer(OWNER),
        "other_customer": s.as_customer(OTHER),
        "no_token": {},
        "bad_token": {"Authorization": f"Bearer {wrong_secret}"},
    }
    claim = c.post(
        f"/orders/{oid}/claims",
        json=CLAIM,
        headers=s.as_customer(OWNER),
    )
    return World(s, oid, signed["signoffs"][0]["id"], headers, _ok(claim, 201)["id"])


# ---- the matrix ------------------------------------------------------------------------------

Call = Callable[[World, str], httpx.Response]
PUBLIC = "public"  # no authentication: every caller gets the status given


@dataclass(frozen=True)
class Row:
    """How to call a route, and what each caller gets. ``allowed`` maps callers to the status
    they get (the route's work done or refused by the order's state); every caller not named in
    ``allowed`` or ``hidden`` gets 403, and the token-less 401. ``hidden`` callers get 404."""

    call: Call
    allowed: dict[str, int]
    hidden: tuple[str, ...] = ()
    public: int | None = None

    def expected(self, caller: str) -> int:
        if self.public is not None:
            return self.public
        if caller in ("no_token", "bad_token"):
            return 401
        if caller in self.hidden:
            return 404
        return self.allowed.get(caller, 403)


def _get(path: str) -> Call:
    def call(w: World, caller: str) -> httpx.Response:
        url = path.format(order=w.order_id, signoff=w.signoff_id, photo=PHOTO_SHA, claim=w.claim_id)
        return w.stack.client.get(url, headers=w.headers[caller])

    return call


def _post(path: str, body: Callable[[str], dict[str, Any]]) -> Call:
    def call(w: World, caller: str) -> httpx.Response:
        url = path.format(order=w.order_id, claim=w.claim_id)
        return w.stack.client.post(url, json=body(caller), headers=w.headers[caller])

    return call


def _put(path: str, body: dict[str, Any]) -> Call:
    def call(w: World, caller: str) -> httpx.Response:
        return w.stack.client.put(path, json=body, headers=w.headers[caller])

    return call


def _stream(w: World, caller: str) -> httpx.Response:
    # An event stream never ends: read the status line and hang up.
    with w.stack.client.stream("GET", "/stream", headers=w.headers[caller]) as r:
        if r.status_code != 200:
            r.read()
        return r


def _photo_upload(w: World, caller: str) -> httpx.Response:
    return w.stack.client.post(
        f"/orders/{w.order_id}/photos",
        files={"file": ("p.png", PNG, "image/png")},
        headers=w.headers[caller],
    )


def _new_order(caller: str) -> dict[str, Any]:
    # The operator names the customer; a customer creates its own order (not the owner's data).
    return {**INTAKE, "customer_id": "cust-acc-new"} if caller == "operator" else INTAKE


RULES = {
    "version": 1,
    "lateness_ms": 0,
    "rules": [
        {
            "id": "shock-3g",
            "kind": "threshold",
            "metric": "shock_g",
            "op": "gt",
            "value": 3.0,
            "severity": "critical",
        }
    ],
}
BACKTEST = {"rules": RULES, "from_ms": 0, "to_ms": 1_000}
TARIFFS: dict[str, Any] = json.loads(Tariffs.load_sample().to_json())
WEIGHTS = {"cost": 0.5, "time": 0.3, "coverage": 0.1, "quality": 0.1}

_DEPOT_RECEIPT = {
    "signer_type": "depot_staff",
    "leg": "inbound",
    "signer_name": "Depot Desk",
    "staff_id": "D-07",
}
_CUSTOMER_RECEIPT = {"signer_type": "self", "leg": "return", "signer_name": "Han Meimei"}


def _signoff_body(caller: str) -> dict[str, Any]:
    # Each role with the sign-off it may take; the order is ON_HOLD, so none is taken (409).
    return _CUSTOMER_RECEIPT if caller in ("owner", "other_customer") else _DEPOT_RECEIPT


CLAIM = {"kind": "damage", "claimed_amount": "100.00", "reason": "dented on arrival"}

STAFF_AND_OWNER = {"operator": 200, "depot": 200, "owner": 200}
HIDDEN_FROM = ("other_customer",)
CONFLICT = {"operator": 409, "depot": 409, "owner": 409}

# Webhooks are the operator's alone. The subscriptions point nowhere and want an event the
# matrix never causes (the order is ON_HOLD: no return is booked), so no delivery is made.
_WEBHOOK = {"url": "http://127.0.0.1:9/access-matrix", "event_types": ["return.created"]}
_WEBHOOK_IDS: dict[int, str] = {}


def _new_webhook(w: World) -> str:
    r = w.stack.client.post("/webhooks", json=_WEBHOOK, headers=w.headers["operator"])
    return str(_ok(r, 201)["id"])


def _webhook(method: str, suffix: str = "", body: Any = None, fresh: bool = False) -> Call:
    """``method`` on one webhook (the world's, or a fresh one each call: a DELETE's)."""

    def call(w: World, caller: str) -> httpx.Response:
        if fresh:
            wid = _new_webhook(w)
        else:
            if id(w) not in _WEBHOOK_IDS:
                _WEBHOOK_IDS[id(w)] = _new_webhook(w)
            wid = _WEBHOOK_IDS[id(w)]
        url = f"/webhooks/{wid}{suffix}"
        return w.stack.client.request(method, url, json=body, headers=w.headers[caller])

    return call


MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/health"): Row(
        _get("/health"), {c: 200 for c in CALLERS if c not in ("no_token", "bad_token")}
    ),
    ("GET", "/stream"): Row(_stream, {"operator": 200, "depot": 200}),
    ("GET", "/orders"): Row(
        _get("/orders"), {"operator": 200, "depot": 200, "owner": 200, "other_customer": 200}
    ),
    ("POST", "/orders"): Row(
        _post("/orders", _new_order), {"operator": 201, "owner": 201, "other_customer": 201}
    ),
    ("GET", "/orders/{order_id:str}"): Row(_get("/orders/{order}"), STAFF_AND_OWNER, HIDDEN_FROM),
    ("GET", "/orders/{order_id:str}/timeline"): Row(
        _get("/orders/{order}/timeline"), STAFF_AND_OWNER, HIDDEN_FROM
    ),
    # ON_HOLD goes back only to where it was held: CANCELLED is refused, nothing moves.
    ("POST", "/orders/{order_id:str}/transitions"): Row(
        _post("/orders/{order}/transitions", lambda _c: {"to": "CANCELLED"}),
        CONFLICT,
        HIDDEN_FROM,
    ),
    # The same photo again: stored once, the status untouched.
    ("POST", "/orders/{order_id:str}/photos"): Row(
        _photo_upload, {"operator": 201, "depot": 201, "owner": 201}, HIDDEN_FROM
    ),
    ("GET", "/orders/{order_id:str}/photos/{sha256:str}"): Row(
        _get("/orders/{order}/photos/{photo}"), STAFF_AND_OWNER, HIDDEN_FROM
    ),
    # Re-booking the inbound leg after pickup is refused by the order's state.
    ("POST", "/orders/{order_id:str}/shipments"): Row(
        _post(
            "/orders/{order}/shipments",
            lambda _c: {"leg": "inbound", "carrier": CARRIER_IN, "tracking": TRACK_IN},
        ),
        CONFLICT,
        HIDDEN_FROM,
    ),
    ("GET", "/orders/{order_id:str}/signoffs"): Row(
        _get("/orders/{order}/signoffs"), STAFF_AND_OWNER, HIDDEN_FROM
    ),
    ("POST", "/orders/{order_id:str}/signoffs"): Row(
        _post("/orders/{order}/signoffs", _signoff_body), CONFLICT, HIDDEN_FROM
    ),
    ("GET", "/orders/{order_id:str}/signoffs/{signoff_id:str}/verify"): Row(
        _get("/orders/{order}/signoffs/{signoff}/verify"), STAFF_AND_OWNER, HIDDEN_FROM
    ),
    ("GET", "/shipments/{shipment:str}"): Row(
        _get(f"/shipments/{TRACK_IN}"),
        {"operator": 200, "depot": 200, "owner": 200, "carrier": 200},
        ("other_customer", "other_carrier"),
    ),
    # The inbound leg's carrier recording a depot receipt while the order is ON_HOLD: 409.
    ("POST", "/shipments/{shipment:str}/signoffs"): Row(
        _post(f"/shipments/{TRACK_IN}/signoffs", lambda _c: _DEPOT_RECEIPT),
        {"carrier": 409},
        ("other_carrier",),
    ),
    # Rules are the operator's alone. A set exists: replacing it without If-Match is 428.
    ("GET", "/rules"): Row(_get("/rules"), {"operator": 200}),
    ("PUT", "/rules"): Row(_put("/rules", RULES), {"operator": 428}),
    ("POST", "/rules/backtest"): Row(
        _post("/rules/backtest", lambda _c: BACKTEST), {"operator": 200}
    ),
    # Tariffs: staff read them, operators replace them (saved at setup: If-Match needed, 428).
    ("GET", "/carriers/tariffs"): Row(_get("/carriers/tariffs"), {"operator": 200, "depot": 200}),
    ("PUT", "/carriers/tariffs"): Row(_put("/carriers/tariffs", TARIFFS), {"operator": 428}),
    # The carrier score and its weights: staff read, operators replace (saved at setup: 428).
    ("GET", "/carriers/score"): Row(
        _get("/carriers/score?origin=CN-440300&dest=CN-310101&declared_value=1500.00"),
        {"operator": 200, "depot": 200},
    ),
    ("GET", "/carriers/weights"): Row(_get("/carriers/weights"), {"operator": 200, "depot": 200}),
    ("PUT", "/carriers/weights"): Row(_put("/carriers/weights", WEIGHTS), {"operator": 428}),
    # Claims: the owner or an operator files (each call files one more; the order's status
    # is untouched); staff and the owner follow them; only operators move them (FILED -> PAID
    # is not a move: 409).
    ("POST", "/orders/{order_id:str}/claims"): Row(
        _post("/orders/{order}/claims", lambda _c: CLAIM),
        {"operator": 201, "owner": 201},
        HIDDEN_FROM,
    ),
    ("GET", "/orders/{order_id:str}/claims"): Row(
        _get("/orders/{order}/claims"), STAFF_AND_OWNER, HIDDEN_FROM
    ),
    ("GET", "/claims"): Row(_get("/claims"), {"operator": 200, "depot": 200}),
    ("GET", "/claims/{claim_id:str}"): Row(_get("/claims/{claim}"), STAFF_AND_OWNER, HIDDEN_FROM),
    ("POST", "/claims/{claim_id:str}/transitions"): Row(
        _post("/claims/{claim}/transitions", lambda _c: {"to": "PAID", "reason": "pay"}),
        {"operator": 409},
    ),
    ("GET", "/claims/{claim_id:str}/evidence"): Row(
        _get("/claims/{claim}/evidence"), STAFF_AND_OWNER, HIDDEN_FROM
    ),
    ("GET", "/claims/{claim_id:str}/report"): Row(
        _get("/claims/{claim}/report"), STAFF_AND_OWNER, HIDDEN_FROM
    ),
    ("GET", "/webhooks"): Row(_get("/webhooks"), {"operator": 200}),
    ("POST", "/webhooks"): Row(_post("/webhooks", lambda _c: _WEBHOOK), {"operator": 201}),
    ("GET", "/webhooks/{webhook_id:str}"): Row(_webhook("GET"), {"operator": 200}),
    ("PATCH", "/webhooks/{webhook_id:str}"): Row(
        _webhook("PATCH", body={"description": "matrix"}), {"operator": 200}
    ),
    ("DELETE", "/webhooks/{webhook_id:str}"): Row(
        _webhook("DELETE", fresh=True), {"operator": 204}
    ),
    ("POST", "/webhooks/{webhook_id:str}/rotate-secret"): Row(
        _webhook("POST", "/rotate-secret"), {"operator": 200}
    ),
    ("GET", "/webhooks/{webhook_id:str}/attempts"): Row(
        _webhook("GET", "/attempts"), {"operator": 200}
    ),
    # Reports are the operator's alone; the recall needs a product code or a batch.
    ("GET", "/reports"): Row(_get("/reports"), {"operator": 200}),
    **{
        ("GET", f"/reports/{name}{ext}"): Row(
            _get(f"/reports/{name}{ext}" + ("?product_code=P60P-256" if name == "recall" else "")),
            {"operator": 200},
        )
        for name in REPORTS
        for ext in ("", ".csv")
    },
    # The OpenAPI documents and their renderers are public.
    ("GET", "/schema"): Row(_get("/schema"), {}, public=200),
    ("GET", "/schema/openapi.json"): Row(_get("/schema/openapi.json"), {}, public=200),
    ("GET", "/schema/openapi.yaml"): Row(_get("/schema/openapi.yaml"), {}, public=200),
    ("GET", "/schema/openapi.yml"): Row(_get("/schema/openapi.yml"), {}, public=200),
    ("GET", "/schema/swagger"): Row(_get("/schema/swagger"), {}, public=200),
    ("GET", "/schema/redoc"): Row(_get("/schema/redoc"), {}, public=200),
    ("GET", "/schema/rapidoc"): Row(_get("/schema/rapidoc"), {}, public=200),
    ("GET", "/schema/elements"): Row(_get("/schema/elements"), {}, public=200),
    ("GET", "/schema/oauth2-redirect.html"): Row(
        _get("/schema/oauth2-redirect.html"), {}, public=200
    ),
    ("GET", "/schema/{path:str}"): Row(_get("/schema/openapi.json"), {}, public=200),
}

# Litestar answers OPTIONS (CORS preflight) on every route itself, without a handler of ours.
_AUTOMATIC = frozenset({"OPTIONS", "HEAD"})


def _app_routes(stack: ApiStack) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for route in stack.api.app.routes:
        methods = getattr(route, "methods", set())
        routes |= {(m, route.path) for m in methods if m not in _AUTOMATIC}
    return routes


def test_the_matrix_covers_every_route_of_the_app(api_stack: ApiStack) -> None:
    routes = _app_routes(api_stack)
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not missing, f"routes without a row in the access matrix: {missing}"
    assert not stale, f"matrix rows for routes the app no longer has: {stale}"


def test_the_matrix_covers_every_operation_of_the_openapi_document(api_stack: ApiStack) -> None:
    r = api_stack.client.get("/schema/openapi.json")
    assert r.status_code == 200
    documented = {
        (method.upper(), path)
        for path, item in r.json()["paths"].items()
        for method in item
        if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}
    }
    # The document writes path parameters without their type: /orders/{order_id}.
    matrix = {(m, p.replace(":str", "")) for m, p in MATRIX if not p.startswith("/schema")}
    assert documented == matrix


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_every_caller_on_every_route(world: World, route: tuple[str, str], caller: str) -> None:
    row = MATRIX[route]
    r = row.call(world, caller)
    expected = row.expected(caller)
    assert r.status_code == expected, f"{caller} {route}: {r.status_code} {r.text[:300]}"
    if expected == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    if r.status_code >= 400:
        # Refusals are the problem shape, and never carry the order's data.
        problem = r.json()
        assert problem["status_code"] == r.status_code
        for secret in world.secrets:
            assert secret not in r.text, f"{caller} {route} leaked {secret!r}"
    elif caller == "other_customer":
        # Listing and creating are the only routes it passes; they show nothing of the order.
        for secret in world.secrets:
            assert secret not in r.text, f"{caller} {route} leaked {secret!r}"


def test_a_carrier_never_reaches_another_carriers_shipment(world: World) -> None:
    """The inbound leg's carrier also carries part of this order, and still may not see or
    sign for the return leg of another carrier."""
    c = world.stack.client
    sf = world.headers["carrier"]
    r = c.get(f"/shipments/{TRACK_RET}", headers=sf)
    assert r.status_code == 404, r.text
    assert TRACK_RET not in r.text
    assert world.order_id not in r.text
    r = c.post(f"/shipments/{TRACK_RET}/signoffs", json=_CUSTOMER_RECEIPT, headers=sf)
    assert r.status_code == 404, r.text
    assert world.order_id not in r.text
    # ... while the return carrier sees its own leg, and not the inbound one.
    jd = world.stack.as_carrier(CARRIER_RET)
    r = c.get(f"/shipments/{TRACK_RET}", headers=jd)
    assert r.status_code == 200, r.text
    assert r.json()["shipment"]["carrier"] == CARRIER_RET
    assert c.get(f"/shipments/{TRACK_IN}", headers=jd).status_code == 404


def test_an_unknown_object_and_a_hidden_one_are_indistinguishable(world: World) -> None:
    """Another customer's order answers exactly as an order that does not exist."""
    c = world.stack.client
    other = world.headers["other_customer"]
    missing = "RO-" + "0" * 16
    for suffix in ("", "/timeline", "/signoffs"):
        hidden = c.get(f"/orders/{world.order_id}{suffix}", headers=other)
        absent = c.get(f"/orders/{missing}{suffix}", headers=other)
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json() == absent.json()
    hidden = c.get(f"/shipments/{TRACK_IN}", headers=world.headers["other_carrier"])
    absent = c.get("/shipments/NOSUCHTRACK", headers=world.headers["other_carrier"])
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json() == absent.json()


def test_the_other_customers_listing_holds_none_of_the_owners_orders(world: World) -> None:
    c = world.stack.client
    mine = world.stack.create_order(OTHER)
    r = c.get("/orders", params={"limit": 200}, headers=world.headers["other_customer"])
    assert r.status_code == 200, r.text
    assert all(o["customer_id"] == OTHER for o in r.json()["orders"])
    assert world.order_id not in r.text
    assert mine["id"] not in c.get("/orders", headers=world.headers["owner"]).text


def test_no_route_answers_head_or_an_unknown_method_without_a_token(world: World) -> None:
    """HEAD is passed by the authentication middleware (Litestar's default exclusions); no
    route has a HEAD handler, so it must not get to one."""
    c = world.stack.client
    for method, path in sorted(MATRIX):
        if path.startswith("/schema"):
            continue
        url = path.replace("{order_id:str}", world.order_id).replace("{shipment:str}", TRACK_IN)
        url = url.replace("{signoff_id:str}", world.signoff_id).replace("{sha256:str}", PHOTO_SHA)
        for verb in {"HEAD", "PUT", "PATCH", "DELETE"} - {method}:
            r = c.request(verb, url)
            assert r.status_code in (401, 405), f"{verb} {url} ({method}): {r.status_code}"
            assert world.order_id not in r.text
