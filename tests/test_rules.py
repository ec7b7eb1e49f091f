"""Rule-set validation through the binding: every error names the rule and the field, the whole
set is rejected, and a running engine keeps its rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DWELL, HOUR, MIN, SHOCK, T0, assert_alerts, ndjson, rule_set
from streamguard import Engine, RuleError

# (rule set text, rule, field, exact message)
BAD_RULE_SETS = [
    pytest.param(
        '{"version": 1, "rules": [',
        None,
        "(document)",
        "field '(document)': not valid JSON: EOF while parsing a list at line 1 column 25",
        id="invalid-json",
    ),
    pytest.param(
        rule_set(SHOCK, {**SHOCK, "value": 4.0}),
        "shock-3g",
        "id",
        "rule 'shock-3g': field 'id': duplicate id (rules[1] repeats an earlier rule's id)",
        id="duplicate-id",
    ),
    pytest.param(
        rule_set({**SHOCK, "id": "heat", "metric": "temp_c", "value": 35, "clear": 36}),
        "heat",
        "clear",
        "rule 'heat': field 'clear': must be <= value (35) for op 'gt', got 36",
        id="clear-wrong-side-gt",
    ),
    pytest.param(
        rule_set({**SHOCK, "id": "cold", "metric": "temp_c", "op": "lt", "value": 2, "clear": 1}),
        "cold",
        "clear",
        "rule 'cold': field 'clear': must be >= value (2) for op 'lt', got 1",
        id="clear-wrong-side-lt",
    ),
    pytest.param(
        rule_set({**SHOCK, "id": "speed", "metric": "speed_kmh"}),
        "speed",
        "metric",
        "rule 'speed': field 'metric': must be one of shock_g, temp_c, humidity_pct, tilt_deg, "
        "light_lux, battery_pct, got 'speed_kmh'",
        id="unknown-metric",
    ),
    pytest.param(
        rule_set({**DWELL, "colour": "red"}),
        "dwell-2h",
        "colour",
        "rule 'dwell-2h': field 'colour': unknown field; expected one of: id, kind, severity, "
        "where, for_ms, statuses",
        id="unknown-field",
    ),
    pytest.param(
        rule_set({**DWELL, "where": {"tier": ["gold"]}}),
        "dwell-2h",
        "where.tier[0]",
        None,
        id="unknown-tier",
    ),
]


@pytest.mark.parametrize(("text", "rule", "field", "message"), BAD_RULE_SETS)
def test_bad_rule_sets_name_rule_and_field(
    text: str, rule: str | None, field: str, message: str | None
) -> None:
    with pytest.raises(RuleError) as info:
        Engine(text)
    assert (info.value.rule, info.value.field) == (rule, field)
    if message is not None:
        assert str(info.value) == message


@pytest.mark.parametrize(("text", "rule", "field", "message"), BAD_RULE_SETS)
def test_bad_rule_files_exit_2_with_one_line(
    cli, tmp_path: Path, text: str, rule: str | None, field: str, message: str | None
) -> None:
    rules = tmp_path / "bad-rules.json"
    rules.write_text(text)
    feed = tmp_path / "feed.ndjson"
    feed.write_bytes(b"")
    proc = cli("replay", "--rules", rules, feed)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"streamguard: error: invalid rule file {rules}: ")
    if rule is not None:
        assert f"rule '{rule}'" in lines[0]
    assert f"field '{field}'" in lines[0]
    if message is not None:
        assert lines[0].endswith(message)


def test_rules_from_dict_path_str_and_bytes(rules_path: Path) -> None:
    text = rules_path.read_text()
    versions = {
        Engine(rules_path).rules_version,
        Engine(str(rules_path)).rules_version,
        Engine(text).rules_version,
        Engine(text.encode()).rules_version,
        Engine(json.loads(text)).rules_version,
    }
    assert len(versions) == 1


def test_example_rules_are_realistic(rules_path: Path) -> None:
    doc = json.loads(rules_path.read_text())
    rules = doc["rules"]
    assert len(rules) >= 8
    assert {r["kind"] for r in rules} == {"threshold", "dwell"}
    assert any("where" in r for r in rules)
    Engine(doc)


def test_rejected_replacement_keeps_the_running_set() -> None:
    engine = Engine(rule_set(SHOCK, version=1))
    with pytest.raises(RuleError):
        engine.replace_rules(rule_set({**SHOCK, "op": "between"}, version=2))
    assert engine.rules_version == 1
    alerts = engine.process_dicts(
        ndjson([{"kind": "sensor", "shipment": "S1", "ts": T0, "shock_g": 5.0}])
    )
    assert [a["id"] for a in alerts] == [f"shock-3g:S1:{T0}"]


def test_hot_reload_keeps_unchanged_rules_state() -> None:
    heat = {
        "id": "heat-35",
        "kind": "threshold",
        "metric": "temp_c",
        "op": "gt",
        "value": 35.0,
        "for_ms": 10 * MIN,
        "clear": 33.0,
        "severity": "warning",
    }
    engine = Engine(rule_set(heat, SHOCK, version=1))
    hot = lambda ts, t: {"kind": "sensor", "shipment": "S1", "ts": ts, "temp_c": t}  # noqa: E731
    assert engine.process_dicts(ndjson([hot(T0, 36.0)])) == []
    # heat-35 unchanged (its pending episode survives); shock-3g removed; a new rule added.
    engine.replace_rules(rule_set(heat, {**DWELL, "id": "dwell-1h", "for_ms": HOUR}, version=2))
    assert engine.rules_version == 2
    alerts = engine.process_dicts(ndjson([hot(T0 + 10 * MIN, 37.0)]))
    assert_alerts(
        alerts,
        [
            {
                "id": f"heat-35:S1:{T0}",
                "state": "firing",
                "ts": T0 + 10 * MIN,
                "started_ts": T0,
                "value": 37.0,
            }
        ],
    )
    # A changed definition starts idle: the episode is gone, no resolve is emitted.
    engine.replace_rules(rule_set({**heat, "clear": 34.0}, version=3))
    assert engine.process_dicts(ndjson([hot(T0 + 11 * MIN, 20.0)])) == []
