"""The control plane's NATS wiring (nats-py): the order log, the shipment links, and the
consumers that move orders on scans and attach alerts."""

from streamguard.bus.orderlog import (
    ORDERS_STREAM,
    Conflict,
    OrderLog,
    OrderRecord,
    PreconditionFailed,
    Versioned,
)

__all__ = [
    "ORDERS_STREAM",
    "Conflict",
    "OrderLog",
    "OrderRecord",
    "PreconditionFailed",
    "Versioned",
]
