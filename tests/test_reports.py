"""The operator reports over a seeded data set in real chDB: each answer is checked against the
same answer computed in Python from the seed lists (reportfix.py), over the test range, over
everything, and over the range moved by 1 ms (what sits on an edge moves in or out). Then the
``/reports`` routes: JSON, CSV (parsed and compared with the JSON), the 422s naming each field,
the 503 of an API without storage, and who may read them.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apifix import ApiStack
from conftest import CliRunner
from reportexpect import EXPECTED, recall
from reportfix import ALL, DAY, EVIL_CODE, EVIL_MODEL, FROM, RANGE, TO, Seed, make_seed
from streamguard.api.server import ApiServer
from streamguard.bus.plane import ControlConfig
from streamguard.store.reports import (
    REPORTS,
    ReportParams,
    ReportParamsError,
    report_params,
    run_report,
)

# "from-epoch": a missing time reads as 0 in ClickHouse (minIf over nothing), which a range
# from 0 would count as in range (run_report takes any range; the API's are at most 366 days).
SPANS = {"range": RANGE, "all": ALL, "moved-1ms": (FROM + 1, TO + 1), "from-epoch": (0, TO)}
RECALLS: list[dict[str, str]] = [
    {"product_code": "P60P-256"},
    {"batch": "B2026-01"},
    {"product_code": "MATE-X5", "batch": "B2026-02"},
    {"product_code": "NO-SUCH-CODE"},
]


@pytest.fixture(scope="module")
def seed() -> Seed:
    return make_seed()


@pytest.fixture(scope="module")
def stack(api_stack: ApiStack, seed: Seed) -> ApiStack:
    """The module's control plane, its store holding the seed (and nothing else: no order is
    made through the API here)."""
    seed.insert(api_stack.store)
    return api_stack


def _run(stack: ApiStack, name: str, lo: int, hi: int, **filters: str) -> list[dict[str, Any]]:
    columns, rows = run_report(stack.store, name, ReportParams(lo, hi, **filters))
    assert columns == [c.name for c in REPORTS[name].columns]
    assert all(list(row) == columns for row in rows)
    return rows


# ---- the reports against Python ----------------------------------------------------------------


def test_the_seed_gives_every_report_something_to_count(seed: Seed) -> None:
    for name, expected in EXPECTED.items():
        inside, everything = expected(seed, *RANGE), expected(seed, *ALL)
        assert inside, name
        assert inside != everything, f"{name}: the range filters nothing out"
        assert inside != expected(seed, FROM + 1, TO + 1), f"{name}: nothing on the edges"
    assert recall(seed, *RANGE, product_code="P60P-256")


@pytest.mark.parametrize("span", SPANS, ids=str)
@pytest.mark.parametrize("name", EXPECTED)
def test_each_report_is_its_definition(stack: ApiStack, seed: Seed, name: str, span: str) -> None:
    lo, hi = SPANS[span]
    assert _run(stack, name, lo, hi) == EXPECTED[name](seed, lo, hi)


@pytest.mark.parametrize("span", ["range", "all"])
@pytest.mark.parametrize(
    "filters", RECALLS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items())
)
def test_recall_finds_every_order_of_the_code_or_batch(
    stack: ApiStack, seed: Seed, filters: dict[str, str], span: str
) -> None:
    lo, hi = SPANS[span]
    assert _run(stack, "recall", lo, hi, **filters) == recall(seed, lo, hi, **filters)


def test_the_range_is_half_open(stack: ApiStack, seed: Seed) -> None:
    """One order created exactly at FROM: [FROM, FROM + 1) holds it, [FROM - 1, FROM) not."""
    [first] = [
        r for r in seed.rows["order_events"] if r["type"] == "created" and r["created_at"] == FROM
    ]
    rows = _run(stack, "faults", FROM, FROM + 1)
    assert [(r["fault_type"], r["orders"]) for r in rows] == [(first["fault_type"], 1)]
    before = _run(stack, "faults", FROM - 1, FROM)
    assert sum(r["orders"] for r in before) == 1  # the one at FROM - 1, not the one at FROM


def test_money_is_cny_strings_summed_in_fen(stack: ApiStack, seed: Seed) -> None:
    rows = _run(stack, "claims", *ALL)
    claimed = sum(int(r["claimed"].replace(".", "")) for r in rows)
    assert claimed == sum(
        r["claimed_fen"] for r in seed.rows["claim_events"] if r["to_status"] == "FILED"
    )
    assert all(isinstance(r["paid"], str) and r["paid"][-3] == "." for r in rows)


# ---- parameters ------------------------------------------------------------------------------


NOW = 1_790_000_000_000


def _fields(e: pytest.ExceptionInfo[ReportParamsError]) -> list[str]:
    return [f.field for f in e.value.errors]


def test_the_range_defaults_to_the_last_90_days_and_the_recall_to_3_years() -> None:
    p = report_params(REPORTS["anomalies"], now_ms=NOW)
    assert (p.from_ms, p.to_ms) == (NOW - 90 * DAY, NOW)
    p = report_params(REPORTS["faults"], now_ms=NOW, to_ms=TO)
    assert (p.from_ms, p.to_ms) == (TO - 90 * DAY, TO)
    p = report_params(REPORTS["recall"], now_ms=NOW, batch="B1")
    assert (p.from_ms, p.batch, p.product_code) == (NOW - 1096 * DAY, "B1", None)


@pytest.mark.parametrize(
    ("given", "fields"),
    [
        ({"from_ms": TO, "to_ms": TO}, ["to_ms"]),
        ({"from_ms": TO, "to_ms": FROM}, ["to_ms"]),
        ({"from_ms": NOW + 1}, ["from_ms"]),  # to_ms defaults to now: from_ms is the bad one
        ({"from_ms": 0, "to_ms": 367 * DAY}, ["from_ms"]),
        ({"from_ms": 0}, ["from_ms"]),
        ({"product_code": "X"}, ["product_code"]),
    ],
)
def test_bad_parameters_name_their_field(given: dict[str, Any], fields: list[str]) -> None:
    with pytest.raises(ReportParamsError) as e:
        report_params(REPORTS["lane-transit"], now_ms=NOW, **given)
    assert _fields(e) == fields


def test_366_days_is_the_longest_range_and_a_recall_needs_a_code_or_batch() -> None:
    report_params(REPORTS["claims"], now_ms=NOW, from_ms=0, to_ms=366 * DAY)
    with pytest.raises(ReportParamsError) as e:
        report_params(REPORTS["recall"], now_ms=NOW)
    assert _fields(e) == ["product_code", "batch"]
    report_params(REPORTS["recall"], now_ms=NOW, from_ms=0, to_ms=3653 * DAY, product_code="P")
    with pytest.raises(ReportParamsError):
        report_params(REPORTS["recall"], now_ms=NOW, from_ms=0, to_ms=3654 * DAY, batch="B")


# ---- the API ---------------------------------------------------------------------------------


def _get(stack: ApiStack, path: str, **params: Any) -> httpx.Response:
    return stack.client.get(path, params=params, headers=stack.as_operator())


def _json(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()


def _errors(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    return [e["field"] for e in r.json()["errors"]]


def test_the_list_describes_every_report(stack: ApiStack) -> None:
    listed = _json(_get(stack, "/reports"))
    assert [r["name"] for r in listed] == list(REPORTS)
    recall_info = listed[-1]
    assert recall_info["parameters"] == ["from_ms", "to_ms", "product_code", "batch"]
    assert recall_info["csv_path"] == "/reports/recall.csv"
    assert all(r["columns"] and r["definition"] and r["range_filters_on"] for r in listed)


def _query(name: str) -> dict[str, Any]:
    return {"from_ms": FROM, "to_ms": TO} | (
        {"product_code": "P60P-256"} if name == "recall" else {}
    )


@pytest.mark.parametrize("name", REPORTS)
def test_json_and_csv_answer_the_same_rows(stack: ApiStack, name: str) -> None:
    query = _query(name)
    body = _json(_get(stack, f"/reports/{name}", **query))
    filters = {k: v for k, v in query.items() if k not in ("from_ms", "to_ms")}
    assert body == {
        "report": name,
        "from_ms": FROM,
        "to_ms": TO,
        "columns": [c.name for c in REPORTS[name].columns],
        "rows": _run(stack, name, FROM, TO, **filters),
    }
    assert body["rows"], "nothing to compare"
    r = _get(stack, f"/reports/{name}.csv", **query)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == (
        f'attachment; filename="{name}_2026-06-21_2026-07-05.csv"'
    )
    assert r.text.endswith("\r\n")
    header, *lines = list(csv.reader(io.StringIO(r.text)))
    assert header == body["columns"]
    as_text = [["" if v is None else str(v) for v in row.values()] for row in body["rows"]]
    assert lines == as_text


def test_a_csv_cell_a_spreadsheet_would_run_is_quoted(stack: ApiStack) -> None:
    query = {"from_ms": ALL[0], "to_ms": ALL[1], "product_code": EVIL_CODE}
    [row] = _json(_get(stack, "/reports/recall", **query))["rows"]
    assert row["product_model"] == EVIL_MODEL
    [cells] = list(csv.DictReader(io.StringIO(_get(stack, "/reports/recall.csv", **query).text)))
    assert cells["product_model"] == "'" + EVIL_MODEL
    assert cells["order_id"] == row["order_id"]


def test_the_default_range_is_the_last_90_days(stack: ApiStack) -> None:
    before = int(time.time() * 1000)
    body = _json(_get(stack, "/reports/faults"))
    assert before <= body["to_ms"] <= int(time.time() * 1000)
    assert body["to_ms"] - body["from_ms"] == 90 * DAY


@pytest.mark.parametrize(
    ("path", "params", "fields"),
    [
        ("/reports/anomalies", {"from_ms": TO, "to_ms": TO}, ["to_ms"]),
        ("/reports/anomalies.csv", {"from_ms": TO, "to_ms": FROM}, ["to_ms"]),
        ("/reports/claims", {"from_ms": 0, "to_ms": 400 * DAY}, ["from_ms"]),
        ("/reports/claims", {"from_ms": -1}, ["from_ms"]),
        ("/reports/claims", {"to_ms": "yesterday"}, ["to_ms"]),
        ("/reports/claims", {"to_ms": "null"}, ["to_ms"]),
        ("/reports/claims.csv", {"from_ms": [FROM, FROM + 1]}, ["from_ms"]),
        ("/reports/recall", {"from_ms": FROM}, ["product_code", "batch"]),
        ("/reports/recall.csv", {"product_code": ""}, ["product_code"]),
        ("/reports/faults", {"product_code": "P60P-256"}, ["product_code"]),
        ("/reports/faults", {"form_ms": FROM}, ["form_ms"]),
    ],
)
def test_bad_input_is_a_422_naming_each_field(
    stack: ApiStack, path: str, params: dict[str, Any], fields: list[str]
) -> None:
    assert _errors(_get(stack, path, **params)) == fields


def test_reports_are_for_operators_only(stack: ApiStack) -> None:
    for path in ("/reports", "/reports/faults", "/reports/faults.csv"):
        assert stack.client.get(path, headers=stack.as_depot()).status_code == 403
        assert stack.client.get(path, headers=stack.as_customer("c1")).status_code == 403
        assert stack.client.get(path).status_code == 401


@pytest.fixture(scope="module")
def storeless(stack: ApiStack) -> Iterator[httpx.Client]:
    """A second API on the same NATS and keys, with no storage (and no consumers)."""
    config = ControlConfig(
        stack.nats.url, stack.nats.credentials("control"), stack.keys, consumers=False
    )
    api = ApiServer(config, None).start()
    try:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            yield client
    finally:
        api.stop()


def test_without_storage_a_report_is_a_503_and_bad_input_still_a_422(
    stack: ApiStack, storeless: httpx.Client
) -> None:
    headers = stack.as_operator()
    r = storeless.get("/reports/faults", headers=headers)
    assert r.status_code == 503, r.text
    assert "storage" in r.json()["detail"]
    r = storeless.get("/reports/faults.csv", params={"from_ms": TO, "to_ms": FROM}, headers=headers)
    assert r.status_code == 422, r.text
    assert storeless.get("/reports", headers=headers).status_code == 200


def test_the_bench_seeds_a_store_and_times_every_report(cli: CliRunner, tmp_path: Path) -> None:
    """``streamguard bench --reports``, tiny: it runs and writes its JSON (no time is checked
    here: the target is the bench's to measure, at 10 M events)."""
    out = tmp_path / "reports.json"
    r = cli("bench", "--reports", "--shipments", "2000", "--repeat", "1", "--json", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert [x["report"] for x in doc["results"]] == list(REPORTS)
    assert all(x["rows"] > 0 and len(x["runs_s"]) == 1 for x in doc["results"])
    assert doc["stored_rows"]["scans"] == 8000
    assert doc["stored_rows"]["sensor_readings"] == 10000
    r = cli("bench", "--reports", "--nats")
    assert r.returncode == 2
    assert "--reports takes only" in r.stderr
