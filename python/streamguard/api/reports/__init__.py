"""Reports: the operator's ClickHouse reports, as JSON and as CSV downloads."""
