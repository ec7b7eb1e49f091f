"""Shared fixtures: the example rule set, a small simulated feed, a CLI runner, and a private
nats-server (``nats_stack``, see natsfix.py).

Everything runs against the real extension (``make build`` installs it); nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from apifix import ApiStack, api_stack_at
from natsfix import STACK_CARRIERS, STACK_GATEWAYS, NatsStack
from streamguard.sim import Simulator, example_rules
from streamguard.stack import NatsServer

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = REPO / "examples" / "rules.json"

# 2026-11-22T13:05:00Z in ms: the epoch of the hand-written feeds.
T0 = 1_795_352_700_000
MIN = 60_000
HOUR = 60 * MIN

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def rules_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's example rule set (examples/rules.json), or the simulator's copy of it
    when the package is used outside a checkout."""
    if EXAMPLE_RULES.exists():
        return EXAMPLE_RULES
    path = tmp_path_factory.mktemp("rules") / "rules.json"
    path.write_text(example_rules(), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_feed() -> bytes:
    """~20k simulated events over 300 shipments as NDJSON, with a few invalid lines."""
    sim = Simulator(seed=3, shipments=300, events=20_000, invalid_rate=0.002)
    return b"".join(sim.chunks(4_096, "json"))


@pytest.fixture(scope="session")
def small_feed_valid() -> bytes:
    """As ``small_feed`` but with no invalid lines (for format conversions)."""
    sim = Simulator(seed=3, shipments=300, events=20_000, invalid_rate=0.0)
    return b"".join(sim.chunks(4_096, "json"))


@pytest.fixture
def cli() -> CliRunner:
    """Run ``python -m streamguard ARGS`` (the same entry point as .venv/bin/streamguard)."""

    def run(*args: str | Path, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamguard", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            input=input.decode() if input is not None else None,
        )

    return run


@pytest.fixture(scope="session")
def nats_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsStack]:
    """One real nats-server for the session: JetStream on, free ports of 127.0.0.1, users
    ``engine``, ``control``, ``carrier-<C>`` for the simulator's carriers, ``gateway-gw1..3``."""
    var_dir = tmp_path_factory.mktemp("stack") / "var"
    with NatsServer(var_dir, STACK_CARRIERS, STACK_GATEWAYS) as server:
        yield NatsStack(server)


# The two rules most tests use, as the spec's example writes them.
SHOCK: dict[str, Any] = {
    "id": "shock-3g",
    "kind": "threshold",
    "metric": "shock_g",
    "op": "gt",
    "value": 3.0,
    "severity": "critical",
}
DWELL: dict[str, Any] = {
    "id": "dwell-2h",
    "kind": "dwell",
    "for_ms": 2 * HOUR,
    "severity": "warning",
}


def ndjson(events: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def rule_set(*rules: dict[str, Any], lateness_ms: int = 0, version: int = 1) -> str:
    return json.dumps({"version": version, "lateness_ms": lateness_ms, "rules": list(rules)})


def assert_alerts(actual: Sequence[dict[str, Any]], expected: Sequence[dict[str, Any]]) -> None:
    """Same alerts in the same order; each expected dict's keys must match exactly."""
    brief = [(a.get("id"), a.get("state")) for a in actual]
    assert len(actual) == len(expected), f"got {brief}"
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        diff = {k: (a.get(k, "<absent>"), v) for k, v in e.items() if a.get(k, "<absent>") != v}
        assert not diff, f"alert {i} ({a.get('id')} {a.get('state')}): (got, expected) {diff}"


@pytest.fixture
def live_stack(tmp_path: Path) -> Iterator[NatsStack]:
    """A fresh private nats-server per test (streams start empty), with the simulator's
    carriers and the demo gateways (``gw01``…) as users."""
    from streamguard.live import SIM_CARRIERS, SIM_GATEWAYS

    with NatsServer(tmp_path / "var", SIM_CARRIERS, SIM_GATEWAYS) as server:
        yield NatsStack(server)


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    """The control plane for a test module: nats-server, chDB, keys and the API on free ports.
    Modules share nothing; tests in a module use their own customers and orders."""
    with api_stack_at(tmp_path_factory.mktemp("api")) as stack:
        yield stack
