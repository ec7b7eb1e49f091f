"""Stubs for the Rust extension ``streamguard._core``, checked by ``mypy.stubtest`` (``make lint``).

The public API is the pure-Python package; use ``streamguard.Engine`` and ``streamguard.sim``.
"""

import os
from typing import Any, final

import pyarrow as pa

from streamguard.lanes import LaneEstimate, LaneRow

__all__ = [
    "Engine",
    "LaneTable",
    "LiveEngine",
    "Simulator",
    "StoreFeed",
    "__version__",
    "convert",
    "example_rules",
    "publish_feed",
]
__version__: str

@final
class Engine:
    def __new__(cls, rules_json: str | bytes, *, scoring: bool = True) -> Engine: ...
    def process_bytes(
        self, data: bytes, format: str = "json", kind: str | None = None
    ) -> pa.RecordBatch: ...
    def process_bytes_json(
        self, data: bytes, format: str = "json", kind: str | None = None
    ) -> bytes: ...
    def process_arrow(
        self, data: Any, kind: str | None = None, validate: bool = True
    ) -> pa.RecordBatch: ...
    def process_arrow_json(
        self, data: Any, kind: str | None = None, validate: bool = True
    ) -> bytes: ...
    def advance_watermark(self, ms: int) -> pa.RecordBatch: ...
    def replace_rules(self, rules_json: str | bytes) -> None: ...
    def take_dead_letters(self) -> list[tuple[str, str, bytes]]: ...
    def drop_dead_letters(self) -> int: ...
    def stats(self) -> dict[str, Any]: ...
    def scores(self) -> pa.RecordBatch: ...
    def lanes(self) -> LaneTable: ...
    @property
    def scoring(self) -> bool: ...
    @property
    def rules_version(self) -> int: ...
    @property
    def lateness_ms(self) -> int: ...

@final
class LaneTable:
    def __new__(cls) -> LaneTable: ...
    @staticmethod
    def from_bytes(data: bytes) -> LaneTable: ...
    def to_bytes(self) -> bytes: ...
    def merge(self, other: LaneTable) -> None: ...
    def estimate(
        self, carrier: str, origin_region: str | None = None, dest_region: str | None = None
    ) -> LaneEstimate | None: ...
    def estimates(self) -> list[LaneRow]: ...
    def __len__(self) -> int: ...

@final
class Simulator:
    def __new__(
        cls,
        seed: int = 1,
        shipments: int = 2000,
        events: int = 100000,
        invalid_rate: float = 0.001,
        start_ms: int | None = None,
        *,
        depots: list[str] | None = None,
        customer_provinces: list[str] | None = None,
    ) -> Simulator: ...
    def next_chunk(self, max_events: int, format: str = "json") -> bytes | None: ...
    def next_record_batches(self, max_events: int) -> list[pa.RecordBatch] | None: ...
    def lane_truths(self) -> list[dict[str, Any]]: ...
    @property
    def events_emitted(self) -> int: ...
    @property
    def invalid_emitted(self) -> int: ...

def example_rules() -> str: ...
def convert(
    data: bytes,
    src_format: str,
    dst_format: str,
    kind: str | None = None,
    group_by_kind: bool = False,
) -> tuple[bytes, int]: ...

@final
class LiveEngine:
    def __new__(
        cls,
        nats_url: str,
        *,
        rules: str | bytes | None = None,
        time: str = "wall",
        state_dir: str | os.PathLike[str] | None = None,
        user: str | None = None,
        password: str | None = None,
        durable: str | None = None,
        subjects: list[str] | None = None,
        partition: tuple[int, int] | None = None,
        batch: int = 1000,
        checkpoint_ms: int = 2000,
        tick_ms: int = 1000,
        store: bool = False,
        scoring: bool = True,
    ) -> LiveEngine: ...
    def start(self, timeout: float = 60.0) -> None: ...
    def stop(self, timeout: float = 30.0) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    @property
    def running(self) -> bool: ...
    def status(self) -> dict[str, Any]: ...
    def recent_alerts(self) -> list[str]: ...
    def lanes(self) -> LaneTable | None: ...
    def store_feed(self) -> StoreFeed: ...

@final
class StoreFeed:
    def next_item(self, timeout: float = 0.2) -> dict[str, Any] | None: ...
    def done(self, last_seq: int) -> None: ...
    @property
    def closed(self) -> bool: ...

def publish_feed(
    sim: Simulator,
    nats_url: str,
    *,
    creds: dict[str, tuple[str, str]] | None = None,
    gateways: int = 3,
    sensor_format: str = "protobuf",
    upload: int = 256,
    rate: float | None = None,
    max_events: int | None = None,
    acks: bool = True,
    invalid: bool = False,
    batched: bool = False,
    partitions: int | None = None,
) -> dict[str, Any]: ...
