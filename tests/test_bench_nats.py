"""``streamguard bench --nats`` end to end with tiny sizes: real nats-servers, the live engine.

Only the shape and the invariants of the results are checked (every event arrives, latencies
are ordered); the targets are for the benchmark itself, never for a test.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import CliRunner


def test_bench_nats_tiny_run_reports_every_scenario(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = cli(
        "bench", "--nats", "--events", "80000", "--probes", "20", "--repeat", "1",
        "--json", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    by_name = {r["name"]: r for r in doc["results"]}
    throughput = ("nats_batched", "nats_batched_stored", "nats_per_event")
    assert set(by_name) == {*throughput, "nats_batched_unacked", "alert_latency"}
    for name in throughput:
        r = by_name[name]
        assert r["events"] > 0
        assert r["events_per_s"] > 0
        assert r["events_per_s_min"] <= r["events_per_s"] <= r["events_per_s_max"]
        assert r["lost"] == 0, r
        assert r["duplicated"] == 0, r
        assert all(run["events_in"] == run["events"] for run in r["runs"]), r["runs"]
        assert isinstance(r["met"], bool)
    stored = by_name["nats_batched_stored"]["runs"][0]
    assert stored["bytes_on_disk_per_event"] > 1
    assert by_name["nats_batched"]["headline"]
    assert by_name["nats_batched"]["events_per_message"] > 100
    per_event = by_name["nats_per_event"]
    assert per_event["messages"] == per_event["events"], "one event per message"
    lat = by_name["alert_latency"]
    assert lat["missing"] == 0
    assert lat["p99_ms"] >= lat["p50_ms"] > 0
    assert lat["max_ms"] >= lat["p99_ms"]
    assert lat["target_p99_ms"] == 50
    assert lat["background_rate"] > 0
    assert doc["machine"]["cores"]
    # The table on stdout names each scenario with its target.
    for name in by_name:
        assert name in proc.stdout
    assert ">= 5 M ev/s" in proc.stdout
    assert "p99 <= 50 ms" in proc.stdout


def test_bench_nats_refuses_in_process_scenarios(cli: CliRunner) -> None:
    proc = cli("bench", "--nats", "--scenario", "eval_arrow")
    assert proc.returncode == 2
    assert "--nats runs only" in proc.stderr
    proc = cli("bench", "--scenario", "nats_batched")
    assert proc.returncode == 2
    assert "without --nats" in proc.stderr
