"""StreamGuard: shipment anomaly detection over carrier scans and sensor readings.

The engine is Rust (``streamguard._core``); this package is its public face:

- :class:`Engine` — ``Engine(rules).process(data, format=...)`` returns alerts as a pyarrow
  RecordBatch (``process_dicts`` for dicts), plus ``replace_rules``, ``dead_letters``, ``stats``,
  and carrier scoring: ``scores()`` and ``lanes()`` (a :class:`LaneTable`).
- :mod:`streamguard.errors` — one exception class per kind of error.
- :mod:`streamguard.sim` — the seeded feed simulator.
- ``streamguard`` command (:mod:`streamguard.cli`): ``replay``, ``simulate``, ``bench``, ``demo``.
"""

from streamguard._core import __version__
from streamguard.engine import DeadLetter, Engine, EngineStats, load_rules
from streamguard.errors import (
    ConfigError,
    DecodeError,
    RuleError,
    StoreError,
    StreamGuardError,
    StreamGuardIOError,
)
from streamguard.lanes import LaneEstimate, LaneTable

__all__ = [
    "ConfigError",
    "DeadLetter",
    "DecodeError",
    "Engine",
    "EngineStats",
    "LaneEstimate",
    "LaneTable",
    "RuleError",
    "StoreError",
    "StreamGuardError",
    "StreamGuardIOError",
    "__version__",
    "load_rules",
]
