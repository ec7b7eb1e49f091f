"""Replaying event files through an :class:`~streamguard.engine.Engine` (``streamguard replay``).

Files are read in chunks the engine can decode on their own: NDJSON is split on line
boundaries (~8 MiB a chunk, so a large file never sits in memory whole); a JSON array, a
pretty-printed JSON object, a protobuf ``EventBatch`` and an Arrow IPC stream are read whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from streamguard.engine import FORMATS, Engine, EngineStats
from streamguard.errors import ConfigError

__all__ = [
    "CHUNK_BYTES",
    "FORMAT_BY_SUFFIX",
    "ReplayResult",
    "format_for",
    "read_chunks",
    "replay_files",
]

#: Target size of one NDJSON chunk.
CHUNK_BYTES = 8 << 20

FORMAT_BY_SUFFIX = {
    ".ndjson": "json",
    ".json": "json",
    ".jsonl": "json",
    ".pb": "protobuf",
    ".protobuf": "protobuf",
    ".bin": "protobuf",
    ".arrow": "arrow",
    ".arrows": "arrow",
    ".ipc": "arrow",
}


def format_for(path: Path, explicit: str | None = None) -> str:
    """``explicit`` if given, else the format the file's extension names."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise ConfigError(f"unknown format {explicit!r} (expected one of {', '.join(FORMATS)})")
        return explicit
    fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMAT_BY_SUFFIX))
        raise ConfigError(
            f"cannot tell the format of {path} from its extension ({known}); use --format"
        )
    return fmt


def _ndjson_chunks(f: BinaryIO, first: bytes, chunk_bytes: int) -> Iterator[bytes]:
    """Chunks of whole lines, starting with the already-read block ``first``."""
    carry = b""
    block = first
    while block:
        buf = carry + block
        cut = buf.rfind(b"\n") + 1
        if cut:
            yield buf[:cut]
            carry = buf[cut:]
        else:
            carry = buf
        block = f.read(chunk_bytes)
    if carry.strip():
        yield carry


def _is_line_delimited(head: bytes) -> bool:
    """Whether JSON starting with ``head`` can be cut on line boundaries: it is NDJSON (a first
    line that closes its object), not an array or a pretty-printed object."""
    text = head.lstrip()
    if not text.startswith(b"{"):
        return False
    first_line = text.split(b"\n", 1)[0].rstrip()
    return first_line.endswith(b"}")


def read_chunks(path: Path, format: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file's bytes in independently decodable chunks (see the module docstring)."""
    with path.open("rb") as f:
        first = f.read(chunk_bytes)
        if format == "json" and _is_line_delimited(first[:65536]):
            yield from _ndjson_chunks(f, first, chunk_bytes)
            return
        rest = f.read()
        yield first + rest if rest else first


@dataclass
class ReplayResult:
    """What a replay did: files and bytes read, alerts written, the engine's counters."""

    files: int = 0
    bytes_read: int = 0
    alerts: int = 0
    dead_letters: int = 0
    stats: EngineStats | None = None
    alerts_by_rule: dict[str, dict[str, int]] = field(default_factory=dict)


def replay_files(
    engine: Engine,
    inputs: Iterable[tuple[Path, str]],
    out: BinaryIO,
    *,
    kind: str | None = None,
    dead_letters: TextIO | None = None,
    count_rules: bool = False,
) -> ReplayResult:
    """Feed each ``(path, format)`` through ``engine`` in order, writing each alert to ``out``
    as one JSON line (the engine's own serialisation) and, if given, each rejected input to
    ``dead_letters`` as one JSON line. ``count_rules`` tallies alerts by rule and state."""
    result = ReplayResult()
    for path, fmt in inputs:
        result.files += 1
        for chunk in read_chunks(path, fmt):
            result.bytes_read += len(chunk)
            alerts = engine.process_json(chunk, fmt, kind)
            if alerts:
                out.write(alerts)
                result.alerts += alerts.count(b"\n")
                if count_rules:
                    _tally(result.alerts_by_rule, alerts)
            if dead_letters is not None:
                for d in engine.dead_letters:
                    dead_letters.write(json.dumps(d.to_json(), ensure_ascii=False) + "\n")
                    result.dead_letters += 1
            else:
                result.dead_letters += engine.discard_dead_letters()
    result.stats = engine.stats()
    return result


def _tally(by_rule: dict[str, dict[str, int]], ndjson: bytes) -> None:
    for line in ndjson.splitlines():
        alert = json.loads(line)
        states = by_rule.setdefault(alert["rule"], {})
        states[alert["state"]] = states.get(alert["state"], 0) + 1
