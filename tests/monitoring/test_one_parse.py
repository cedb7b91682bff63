"""On DuckDB the report parses each phase's JSON once per row, and answers as field by field.

DuckDB parses a JSON text again for every ``json_extract`` of one of its fields: the duration
metric read five fields of ten phase columns, and the audited counts fourteen fields of five,
so a fleet's report took 50x its SQL and the counts query ran out of DuckDB's default
memory_limit on 374k drive rows. The DuckDB dialect now reads a column's fields as one list
(``json_fields``); the other engines still read field by field (tests/monitoring/
test_portability.py checks them against DuckDB over a real history).

Here, on a real DuckDB database, generated phase documents (fields missing, null, numbers as
numbers, strings and booleans, nested details) give every report query the same rows read
both ways.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.connectors.duckdb.sql import DuckDBDialect
from drivetrain.monitoring.queries import Queries, Query
from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN
from tests.monitoring.test_portability import ARGUMENTS, comparable

TABLE = "main.drive"
SINCE = datetime(2026, 1, 1, tzinfo=UTC)


class FieldByField(DuckDBDialect):
    """DuckDB read as the other engines are: one ``json_extract`` per field."""

    json_fields = None  # type: ignore[assignment]


def _queries(dialect: Any) -> dict[str, Query]:
    q = Queries(dialect, TABLE, (), SINCE)
    built = {name: getattr(q, name)(*ARGUMENTS.get(name, ())) for name in ("phase_rows", "phase_outcomes", "phase_durations",
                                                                           "phase_stats", "counts", "runs_over")}
    built["runs_over_generated"] = q.runs_over([("p0", "audit", "30s", 1.0), ("p1", "publish", "1m", 0.0)])
    return built


class TestOneParse:
    @pytest.mark.parametrize("name", ["phase_rows", "phase_outcomes", "phase_durations", "phase_stats", "counts", "runs_over"])
    def test_each_phase_column_is_parsed_once_per_row(self, name):
        sql = _queries(DuckDBDialect())[name].sql
        for column in VARIANT_COLUMN.values():
            # per UNION ALL branch (phase_rows reads one phase a branch)
            for branch in sql.split(" UNION ALL "):
                assert len(re.findall(rf'"{column}"', branch)) <= 1, (name, column, branch)

    def test_other_engines_still_read_field_by_field(self):
        sql = _queries(FieldByField())["counts"].sql
        assert "json_extract_string(\"audit_phase\", '$.status')" in sql


SCALARS = st.one_of(st.none(), st.integers(-5, 10_000), st.floats(-1e6, 1e6, allow_nan=False), st.booleans(),
                    st.sampled_from(["COMPLETED", "FAILED", "SKIPPED", "RUNNING", "30s", "1m", "12", "x"]))
STAMPS = st.integers(0, 7200).map(lambda s: (SINCE + timedelta(seconds=s)).isoformat())
DETAILS = st.dictionaries(st.sampled_from(["source_count", "stage_count", "target_count", "source_to_stage_loss_percent",
                                           "stage_to_target_loss_percent", "records_failed", "rows_dropped",
                                           "rows_published", "unplaceable"]),
                          st.one_of(SCALARS, st.fixed_dictionaries({"records": SCALARS})), max_size=5)
PHASE = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "status": st.sampled_from(["COMPLETED", "FAILED", "SKIPPED", "CARRIED", None]),
    "start_timestamp": st.one_of(st.none(), STAMPS), "end_timestamp": st.one_of(st.none(), STAMPS),
    "expected_run_duration": st.sampled_from(["30s", "1m", None]), "retry_number": SCALARS,
    "phase_specific_details": st.one_of(st.none(), DETAILS),
}))
ROW = st.tuples(st.sampled_from(["p0", "p1"]), st.integers(-5, 48), st.lists(PHASE, min_size=len(PHASE_NAMES),
                                                                               max_size=len(PHASE_NAMES)))


def _table(conn: duckdb.DuckDBPyConnection, rows: list[Any]) -> None:
    columns = ", ".join(f"{VARIANT_COLUMN[name]} JSON" for name in PHASE_NAMES)
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute(f"CREATE TABLE {TABLE} (pipeline_name VARCHAR, pipeline_id VARCHAR, pipeline_start_timestamp TIMESTAMPTZ, "
                 f"{columns})")
    for n, (pipeline, hour, phases) in enumerate(rows):
        values = [json.dumps(p) if p is not None else None for p in phases]
        conn.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, {', '.join('?' for _ in PHASE_NAMES)})",
                     [pipeline, f"{pipeline}_run{n}", SINCE + timedelta(hours=hour), *values])


def _answer(conn: duckdb.DuckDBPyConnection, query: Query) -> list[dict[str, Any]]:
    cur = conn.execute(query.sql, list(query.params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, max_size=25))
def test_phase_stats_is_phase_outcomes_and_phase_durations_in_one_pass(rows):
    """``metrics.compute`` reads metrics 2, 3 and 6 from one pass (``phase_stats``): the same rows
    as the two queries it replaced."""
    from drivetrain.monitoring.metrics import _outcomes

    q = Queries(DuckDBDialect(), TABLE, (), SINCE)
    with duckdb.connect() as conn:
        _table(conn, rows)
        stats = _answer(conn, q.phase_stats())
        assert comparable(_outcomes(stats)) == comparable(_answer(conn, q.phase_outcomes()))
        keep = ("pipeline_name", "phase", "expected", "runs", "avg_seconds", "max_seconds")
        timed = [{k: r[k] for k in keep} for r in stats if r["runs"]]
        assert comparable(timed) == comparable(_answer(conn, q.phase_durations()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, max_size=25))
def test_one_parse_answers_as_field_by_field(rows):
    with duckdb.connect() as conn:
        _table(conn, rows)
        one, each = _queries(DuckDBDialect()), _queries(FieldByField())
        for name in one:
            assert comparable(_answer(conn, one[name])) == comparable(_answer(conn, each[name])), name
