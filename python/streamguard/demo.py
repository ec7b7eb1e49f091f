"""``streamguard demo`` (what ``make run`` shows): a small simulated feed replayed through the
engine with the example rule set, and a summary a newcomer can read."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from streamguard import _core
from streamguard.engine import DeadLetter, Engine
from streamguard.sim import Simulator, example_rules

__all__ = ["explain_alert", "run_demo"]

EVENTS_PER_SHIPMENT = 30
CHUNK_EVENTS = 10_000
OP_SYMBOL = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(ms: int) -> str:
    minutes = ms / 60_000
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.0f} h" if hours == round(hours) else f"{hours:.1f} h"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "|".join(map(str, v))
    return str(v)


def _para(text: str) -> str:
    return textwrap.fill(text, width=96, subsequent_indent="  ") + "\n"


def _describe_rule(rule: dict[str, Any]) -> str:
    parts: list[str] = []
    if rule.get("kind") == "threshold":
        op = OP_SYMBOL.get(rule.get("op", ""), rule.get("op", "?"))
        parts.append(f"{rule.get('metric')} {op} {rule.get('value')}")
        if rule.get("for_ms"):
            parts.append(f"for {_span(rule['for_ms'])}")
        if "clear" in rule:
            parts.append(f"clears at {rule['clear']}")
    elif rule.get("kind") == "dwell":
        parts.append(f"no scan for {_span(rule.get('for_ms', 0))}")
    where = rule.get("where")
    if where:
        parts.append("where " + " and ".join(f"{k}={_value(v)}" for k, v in where.items()))
    return f"{rule.get('id')} [{rule.get('kind')}, {rule.get('severity')}]: " + ", ".join(parts)


def explain_alert(alert: dict[str, Any], rules: dict[str, dict[str, Any]]) -> str:
    """One sentence: which shipment, what happened, and the evidence the alert carries."""
    who = alert["shipment"] + (f" ({alert['carrier']})" if alert.get("carrier") else "")
    rule = rules.get(alert["rule"], {})
    state = alert["state"]
    if alert["kind"] == "threshold":
        metric = alert.get("metric", rule.get("metric", "?"))
        op = OP_SYMBOL.get(rule.get("op", ""), "past")
        if state == "firing":
            evidence = alert.get("evidence") or []
            locked = f"the alert locks the last {len(evidence)} readings as evidence for a claim."
            if alert.get("started_ts") != alert["ts"]:
                return (
                    f"{who}: {metric} {op} {alert.get('threshold')} since "
                    f"{_when(alert['started_ts'])} and still {alert.get('value')} at "
                    f"{_when(alert['ts'])}, past the rule's {_span(rule.get('for_ms', 0))} hold, "
                    f"so {alert['rule']} fired ({alert['severity']}); {locked}"
                )
            return (
                f"{who}: {metric} read {alert.get('value')} ({op} {alert.get('threshold')}) at "
                f"{_when(alert['ts'])}, so {alert['rule']} fired ({alert['severity']}); {locked}"
            )
        return (
            f"{who}: {metric} came back within limits at {_when(alert['ts'])} after "
            f"{_span(alert.get('duration_ms', 0))} (peak {alert.get('peak')}), so {alert['rule']} "
            "was resolved."
        )
    scan = alert.get("evidence") or {}
    last = (
        f"last scan {scan.get('status')} at {scan.get('location')} on {_when(scan['ts'])}"
        if isinstance(scan, dict) and "ts" in scan
        else f"last scan on {_when(alert['started_ts'])}"
    )
    if state == "firing":
        return (
            f"{who} stopped moving: {last}; nothing for {_span(alert['ts'] - alert['started_ts'])}"
            f", so {alert['rule']} fired at the deadline {_when(alert['ts'])}."
        )
    if state == "retracted":
        return (
            f"{who}: {alert['rule']} had fired ({last}), but a late carrier upload showed a scan "
            f"at {_when(alert['ts'])}, before the deadline, so the alert was retracted."
        )
    return (
        f"{who}: moved again at {_when(alert['ts'])} ({last}), so {alert['rule']} was resolved "
        f"after {_span(alert.get('duration_ms', alert['ts'] - alert['started_ts']))}."
    )


def _samples(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Up to three alerts that show different things: a threshold firing, a dwell firing, and
    a retraction or a resolution."""
    picks: list[dict[str, Any]] = []
    wanted: list[Callable[[dict[str, Any]], bool]] = [
        lambda a: a.get("metric") == "shock_g" and a["state"] == "firing",
        lambda a: a["kind"] == "threshold" and a["state"] == "firing",
        lambda a: a["kind"] == "dwell" and a["state"] == "firing",
        lambda a: a["state"] == "retracted",
        lambda a: a["state"] == "resolved",
    ]
    for want in wanted:
        found = next((a for a in alerts if want(a) and a not in picks), None)
        kinds_picked = [(p["kind"], p["state"]) for p in picks]
        if (
            found is not None
            and len(picks) < 3
            and (found["kind"], found["state"]) not in kinds_picked
        ):
            picks.append(found)
    for a in alerts:
        if len(picks) >= 3:
            break
        if a not in picks:
            picks.append(a)
    return picks


