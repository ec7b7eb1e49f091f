"""Which order and leg each shipment belongs to: NATS KV ``sg_shipments``, mirrored in memory.

Scans and alerts name only a shipment; every one of them needs its order, at the engine's rate,
so lookups must not cost a round trip. A watcher keeps the mirror current with what every API
replica writes; the simulator's own shipments (no order) are a miss in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from streamguard.bus.kv import bucket

__all__ = ["LINKS_BUCKET", "Link", "ShipmentLinks"]

LINKS_BUCKET = "sg_shipments"


class Link(msgspec.Struct, frozen=True):
    order: str
    leg: str
    carrier: str


@dataclass(slots=True)
class ShipmentLinks:
    js: JetStreamContext
    kv: KeyValue
    cache: dict[str, Link]
    ready: asyncio.Event
    task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, js: JetStreamContext) -> ShipmentLinks:
        kv = await bucket(js, LINKS_BUCKET, history=1)
        links = cls(js, kv, {}, asyncio.Event())
        links.task = asyncio.create_task(links._watch(), name="sg-shipment-links")
        await asyncio.wait_for(links.ready.wait(), timeout=30)
        return links

    async def _watch(self) -> None:
        watcher = await self.kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    # The end of the initial values: the mirror is complete.
                    self.ready.set()
                    continue
                if entry.value:
                    self.cache[entry.key] = msgspec.json.decode(entry.value, type=Link)
                else:
                    self.cache.pop(entry.key, None)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def created(self) -> datetime | None:
        """When the bucket was created: no shipment had an order before."""
        info = await self.js.stream_info(f"KV_{LINKS_BUCKET}")
        return info.created

    def get(self, shipment: str) -> Link | None:
        return self.cache.get(shipment)

    async def put(self, shipment: str, link: Link) -> None:
        """Link ``shipment`` to its order (visible here at once, to other replicas via KV)."""
        await self.kv.put(shipment, msgspec.json.encode(link))
        self.cache[shipment] = link

    async def delete(self, shipment: str) -> None:
        """Unlink a shipment an override replaced (its scans no longer move the order)."""
        await self.kv.delete(shipment)
        self.cache.pop(shipment, None)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
