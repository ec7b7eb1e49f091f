"""``/health``: NATS, storage and the engine, each ok or why not."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get

from streamguard.api.auth import current_principal
from streamguard.api.common import plane_of
from streamguard.api.problems import ERRORS

__all__ = ["Health", "health"]


class Health(msgspec.Struct):
    ok: bool
    nats: dict[str, Any]
    storage: dict[str, Any]
    engine: dict[str, Any]


@get("/health", tags=["health"], responses=ERRORS, summary="Is the control plane working?")
async def health(request: Request[Any, Any, Any]) -> Response[Health]:
    current_principal(request)
    report = await plane_of(request).health()
    body = msgspec.convert(report, Health)
    return Response(body, status_code=200 if body.ok else 503)
