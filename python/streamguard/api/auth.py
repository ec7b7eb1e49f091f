"""Who may call the API, and how much: bearer-token authentication, role guards, rate and size
limits.

Every request is authenticated (CONTROL_PLANE.md, "Roles") except the OpenAPI documents under
``/schema``; the token is the whole identity, so the middleware needs only the JWT secret, which
the app keeps in ``app.state.jwt_secret`` (bytes, from :meth:`streamguard.keys.Keys.
load_jwt_secret`). Wiring, outermost first, so floods of bad tokens are throttled per address::

    app = Litestar(
        route_handlers=[...],
        state=State({JWT_SECRET_STATE_KEY: keys.load_jwt_secret(create=True)}),
        middleware=[rate_limit_config().middleware, auth_middleware()],
        request_max_body_size=MAX_BODY_BYTES,
    )

    @get("/rules", guards=[requires(Role.OPERATOR)])
    async def list_rules(request: Request) -> ...:
        who = current_principal(request)

Object scoping (a customer sees only its own orders, 404 otherwise) is the domain's job: the
guards here only check the role.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection, Request
from litestar.datastructures import Headers
from litestar.enums import MediaType, ScopeType
from litestar.exceptions import (
    ImproperlyConfiguredException,
    NotAuthorizedException,
    PermissionDeniedException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
    DefineMiddleware,
)
from litestar.middleware.rate_limit import DurationUnit, RateLimitConfig, get_remote_address
from litestar.response import Response
from litestar.types import Guard, Receive, Scope, Send

from streamguard.domain.auth import Principal, Role
from streamguard.errors import AuthError, ConfigError
from streamguard.tokens import verify_token

__all__ = [
    "AUTH_EXCLUDE",
    "JWT_SECRET_STATE_KEY",
    "MAX_BODY_BYTES",
    "MAX_JSON_BODY_BYTES",
    "RATE_LIMIT_PER_SECOND",
    "BearerAuthMiddleware",
    "BearerChallenge",
    "auth_middleware",
    "current_principal",
    "principal_identifier",
    "rate_limit_config",
    "requires",
]

JWT_SECRET_STATE_KEY = "jwt_secret"
# Only the OpenAPI documents are public; /health is authenticated like everything else.
AUTH_EXCLUDE = [r"^/schema"]
RATE_LIMIT_PER_SECOND = 50
# App-wide body limit: Litestar(request_max_body_size=MAX_BODY_BYTES), for photo uploads.
MAX_BODY_BYTES = 12 * 1024 * 1024
# JSON routes: @post(..., request_max_body_size=MAX_JSON_BODY_BYTES) or on their Controller.
MAX_JSON_BODY_BYTES = 256 * 1024

_REALM = 'Bearer realm="streamguard"'


class BearerChallenge(NotAuthorizedException):
    """401 with a ``WWW-Authenticate: Bearer`` challenge (RFC 6750)."""


def _unauthorized(reason: str, *, invalid: bool) -> BearerChallenge:
    # RFC 6750 §3: a presented-but-bad token is error="invalid_token"; no token gets no error.
    challenge = f'{_REALM}, error="invalid_token"' if invalid else _REALM
    return BearerChallenge(detail=reason, headers={"WWW-Authenticate": challenge})


def _jwt_secret(connection: ASGIConnection[Any, Any, Any, Any]) -> bytes:
    secret = connection.app.state.get(JWT_SECRET_STATE_KEY)
    if not isinstance(secret, bytes):
        raise ImproperlyConfiguredException(
            f"app.state.{JWT_SECRET_STATE_KEY} must hold the JWT secret (bytes)"
        )
    return secret


def _bearer_token(headers: Headers) -> str | None:
    """The token of an ``Authorization: Bearer`` header, None when there is no header;
    raises 401 for another scheme or an empty token."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    # Auth schemes are case-insensitive (RFC 9110 §11.1).
    if scheme.lower() != "bearer":
        raise _unauthorized("Authorization must use the Bearer scheme", invalid=False)
    token = token.strip()
    if not token:
        raise _unauthorized("empty bearer token", invalid=True)
    return token


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    """Verifies ``Authorization: Bearer <jwt>``; ``request.user`` is then the
    :class:`Principal` and ``request.auth`` the token. Missing or bad tokens get 401 with a
    ``WWW-Authenticate: Bearer`` challenge and a JSON body whose ``detail`` names the reason."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except BearerChallenge as e:
            # Litestar renders errors in the route's media type; a 401 is JSON even on text routes.
            # (Handlers' own exceptions are answered inside the route, so this is ours.)
            if scope["type"] != ScopeType.HTTP:
                raise
            body = {"status_code": e.status_code, "detail": e.detail}
            response = Response(body, status_code=e.status_code, media_type=MediaType.JSON)
            asgi = response.to_asgi_response(None, Request(scope), headers=e.headers)
            await asgi(scope, receive, send)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = _bearer_token(connection.headers)
        if token is None:
            raise _unauthorized("missing bearer token", invalid=False)
        try:
            principal = verify_token(_jwt_secret(connection), token)
        except AuthError as e:
            raise _unauthorized(f"invalid bearer token: {e}", invalid=True) from None
        return AuthenticationResult(user=principal, auth=token)


def auth_middleware() -> DefineMiddleware:
    """The authentication middleware for ``Litestar(middleware=[...])``: everything but
    :data:`AUTH_EXCLUDE` needs a token (and CORS preflight ``OPTIONS``, Litestar's default)."""
    return DefineMiddleware(BearerAuthMiddleware, exclude=AUTH_EXCLUDE)


def current_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The authenticated caller; 401 if the route was not behind :func:`auth_middleware`."""
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise _unauthorized("missing bearer token", invalid=False)
    return user


def requires(*roles: Role) -> Guard:
    """A guard admitting only principals whose role is one of ``roles``; others get 403.

    ``@get(..., guards=[requires(Role.OPERATOR, Role.DEPOT)])``, or on a Controller.
    """
    if not roles:
        raise ConfigError("requires() needs at least one role")
    allowed = frozenset(Role(r) for r in roles)
    names = " or ".join(sorted(allowed))

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if principal.role not in allowed:
            raise PermissionDeniedException(
                detail=f"role {principal.role} is not allowed here (needs {names})"
            )

    guard.__name__ = guard.__qualname__ = f"requires_{'_'.join(sorted(allowed))}"
    return guard


def principal_identifier(request: Request[Any, Any, Any]) -> str:
    """Rate-limit key: the principal (``role:subject[@carrier]``) of a valid bearer token, else
    the client address, so one caller cannot spend another's budget by forging its subject.

    Works before or after the auth middleware: it reuses ``request.user`` when set and
    verifies the token itself otherwise (HS256 costs microseconds).
    """
    user = request.scope.get("user")
    if isinstance(user, Principal):
        return f"principal:{user.key}"
    secret = request.app.state.get(JWT_SECRET_STATE_KEY)
    try:
        token = _bearer_token(request.headers)
        if token is not None and isinstance(secret, bytes):
            return f"principal:{verify_token(secret, token).key}"
    except (NotAuthorizedException, AuthError):
        pass
    return f"address:{get_remote_address(request)}"


def rate_limit_config(
    limit: int = RATE_LIMIT_PER_SECOND, unit: DurationUnit = "second"
) -> RateLimitConfig:
    """``limit`` requests per ``unit`` per principal (see :func:`principal_identifier`); more
    get 429 with ``RateLimit-*`` headers. Use ``.middleware`` in ``Litestar(middleware=...)``,
    before :func:`auth_middleware`. Counts live in the app's ``rate_limit`` store (in memory by
    default, so per process)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"rate limit: must be a positive number of requests, got {limit!r}")
    return RateLimitConfig(rate_limit=(unit, limit), identifier_for_request=principal_identifier)
