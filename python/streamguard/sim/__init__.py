"""The seeded feed simulator (implemented in Rust): carriers' scan sequences with normal and
long gaps and late batch uploads, sensor readings with shocks, heat, humidity and battery
drain, ``shipment`` events with tier and fragility, duplicates, out-of-order readings and a few
invalid events.

>>> sim = Simulator(seed=7, shipments=2_000, events=50_000)
>>> feed = b"".join(sim.chunks(10_000, "json"))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from streamguard import _core
from streamguard.engine import FORMATS
from streamguard.errors import ConfigError

__all__ = ["Simulator", "example_rules"]


def example_rules() -> str:
    """A realistic rule set (JSON text): every rule kind, ``where`` filters, at least 8 rules."""
    return _core.example_rules()


class Simulator:
    """A deterministic feed: the same arguments give the same events, byte for byte.

    ``events`` valid events over ``shipments`` shipments; about ``invalid_rate`` of the inputs
    are invalid (carried by JSON output only: binary formats cannot hold undecodable bytes).
    Event time starts at ``start_ms`` (UTC ms; default a fixed date, so feeds are reproducible).
    Every shipment starts or ends at one of the ``depots`` (region codes such as ``"CN-44"``;
    default five repair centres) and its customer is in one of ``customer_provinces`` (default
    all 31): a few of each bound the lanes, so each gets enough shipments to learn from.
    """

    __slots__ = (
        "_sim",
        "customer_provinces",
        "depots",
        "events",
        "invalid_rate",
        "seed",
        "shipments",
        "start_ms",
    )

    def __init__(
        self,
        seed: int = 1,
        shipments: int = 2_000,
        events: int = 100_000,
        invalid_rate: float = 0.001,
        start_ms: int | None = None,
        *,
        depots: Sequence[str] | None = None,
        customer_provinces: Sequence[str] | None = None,
    ) -> None:
        self.seed = seed
        self.shipments = shipments
        self.events = events
        self.invalid_rate = invalid_rate
        self.start_ms = start_ms
        self.depots = None if depots is None else list(depots)
        self.customer_provinces = None if customer_provinces is None else list(customer_provinces)
        # Only what was given: the defaults live in Rust.
        lanes: dict[str, list[str]] = {}
        if self.depots is not None:
            lanes["depots"] = self.depots
        if self.customer_provinces is not None:
            lanes["customer_provinces"] = self.customer_provinces
        self._sim = _core.Simulator(seed, shipments, events, invalid_rate, start_ms, **lanes)

    def next_chunk(self, max_events: int, format: str = "json") -> bytes | None:
        """The next up to ``max_events`` events in ``format``; None once the feed is exhausted."""
        if format not in FORMATS:
            raise ConfigError(f"unknown format {format!r} (expected one of {', '.join(FORMATS)})")
        return self._sim.next_chunk(max_events, format)

    def chunks(self, max_events: int, format: str = "json") -> Iterator[bytes]:
        """The rest of the feed, ``max_events`` events per chunk (each chunk a complete message:
        whole NDJSON lines, one protobuf ``EventBatch``, or one Arrow IPC stream)."""
        while (chunk := self.next_chunk(max_events, format)) is not None:
            yield chunk

    def record_batches(self, max_events: int) -> Iterator[pa.RecordBatch]:
        """The rest of the feed as pyarrow RecordBatches (per chunk of ``max_events``, one batch
        per kind in first-seen order)."""
        while (batches := self._sim.next_record_batches(max_events)) is not None:
            yield from batches

    def lane_truths(self) -> list[dict[str, Any]]:
        """The ground truth the feed follows, one dict per lane it uses: ``carrier``, ``origin``
        and ``dest`` (province, e.g. ``"CN-44"``), ``p50_ms`` and ``p90_ms`` (true transit time
        PICKED_UP → DELIVERED), ``sigma`` (log-sd of that log-normal), ``damage_rate`` (chance a
        shipment is dropped: one sensor reading above 3 g), ``stall_rate`` (chance a scan gap is
        a 6-30 h stall) and ``share`` (of the feed's shipments)."""
        return self._sim.lane_truths()

    @property
    def events_emitted(self) -> int:
        """Valid events produced so far."""
        return self._sim.events_emitted

    @property
    def invalid_emitted(self) -> int:
        """Invalid inputs produced so far (in JSON chunks)."""
        return self._sim.invalid_emitted
