"""Pre-validation checks what the spec lists: the stage is writable, and the stage and target
tables match the declared columns; each check is in the phase's details."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from drivetrain import PhaseStatus, Pipeline, RunRecord, RunStatus
from drivetrain.phases.prechecks import type_fits
from tests.sdk.factory import make_pipeline_dir


def run(folder: Path, index: int = 0) -> RunRecord:
    with Pipeline.load(folder) as pipeline:
        window = pipeline.grid.first()
        for _ in range(index):
            window = pipeline.grid.next(window)
        return pipeline.runner().run(window)


def sql(folder: Path, *statements: str) -> None:
    with duckdb.connect(str(folder / "warehouse.duckdb")) as conn:
        for statement in statements:
            conn.execute(statement)


def checks(record: RunRecord) -> list[dict[str, Any]]:
    return [c for c in record.phases["pre_validation"].phase_specific_details["validation_checks"] if "system" in c]


def by_name(record: RunRecord, name: str) -> list[dict[str, Any]]:
    return [c for c in checks(record) if c["check"] == name]


def error(record: RunRecord) -> str:
    assert record.phase_failed == "pre_validation", record.phase_failed
    return record.phases["pre_validation"].error_message or ""


class TestStructureChecks:
    def test_a_first_run_reports_the_writable_stage_and_the_target_it_will_create(self, tmp_path: Path) -> None:
        record = run(make_pipeline_dir(tmp_path / "p"))
        assert record.pipeline_status is RunStatus.SUCCESS
        [writable] = by_name(record, "stage_writable")
        assert writable["status"] == "PASSED" and writable["table"] == "main.stg_tests"
        [target] = by_name(record, "target_structure")
        assert target["status"] == "NOTE" and "does not exist yet" in target["detail"]

    def test_after_a_load_every_declared_column_is_checked_in_both_tables(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "p")
        run(folder)
        record = run(folder, 1)
        columns = {(c["system"], c["column"]): c["status"] for c in checks(record) if c["check"].endswith("_column")}
        for name in ("test_id", "age", "result", "reported_at"):
            assert columns[("stage_system", name)] == "PASSED"
            assert columns[("target_system", name)] == "PASSED"

    def test_a_stage_that_cannot_be_written_fails_naming_system_and_table(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "p")
        sql(folder, "CREATE TABLE real_stage (test_id VARCHAR, reported_at TIMESTAMPTZ)",
            "CREATE VIEW stg_tests AS SELECT * FROM real_stage")
        message = error(run(folder))
        assert "stage_system table main.stg_tests" in message and "cannot be written" in message

    def test_a_target_column_of_the_wrong_type_fails_naming_system_table_and_column(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "p")
        sql(folder, "CREATE TABLE tests (test_id VARCHAR, age BOOLEAN, result VARCHAR, reported_at TIMESTAMPTZ)")
        record = run(folder)
        message = error(record)
        assert "target_system table main.tests column 'age' is BOOLEAN but stage_system.columns declares it integer" in message
        assert record.phases["source_count"].status is PhaseStatus.PENDING

    def test_a_missing_target_column_fails_before_any_data_moves(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "p", stage_system__schema_contract={"columns": "freeze"})
        sql(folder, "CREATE TABLE tests (test_id VARCHAR, age BIGINT, reported_at TIMESTAMPTZ)")
        assert "target_system table main.tests has no column 'result' (declared string" in error(run(folder))

    def test_a_missing_target_column_is_a_note_when_the_schema_contract_evolves(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "p")  # schema_contract: evolve is the default
        sql(folder, "CREATE TABLE tests (test_id VARCHAR, age BIGINT, reported_at TIMESTAMPTZ)")
        record = run(folder)
        [missing] = [c for c in checks(record) if c.get("column") == "result" and c["system"] == "target_system"]
        assert missing["status"] == "NOTE" and "the stage-to-target transfer adds it" in missing["detail"]
        assert record.pipeline_status is RunStatus.SUCCESS

    def test_a_missing_stage_column_is_a_note_the_load_adds_it(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "p")
        sql(folder, "CREATE TABLE stg_tests (test_id VARCHAR, age BIGINT, reported_at TIMESTAMPTZ)")
        record = run(folder)
        [missing] = [c for c in checks(record) if c.get("column") == "result" and c["system"] == "stage_system"]
        assert missing["status"] == "NOTE" and "the next load adds it" in missing["detail"]

    def test_a_target_dropped_after_a_load_fails_instead_of_being_created_again(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "p")
        first = run(folder)
        sql(folder, "DROP TABLE tests")
        message = error(run(folder, 1))
        assert "target_system table main.tests" in message and f"yet {first.pipeline_id} loaded a window into it" in message

    def test_a_target_never_written_is_no_error_after_a_success_that_loaded_nothing(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "p")
        empty = run(folder, 5)  # the rows cover the first three hours only
        assert empty.pipeline_status is RunStatus.SUCCESS and empty.phases["target_count"].phase_specific_details["count"] == 0
        sql(folder, "DROP TABLE IF EXISTS tests")
        assert run(folder, 0).pipeline_status is RunStatus.SUCCESS

    def test_a_stage_column_of_the_wrong_type_fails(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "p")
        sql(folder, "CREATE TABLE stg_tests (test_id VARCHAR, age BIGINT, result VARCHAR, reported_at VARCHAR)")
        assert "stage_system table main.stg_tests column 'reported_at' is VARCHAR but stage_system.columns declares it timestamp" in error(run(folder))


class TestTypeFits:
    @pytest.mark.parametrize(("declared", "actual"), [
        ("string", "VARCHAR"), ("string", "TEXT"), ("integer", "BIGINT"), ("integer", "NUMBER(38,0)"), ("float", "DOUBLE"),
        ("boolean", "BOOLEAN"), ("timestamp", "TIMESTAMP WITH TIME ZONE"), ("timestamp", "TIMESTAMP_NTZ"), ("date", "DATE"),
        ("json", "VARIANT"), ("json", "VARCHAR"),
    ])
    def test_types_that_hold_the_values(self, declared: str, actual: str) -> None:
        assert type_fits(declared, actual)

    @pytest.mark.parametrize(("declared", "actual"), [
        ("string", "BIGINT"), ("integer", "VARCHAR"), ("integer", "BOOLEAN"), ("timestamp", "VARCHAR"), ("date", "BIGINT"),
        ("boolean", "VARCHAR"), ("float", "TIMESTAMP"),
    ])
    def test_types_that_do_not(self, declared: str, actual: str) -> None:
        assert not type_fits(declared, actual)
