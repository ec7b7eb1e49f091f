"""What every controller needs: the control plane from app state, versions as ETags, the
Idempotency-Key, and the 404 that hides objects from callers who may not see them."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request
from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi.spec import OpenAPIType
from litestar.params import HeaderParameter
from litestar.status_codes import HTTP_409_CONFLICT, HTTP_412_PRECONDITION_FAILED

from streamguard.api.problems import unprocessable
from streamguard.bus.operations import Refused
from streamguard.bus.orderlog import (
    Conflict,
    IdempotencyMismatch,
    PreconditionFailed,
    idempotency_key,
    request_hash,
)
from streamguard.bus.plane import ControlPlane
from streamguard.domain.auth import Principal
from streamguard.domain.orders import TransitionError
from streamguard.domain.validation import FieldError

__all__ = [
    "Idem",
    "IdempotencyKey",
    "IfMatch",
    "etag",
    "not_found",
    "parse_if_match",
    "plane_of",
    "reject_unknown_query",
    "write_errors",
]

PLANE_STATE_KEY = "control_plane"
_IF_MATCH = re.compile(r'^(W/)?"?([0-9]{1,19})"?$')

# An optional header is absent or a string, never null: without this the document says
# "string or null" (the Python type is ``str | None``) and clients send ``If-Match: null``.
_PLAIN_STRING: dict[str, Any] = {"one_of": None, "type": OpenAPIType.STRING}

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        pattern=r'^(W/)?"?[0-9]{1,19}"?$',
        description="The version (ETag) this change was made from; a stale one gives 412.",
        schema_extra=_PLAIN_STRING,
    ),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="Repeat a POST with the same key and body: it takes effect once and "
        "answers with the first result (kept 24 h).",
        schema_extra=_PLAIN_STRING,
    ),
]


def plane_of(request: Request[Any, Any, Any]) -> ControlPlane:
    plane: ControlPlane = request.app.state[PLANE_STATE_KEY]
    return plane


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    m = _IF_MATCH.match(value.strip())
    if m is None:
        raise unprocessable([FieldError("If-Match", 'expected a version such as "42"')])
    return int(m.group(2))


def reject_unknown_query(request: Request[Any, Any, Any], known: frozenset[str]) -> None:
    """A 422 naming each query parameter the route does not take: as a body's unknown field
    is, so that a misspelt filter never silently lists everything."""
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise unprocessable([FieldError(k, "unknown query parameter") for k in unknown])


def not_found(what: str) -> NotFoundException:
    return NotFoundException(detail=f"{what} not found")


class Idem:
    """A request's idempotency: the stored key (scoped to the caller) and the body's hash."""

    __slots__ = ("body_hash", "key")

    def __init__(self, principal: Principal, key: str | None, body: bytes) -> None:
        self.key = idempotency_key(principal.key, key) if key else None
        self.body_hash = request_hash(body)


def write_errors(e: Exception) -> HTTPException:
    """The HTTP answer to an order-log write that did not happen."""
    if isinstance(e, PreconditionFailed):
        return HTTPException(
            status_code=HTTP_412_PRECONDITION_FAILED,
            detail=f"If-Match is stale: the order is at version {e.current}",
            extra={"current_version": e.current},
            headers={"ETag": etag(e.current)},
        )
    if isinstance(e, TransitionError):
        return HTTPException(
            status_code=HTTP_409_CONFLICT, detail=e.message, extra={"allowed": e.allowed}
        )
    if isinstance(e, Refused):
        return unprocessable([FieldError(e.field, e.message)])
    if isinstance(e, IdempotencyMismatch):
        return unprocessable([FieldError("Idempotency-Key", str(e))])
    if isinstance(e, Conflict):
        return HTTPException(status_code=HTTP_409_CONFLICT, detail=str(e))
    if isinstance(e, KeyError):
        return not_found("order")
    raise e
