"""The Litestar app: controllers per domain over the control plane's runtime.

``create_app(config, store)`` is all a server needs; ``streamguard up`` and ``streamguard api``
run it with uvicorn. OpenAPI is served at ``/schema`` (``/schema/openapi.json``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute

from streamguard import __version__
from streamguard.api.auth import (
    JWT_SECRET_STATE_KEY,
    MAX_BODY_BYTES,
    RATE_LIMIT_PER_SECOND,
    auth_middleware,
    rate_limit_config,
)
from streamguard.api.carriers.controllers import CarrierScoreController, TariffController
from streamguard.api.claims.controllers import ClaimController, OrderClaimController
from streamguard.api.common import PLANE_STATE_KEY
from streamguard.api.health import health
from streamguard.api.openapi import StrictStructSchemaPlugin
from streamguard.api.orders.controllers import OrderController
from streamguard.api.problems import exception_handlers
from streamguard.api.reports.controllers import reports_router
from streamguard.api.rules.controllers import RulesController
from streamguard.api.shipments.controllers import OrderShipmentController, ShipmentController
from streamguard.api.signoffs.controllers import SignOffController
from streamguard.api.stream import stream
from streamguard.api.webhooks.controllers import WebhookController
from streamguard.bus.plane import ControlConfig, ControlPlane
from streamguard.store.store import Store

__all__ = ["create_app"]


def create_app(
    config: ControlConfig,
    store: Store | None = None,
    *,
    rate_limit: int = RATE_LIMIT_PER_SECOND,
) -> Litestar:
    """The API. The control plane (NATS connection, consumers, projector into ``store``) starts
    with the app, on its event loop, and stops with it. ``rate_limit`` is requests per second
    per principal."""

    @asynccontextmanager
    async def control_plane(app: Litestar) -> AsyncIterator[None]:
        plane = await ControlPlane.start(config, store)
        app.state[PLANE_STATE_KEY] = plane
        app.state[JWT_SECRET_STATE_KEY] = plane.jwt_secret
        try:
            yield
        finally:
            await plane.stop()

    openapi = OpenAPIConfig(
        title="StreamGuard control plane",
        version=__version__,
        description="Repair orders, shipments, sign-offs and rules. Every route but /schema "
        "needs `Authorization: Bearer <token>` (`streamguard token create`).",
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
            }
        ),
        security=[{"bearer": []}],
    )
    app = Litestar(
        route_handlers=[
            CarrierScoreController,
            ClaimController,
            OrderClaimController,
            OrderController,
            OrderShipmentController,
            RulesController,
            reports_router,
            ShipmentController,
            SignOffController,
            TariffController,
            WebhookController,
            health,
            stream,
        ],
        lifespan=[control_plane],
        middleware=[rate_limit_config(rate_limit).middleware, auth_middleware()],
        exception_handlers=exception_handlers(),
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=openapi,
        plugins=[StrictStructSchemaPlugin()],
    )
    return _fresh_allow_headers(app)


def _fresh_allow_headers(app: Litestar) -> Litestar:
    """Litestar 2 (litestar-org/litestar#4169, fixed in 3): when a path's handlers are registered
    one by one, its automatic OPTIONS handler keeps the methods of the first, so ``Allow`` on
    /orders lacked GET. Point each OPTIONS handler at the route it answers for."""
    for route in app.routes:
        entry = route.route_handler_map.get("OPTIONS") if isinstance(route, HTTPRoute) else None
        cells = getattr(entry[0].fn, "__closure__", None) if entry else None
        for cell in cells or ():
            if isinstance(cell.cell_contents, HTTPRoute) and cell.cell_contents is not route:
                cell.cell_contents = route
    return app
