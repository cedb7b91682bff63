"""The report queries run on Snowflake's SQL too: the real connector against fakesnow.

The drive rows of the DuckDB history are copied into a Snowflake table (VARIANT phase
columns, TIMESTAMP_TZ instants), and the metrics computed there must equal the DuckDB ones.
The dialect below writes JSON access the Snowflake way (``col:path::string``), as the
Snowflake drive store is expected to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from drivetrain.drive import SqlDialect
from drivetrain.monitoring import metrics
from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN

COLUMNS = [
    ("pipeline_id", "VARCHAR"), ("pipeline_name", "VARCHAR"), ("pipeline_status", "VARCHAR"),
    ("pipeline_retry_number", "INTEGER"), ("pipeline_start_timestamp", "TIMESTAMP_TZ"),
    ("pipeline_end_timestamp", "TIMESTAMP_TZ"), ("pipeline_run_duration", "VARCHAR"),
    ("query_window_start_timestamp", "TIMESTAMP_TZ"), ("query_window_end_timestamp", "TIMESTAMP_TZ"),
    ("target_date", "DATE"), ("query_window_duration", "VARCHAR"),
    *[(VARIANT_COLUMN[name], "VARIANT") for name in PHASE_NAMES],
    ("phase_failed", "VARCHAR"), ("config_snapshot", "VARIANT"),
]


class SnowflakeStyleDialect(SqlDialect):
    param = "%s"

    def json_text(self, column: str, *path: str) -> str:
        return f"{column}:{'.'.join(path)}::string"

    def json_number(self, column: str, *path: str) -> str:
        return f"{column}:{'.'.join(path)}::float"

    def seconds_between(self, start: str, end: str) -> str:
        return f"(DATEDIFF('microsecond', {start}, {end}) / 1000000.0)"

    def array_contains(self, column: str, value_sql: str) -> str:
        return f"ARRAY_CONTAINS({value_sql}::variant, {column})"


class SnowflakeReport:
    """Runs report queries through snowflake-connector-python."""

    dialect = SnowflakeStyleDialect()
    table_sql = "drive"

    def __init__(self, conn: Any, location: str) -> None:
        self.conn = conn
        self.location = location

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture(scope="module")
def snowflake_copy(history) -> Iterator[SnowflakeReport]:
    try:
        import fakesnow  # noqa: F401 - the server below needs it
        import snowflake.connector
    except ImportError as exc:
        pytest.fail(f"{exc}: install the test dependencies with pip install -e '.[dev]'")

    from tests.servers.fakesnow_server import FakeSnowServer, ServerError

    try:
        server = FakeSnowServer().start()
    except ServerError as exc:
        pytest.fail(f"could not start fakesnow's server: {exc}")
    try:
        conn = snowflake.connector.connect(
            account="fakesnow", user="fake", password="snow", host="127.0.0.1", port=server.port,
            protocol="http", network_timeout=1, database="ops", schema="drivetrain",
        )
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS ops")
        cur.execute("CREATE SCHEMA IF NOT EXISTS ops.drivetrain")
        cur.execute("USE SCHEMA ops.drivetrain")
        cur.execute(f"CREATE TABLE drive ({', '.join(f'{n} {t}' for n, t in COLUMNS)})")
        with history.pipeline() as pipeline:
            records = pipeline.drive_store().history("lab")
        select = ", ".join("PARSE_JSON(%s)" if t == "VARIANT" else "%s" for _, t in COLUMNS)
        for record in records:
            row = record.to_row()
            values = [json.dumps(row[n], default=str) if t == "VARIANT" else row[n] for n, t in COLUMNS]
            cur.execute(f"INSERT INTO drive ({', '.join(n for n, _ in COLUMNS)}) SELECT {select}", values)
        yield SnowflakeReport(conn, "fakesnow: ops.drivetrain.drive")
        conn.close()
    finally:
        server.stop()


def close(a: Any, b: Any, path: str = "") -> None:
    """Equal; floats to 1e-4 (DuckDB subtracts epoch seconds as doubles, Snowflake counts microseconds)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4), (path, a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


class TestSnowflakeSql:
    def test_every_metric_and_dashboard_matches_duckdb(self, history, snowflake_copy):
        with history.pipeline() as pipeline:
            duck = metrics.compute(pipeline.drive_store(), ["lab"], days=7)
        snow = metrics.compute(snowflake_copy, ["lab"], since=duck.since, now=duck.generated_at)
        assert snow.success_rates and snow.failed_runs and snow.durations
        a, b = duck.to_json(), snow.to_json()
        a.pop("sources"), b.pop("sources")
        close(a, b)

    def test_gaps_read_the_same_windows(self, history, snowflake_copy):
        from drivetrain.monitoring.gaps import find_gaps

        with history.pipeline() as pipeline:
            duck = find_gaps(pipeline)
            snow = find_gaps(pipeline, store=snowflake_copy)
        assert snow == duck
