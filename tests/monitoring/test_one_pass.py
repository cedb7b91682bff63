"""On SQLite the report reads the period's drive rows once for all ten phases, and answers as field by field.

The default drive table is a SQLite file of wide rows (phases as JSON text). The phase metrics
unfolded the ten phase columns with a UNION ALL of ten selects, and SQLite ran each as a scan of
the whole table of its own: ``metrics`` over a 500-pipeline fleet's week spent 17 s in that one
statement. The SQLite dialect now asks for the phase rows from one pass (``phases_in_one_pass``:
each row's ten columns parsed in the same read, then crossed with the phase names), and names
every pipeline in the period's filter (``period_by_pipeline``) so the period is read through the
(pipeline_name, pipeline_start_timestamp) index instead of a scan of every row.

Here, on a real SQLite database, generated phase documents (fields missing, null, numbers,
strings, booleans, nested details) and runs in and out of the period give every report query
the same rows read that way and read field by field, one phase at a time, over the whole table.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.connectors.sqlite.dialect import SqliteDialect
from drivetrain.connectors.sqlite.session import instant_text
from drivetrain.monitoring.queries import Queries, Query
from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN
from tests.monitoring.test_one_parse import ROW, SINCE
from tests.monitoring.test_portability import comparable, every_query

TABLE = '"pipeline_execution_drive"'


class FieldByField(SqliteDialect):
    """SQLite read as before: one select per phase, one ``json_extract`` per field, the period by scan."""

    json_fields = None  # type: ignore[assignment]
    phases_in_one_pass = False
    period_by_pipeline = False


def _database(rows: list[Any]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    phases = ", ".join(f"{VARIANT_COLUMN[name]} TEXT" for name in PHASE_NAMES)
    conn.execute(f"CREATE TABLE {TABLE} (pipeline_id TEXT, pipeline_name TEXT, pipeline_status TEXT, "
                 "pipeline_start_timestamp TEXT, pipeline_end_timestamp TEXT, query_window_start_timestamp TEXT, "
                 "query_window_end_timestamp TEXT, target_date TEXT, phase_failed TEXT, pipeline_retry_number INTEGER, "
                 f"config_snapshot TEXT, {phases})")
    conn.execute(f"CREATE INDEX by_start ON {TABLE} (pipeline_name, pipeline_start_timestamp)")
    for n, (pipeline, hour, docs) in enumerate(rows):
        start = SINCE + timedelta(hours=hour)
        status = ("SUCCESS", "FAILED", "SKIPPED", "RUNNING")[n % 4]
        failed = PHASE_NAMES[n % len(PHASE_NAMES)] if status == "FAILED" else None
        values = [f"{pipeline}_run{n}", pipeline, status, instant_text(start), instant_text(start + timedelta(minutes=n)),
                  instant_text(start.replace(minute=0)), instant_text(start.replace(minute=0) + timedelta(hours=1)),
                  start.date().isoformat(), failed, n % 3, None, *(json.dumps(d) if d is not None else None for d in docs)]
        conn.execute(f"INSERT INTO {TABLE} VALUES ({', '.join('?' for _ in values)})", values)
    return conn


def _answer(conn: sqlite3.Connection, query: Query) -> list[dict[str, Any]]:
    params = [instant_text(p) if isinstance(p, datetime) else p for p in query.params]
    cur = conn.execute(query.sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _queries(dialect: SqliteDialect, pipelines: tuple[str, ...] = ()) -> dict[str, Query]:
    q = Queries(dialect, TABLE, pipelines, SINCE + timedelta(hours=6))
    built = every_query(q)
    built["runs_over"] = q.runs_over([("p0", "audit", "30s", 1.0), ("p1", "publish", "1m", 0.0)])
    built["phase_rows_some"] = q.phase_rows(["audit", "pre_validation"])
    return built


@pytest.fixture
def plans() -> Iterator[sqlite3.Connection]:
    conn = _database([])
    yield conn
    conn.close()


def _plan(conn: sqlite3.Connection, query: Query) -> list[str]:
    params = [instant_text(p) if isinstance(p, datetime) else p for p in query.params]
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query.sql}", params)]


class TestOnePass:
    def test_the_phase_rows_read_the_drive_table_once(self, plans):
        reads = [step for step in _plan(plans, _queries(SqliteDialect())["phase_stats"]) if "pipeline_execution_drive" in step]
        # one read of the period's rows, by the index, plus the pipelines' names from the same index
        assert len([step for step in reads if "COVERING INDEX" not in step]) == 1, reads
        assert [step for step in reads if "COVERING INDEX" not in step][0].startswith("SEARCH"), reads

    def test_before_it_was_a_scan_per_phase(self, plans):
        reads = [step for step in _plan(plans, _queries(FieldByField())["phase_stats"]) if "pipeline_execution_drive" in step]
        assert len(reads) == len(PHASE_NAMES) and all(step.startswith("SCAN") for step in reads), reads

    @pytest.mark.parametrize("name", ["run_outcomes", "counts", "window_recovery", "failures_by_phase", "daily", "failed_runs"])
    def test_the_period_is_read_by_the_index(self, plans, name):
        steps = _plan(plans, _queries(SqliteDialect())[name])
        assert not [s for s in steps if s.startswith("SCAN pipeline_execution_drive") and "INDEX" not in s], steps


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, max_size=25), some=st.booleans())
def test_one_pass_answers_as_field_by_field(rows, some):
    pipelines = ("p1",) if some else ()
    conn = _database(rows)
    try:
        one, each = _queries(SqliteDialect(), pipelines), _queries(FieldByField(), pipelines)
        assert one.keys() == each.keys()
        for name in one:
            assert comparable(_answer(conn, one[name])) == comparable(_answer(conn, each[name])), name
    finally:
        conn.close()
