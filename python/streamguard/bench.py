"""``streamguard bench``: in-process, single-core throughput of the engine through the binding.

Scenarios (each on simulated data with the example rule set — every rule kind, ``where``
filters):

- ``eval_arrow``: pre-decoded pyarrow RecordBatches (~64k events a chunk) into ``process_arrow``
  (the batches are the simulator's own output, so Arrow's O(rows) re-validation of UTF-8 and
  offsets is skipped — ``validate=False``; ``--validate-arrow`` measures with it);
- ``decode_eval_json``: NDJSON byte chunks into ``process_bytes_json``;
- ``decode_eval_protobuf``: protobuf ``EventBatch`` chunks likewise.

The data is generated before timing; each repetition uses a fresh engine (so every run starts
with no keyed state and ends with every shipment tracked); ``perf_counter`` times the feed loop
alone. Reported: the median events/s and the min/max over repetitions, and the keyed state per
tracked shipment (``state_bytes / shipments``) after the ``eval_arrow`` run.

Carrier scoring (lane statistics and shipment scores) is on, as in production. Each repetition
also times the same feed with ``scoring=False``, right after the scored run, so both see the
same machine: the table adds the median without scoring and the ratio of the two medians
(``scoring`` in the JSON; the target is a ratio of at least 0.8).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from streamguard import __version__, _core
from streamguard.sim import Simulator, example_rules

__all__ = ["SCENARIOS", "Result", "ScoringCost", "run_bench", "summarize"]

SCENARIOS = ("eval_arrow", "decode_eval_json", "decode_eval_protobuf")
CHUNK_EVENTS = 65_536
SEED = 42
# The large run: at least 1M distinct shipments of keyed state.
LARGE = {"shipments": 1_000_000, "events": 10_000_000, "repeat": 5}
QUICK = {"shipments": 50_000, "events": 1_000_000, "repeat": 3}
# Invalid inputs in the JSON feed: realistic, and they exercise the dead-letter path.
INVALID_RATE = 0.0005


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    events_per_s: float
    events_per_s_min: float
    events_per_s_max: float
    repeats: int


@dataclass
class ScoringCost:
    """One scenario with carrier scoring on (the default) and off: medians and their ratio."""

    name: str
    events_per_s: float
    events_per_s_no_scoring: float
    ratio: float


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "streamguard": __version__,
    }


def _time(engine: _core.Engine, feed: Callable[[_core.Engine], None]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        feed(engine)
        return time.perf_counter() - start
    finally:
        gc.enable()


def _measure(
    name: str,
    events: int,
    repeat: int,
    feed: Callable[[_core.Engine], None],
    rules: str,
    compare_scoring: bool = True,
) -> tuple[Result, Result | None, _core.Engine]:
    """The scenario with scoring on; with ``compare_scoring`` also off, alternating."""
    times: list[float] = []
    plain: list[float] = []
    engine = _core.Engine(rules)
    for _ in range(repeat):
        engine = _core.Engine(rules)
        times.append(_time(engine, feed))
        if compare_scoring:
            off = _core.Engine(rules, scoring=False)
            plain.append(_time(off, feed))
            del off
    without = summarize(name, events, plain) if plain else None
    return summarize(name, events, times), without, engine


def summarize(name: str, events: int, times: Sequence[float]) -> Result:
    """``events`` processed in each of ``times`` (seconds, one per repetition): the median
    seconds and events/s, and the spread (min/max events/s) over the repetitions."""
    rates = [events / t for t in times]
    return Result(
        name=name,
        events=events,
        seconds=statistics.median(times),
        events_per_s=statistics.median(rates),
        events_per_s_min=min(rates),
        events_per_s_max=max(rates),
        repeats=len(times),
    )


def _scenario(
    name: str,
    shipments: int,
    events: int,
    repeat: int,
    rules: str,
    validate_arrow: bool,
    compare_scoring: bool = True,
) -> tuple[Result, Result | None, _core.Engine]:
    if name == "eval_arrow":
        sim = Simulator(SEED, shipments, events, invalid_rate=0.0)
        batches = list(sim.record_batches(CHUNK_EVENTS))
        n = sum(b.num_rows for b in batches)

        def feed_arrow(engine: _core.Engine) -> None:
            for b in batches:
                engine.process_arrow(b, None, validate_arrow)

        return _measure(name, n, repeat, feed_arrow, rules, compare_scoring)

    fmt = "json" if name == "decode_eval_json" else "protobuf"
    sim = Simulator(SEED, shipments, events, invalid_rate=INVALID_RATE if fmt == "json" else 0.0)
    chunks = list(sim.chunks(CHUNK_EVENTS, fmt))
    n = sim.events_emitted + sim.invalid_emitted

    def feed_bytes(engine: _core.Engine) -> None:
        for c in chunks:
            engine.process_bytes_json(c, fmt)
            engine.drop_dead_letters()

    return _measure(name, n, repeat, feed_bytes, rules, compare_scoring)


def _table(
    results: Sequence[Result],
    state_per_shipment: float | None,
    scoring: Sequence[ScoringCost] = (),
) -> str:
    head = (
        f"{'scenario':<22}{'events':>12}{'median ev/s':>16}{'min ev/s':>14}{'max ev/s':>14}"
        f"{'median s':>10}{'reps':>6}"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.name:<22}{r.events:>12,}{r.events_per_s:>16,.0f}{r.events_per_s_min:>14,.0f}"
            f"{r.events_per_s_max:>14,.0f}{r.seconds:>10.3f}{r.repeats:>6}"
        )
    if state_per_shipment is not None:
        rows.append(f"state per tracked shipment: {state_per_shipment:,.1f} bytes")
    if scoring:
        head = f"{'carrier scoring':<22}{'on ev/s':>16}{'off ev/s':>16}{'on/off':>10}"
        rows += ["", head, "-" * len(head)]
        for c in scoring:
            rows.append(
                f"{c.name:<22}{c.events_per_s:>16,.0f}{c.events_per_s_no_scoring:>16,.0f}"
                f"{c.ratio:>10.2f}"
            )
    return "\n".join(rows)


def run_bench(
    *,
    quick: bool = False,
    repeat: int | None = None,
    json_path: Path | None = None,
    scenarios: Sequence[str] | None = None,
    shipments: int | None = None,
    events: int | None = None,
    validate_arrow: bool = False,
    compare_scoring: bool = True,
) -> int:
    """Run the scenarios, print a table on stdout, optionally write JSON; exit status.
    ``compare_scoring`` also times each scenario with carrier scoring off."""
    size = QUICK if quick else LARGE
    shipments = shipments or size["shipments"]
    events = events or size["events"]
    repeat = repeat or size["repeat"]
    rules = example_rules()
    results: list[Result] = []
    costs: list[ScoringCost] = []
    lanes: dict[str, int] = {}
    state_per_shipment: float | None = None
    print(
        f"streamguard bench: {shipments:,} shipments, {events:,} events, {repeat} repeats, "
        f"chunks of {CHUNK_EVENTS:,} events, one core",
        file=sys.stderr,
    )
    for name in scenarios or SCENARIOS:
        print(f"  {name}: generating data ...", file=sys.stderr)
        result, without, engine = _scenario(
            name, shipments, events, repeat, rules, validate_arrow, compare_scoring
        )
        results.append(result)
        line = f"  {name}: {result.events_per_s:,.0f} events/s (median)"
        if without is not None:
            ratio = result.events_per_s / without.events_per_s
            costs.append(ScoringCost(name, result.events_per_s, without.events_per_s, ratio))
            line += f", {without.events_per_s:,.0f} without scoring ({ratio:.2f})"
        print(line, file=sys.stderr)
        stats = engine.stats()
        if (state_per_shipment is None or name == "eval_arrow") and stats["shipments"]:
            state_per_shipment = stats["state_bytes"] / stats["shipments"]
            lanes = {"lanes": stats["lanes"], "lane_bytes": stats["lane_bytes"]}
        del engine
        gc.collect()
    print(_table(results, state_per_shipment, costs))
    if json_path is not None:
        doc = {
            "results": [asdict(r) for r in results],
            "scoring": [asdict(c) for c in costs],
            **lanes,
            "state_bytes_per_shipment": state_per_shipment,
            "shipments": shipments,
            "chunk_events": CHUNK_EVENTS,
            "arrow_validation": validate_arrow,
            "machine": _machine(),
            "command": " ".join(["streamguard", *sys.argv[1:]]),
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0
