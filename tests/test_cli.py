"""The ``streamguard`` command end to end, in a subprocess."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import HOUR, T0, ndjson
from test_engine import EXPECTED, FEED, RULES

ALERT_FIELDS = {"id", "rule", "kind", "severity", "state", "shipment", "ts"}


@pytest.fixture
def hand_rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(RULES)
    return path


def test_console_script_is_installed() -> None:
    assert (Path(sys.executable).parent / "streamguard").exists()


def test_replay_prints_the_alerts_in_order(cli, tmp_path: Path, hand_rules: Path) -> None:
    feed = tmp_path / "feed.ndjson"
    feed.write_bytes(ndjson(FEED))
    proc = cli("replay", "--rules", hand_rules, feed)
    assert proc.returncode == 0, proc.stderr
    alerts = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(a["id"], a["state"]) for a in alerts] == [(e["id"], e["state"]) for e in EXPECTED]
    for a in alerts:
        assert a.keys() >= ALERT_FIELDS
        assert isinstance(a["ts"], int)
    assert alerts[2]["ts"] == T0 + 2 * HOUR
    err = proc.stderr
    for word in ("accepted", "out of order", "rejected", "firing", "resolved", "retracted"):
        assert word in err
    assert "events in" in err


def test_replay_many_files_and_formats(cli, tmp_path: Path, rules_path: Path) -> None:
    paths = {}
    for fmt, ext in (("json", "ndjson"), ("protobuf", "pb"), ("arrow", "arrow")):
        paths[fmt] = tmp_path / f"feed.{ext}"
        proc = cli(
            "simulate",
            "--out",
            paths[fmt],
            "--seed",
            "5",
            "--shipments",
            "200",
            "--events",
            "8000",
            "--invalid-rate",
            "0",
        )
        assert proc.returncode == 0, proc.stderr
        written = re.search(r"simulate: ([\d,]+) events", proc.stderr)
        assert written, proc.stderr
        # The event count is approximate (whole scan sequences), and the same in every format.
        assert 7_000 < int(written[1].replace(",", "")) < 9_000
    json_out = cli("replay", "--rules", rules_path, paths["json"])
    proto_out = cli("replay", "--rules", rules_path, paths["protobuf"])
    assert json_out.returncode == proto_out.returncode == 0
    assert json_out.stdout
    assert json_out.stdout == proto_out.stdout
    arrow_out = cli("replay", "--rules", rules_path, paths["arrow"])
    assert arrow_out.returncode == 0, arrow_out.stderr
    assert arrow_out.stdout
    # --format wins over the extension; two files replay through one engine.
    odd = tmp_path / "feed.data"
    odd.write_bytes(paths["protobuf"].read_bytes())
    both = cli("replay", "--rules", rules_path, "--format", "protobuf", odd, odd)
    assert both.returncode == 0, both.stderr
    events = int(written[1].replace(",", ""))
    assert f"replay: {2 * events:,} events" in both.stderr


def test_replay_large_ndjson_is_chunked_on_lines(cli, tmp_path: Path, rules_path: Path) -> None:
    from streamguard import Engine
    from streamguard.replay import read_chunks

    feed = tmp_path / "feed.ndjson"
    proc = cli("simulate", "--out", feed, "--shipments", "300", "--events", "30000")
    assert proc.returncode == 0
    chunks = list(read_chunks(feed, "json", chunk_bytes=64 * 1024))
    assert len(chunks) > 10
    assert all(c.endswith(b"\n") for c in chunks)
    assert b"".join(chunks) == feed.read_bytes()
    engine = Engine(rules_path)
    assert (
        b"".join(engine.process_json(c) for c in chunks)
        == cli("replay", "--rules", rules_path, feed).stdout.encode()
    )


def test_replay_with_rejected_events_exits_0(cli, tmp_path: Path, hand_rules: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    bad = b'{"kind": "sensor", "shipment": "S1", "ts": "never", "shock_g": 4}'
    feed.write_bytes(ndjson(FEED[:3]) + bad + b"\n{oops\n" + ndjson(FEED[3:]))
    dead = tmp_path / "dead.ndjson"
    proc = cli("replay", "--rules", hand_rules, "--dead-letters", dead, feed)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == len(EXPECTED)
    assert "bad_ts" in proc.stderr
    assert "malformed" in proc.stderr
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert {d["reason"] for d in letters} == {"bad_ts", "malformed"}
    by_reason = {d["reason"]: d for d in letters}
    assert by_reason["bad_ts"]["raw"].strip() == bad.decode()
    assert by_reason["bad_ts"]["detail"]


def test_replay_missing_input_exits_2(cli, tmp_path: Path, hand_rules: Path) -> None:
    missing = tmp_path / "nope.ndjson"
    proc = cli("replay", "--rules", hand_rules, missing)
    assert proc.returncode == 2
    assert proc.stderr == f"streamguard: error: cannot read {missing}: No such file or directory\n"
    assert proc.stdout == ""


def test_replay_missing_rule_file_exits_2(cli, tmp_path: Path) -> None:
    feed = tmp_path / "feed.ndjson"
    feed.write_bytes(b"")
    proc = cli("replay", "--rules", tmp_path / "none.json", feed)
    assert proc.returncode == 2
    assert proc.stderr.startswith("streamguard: error: cannot read rule file ")
    assert len(proc.stderr.splitlines()) == 1


def test_replay_unknown_extension_exits_2(cli, tmp_path: Path, hand_rules: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_bytes(b"")
    proc = cli("replay", "--rules", hand_rules, feed)
    assert proc.returncode == 2
    assert "cannot tell the format" in proc.stderr
    assert "--format" in proc.stderr


def test_replay_directory_exits_2(cli, tmp_path: Path, hand_rules: Path) -> None:
    proc = cli("replay", "--rules", hand_rules, "--format", "json", tmp_path)
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr


def test_usage_errors_exit_2(cli) -> None:
    assert cli().returncode == 2
    assert cli("replay").returncode == 2
    assert cli("frobnicate").returncode == 2


def test_simulate_to_stdout(cli) -> None:
    proc = cli("simulate", "--out", "-", "--events", "1000", "--shipments", "20", "-q")
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) >= 300


def test_demo_explains_the_alerts(cli) -> None:
    proc = cli("demo", "--shipments", "300")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for part in ("Simulated", "Rules", "Alerts", "explained", "Rejected"):
        assert part in out
    assert "1. " in out


def test_bench_writes_json(cli, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = cli(
        "bench",
        "--quick",
        "--shipments",
        "500",
        "--events",
        "20000",
        "--repeat",
        "2",
        "--json",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    names = [r["name"] for r in doc["results"]]
    assert names == ["eval_arrow", "decode_eval_json", "decode_eval_protobuf"]
    for r in doc["results"]:
        assert {
            "name",
            "events",
            "seconds",
            "events_per_s",
            "events_per_s_min",
            "events_per_s_max",
            "repeats",
        } <= r.keys()
        assert r["repeats"] == 2
        assert r["events_per_s_min"] <= r["events_per_s"] <= r["events_per_s_max"]
        assert r["events"] >= 20_000
    assert doc["state_bytes_per_shipment"] > 0
    assert doc["machine"]["cores"] >= 1
    assert "bench" in doc["command"]
    assert "eval_arrow" in proc.stdout


def test_version(cli) -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("streamguard ")
