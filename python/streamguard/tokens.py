"""API bearer tokens: HS256 JWTs that carry a :class:`Principal`, and ``streamguard token``.

A token is the whole identity: the API keeps no sessions, so a verified token is trusted for
its role, subject and (for carriers) carrier code until it expires. Claims:

``sub`` subject, ``role`` one of :class:`Role`, ``carrier`` (carriers only), ``iat``, ``exp``,
``iss`` = ``streamguard``, ``aud`` = ``streamguard-api``.

Creating a token with bad claims is a :class:`ConfigError` naming the field (a caller's
mistake); a token that does not verify is an :class:`AuthError` naming the reason (the API
answers 401).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from streamguard.domain.auth import Principal, Role
from streamguard.errors import AuthError, ConfigError
from streamguard.keys import SECRET_BYTES, Keys

__all__ = [
    "AUDIENCE",
    "DEFAULT_TTL_S",
    "ISSUER",
    "add_token_parser",
    "check_principal",
    "cmd_token",
    "create_token",
    "verify_token",
]

ISSUER = "streamguard"
AUDIENCE = "streamguard-api"
ALGORITHM = "HS256"
DEFAULT_TTL_S = 86_400
# Clock skew tolerated for an ``iat`` in the future (tokens minted on another host).
IAT_LEEWAY_S = 30
_CARRIER_CODE = re.compile(r"[A-Z0-9]{2,8}")
_ROLES = frozenset(r.value for r in Role)
_REQUIRED = ["exp", "iat", "sub", "role", "iss", "aud"]


def _subject(value: object, field: str = "subject") -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise ConfigError(f"{field}: must be a string of 1 to 64 characters")
    if not value.isprintable() or not value.strip():
        raise ConfigError(f"{field}: must be printable and not blank")
    return value


def _carrier(role: Role, value: object, field: str = "carrier") -> str | None:
    if role is not Role.CARRIER:
        if value is not None:
            raise ConfigError(f"{field}: only a carrier principal has one (role is {role})")
        return None
    if value is None:
        raise ConfigError(f"{field}: required for role carrier")
    if not isinstance(value, str) or not _CARRIER_CODE.fullmatch(value.upper()):
        raise ConfigError(f"{field}: must be 2 to 8 letters or digits, got {value!r}")
    return value.upper()


def _secret(secret: bytes) -> bytes:
    if not isinstance(secret, bytes) or len(secret) < SECRET_BYTES:
        raise ConfigError(f"the JWT secret must be at least {SECRET_BYTES} bytes")
    return secret


def _role(value: object) -> Role | None:
    if not isinstance(value, str) or value not in _ROLES:
        return None
    return Role(value)


def check_principal(principal: Principal) -> Principal:
    """``principal`` with its carrier code upper-cased, or :class:`ConfigError` naming the bad
    field: an unknown role, a subject that is not 1-64 printable characters, a carrier code
    missing for a carrier, present for anyone else, or not ``[A-Z0-9]{2,8}``."""
    role = _role(principal.role)
    if role is None:
        raise ConfigError(f"role: must be one of {', '.join(Role)}, got {principal.role!r}")
    subject = _subject(principal.subject)
    return Principal(role=role, subject=subject, carrier=_carrier(role, principal.carrier))


def create_token(
    secret: bytes, principal: Principal, ttl_s: int = DEFAULT_TTL_S, now: float | None = None
) -> str:
    """A signed token for ``principal``, valid ``ttl_s`` seconds from ``now`` (epoch seconds,
    default the current time). Raises :class:`ConfigError` naming a bad field."""
    p = check_principal(principal)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s < 1:
        raise ConfigError(f"ttl_s: must be a positive number of seconds, got {ttl_s!r}")
    iat = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": p.subject,
        "role": p.role.value,
        "iat": iat,
        "exp": iat + ttl_s,
    }
    if p.carrier is not None:
        claims["carrier"] = p.carrier
    return jwt.encode(claims, _secret(secret), algorithm=ALGORITHM)


def _int_claim(claims: dict[str, Any], name: str) -> int:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthError(f"claim {name!r} is not a number")
    return int(value)


def _decode(secret: bytes, token: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            _secret(secret),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            # Times are checked below against the caller's ``now``, which PyJWT cannot take.
            options={
                "require": _REQUIRED,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise AuthError("bad signature") from None
    except jwt.InvalidAudienceError:
        raise AuthError(f"wrong audience (expected {AUDIENCE})") from None
    except jwt.InvalidIssuerError:
        raise AuthError(f"wrong issuer (expected {ISSUER})") from None
    except jwt.MissingRequiredClaimError as e:
        raise AuthError(f"missing claim {e.claim!r}") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError(f"algorithm not allowed (only {ALGORITHM})") from None
    except jwt.DecodeError as e:
        raise AuthError(f"malformed token: {e}") from None
    except jwt.InvalidTokenError as e:
        raise AuthError(f"invalid token: {e}") from None


def verify_token(secret: bytes, token: str, now: float | None = None) -> Principal:
    """The principal ``token`` was issued for. Raises :class:`AuthError` naming the reason:
    malformed, bad signature, wrong issuer or audience, expired, issued in the future, a
    missing claim, an unknown role, a bad subject or carrier code."""
    claims = _decode(secret, token)
    t = time.time() if now is None else now
    if _int_claim(claims, "exp") <= t:
        raise AuthError("token expired")
    if _int_claim(claims, "iat") > t + IAT_LEEWAY_S:
        raise AuthError("token issued in the future")
    if "nbf" in claims and _int_claim(claims, "nbf") > t + IAT_LEEWAY_S:
        raise AuthError("token not yet valid")
    role = _role(claims["role"])
    if role is None:
        raise AuthError(f"unknown role {claims['role']!r}")
    try:
        subject = _subject(claims["sub"], "claim 'sub'")
        carrier = _carrier(role, claims.get("carrier"), "claim 'carrier'")
    except ConfigError as e:
        raise AuthError(str(e)) from None
    return Principal(role=role, subject=subject, carrier=carrier)


# ---- streamguard token ------------------------------------------------------------------


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def add_token_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamguard token create`` on the top-level command's subparsers."""
    p = subparsers.add_parser(
        "token",
        help="mint API bearer tokens (signed with the JWT secret in VAR/keys)",
        description="Mint bearer tokens for the control-plane API. The secret is "
        "$STREAMGUARD_JWT_KEY if set, else <keys>/jwt.key (created on first use; "
        "<keys> is $STREAMGUARD_KEYS_DIR or VAR/keys).",
    )
    actions = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    c = actions.add_parser(
        "create",
        help="print a token for one principal on stdout",
        description="Print a signed token on stdout; a note on stderr says who and until when.",
    )
    c.add_argument("--role", required=True, choices=[r.value for r in Role])
    c.add_argument(
        "--subject", required=True, help="customer id, staff id or login (1-64 characters)"
    )
    c.add_argument("--carrier", help="carrier code, required for --role carrier (e.g. SF)")
    c.add_argument(
        "--ttl",
        type=_positive,
        default=DEFAULT_TTL_S,
        metavar="SECONDS",
        help=f"lifetime (default {DEFAULT_TTL_S})",
    )
    c.add_argument("--var", default="var", help="state directory (default ./var)")
    c.set_defaults(func=cmd_token)


def cmd_token(args: argparse.Namespace) -> int:
    """``streamguard token create``: the token on stdout, one line about it on stderr."""
    # Check the claims first, so a mistyped first run does not create a key file for nothing.
    principal = check_principal(
        Principal(role=Role(args.role), subject=args.subject, carrier=args.carrier)
    )
    now = int(time.time())
    secret = Keys.from_env(Path(args.var)).load_jwt_secret(create=True)
    token = create_token(secret, principal, args.ttl, now)
    sys.stdout.write(token + "\n")
    sys.stdout.flush()
    expires = datetime.fromtimestamp(now + args.ttl, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    carrier = f" carrier={principal.carrier}" if principal.carrier else ""
    sys.stderr.write(
        f"streamguard token: role={principal.role} subject={principal.subject}{carrier} "
        f"expires {expires}\n"
    )
    return 0
