"""Every error as one JSON shape, and every input error as a 422 that names each field.

``{"status_code": 422, "detail": "...", "errors": [{"field": "customer.phone", "message":
"..."}]}``; a 409 for a move the order graph refuses adds ``"allowed": [...]``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, get_args

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
)
from litestar.utils.scope.state import ScopeState

from streamguard.domain.validation import FieldError, field_errors

__all__ = [
    "CONFLICTS",
    "ERRORS",
    "NOT_FOUND",
    "UNAVAILABLE",
    "Problem",
    "exception_handlers",
    "unprocessable",
]

log = logging.getLogger("streamguard.api")


class Problem(msgspec.Struct, omit_defaults=True):
    """An error response."""

    status_code: int
    detail: str
    errors: list[FieldError] = []
    allowed: list[str] = []
    current_version: int | None = None


def _spec(text: str) -> ResponseSpec:
    # No generated examples: they are random (a status_code of 9361), so the document would
    # change with every start and show nonsense.
    return ResponseSpec(data_container=Problem, description=text, generate_examples=False)


#: The error responses every authenticated route documents.
ERRORS: dict[int, ResponseSpec] = {
    401: _spec("Missing or invalid bearer token"),
    403: _spec("The caller's role may not use this route"),
    422: _spec("Invalid input: each bad field is named"),
    429: _spec("Rate limit exceeded"),
}
NOT_FOUND = {404: _spec("No such object visible to the caller")}
UNAVAILABLE = {503: _spec("Storage is not attached to this API process")}
CONFLICTS = {
    409: _spec("The order's state does not allow this (the allowed moves are listed)"),
    412: _spec("If-Match names a version that is no longer current"),
}


def _json(problem: Problem, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=msgspec.json.encode(problem),
        status_code=problem.status_code,
        media_type=MediaType.JSON,
        headers=headers,
    )


def unprocessable(errors: list[FieldError], detail: str = "invalid input") -> HTTPException:
    """A 422 naming each field (raised by handlers for checks the schema cannot express)."""
    return HTTPException(
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        detail=detail,
        extra={"errors": [msgspec.to_builtins(e) for e in errors]},
    )


def _body_errors(request: Request[Any, Any, Any]) -> list[FieldError] | None:
    """Re-validate the cached JSON body against the handler's ``data`` type, every field."""
    body = ScopeState.from_scope(request.scope).body
    if not isinstance(body, bytes | bytearray):
        return None
    data_field = request.route_handler.parsed_fn_signature.parameters.get("data")
    tp = getattr(data_field, "annotation", None)
    variants = [t for t in get_args(tp) if isinstance(t, type) and issubclass(t, msgspec.Struct)]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        variants = [tp]
    if not variants:
        return None
    try:
        raw = json.loads(body)
    except ValueError as e:
        return [FieldError("body", f"not valid JSON: {e}")]
    if len(variants) == 1:
        return field_errors(variants[0], raw) or None
    # A tagged union (sign-offs by signer_type): check the variant the tag names.
    tag_field = str(variants[0].__struct_config__.tag_field)
    tags = {str(v.__struct_config__.tag): v for v in variants}
    chosen = tags.get(str(raw.get(tag_field))) if isinstance(raw, dict) else None
    if chosen is None:
        return [FieldError(tag_field, f"required, one of {', '.join(sorted(tags))}")]
    body_only = {k: v for k, v in raw.items() if k != tag_field}
    return field_errors(chosen, body_only) or None


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = _body_errors(request) if exc.extra else None
    if errors is None:
        extra = exc.extra if isinstance(exc.extra, list) else []
        errors = [
            FieldError(str(e.get("key", "body")), str(e.get("message", "invalid")))
            for e in extra
            if isinstance(e, dict)
        ] or [FieldError("body", exc.detail)]
    return _json(Problem(HTTP_422_UNPROCESSABLE_ENTITY, "invalid input", errors))


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    del request
    if exc.status_code == HTTP_400_BAD_REQUEST:
        # A body that is not JSON at all, a bad multipart: input errors are 422s here too.
        problem = Problem(
            HTTP_422_UNPROCESSABLE_ENTITY, "invalid input", [FieldError("body", exc.detail)]
        )
        return _json(problem, exc.headers)
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    problem = Problem(
        exc.status_code,
        exc.detail,
        errors=msgspec.convert(extra.get("errors", []), list[FieldError]),
        allowed=list(extra.get("allowed", [])),
        current_version=extra.get("current_version"),
    )
    return _json(problem, exc.headers)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _json(Problem(HTTP_500_INTERNAL_SERVER_ERROR, "internal error (logged)"))


def exception_handlers() -> dict[Any, Any]:
    return {ValidationException: _validation, HTTPException: _http, Exception: _internal}
