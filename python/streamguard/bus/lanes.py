"""The engine's lane statistics, as the control plane reads them: every engine worker puts its
encoded lane table under its own key of the NATS KV bucket ``sg_lanes`` at each checkpoint;
:class:`LaneWatch` follows the bucket and merges the workers' tables (each worker learns from
its own partition of the shipments) into one, which the return-carrier choice and
``GET /carriers/score`` read.

Until an engine has published anything, there are no statistics and the choice falls back to
the tariffs' nominal SLAs (see ``domain.returns.ScoringChooser``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js import JetStreamContext

from streamguard.bus.kv import bucket
from streamguard.domain.returns import LaneEstimate, LaneTableSource
from streamguard.lanes import LaneTable, merge_tables

__all__ = ["LANES_BUCKET", "LaneWatch"]

log = logging.getLogger("streamguard.bus")

LANES_BUCKET = "sg_lanes"
#: How often a missing bucket (no engine yet) is looked for again.
_RETRY_S = 2.0


class LaneWatch:
    """A :class:`~streamguard.domain.returns.LaneSource` over the merged tables of every
    engine worker. ``tables`` is the latest table bytes per worker key."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._task: asyncio.Task[None] | None = None
        self.tables: dict[str, bytes] = {}
        self._merged: LaneTable | None = None
        self._stale = False

    @classmethod
    def start(cls, js: JetStreamContext) -> LaneWatch:
        watch = cls(js)
        watch._task = asyncio.create_task(watch._run(), name="sg-lanes")
        return watch

    def estimate(self, carrier: str, origin: str, dest: str) -> LaneEstimate | None:
        if self._stale:
            # Merged when read, not at every worker's put (each checkpoint interval).
            self._merged = merge_tables(self.tables.values()) if self.tables else None
            self._stale = False
        return LaneTableSource(self._merged).estimate(carrier, origin, dest)

    def update(self, key: str, value: bytes | None) -> None:
        """Take one worker's table (``None``: the worker's key was deleted); the tables are
        merged again at the next read."""
        if value:
            try:
                LaneTable.from_bytes(value)
            except Exception as e:
                log.error("lane table of %s refused, the previous stays: %s", key, e)
                return
            self.tables[key] = value
        else:
            self.tables.pop(key, None)
        self._stale = True

    async def _run(self) -> None:
        while True:
            try:
                kv = await bucket(self._js, LANES_BUCKET, history=1)
                watcher = await kv.watchall()
            except Exception as e:
                log.debug("lane statistics not available yet: %s", e)
                await asyncio.sleep(_RETRY_S)
                continue
            try:
                async for entry in watcher:
                    if entry is None:
                        continue
                    self.update(str(entry.key), entry.value or None)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
