"""Authentication: secrets on disk, bearer tokens, the ``token`` command, and the API's
middleware, guards and limits in a small Litestar app."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.testing import TestClient

from conftest import CliRunner
from streamguard.api.auth import (
    JWT_SECRET_STATE_KEY,
    MAX_JSON_BODY_BYTES,
    auth_middleware,
    current_principal,
    rate_limit_config,
    requires,
)
from streamguard.domain.auth import Principal, Role
from streamguard.errors import AuthError, ConfigError
from streamguard.keys import JWT_KEY_ENV, KEYS_DIR_ENV, Keys
from streamguard.tokens import AUDIENCE, ISSUER, create_token, verify_token

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
NOW = 1_795_352_700

PRINCIPALS = [
    Principal(role=Role.OPERATOR, subject="ops-li"),
    Principal(role=Role.DEPOT, subject="staff-0042"),
    Principal(role=Role.CARRIER, subject="sf-gateway", carrier="SF"),
    Principal(role=Role.CUSTOMER, subject="cust-9"),
]


# ---- tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("principal", PRINCIPALS, ids=lambda p: p.role.value)
def test_token_round_trip_for_each_role(principal: Principal) -> None:
    token = create_token(SECRET, principal, ttl_s=60, now=NOW)
    assert verify_token(SECRET, token, now=NOW + 59) == principal
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 60)
    assert ("carrier" in claims) == (principal.role is Role.CARRIER)


def test_carrier_code_is_upper_cased() -> None:
    token = create_token(SECRET, Principal(role=Role.CARRIER, subject="x", carrier="jd"), now=NOW)
    assert verify_token(SECRET, token, now=NOW).carrier == "JD"


def test_expired_token() -> None:
    token = create_token(SECRET, PRINCIPALS[0], ttl_s=60, now=NOW)
    with pytest.raises(AuthError, match="expired"):
        verify_token(SECRET, token, now=NOW + 60)


def test_token_from_the_future() -> None:
    token = create_token(SECRET, PRINCIPALS[0], now=NOW + 3600)
    with pytest.raises(AuthError, match="future"):
        verify_token(SECRET, token, now=NOW)


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def test_tampered_token() -> None:
    token = create_token(SECRET, PRINCIPALS[3], now=NOW)
    header, _, sig = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False}) | {"role": "operator"}
    with pytest.raises(AuthError, match="bad signature"):
        verify_token(SECRET, f"{header}.{_b64url(json.dumps(claims))}.{sig}", now=NOW)


def test_wrong_secret() -> None:
    token = create_token(SECRET, PRINCIPALS[0], now=NOW)
    with pytest.raises(AuthError, match="bad signature"):
        verify_token(OTHER_SECRET, token, now=NOW)


def _signed(claims: dict[str, Any]) -> str:
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "role": "operator"}
    return jwt.encode(base | {"iat": NOW, "exp": NOW + 60} | claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "someone-else"}, "wrong audience"),
        ({"iss": "evil"}, "wrong issuer"),
        ({"role": "admin"}, "unknown role 'admin'"),
        ({"role": "carrier"}, "claim 'carrier': required for role carrier"),
        ({"role": "customer", "carrier": "SF"}, "claim 'carrier': only a carrier"),
        ({"role": "carrier", "carrier": "not a code"}, "claim 'carrier': must be 2 to 8"),
        ({"sub": ""}, "claim 'sub'"),
        ({"exp": None}, "missing claim 'exp'"),
        ({"iat": "soon"}, "claim 'iat' is not a number"),
        ({"exp": float("inf")}, "claim 'exp' is not a number"),
    ],
)
def test_bad_claims_are_rejected(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        verify_token(SECRET, _signed(claims), now=NOW)


def test_missing_role_claim_and_garbage() -> None:
    no_role = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "iat": NOW, "exp": NOW + 9}, SECRET
    )
    with pytest.raises(AuthError, match="missing claim 'role'"):
        verify_token(SECRET, no_role, now=NOW)
    with pytest.raises(AuthError, match="malformed"):
        verify_token(SECRET, "not-a-jwt", now=NOW)


def test_unsigned_token_is_rejected() -> None:
    # alg "none" with an empty signature: the classic forgery.
    claims = _signed({}).split(".")[1]
    none_header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}))
    with pytest.raises(AuthError, match="algorithm not allowed"):
        verify_token(SECRET, f"{none_header}.{claims}.", now=NOW)
    with pytest.raises(AuthError, match="algorithm not allowed"):
        verify_token(
            SECRET, f"{_b64url(json.dumps({'alg': 'HS512'}))}.{claims}.{_b64url('sig')}", now=NOW
        )


@pytest.mark.parametrize(
    ("principal", "field"),
    [
        (Principal(role=Role.CARRIER, subject="x"), "carrier: required for role carrier"),
        (Principal(role=Role.CUSTOMER, subject="x", carrier="SF"), "carrier: only a carrier"),
        (Principal(role=Role.CARRIER, subject="x", carrier="S"), "carrier: must be 2 to 8"),
        (Principal(role=Role.CARRIER, subject="x", carrier="SF-1"), "carrier: must be 2 to 8"),
        (Principal(role=Role.DEPOT, subject=""), "subject: must be a string of 1 to 64"),
        (Principal(role=Role.DEPOT, subject="x" * 65), "subject: must be a string of 1 to 64"),
        (Principal(role=Role.DEPOT, subject="a\nb"), "subject: must be printable"),
        (Principal(role="root", subject="x"), "role: must be one of"),  # type: ignore[arg-type]
    ],
)
def test_create_rejects_bad_principals(principal: Principal, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        create_token(SECRET, principal, now=NOW)


def test_create_rejects_short_secret_and_bad_ttl() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        create_token(b"short", PRINCIPALS[0])
    with pytest.raises(ConfigError, match="ttl_s"):
        create_token(SECRET, PRINCIPALS[0], ttl_s=0)


# ---- keys -------------------------------------------------------------------------------


def test_keys_are_created_private_and_reused(tmp_path: Path) -> None:
    keys = Keys.from_env(tmp_path / "var", environ={})
    assert keys.dir == tmp_path / "var" / "keys"
    assert keys.signing_key == keys.dir / "signoff-ed25519.pem"
    secret = keys.load_jwt_secret(create=True)
    salt = keys.load_proxy_salt(create=True)
    assert len(secret) == len(salt) == 32
    assert secret != salt
    assert stat.S_IMODE(keys.dir.stat().st_mode) == 0o700
    for path in (keys.jwt_key, keys.proxy_salt):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in keys.dir.iterdir()) == ["jwt.key", "proxy.salt"]
    # A restart reads the same secrets, with or without create.
    again = Keys.from_env(tmp_path / "var", environ={})
    assert again.load_jwt_secret(create=True) == secret
    assert again.load_jwt_secret() == secret
    assert again.load_proxy_salt() == salt


def test_missing_key_without_create_names_the_path(tmp_path: Path) -> None:
    keys = Keys.from_env(tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"jwt\.key.*token create"):
        keys.load_jwt_secret()
    with pytest.raises(ConfigError, match=r"proxy\.salt"):
        keys.load_proxy_salt(create=False)
    assert not keys.dir.exists()


def test_corrupt_key_file(tmp_path: Path) -> None:
    keys = Keys.from_env(tmp_path, environ={})
    keys.dir.mkdir()
    keys.jwt_key.write_text("not base64!")
    with pytest.raises(ConfigError, match="not base64"):
        keys.load_jwt_secret(create=True)
    keys.jwt_key.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError, match="holds 5 bytes"):
        keys.load_jwt_secret()


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        KEYS_DIR_ENV: str(tmp_path / "elsewhere"),
        JWT_KEY_ENV: base64.b64encode(SECRET).decode(),
    }
    keys = Keys.from_env(tmp_path / "var", environ=env)
    assert keys.dir == tmp_path / "elsewhere"
    assert keys.load_jwt_secret(create=True) == SECRET
    assert not keys.jwt_key.exists()
    with pytest.raises(ConfigError, match=JWT_KEY_ENV):
        Keys.from_env(tmp_path, environ={JWT_KEY_ENV: "c2hvcnQ="}).load_jwt_secret()


# ---- streamguard token create -----------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The subprocess inherits the environment: a developer's overrides must not leak in.
    monkeypatch.delenv(KEYS_DIR_ENV, raising=False)
    monkeypatch.delenv(JWT_KEY_ENV, raising=False)


@pytest.mark.usefixtures("cli_env")
def test_cli_token_create_prints_a_token_that_verifies(cli: CliRunner, tmp_path: Path) -> None:
    args = ("token", "create", "--role", "carrier", "--subject", "sf-1", "--carrier", "sf")
    proc = cli(*args, "--ttl", "600", "--var", tmp_path)
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert "\n" not in token
    secret = Keys.from_env(tmp_path, environ={}).load_jwt_secret()
    assert verify_token(secret, token) == Principal(role=Role.CARRIER, subject="sf-1", carrier="SF")
    assert proc.stderr.count("\n") == 1
    assert "role=carrier subject=sf-1 carrier=SF expires 20" in proc.stderr
    # The second token is signed with the same, reused secret.
    proc = cli("token", "create", "--role", "operator", "--subject", "ops", "--var", tmp_path)
    assert verify_token(secret, proc.stdout.strip()).role is Role.OPERATOR


@pytest.mark.usefixtures("cli_env")
def test_cli_token_create_rejects_bad_claims(cli: CliRunner, tmp_path: Path) -> None:
    proc = cli("token", "create", "--role", "carrier", "--subject", "x", "--var", tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "carrier: required for role carrier" in proc.stderr
    assert not (tmp_path / "keys").exists()


# ---- the API: middleware, guards, limits ------------------------------------------------


# A text route: its errors would be text/plain, but the middleware's 401 is always JSON.
@get("/health")
async def health() -> str:
    return "ok"


@get("/whoami", guards=[requires(Role.OPERATOR, Role.DEPOT)])
async def whoami(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"who": current_principal(request).key}


@post("/notes", request_max_body_size=MAX_JSON_BODY_BYTES)
async def notes(data: JSONBody[dict[str, str]]) -> dict[str, int]:
    return {"n": len(data)}


def make_app(limit: int = 1000) -> Litestar:
    return Litestar(
        route_handlers=[health, whoami, notes],
        state=State({JWT_SECRET_STATE_KEY: SECRET}),
        middleware=[rate_limit_config(limit, "minute").middleware, auth_middleware()],
    )


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    with TestClient(app=make_app()) as c:
        yield c


def bearer(principal: Principal, secret: bytes = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(secret, principal)}"}


OPERATOR, DEPOT, CARRIER, CUSTOMER = PRINCIPALS


def test_no_token_is_401_with_a_challenge(client: TestClient[Litestar]) -> None:
    for path in ("/health", "/whoami"):
        r = client.get(path)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="streamguard"'
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"status_code": 401, "detail": "missing bearer token"}


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        ("Bearer not-a-jwt", "malformed"),
        (f"Bearer {create_token(OTHER_SECRET, OPERATOR)}", "bad signature"),
        (f"Bearer {create_token(SECRET, OPERATOR, ttl_s=1, now=NOW)}", "expired"),
        ("Basic dXNlcjpwYXNz", "Bearer scheme"),
        ("Bearer ", "empty bearer token"),
    ],
)
def test_bad_token_is_401(client: TestClient[Litestar], authorization: str, reason: str) -> None:
    r = client.get("/health", headers={"Authorization": authorization})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/json"
    assert reason in r.json()["detail"]


def test_roles(client: TestClient[Litestar]) -> None:
    assert client.get("/health", headers=bearer(CUSTOMER)).text == "ok"
    r = client.get("/whoami", headers=bearer(CUSTOMER))
    assert r.status_code == 403
    assert "needs depot or operator" in r.json()["detail"]
    assert client.get("/whoami", headers=bearer(CARRIER)).status_code == 403
    r = client.get("/whoami", headers={"authorization": f"bearer {create_token(SECRET, DEPOT)}"})
    assert r.status_code == 200
    assert r.json() == {"who": "depot:staff-0042"}
    assert client.get("/whoami", headers=bearer(OPERATOR)).status_code == 200


def test_schema_is_public(client: TestClient[Litestar]) -> None:
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    assert "/whoami" in r.json()["paths"]


def test_json_body_limit(client: TestClient[Litestar]) -> None:
    ok = client.post("/notes", json={"a": "x"}, headers=bearer(CUSTOMER))
    assert ok.status_code == 201
    big = {"a": "x" * MAX_JSON_BODY_BYTES}
    assert client.post("/notes", json=big, headers=bearer(CUSTOMER)).status_code == 413


def test_rate_limit_per_principal() -> None:
    with TestClient(app=make_app(limit=3)) as client:
        for _ in range(3):
            assert client.get("/health", headers=bearer(CUSTOMER)).status_code == 200
        r = client.get("/health", headers=bearer(CUSTOMER))
        assert r.status_code == 429
        assert r.headers["ratelimit-limit"] == "3"
        # Another principal from the same address has its own budget...
        assert client.get("/health", headers=bearer(DEPOT)).status_code == 200
        # ...and so do anonymous callers, counted by address.
        assert client.get("/health").status_code == 401


def test_secret_missing_from_app_state_is_a_server_error() -> None:
    app = Litestar(route_handlers=[health], middleware=[auth_middleware()])
    with TestClient(app=app) as client:
        r = client.get("/health", headers=bearer(OPERATOR))
    assert r.status_code == 500


def test_requires_needs_a_role() -> None:
    with pytest.raises(ConfigError):
        requires()
