"""``/reports``: the operator's reports (:mod:`streamguard.store.reports`), each at
``/reports/<name>`` as JSON and ``/reports/<name>.csv`` as a CSV download, over
``[from_ms, to_ms)``.

One route per report, built from the report registry, so each documents exactly the query
parameters it takes (only the recall has ``product_code``/``batch``) and an unknown one is a 422.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Request, Response, Router, get
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIType
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from streamguard.api.auth import requires
from streamguard.api.common import plane_of
from streamguard.api.problems import ERRORS, UNAVAILABLE, unprocessable
from streamguard.api.reports.schemas import ReportInfo, ReportView
from streamguard.bus.plane import now_ms
from streamguard.domain.auth import Role
from streamguard.domain.validation import FieldError
from streamguard.store.reports import (
    REPORTS,
    Report,
    ReportParams,
    ReportParamsError,
    report_params,
    run_report,
)

__all__ = ["MAX_MS", "csv_text", "reports_router"]

#: 2100-01-01T00:00:00Z: past any time the store holds, inside ClickHouse's DateTime64 range.
MAX_MS = 4_102_444_800_000
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

# Absent or an integer, never null (as the headers in api.common): a client must not send "null".
_INT: dict[str, Any] = {"one_of": None, "type": OpenAPIType.INTEGER}
_TEXT: dict[str, Any] = {"one_of": None, "type": OpenAPIType.STRING}

FromMs = Annotated[
    int | None,
    QueryParameter(
        ge=0,
        le=MAX_MS,
        description="Range start, UTC ms, inclusive (default: to_ms minus the report's "
        "default span)",
        schema_extra={**_INT, "minimum": 0, "maximum": MAX_MS},
    ),
]
ToMs = Annotated[
    int | None,
    QueryParameter(
        ge=0,
        le=MAX_MS,
        description="Range end, UTC ms, exclusive (default: now)",
        schema_extra={**_INT, "minimum": 0, "maximum": MAX_MS},
    ),
]
_CODE = {"min_length": 1, "max_length": 64}
ProductCode = Annotated[
    str | None,
    QueryParameter(
        **_CODE,
        description="The product code to trace (exact match)",
        schema_extra={**_TEXT, "min_length": 1, "max_length": 64},
    ),
]
Batch = Annotated[
    str | None,
    QueryParameter(
        **_CODE,
        description="The production batch to trace (exact match)",
        schema_extra={**_TEXT, "min_length": 1, "max_length": 64},
    ),
]

_TIMES = ("from_ms", "to_ms")
_MS = re.compile(r"^[0-9]{1,16}$")

# A cell a spreadsheet would run as a formula: neutralised with a leading quote (OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any, text: bool) -> str:
    if value is None:
        return ""
    cell = str(value)
    return "'" + cell if text and cell.startswith(_FORMULA_START) else cell


def csv_text(report: Report, rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (RFC 4180: a header line, CRLF line ends): empty for ``None``, and a
    text cell that a spreadsheet would evaluate as a formula prefixed with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.name for c in report.columns])
    kinds = [(c.name, c.type == "string") for c in report.columns]
    for row in rows:
        writer.writerow([_csv_cell(row[name], text) for name, text in kinds])
    return out.getvalue()


def _day(ms: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).date().isoformat()


def _query_errors(request: Request[Any, Any, Any], known: set[str]) -> list[FieldError]:
    """What Litestar lets through: an unknown parameter (a misspelt filter must not silently
    answer for the default range), a repeated one (it keeps the last), ``null`` for a time."""
    errors = []
    query = request.query_params
    for key in sorted(set(query)):
        values = query.getall(key)
        if key not in known:
            errors.append(FieldError(key, "unknown query parameter"))
        elif len(values) > 1:
            errors.append(FieldError(key, "given more than once"))
        elif key in _TIMES and not _MS.match(values[0]):
            errors.append(FieldError(key, "expected an integer (UTC ms)"))
    return errors


async def _run(
    request: Request[Any, Any, Any],
    report: Report,
    from_ms: int | None,
    to_ms: int | None,
    product_code: str | None = None,
    batch: str | None = None,
) -> tuple[ReportParams, list[dict[str, Any]]]:
    errors = _query_errors(request, {"from_ms", "to_ms", *report.filters})
    if errors:
        raise unprocessable(errors)
    try:
        params = report_params(
            report,
            now_ms=now_ms(),
            from_ms=from_ms,
            to_ms=to_ms,
            product_code=product_code,
            batch=batch,
        )
    except ReportParamsError as e:
        raise unprocessable(e.errors) from None
    store = plane_of(request).store
    if store is None:
        raise HTTPException(
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            detail="this API process has no storage attached; reports read it",
        )
    _, rows = await asyncio.to_thread(run_report, store, report.name, params)
    return params, rows


def _view(report: Report, params: ReportParams, rows: list[dict[str, Any]]) -> ReportView:
    return ReportView(
        report=report.name,
        from_ms=params.from_ms,
        to_ms=params.to_ms,
        columns=[c.name for c in report.columns],
        rows=rows,
    )


def _download(report: Report, params: ReportParams, rows: list[dict[str, Any]]) -> Response[str]:
    name = f"{report.name}_{_day(params.from_ms)}_{_day(params.to_ms)}.csv"
    return Response(
        csv_text(report, rows),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _handlers(report: Report) -> list[HTTPRouteHandler]:
    """The JSON and the CSV route of ``report``."""
    if report.filters:

        async def recall_json(
            request: Request[Any, Any, Any],
            from_ms: FromMs = None,
            to_ms: ToMs = None,
            product_code: ProductCode = None,
            batch: Batch = None,
        ) -> ReportView:
            params, rows = await _run(request, report, from_ms, to_ms, product_code, batch)
            return _view(report, params, rows)

        async def recall_csv(
            request: Request[Any, Any, Any],
            from_ms: FromMs = None,
            to_ms: ToMs = None,
            product_code: ProductCode = None,
            batch: Batch = None,
        ) -> Response[str]:
            params, rows = await _run(request, report, from_ms, to_ms, product_code, batch)
            return _download(report, params, rows)

        as_json: Any = recall_json
        as_csv: Any = recall_csv
    else:

        async def ranged_json(
            request: Request[Any, Any, Any], from_ms: FromMs = None, to_ms: ToMs = None
        ) -> ReportView:
            params, rows = await _run(request, report, from_ms, to_ms)
            return _view(report, params, rows)

        async def ranged_csv(
            request: Request[Any, Any, Any], from_ms: FromMs = None, to_ms: ToMs = None
        ) -> Response[str]:
            params, rows = await _run(request, report, from_ms, to_ms)
            return _download(report, params, rows)

        as_json, as_csv = ranged_json, ranged_csv
    slug = report.name.replace("-", "_")
    description = f"{report.definition} The range filters on {report.basis}."
    return [
        get(
            f"/{report.name}",
            operation_id=f"report_{slug}",
            summary=f"{report.title} (JSON)",
            description=description,
            responses={**ERRORS, **UNAVAILABLE},
        )(as_json),
        get(
            f"/{report.name}.csv",
            operation_id=f"report_{slug}_csv",
            media_type=CSV_MEDIA_TYPE,
            summary=f"{report.title} (CSV download)",
            description=f"{description} The same rows as the JSON route, as CSV with a header "
            "line; empty cells are nulls.",
            responses={**ERRORS, **UNAVAILABLE},
        )(as_csv),
    ]


@get("/", summary="The reports: what each counts, its columns and parameters", responses=ERRORS)
async def list_reports() -> list[ReportInfo]:
    return [ReportInfo.of(r) for r in REPORTS.values()]


reports_router = Router(
    path="/reports",
    route_handlers=[list_reports, *(h for r in REPORTS.values() for h in _handlers(r))],
    guards=[requires(Role.OPERATOR)],
    tags=["reports"],
)
