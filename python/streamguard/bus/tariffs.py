"""Carrier tariffs as operators edit them: NATS KV ``sg_tariffs``/``active``, watched, so every
API replica prices policies and chooses return carriers from the tariffs in force. Until an
operator saves a document, the packaged SAMPLE tariffs are in force."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from streamguard.bus.kv import bucket
from streamguard.bus.operations import Operations
from streamguard.domain.insurance import TariffError, Tariffs

__all__ = ["TARIFFS_BUCKET", "TARIFFS_KEY", "TariffWatch", "tariffs_bucket"]

log = logging.getLogger("streamguard.bus")

TARIFFS_BUCKET = "sg_tariffs"
TARIFFS_KEY = "active"


async def tariffs_bucket(js: JetStreamContext) -> KeyValue:
    return await bucket(js, TARIFFS_BUCKET, history=16, direct=True)


class TariffWatch:
    """Keeps ``ops.tariffs`` equal to the saved document (the sample while there is none)."""

    def __init__(self, kv: KeyValue, ops: Operations) -> None:
        self._kv = kv
        self._ops = ops
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @classmethod
    async def start(cls, js: JetStreamContext, ops: Operations) -> TariffWatch:
        watch = cls(await tariffs_bucket(js), ops)
        watch._task = asyncio.create_task(watch._run(), name="sg-tariffs")
        await asyncio.wait_for(watch._ready.wait(), timeout=30)
        return watch

    async def _run(self) -> None:
        watcher = await self._kv.watch(TARIFFS_KEY)
        try:
            async for entry in watcher:
                if entry is None:
                    self._ready.set()
                    continue
                if not entry.value:
                    self._ops.tariffs = Tariffs.load_sample()
                    continue
                try:
                    self._ops.tariffs = Tariffs.from_json(entry.value)
                except TariffError as e:
                    # Written behind the API's back: keep the tariffs in force.
                    log.error(
                        "tariffs revision %s refused, the previous stay: %s", entry.revision, e
                    )
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