def _count_kinds(chunks: list[bytes]) -> Counter[str]:
    """Valid events by kind (the invalid lines are dropped by re-encoding through the decoder)."""
    kinds: Counter[str] = Counter()
    for chunk in chunks:
        valid, _ = _core.convert(chunk, "json", "json")
        kinds.update(json.loads(line)["kind"] for line in valid.splitlines())
    return kinds


def run_demo(seed: int = 7, shipments: int = 2_000, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    w = out.write
    events = shipments * EVENTS_PER_SHIPMENT
    rules_text = example_rules()
    rule_list: list[dict[str, Any]] = json.loads(rules_text).get("rules", [])
    rules = {r["id"]: r for r in rule_list}

    sim = Simulator(seed=seed, shipments=shipments, events=events, invalid_rate=0.002)
    chunks = list(sim.chunks(CHUNK_EVENTS, "json"))
    kinds = _count_kinds(chunks)

    engine = Engine(rules_text)
    alerts: list[dict[str, Any]] = []
    dead: list[DeadLetter] = []
    start = time.perf_counter()
    for chunk in chunks:
        alerts.extend(engine.process_dicts(chunk))
        dead.extend(engine.dead_letters)
    seconds = time.perf_counter() - start
    stats = engine.stats()

    w("StreamGuard demo: a simulated feed replayed through the rule engine\n\n")
    names = {"sensor": "sensor readings", "scan": "scans", "shipment": "shipment events"}
    kind_text = ", ".join(f"{n:,} {names.get(k, k)}" for k, n in kinds.most_common())
    w(
        _para(
            f"Simulated (seed {seed}): {shipments:,} shipments, "
            f"{sim.events_emitted + sim.invalid_emitted:,} NDJSON lines: {kind_text}, "
            f"and {sim.invalid_emitted:,} broken lines. Carriers scan parcels along their "
            "route (some go quiet for hours, some upload late); tags on advanced and premium "
            "parcels report shocks, heat, cold, humidity, tilt, light and battery."
        )
        + "\n"
    )
    w(f"Rules ({len(rule_list)}, the example rule set):\n")
    for r in rule_list:
        w(f"  {_describe_rule(r)}\n")
    w(
        "\n"
        + _para(
            f"Processed {stats['events_in']:,} events in {seconds * 1000:.0f} ms: "
            f"{stats['accepted']:,} accepted, {stats['out_of_order']:,} out of order (kept, but "
            f"they change no rule state), {sum(stats['rejected'].values()):,} rejected."
        )
        + "\n"
    )

    by_rule: dict[str, Counter[str]] = {}
    for a in alerts:
        by_rule.setdefault(a["rule"], Counter())[a["state"]] += 1
    w(f"Alerts: {len(alerts):,} records\n")
    w(f"  {'rule':<24}{'firing':>8}{'resolved':>10}{'retracted':>11}\n")
    for rule_id in [r["id"] for r in rule_list if r["id"] in by_rule]:
        c = by_rule[rule_id]
        w(f"  {rule_id:<24}{c['firing']:>8,}{c['resolved']:>10,}{c['retracted']:>11,}\n")
    if not alerts:
        w("  (none)\n")

    samples = _samples(alerts)
    if samples:
        w("\nThree alerts, explained:\n")
        for i, a in enumerate(samples, 1):
            w(
                textwrap.fill(
                    explain_alert(a, rules),
                    96,
                    initial_indent=f"  {i}. ",
                    subsequent_indent="     ",
                )
                + "\n"
            )
            w(f"     id {a['id']}\n")

    w("\nRejected inputs by reason (each kept as a dead letter with its raw bytes):\n")
    first: dict[str, DeadLetter] = {}
    for d in dead:
        first.setdefault(d.reason, d)
    rejected = {r: n for r, n in stats["rejected"].items() if n}
    for reason, n in sorted(rejected.items(), key=lambda kv: -kv[1]):
        sample = first.get(reason)
        text = sample.detail if sample else ""
        detail = f"  e.g. {text[:69]}..." if len(text) > 72 else f"  e.g. {text}" if text else ""
        w(f"  {reason:<14}{n:>6,}{detail}\n")
    if not rejected:
        w("  (none)\n")
    w(
        "\nNext: `streamguard replay --rules examples/rules.json FILE` prints each alert as a "
        "JSON line;\n`streamguard simulate --out feed.ndjson` writes a feed to try it on.\n"
    )
    return 0
