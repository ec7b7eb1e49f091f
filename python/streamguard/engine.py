"""The Python face of the Rust engine: :class:`Engine`, :class:`DeadLetter`, rule loading."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict

import pyarrow as pa

from streamguard import _core
from streamguard.errors import ConfigError, StreamGuardIOError
from streamguard.lanes import LaneTable

if TYPE_CHECKING:
    from streamguard.domain.insurance import Tariffs
    from streamguard.domain.returns import Choice, Weights

__all__ = [
    "FORMATS",
    "KINDS",
    "ArrowData",
    "DeadLetter",
    "Engine",
    "EngineStats",
    "Rules",
    "load_rules",
]

#: Wire formats the engine decodes.
FORMATS = ("json", "protobuf", "arrow")
#: Event kinds (spec §1).
KINDS = ("shipment", "scan", "sensor")

#: A rule set: a path to a JSON file, the JSON text (``str``/``bytes``), or the parsed document.
Rules: TypeAlias = str | bytes | os.PathLike[str] | Mapping[str, Any]
#: Arrow data :meth:`Engine.process` evaluates without a copy.
ArrowData: TypeAlias = pa.RecordBatch | pa.Table | pa.RecordBatchReader


class EngineStats(TypedDict):
    """The engine's counters (``Engine.stats()``)."""

    events_in: int
    accepted: int
    out_of_order: int
    #: Rejected inputs by reason (every reason present, zero or not).
    rejected: dict[str, int]
    fired: int
    resolved: int
    retracted: int
    #: Shipments with keyed state, and the bytes that state takes.
    shipments: int
    state_bytes: int
    #: Lanes with statistics (carriers' aggregates included) and the bytes they take: bounded
    #: by carriers x provinces squared, not per shipment (0 with scoring off).
    lanes: int
    lane_bytes: int
    #: The scan watermark in ms since the epoch; None before the first scan.
    watermark: int | None
    rules_version: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected input: why (``reason``, e.g. ``bad_ts``), a detail naming the field, and the
    raw bytes it came from."""

    reason: str
    detail: str
    raw: bytes

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict: ``raw`` as text when it is UTF-8, else ``raw_base64``."""
        try:
            return {"reason": self.reason, "detail": self.detail, "raw": self.raw.decode()}
        except UnicodeDecodeError:
            import base64

            raw_b64 = base64.b64encode(self.raw).decode("ascii")
            return {"reason": self.reason, "detail": self.detail, "raw_base64": raw_b64}


def load_rules(rules: Rules) -> bytes:
    """The rule-set JSON bytes of ``rules`` (see :data:`Rules`); validation is the engine's.

    A ``str`` whose first non-blank character is ``{`` is JSON text; any other ``str`` is a path.
    """
    if isinstance(rules, Mapping):
        return json.dumps(rules).encode()
    if isinstance(rules, bytes):
        return rules
    if isinstance(rules, str) and rules.lstrip().startswith("{"):
        return rules.encode()
    if isinstance(rules, str | os.PathLike):
        path = Path(rules)
        try:
            return path.read_bytes()
        except OSError as e:
            raise StreamGuardIOError(f"cannot read rule file {path}: {e.strerror or e}") from e
    raise TypeError(f"rules must be a path, JSON str/bytes or a dict, not {type(rules).__name__}")


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r} (expected one of {', '.join(FORMATS)})")


