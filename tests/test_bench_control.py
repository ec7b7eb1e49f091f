"""``streamguard bench --control-plane`` with tiny sizes: a real stack (nats-server, the engine,
chDB, the API) and the clients in a child process.

Only the shape of the results is checked (every scenario measured, percentiles finite and
ordered); the targets are for the benchmark itself, never for a test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import CliRunner
from streamguard.bench_control import ControlSizes, run_bench_control

TINY = ControlSizes(orders=5, duration_s=1.0, repeat=1, rate=40.0, connections=4)


def test_bench_control_tiny_run_reports_every_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert run_bench_control(quick=True, json_path=out, sizes=TINY) == 0
    doc = json.loads(out.read_text())
    by_name = {r["name"]: r for r in doc["results"]}
    assert set(by_name) == {
        "signoff_visible", "return_created", "api_order_create", "api_order_get",
    }  # fmt: skip
    assert {r["scenario"] for r in doc["results"]} == {
        "signoff_visible", "return_created", "api_latency",
    }  # fmt: skip
    for r in doc["results"]:
        assert r["count"] > 0, r
        for key in ("p50_ms", "p90_ms", "p99_ms", "p99_ms_min", "p99_ms_max", "max_ms"):
            assert math.isfinite(r[key]), (key, r)
            assert r[key] > 0, (key, r)
        assert r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["p99_ms_min"] <= r["p99_ms"] <= r["p99_ms_max"]
        assert isinstance(r["met"], bool)
        assert r["repeats"] == 1
        assert set(r["runs"][0]["cpu"]) == {
            "api_process_pct", "nats_server_pct", "client_pct", "loadavg_1m",
        }  # fmt: skip
    for name in ("signoff_visible", "return_created"):
        row = by_name[name]
        assert row["target_p99_ms"] == 1000
        assert row["count"] + row["missing"] == TINY.orders
    for name in ("api_order_create", "api_order_get"):
        assert by_name[name]["errors"] == 0, by_name[name]["runs"]
        assert by_name[name]["rate"] == TINY.rate
    assert by_name["api_order_create"]["count"] + by_name["api_order_get"]["count"] == 40
    assert doc["sizes"]["orders"] == TINY.orders
    assert doc["machine"]["cores"]
    table = capsys.readouterr().out
    for name in by_name:
        assert name in table
    assert "p99 <= 1 s" in table


def test_bench_control_refuses_other_benches_options(cli: CliRunner) -> None:
    proc = cli("bench", "--control-plane", "--nats")
    assert proc.returncode == 2
    assert "--control-plane and --nats" in proc.stderr
    proc = cli("bench", "--control-plane", "--scenario", "nats_batched")
    assert proc.returncode == 2
    assert "--control-plane runs only" in proc.stderr
    proc = cli("bench", "--control-plane", "--events", "10")
    assert proc.returncode == 2
    proc = cli("bench", "--nats", "--scenario", "signoff_visible")
    assert proc.returncode == 2
