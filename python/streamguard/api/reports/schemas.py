"""The reports API's shapes: the list of reports, and one report's answer."""

from __future__ import annotations

import msgspec

from streamguard.store.reports import Report

__all__ = ["ColumnInfo", "ReportInfo", "ReportView"]

#: A cell: text (codes, CNY amounts, ISO times), a number (counts and durations are integers,
#: rates have 2 decimals), or nothing. ``float`` covers integers: the schema says "number".
Cell = str | float | None


class ColumnInfo(msgspec.Struct, kw_only=True):
    """A column: ``money`` is a CNY decimal string, ``duration_ms`` integer ms, ``timestamp``
    ISO 8601 UTC; ``null`` where there is nothing to say."""

    name: str
    type: str
    description: str


class ReportInfo(msgspec.Struct, kw_only=True):
    """A report: what it counts, the time its range filters on, its columns and filters."""

    name: str
    title: str
    definition: str
    range_filters_on: str
    columns: list[ColumnInfo]
    parameters: list[str]
    default_days: int
    max_days: int
    json_path: str
    csv_path: str

    @classmethod
    def of(cls, report: Report) -> ReportInfo:
        return cls(
            name=report.name,
            title=report.title,
            definition=report.definition,
            range_filters_on=report.basis,
            columns=[
                ColumnInfo(name=c.name, type=c.type, description=c.description)
                for c in report.columns
            ],
            parameters=["from_ms", "to_ms", *report.filters],
            default_days=report.default_days,
            max_days=report.max_days,
            json_path=f"/reports/{report.name}",
            csv_path=f"/reports/{report.name}.csv",
        )


class ReportView(msgspec.Struct, kw_only=True):
    """A report over ``[from_ms, to_ms)`` (UTC ms): its columns in order, and one object per
    row keyed by column."""

    report: str
    from_ms: int
    to_ms: int
    columns: list[str]
    rows: list[dict[str, Cell]]
