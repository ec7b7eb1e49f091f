"""The storage writer of the live engine: takes what the engine evaluated and stores it.

The engine hands over *items*: the events it accepted from a run of consecutive NATS messages
(pyarrow batches, each with ``seq`` and ``idx``, the event's key), the alert records, the
shipment scores and the dead letters of that run. Each part is inserted with a deduplication
token made of the item's sequence range, so an item stored again after a crash leaves no
duplicate; only then does the engine ack the messages. A failing insert is retried, never
skipped: meanwhile the engine's queue fills and its input backs off.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any, TextIO

from streamguard._core import LiveEngine
from streamguard.errors import StoreError
from streamguard.store import tables as t
from streamguard.store.store import Store

__all__ = ["StoreWriter", "store_item"]

#: Seconds between retries of a failing insert (doubling up to the last).
RETRY_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def store_item(store: Store, item: dict[str, Any]) -> tuple[int, int]:
    """Insert one engine item; returns (events, all rows) stored. Tokens:
    ``<item token>:<part>``."""
    token = item["token"]
    rows = 0
    for i, batch in enumerate(item["events"]):
        store.insert_events(batch, f"{token}:e{i}")
        rows += batch.num_rows
    events = rows
    if item["alerts"] is not None:
        store.insert_alerts(item["alerts"], f"{token}:alerts")
        rows += item["alerts"].num_rows
    if item.get("scores") is not None:
        store.insert_scores(item["scores"], f"{token}:scores")
        rows += item["scores"].num_rows
    if item["dead"]:
        batch = t.dead_letters_from_messages(item["dead"], time.time_ns() // 1_000_000)
        store.insert_arrow(t.DEAD_LETTERS, batch, f"{token}:dead")
        rows += batch.num_rows
    return events, rows


class StoreWriter(threading.Thread):
    """Drains ``engine``'s items into ``store`` until the engine has ended. Start it after
    ``engine.start()``."""

    def __init__(self, engine: LiveEngine, store: Store, err: TextIO = sys.stderr) -> None:
        super().__init__(name="streamguard-store", daemon=True)
        # The feed, not the engine: this thread must never hold the engine object.
        self.feed = engine.store_feed()
        self.store = store
        self.err = err
        self.items = 0
        self.events = 0
        self.rows = 0
        self.failures = 0
        self.worker = engine.status()["durable"]
        self._stats: queue.SimpleQueue[tuple[int, dict[str, Any]]] = queue.SimpleQueue()

    def stop(self, timeout: float = 30.0) -> None:
        """Wait for the end (call after ``engine.stop()``: the feed closes when it ends)."""
        self.join(timeout)

    def offer_stats(self, status: dict[str, Any]) -> None:
        """Queue a live engine's status for ``engine_stats`` (stored by this thread, which owns
        the store's connection)."""
        self._stats.put((time.time_ns() // 1_000_000, status["engine"]))

    def run(self) -> None:
        while not self.feed.closed:
            item = self.feed.next_item(0.2)
            if item is not None:
                self._store(item)
                self.feed.done(item["last_seq"])
            self._store_stats()
        self._store_stats()

    def _store_stats(self) -> None:
        while not self._stats.empty():
            ts, stats = self._stats.get()
            try:
                self.store.insert_stats(
                    stats, f"stats:{self.worker}:{ts}", ts_ms=ts, worker=self.worker
                )
            except StoreError as e:  # counters are not evidence: report, do not block input
                self.err.write(f"streamguard: cannot store engine stats: {e}\n")

    def _store(self, item: dict[str, Any]) -> None:
        attempt = 0
        while True:
            try:
                events, rows = store_item(self.store, item)
                self.events += events
                self.rows += rows
                self.items += 1
                return
            except StoreError as e:
                self.failures += 1
                wait = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                self.err.write(f"streamguard: storage failed, retrying in {wait} s: {e}\n")
                time.sleep(wait)
                attempt += 1
