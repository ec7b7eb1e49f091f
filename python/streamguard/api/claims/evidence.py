"""A claim's evidence bundle, assembled when the claim is filed and kept, content-addressed,
beside the photos: every alert on the order's shipments with its locked readings, the scan
trail, the sign-offs with their verification, and the photos (CONTROL_PLANE.md, "Insurance").

The bundle is frozen at filing: its SHA-256 is recorded in the claim's ``filed`` event, so the
evidence an adjuster reads later is provably the evidence the claim was filed with. The export
(:func:`export`) adds the claim as it stands now.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import msgspec

from streamguard.api.signoffs.controllers import sealed_of_order, verify_stored
from streamguard.bus.plane import ControlPlane, now_ms
from streamguard.domain.claims import Attribution, Claim, attribute, claim_view
from streamguard.domain.money import fen_to_str
from streamguard.domain.orders import Order
from streamguard.store import attachments
from streamguard.store.evidence import alerts_of, is_anomaly, scans_of

__all__ = ["BUNDLE_FORMAT", "Evidence", "assemble", "export", "load"]

BUNDLE_FORMAT = "streamguard.evidence/1"
BUNDLE_TYPE = "application/json"
#: How long filing waits for storage to hold the alerts the order's timeline already has.
STORE_WAIT_S = 5.0


class Evidence(msgspec.Struct, frozen=True):
    """An assembled bundle: its canonical bytes, their SHA-256, and the attribution of its
    first anomaly."""

    body: bytes
    sha256: str
    attribution: Attribution


def _legs(order: Order) -> dict[str, tuple[str, str | None]]:
    return {
        leg: (str(ship["shipment"]), ship.get("carrier"))
        for leg, ship in order.shipments.items()
        if ship.get("shipment")
    }


def depot_signoff_ms(order: Order) -> int | None:
    """When the depot signed for the inbound leg (custody passed to it), if it has."""
    return next((int(s["ts_ms"]) for s in order.signoffs if s.get("leg") == "inbound"), None)


async def _stored_alerts(
    plane: ControlPlane, order: Order, legs: dict[str, tuple[str, str | None]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The order's alerts from storage, once storage holds every alert record the order's
    timeline has (the engine's writer lags the alert's arrival by milliseconds), or after
    :data:`STORE_WAIT_S` with the ids still missing."""
    assert plane.store is not None
    expected = {
        (str(e.data.get("id")), str(e.data.get("state")))
        for _, e in await plane.log.timeline(order.id)
        if e.type == "alert"
    }
    deadline = time.monotonic() + STORE_WAIT_S
    while True:
        alerts = await asyncio.to_thread(alerts_of, plane.store, legs)
        have = {(a["id"], s["state"]) for a in alerts for s in a["states"]}
        missing = sorted({aid for aid, state in expected - have})
        if not missing or time.monotonic() > deadline:
            return alerts, missing
        await asyncio.sleep(0.1)


def _order_view(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "status": order.status.value,
        "declared_value": fen_to_str(order.declared_value_fen),
        "product": msgspec.to_builtins(order.intake.product),
        "fault_type": order.intake.fault_type,
        "service": order.intake.service,
        "shipments": {
            leg: {k: v for k, v in ship.items() if k != "choice"}
            for leg, ship in order.shipments.items()
        },
    }


async def assemble(plane: ControlPlane, order: Order) -> Evidence:
    """Read everything the order's journey left (storage and the order log) into one bundle,
    and keep it. Needs storage (``plane.store``)."""
    store = plane.store
    assert store is not None, "evidence is read from storage"
    legs = _legs(order)
    alerts, missing = await _stored_alerts(plane, order, legs)
    scans = await asyncio.to_thread(scans_of, store, legs)
    signoffs = []
    for sealed in await sealed_of_order(plane, order.id):
        verdict = await asyncio.to_thread(verify_stored, plane, order.id, sealed)
        record = sealed.record
        signoffs.append(
            {
                "id": record.id,
                "leg": record.leg.value,
                "signer_name": record.signer_name,
                "signer_type": record.signer_type.value,
                "ts_ms": record.ts_ms,
                "channel": record.channel.value,
                "region": record.region,
                "hash": sealed.hash,
                "verification": msgspec.to_builtins(verdict),
            }
        )
    described = await asyncio.to_thread(attachments.describe, store, list(order.photos))
    photos = [
        {
            "sha256": sha,
            "content_type": described.get(sha, (None, None))[0],
            "size": described.get(sha, (None, None))[1],
            "url": f"/orders/{order.id}/photos/{sha}",
        }
        for sha in order.photos
    ]
    inbound = order.shipments.get("inbound", {})
    back = order.shipments.get("return", {})
    signed_ms = depot_signoff_ms(order)
    attribution = attribute(
        [a["started_ms"] or a["ts_ms"] for a in alerts if is_anomaly(a)],
        signed_ms,
        inbound.get("carrier"),
        back.get("carrier"),
    )
    leg, holder, first_ms = attribution
    bundle = {
        "format": BUNDLE_FORMAT,
        "generated_ms": now_ms(),
        "order": _order_view(order),
        "attribution": {
            "leg": leg,
            "custody_holder": holder,
            "first_anomaly_ms": first_ms,
            "depot_signoff_ms": signed_ms,
        },
        "alerts": alerts,
        # Alerts the order's timeline has but storage did not within STORE_WAIT_S (normally
        # none): said, rather than silently left out.
        "missing_alerts": missing,
        "scans": scans,
        "signoffs": signoffs,
        "photos": photos,
    }
    body = msgspec.json.encode(bundle, order="sorted")
    sha = hashlib.sha256(body).hexdigest()
    await asyncio.to_thread(attachments.put, store, sha, BUNDLE_TYPE, body)
    return Evidence(body, sha, attribution)


def load(plane: ControlPlane, sha256: str) -> dict[str, Any] | None:
    """The stored bundle, checked against its digest (``None`` if it is not stored)."""
    assert plane.store is not None
    found = attachments.get(plane.store, sha256)
    if found is None:
        return None
    body = found[1]
    if hashlib.sha256(body).hexdigest() != sha256:
        raise ValueError(f"the stored evidence bundle {sha256} does not match its digest")
    bundle: dict[str, Any] = msgspec.json.decode(body)
    return bundle


def export(bundle: dict[str, Any], sha256: str, claim: Claim) -> dict[str, Any]:
    """The bundle as exported: the frozen evidence, its digest, and the claim as it is now."""
    return {**bundle, "sha256": sha256, "claim": claim_view(claim)}
