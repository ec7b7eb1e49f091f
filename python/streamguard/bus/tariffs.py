"""Carrier tariffs and the return-choice weights as operators edit them: NATS KV
``sg_tariffs``, keys ``active`` (the tariffs) and ``weights``, watched, so every API replica
prices policies and chooses return carriers from what is in force. Until an operator saves a
document, the packaged SAMPLE tariffs and the default weights are in force."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from streamguard.bus.kv import bucket
from streamguard.bus.operations import Operations
from streamguard.domain.insurance import TariffError, Tariffs
from streamguard.domain.returns import DEFAULT_WEIGHTS, Weights

__all__ = ["TARIFFS_BUCKET", "TARIFFS_KEY", "WEIGHTS_KEY", "TariffWatch", "tariffs_bucket"]

log = logging.getLogger("streamguard.bus")

TARIFFS_BUCKET = "sg_tariffs"
TARIFFS_KEY = "active"
WEIGHTS_KEY = "weights"


async def tariffs_bucket(js: JetStreamContext) -> KeyValue:
    return await bucket(js, TARIFFS_BUCKET, history=16, direct=True)


class TariffWatch:
    """Keeps ``ops.tariffs`` and ``ops.weights`` equal to the saved documents (the sample and
    the defaults while there are none)."""

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
        watcher = await self._kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    self._ready.set()
                elif entry.key == TARIFFS_KEY:
                    self._tariffs(entry.value, entry.revision)
                elif entry.key == WEIGHTS_KEY:
                    self._weights(entry.value, entry.revision)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _tariffs(self, value: bytes | None, revision: int | None) -> None:
        if not value:
            self._ops.tariffs = Tariffs.load_sample()
            return
        try:
            self._ops.tariffs = Tariffs.from_json(value)
        except TariffError as e:
            # Written behind the API's back: keep the tariffs in force.
            log.error("tariffs revision %s refused, the previous stay: %s", revision, e)

    def _weights(self, value: bytes | None, revision: int | None) -> None:
        if not value:
            self._ops.weights = DEFAULT_WEIGHTS
            return
        try:
            self._ops.weights = msgspec.json.decode(value, type=Weights)
        except (msgspec.ValidationError, ValueError) as e:
            log.error("weights revision %s refused, the previous stay: %s", revision, e)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
