"""lab_results: the registered pipeline, a real MariaDB server -> Snowflake (fakesnow).

The module runs the 10:00 window, then corrects two of its results in MySQL (a new value,
status ``corrected``, ``updated_at`` moved into the next hour), then runs the 11:00 window:
the merge on ``result_id`` must leave each result once, in its latest version.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import attrs
import pytest

from drivetrain import Pipeline, RunRecord, RunStatus
from tests.servers.fakesnow_server import FakeSnowServer
from tests.servers.mariadb import MariaDBServer

from . import doc_blocks
from .conftest import archive_override, new_databases, sf_rows, snowflake_overrides
from .datasets import LAB_COLUMNS, LAB_PER_WINDOW, LAB_TABLE_DDL, WINDOWS, lab_expected, lab_rows

#: Results of the first window corrected before the second runs.
CORRECTED = ("R000010", "R000020")


@attrs.frozen
class Loaded:
    """What the module's runs left behind: records, and the target after each window."""

    records: list[RunRecord]
    rows: list[dict[str, Any]]
    targets: list[dict[str, tuple[Any, ...]]]
    stage_db: str
    target_db: str
    server: FakeSnowServer


def naive(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(v.replace(tzinfo=None) if hasattr(v, "tzinfo") else v for v in (row[c] for c in LAB_COLUMNS))


def fill_table(mariadb: MariaDBServer, rows: list[dict[str, Any]]) -> None:
    conn = mariadb.admin(database=mariadb.database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS lab_results")
            cursor.execute(LAB_TABLE_DDL)
            marks = ", ".join(["%s"] * len(LAB_COLUMNS))
            cursor.executemany(f"INSERT INTO lab_results ({', '.join(LAB_COLUMNS)}) VALUES ({marks})", [naive(r) for r in rows])
    finally:
        conn.close()


def correct(mariadb: MariaDBServer, rows: list[dict[str, Any]]) -> None:
    """A lab corrects two results: new value, new status, updated in the next window."""
    when = WINDOWS[1][0] + timedelta(minutes=30)
    conn = mariadb.admin(database=mariadb.database)
    try:
        with conn.cursor() as cursor:
            for n, result_id in enumerate(CORRECTED):
                row = next(r for r in rows if r["result_id"] == result_id)
                row.update(status="corrected", value_numeric=1000.0 + n, updated_at=when + timedelta(seconds=n))
                cursor.execute("UPDATE lab_results SET status = %s, value_numeric = %s, updated_at = %s WHERE result_id = %s",
                               (row["status"], row["value_numeric"], row["updated_at"].replace(tzinfo=None), result_id))
    finally:
        conn.close()


def target_now(server: FakeSnowServer, database: str) -> dict[str, tuple[Any, ...]]:
    rows = sf_rows(server, database, 'SELECT "result_id", "status", "result_value", "abnormal_flag" FROM PROD.LAB_RESULTS')
    return {r[0]: (r[1], None if r[2] is None else round(float(r[2]), 2), r[3]) for r in rows}


@pytest.fixture(scope="module")
def loaded(mariadb: MariaDBServer, fakesnow_server: FakeSnowServer, warehouse_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    rows = lab_rows()
    fill_table(mariadb, rows)
    stage_db, target_db = new_databases(fakesnow_server)
    changes = {
        "source_system.host": mariadb.host, "source_system.port": mariadb.port, "source_system.database": mariadb.database,
        **snowflake_overrides(fakesnow_server, stage_db, target_db), **archive_override(tmp_path_factory.mktemp("archive")),
    }
    records, targets = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIS_MYSQL_USER", mariadb.user)
        patch.setenv("LIS_MYSQL_PASSWORD", mariadb.password)
        with Pipeline.load("lab_results", overrides=changes) as pipeline:
            runner = pipeline.runner(heartbeat_seconds=0.5)
            for index, (start, _end) in enumerate(WINDOWS):
                if index == 1:
                    correct(mariadb, rows)
                records.append(runner.run(pipeline.grid.window_starting(start)))
                targets.append(target_now(fakesnow_server, target_db))
    yield Loaded(records, rows, targets, stage_db, target_db, fakesnow_server)


class TestRuns:
    def test_both_windows_succeed(self, loaded: Loaded) -> None:
        failures = {r.pipeline_id: r.phases[r.phase_failed].error_message for r in loaded.records if r.phase_failed}
        assert [r.pipeline_status for r in loaded.records] == [RunStatus.SUCCESS, RunStatus.SUCCESS], failures

    def test_the_audit_counts_the_corrections_in_the_window_they_were_made(self, loaded: Loaded) -> None:
        counts = [(a["source_count"], a["stage_count"], a["target_count"])
                  for a in (r.phases["audit"].phase_specific_details for r in loaded.records)]
        second = LAB_PER_WINDOW + len(CORRECTED)  # its own results and the two corrected ones
        assert counts == [(LAB_PER_WINDOW, LAB_PER_WINDOW - 2, LAB_PER_WINDOW - 2), (second, second - 2, second - 2)]


class TestTarget:
    def test_the_first_window_loads_every_valid_result_with_its_flag(self, loaded: Loaded) -> None:
        before = lab_expected(lab_rows(), WINDOWS[0][1])
        assert loaded.targets[0] == {k: (s, None if v is None else round(v, 2), f) for k, (s, v, f) in before.items()}

    def test_a_corrected_result_replaces_its_earlier_version(self, loaded: Loaded) -> None:
        final = loaded.targets[1]
        assert [final[r][:2] for r in CORRECTED] == [("corrected", 1000.0), ("corrected", 1001.0)]
        assert all(final[r][2] == "H" for r in CORRECTED)

    def test_after_both_windows_the_target_holds_each_valid_result_once(self, loaded: Loaded) -> None:
        want = lab_expected(loaded.rows, WINDOWS[1][1])
        assert loaded.targets[1] == {k: (s, None if v is None else round(v, 2), f) for k, (s, v, f) in want.items()}
        total, distinct = sf_rows(loaded.server, loaded.target_db, 'SELECT COUNT(*), COUNT(DISTINCT "result_id") FROM PROD.LAB_RESULTS')[0]
        assert total == distinct == len(want)

    def test_columns_not_named_in_the_source_section_never_reach_snowflake(self, loaded: Loaded) -> None:
        columns = {r[0].lower() for r in sf_rows(loaded.server, loaded.target_db,
                                                  "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'LAB_RESULTS'")}
        assert "internal_note" not in columns
        assert {"test_code", "result_value", "abnormal_flag"} <= columns


class TestRejects:
    def test_the_invalid_results_are_rejected_with_their_reasons(self, loaded: Loaded) -> None:
        reasons = sorted(r[0] for r in sf_rows(loaded.server, loaded.stage_db, 'SELECT "reason" FROM STAGING.STG_LAB_RESULTS__REJECTS'))
        assert reasons == sorted(["loinc_code: longer than 10 characters", "value_numeric: below the minimum 0"] * len(WINDOWS))


class TestDriveTable:
    def test_the_drive_table_holds_one_successful_run_per_window(self, loaded: Loaded) -> None:
        rows = sf_rows(loaded.server, loaded.stage_db,
                       "SELECT PIPELINE_ID, PIPELINE_STATUS, PHASE_FAILED FROM STAGING.PIPELINE_EXECUTION_DRIVE ORDER BY 1")
        assert rows == [("lab_results_20251115T100000Z_run1", "SUCCESS", None),
                        ("lab_results_20251115T110000Z_run1", "SUCCESS", None)]

    def test_the_transfer_records_the_merge_and_the_derived_flag(self, loaded: Loaded) -> None:
        details = loaded.records[1].phases["stage_to_target_transfer"].phase_specific_details
        assert "merged on result_id" in details["transformations_applied"]
        assert "abnormal_flag" in details["transformations_applied"]


class TestRunbookQueries:
    """The runbook's ``-- Snowflake:`` queries, on the tables these runs left (names swapped in)."""

    QUERIES = [(title, statement) for title, statements in doc_blocks.sql("runbook.md", "Snowflake") for statement in statements]

    def sql(self, loaded: Loaded, statement: str) -> list[tuple[Any, ...]]:
        text = statement.replace("CADS_DB", loaded.stage_db).replace("CDW_DB", loaded.target_db)
        return sf_rows(loaded.server, loaded.stage_db, text)

    def test_the_runbook_has_snowflake_queries(self) -> None:
        assert len(self.QUERIES) >= 10

    @pytest.mark.parametrize(("title", "statement"), QUERIES, ids=[t for t, _ in QUERIES])
    def test_each_query_runs(self, loaded: Loaded, title: str, statement: str) -> None:
        self.sql(loaded, statement)

    def test_the_audit_query_shows_the_counts_of_each_run(self, loaded: Loaded) -> None:
        statement = next(s for t, s in self.QUERIES if t.startswith("counts, losses"))
        rows = self.sql(loaded, statement)
        assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
            ("lab_results_20251115T110000Z_run1", 152, 150, 150), ("lab_results_20251115T100000Z_run1", 150, 148, 148)]

    def test_the_rejects_query_explains_the_window(self, loaded: Loaded) -> None:
        statement = next(s for t, s in self.QUERIES if t.startswith("why records"))
        assert sorted(r[0] for r in self.sql(loaded, statement)) == [
            "loinc_code: longer than 10 characters", "value_numeric: below the minimum 0"]
