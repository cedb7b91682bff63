"""End to end: a pipeline reads a PostgreSQL table into DuckDB window by window, with exact
audit counts, rows on window edges once, and rows of no window tallied in the drive row."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import DAY, make_pipeline_dir, make_rows, query, ts_of
from tests.servers.postgres import PostgresServer

REF = "e2e_pg"


def postgres_pipeline(root: Path, server: PostgresServer, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
                      extra_sql: tuple[str, ...] = (), **changes: Any) -> tuple[Path, str]:
    """``rows`` in a new table (timestamptz query field, indexed), read by the postgres source."""
    table = f"lab_{uuid.uuid4().hex[:10]}"
    with server.admin() as conn:
        conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, test_id varchar(32), age varchar(16),"
                     " result varchar(32), reported_at timestamptz)")
        conn.execute(f"CREATE INDEX ON {table} (reported_at)")
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} (test_id, age, result, reported_at) VALUES (%s, %s, %s, %s)",
                [(r["test_id"], str(r["age"]), r["result"], ts_of(r).astimezone(UTC)) for r in rows],
            )
        for statement in extra_sql:
            conn.execute(statement.format(table=table))
    monkeypatch.setenv(f"{REF.upper()}_USER", server.user)
    monkeypatch.setenv(f"{REF.upper()}_PASSWORD", server.password)
    source = {"type": "postgres", "host": server.host, "port": server.port, "database": server.database,
              "table": table, "query_field": "reported_at", "credentials_ref": REF, "batch_size": 50}
    return make_pipeline_dir(root, [], source_system=source, **changes), table


@pytest.mark.parametrize("reader", ["adbc", "psycopg"])
def test_three_hourly_windows_load_every_row_once_with_exact_audit(
    tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    rows = make_rows(400, hours=3, invalid_every=0, duplicates=0)
    edge = DAY + timedelta(hours=1)  # exactly on the edge between the first two windows
    rows.append({"test_id": "EDGE", "age": 50, "result": "negative", "reported_at": edge.isoformat()})
    folder, _ = postgres_pipeline(tmp_path / "lab", postgres, rows, monkeypatch, source_system__reader=reader)
    records = []
    with Pipeline.load(folder) as pipeline:
        window = pipeline.grid.window_starting(DAY)
        for _ in range(3):
            record = pipeline.runner().run(window)
            assert record.pipeline_status is RunStatus.SUCCESS, (record.phase_failed, record.phases)
            records.append(record)
            window = pipeline.grid.next(window)
    for record in records:
        source = record.phase("source_count").phase_specific_details["count"]
        stage = record.phase("stage_count").phase_specific_details["count"]
        target = record.phase("target_count").phase_specific_details["count"]
        assert source == stage == target > 0
    found = query(folder, "SELECT test_id FROM tests ORDER BY test_id")
    assert [t for (t,) in found] == sorted(r["test_id"] for r in rows)
    misplaced = query(folder, "SELECT count(*) FROM tests WHERE NOT (reported_at >= _drivetrain_window_start"
                              " AND reported_at < _drivetrain_window_end)")
    assert misplaced == [(0,)]
    (edge_window,) = query(folder, "SELECT _drivetrain_window_start FROM tests WHERE test_id = 'EDGE'")
    assert edge_window[0].replace(tzinfo=UTC) == edge  # the window it starts, not the one it ends


def test_rows_of_no_window_are_tallied_in_the_drive_row(
    tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = make_rows(30, hours=1, invalid_every=0, duplicates=0)
    folder, table = postgres_pipeline(
        tmp_path / "lab", postgres, rows, monkeypatch,
        extra_sql=("INSERT INTO {table} (test_id, age, result, reported_at) VALUES"
                   " ('NOTIME', '1', 'x', NULL), ('FOREVER', '1', 'x', 'infinity')",),
    )
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
    assert record.pipeline_status is RunStatus.SUCCESS, record.phases
    stored = record.phase("source_count").phase_specific_details
    assert stored["count"] == 30
    assert stored["unplaceable"]["records"] == 2
    assert stored["unplaceable"]["reasons"] == {"reported_at: NULL": 1, "reported_at: infinite (no window)": 1}
    assert any(table in line for line in stored["unplaceable"]["sample"])


def test_a_wrong_password_fails_the_run_without_showing_it(
    tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = postgres_pipeline(tmp_path / "lab", postgres, make_rows(5, hours=1, duplicates=0), monkeypatch,
                                  retry__max_retries=0)
    monkeypatch.setenv(f"{REF.upper()}_PASSWORD", "Wrong-pw-xyz")
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
    assert record.pipeline_status is RunStatus.FAILED
    message = record.phase(record.phase_failed).error_message or ""
    assert "password authentication failed" in message and "Wrong-pw-xyz" not in message
    assert "Wrong-pw-xyz" not in str(record.phases) and postgres.password not in str(record.phases)