class Engine:
    """The StreamGuard rule engine: events in, alerts out (spec: EVENTS_AND_RULES.md).

    >>> engine = Engine("examples/rules.json")          # doctest: +SKIP
    >>> alerts = engine.process(ndjson_bytes)            # doctest: +SKIP
    >>> engine.dead_letters, engine.stats()              # doctest: +SKIP

    Events are evaluated in input order; output is the same whatever the batch boundaries.
    Bad events never raise: they are counted in :meth:`stats` and kept as :attr:`dead_letters`.
    An invalid rule set raises :class:`~streamguard.errors.RuleError` naming the rule and field.
    An engine holds keyed state and is used from one thread at a time (the Rust work runs with
    the GIL released, so one engine per thread scales across cores).

    With ``scoring`` (the default) the engine also learns lane statistics from the scans
    (:meth:`lanes`) and scores each shipment's ETA, delay and damage risk (:meth:`scores`);
    ``scoring=False`` turns all of it off.
    """

    __slots__ = ("_core",)

    def __init__(self, rules: Rules, *, scoring: bool = True) -> None:
        self._core = _core.Engine(load_rules(rules), scoring=scoring)

    def process(
        self,
        data: bytes | bytearray | memoryview | str | ArrowData,
        format: str = "json",
        kind: str | None = None,
        *,
        validate: bool = True,
    ) -> pa.RecordBatch:
        """Evaluate ``data``; the alerts it produced, in order, as a pyarrow RecordBatch.

        ``data`` is wire bytes in ``format`` (``json``: one object, an array or NDJSON;
        ``protobuf``: an ``EventBatch``; ``arrow``: an IPC stream), JSON text, or pyarrow data
        (RecordBatch, Table, RecordBatchReader — evaluated without a copy, ``format`` ignored).
        ``kind`` applies to events that do not name their kind. Invalid Arrow data becomes a
        dead letter; ``validate=False`` skips the per-row Arrow checks (UTF-8, every offset) —
        only for pyarrow data you produced yourself.
        """
        if isinstance(data, pa.RecordBatch | pa.Table | pa.RecordBatchReader):
            return self._core.process_arrow(data, kind, validate)
        return self._core.process_bytes(self._bytes(data, format), format, kind)

    def process_json(
        self,
        data: bytes | bytearray | memoryview | str | ArrowData,
        format: str = "json",
        kind: str | None = None,
        *,
        validate: bool = True,
    ) -> bytes:
        """As :meth:`process`, but the alerts as NDJSON bytes, exactly as the engine writes them."""
        if isinstance(data, pa.RecordBatch | pa.Table | pa.RecordBatchReader):
            return self._core.process_arrow_json(data, kind, validate)
        return self._core.process_bytes_json(self._bytes(data, format), format, kind)

    def process_dicts(
        self,
        data: bytes | bytearray | memoryview | str | ArrowData,
        format: str = "json",
        kind: str | None = None,
        *,
        validate: bool = True,
    ) -> list[dict[str, Any]]:
        """As :meth:`process`, but each alert as a dict (absent fields omitted, as in NDJSON)."""
        return [
            json.loads(line)
            for line in self.process_json(data, format, kind, validate=validate).splitlines()
        ]

    @staticmethod
    def _bytes(data: bytes | bytearray | memoryview | str, format: str) -> bytes:
        _check_format(format)
        if isinstance(data, str):
            if format != "json":
                raise ConfigError(f"{format} input must be bytes, not str")
            return data.encode()
        if isinstance(data, bytearray | memoryview):
            return bytes(data)
        if isinstance(data, bytes):
            return data
        raise TypeError(
            f"cannot process {type(data).__name__}: expected bytes, str or pyarrow data"
        )

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """The inputs rejected since the last read, oldest first (reading drains them)."""
        return [DeadLetter(r, d, raw) for r, d, raw in self._core.take_dead_letters()]

    def discard_dead_letters(self) -> int:
        """Drop the pending dead letters without materialising them (they stay counted)."""
        return self._core.drop_dead_letters()

    def replace_rules(self, rules: Rules) -> None:
        """Swap in a new rule set atomically; unchanged rules keep their episodes and timers.

        On :class:`~streamguard.errors.RuleError` the running set stays in force.
        """
        self._core.replace_rules(load_rules(rules))

    def advance_watermark(self, ms: int) -> pa.RecordBatch:
        """Move the scan watermark to ``ms`` (live mode's wall clock); alerts of timers now due."""
        return self._core.advance_watermark(ms)

    def scores(self) -> pa.RecordBatch:
        """The score records of the last :meth:`process` (or :meth:`advance_watermark`) call:
        one per shipment whose ETA, delay risk or damage risk changed materially, with
        ``shipment``, ``ts``, ``carrier``, ``origin``/``dest`` (province codes), ``eta_p50``,
        ``eta_p90``, ``delay_risk``, ``damage_risk``, ``shock_episodes``, ``delivered``."""
        return self._core.scores()

    def lanes(self) -> LaneTable:
        """A copy of the lane statistics, carriers by code (mergeable with other engines');
        :class:`~streamguard.errors.ConfigError` with scoring off."""
        return self._core.lanes()

    def score_carriers(
        self,
        origin: str,
        dest: str,
        declared_value_fen: int,
        fragile: bool = False,
        *,
        weights: Weights | None = None,
        tariffs: Tariffs | None = None,
    ) -> Choice:
        """Rank the carriers for a shipment from ``origin`` to ``dest`` (region codes such as
        ``CN-440300``) of ``declared_value_fen``, by what this engine has learned of each
        carrier's lane: ``score(lane, shipment)`` of the spec, as the automatic returns and
        ``GET /carriers/score`` rank them.

        The result keeps every carrier, best first: the eligible ones with their component
        scores (cost = shipping + premium, time from the lane's p50/p90, coverage, quality from
        its shock and dwell alerts per shipment) and the excluded ones with every reason (no
        shock-proof packaging for a fragile device, over the insurable maximum, an end the
        carrier does not reach). ``tariffs`` default to the packaged sample and ``weights`` to
        the defaults (:class:`~streamguard.domain.returns.Weights`). With scoring off, or for a
        carrier not yet seen, time and quality come from the tariff's nominal figures.
        """
        from streamguard.domain.insurance import Tariffs
        from streamguard.domain.money import Fen
        from streamguard.domain.returns import (
            DEFAULT_WEIGHTS,
            LaneTableSource,
            ReturnRequest,
            ScoringChooser,
        )

        request = ReturnRequest(
            origin=origin, dest=dest, declared_value_fen=Fen(declared_value_fen), fragile=fragile
        )
        lanes = LaneTableSource(self.lanes() if self.scoring else None)
        chooser = ScoringChooser(tariffs or Tariffs.load_sample(), lanes)
        return chooser.choose(request, weights or DEFAULT_WEIGHTS)

    @property
    def scoring(self) -> bool:
        """Whether carrier scoring is on."""
        return self._core.scoring

    def stats(self) -> EngineStats:
        """The engine's counters; see :class:`EngineStats`."""
        s = self._core.stats()
        return EngineStats(
            events_in=s["events_in"],
            accepted=s["accepted"],
            out_of_order=s["out_of_order"],
            rejected=dict(s["rejected"]),
            fired=s["fired"],
            resolved=s["resolved"],
            retracted=s["retracted"],
            shipments=s["shipments"],
            state_bytes=s["state_bytes"],
            lanes=s["lanes"],
            lane_bytes=s["lane_bytes"],
            watermark=s["watermark"],
            rules_version=s["rules_version"],
        )

    @property
    def rules_version(self) -> int:
        """The running rule set's ``version``."""
        return self._core.rules_version

    def __repr__(self) -> str:
        return repr(self._core)
