"""A drive-table row damaged by hand (SQL) is reported and stepped around, never blocks the pipeline.

Rows are damaged with SQL in the real DuckDB drive table, in every column whose type lets it
hold a wrong value: the JSON phase columns and config snapshot, the status, the phase arrays.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline, RunStatus
from drivetrain.errors import PermanentError
from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN
from drivetrain.record import PhaseStatus, RunRecord
from drivetrain.testing import FaultPlugin

from .factory import DAY, drive_execute, make_pipeline_dir, query

HOUR = timedelta(hours=1)

#: (column, SQL value) pairs a hand edit or a foreign tool could leave in the drive table.
DAMAGE: list[tuple[str, str]] = [
    *[(VARIANT_COLUMN[name], "'[1, 2]'") for name in PHASE_NAMES],
    ("audit_phase", "'\"COMPLETED\"'"),
    ("audit_phase", "'42'"),
    ("audit_phase", "'{\"status\": \"DONE\"}'"),
    ("audit_phase", "'{\"status\": \"COMPLETED\", \"start_timestamp\": \"yesterday\"}'"),
    ("audit_phase", "'{\"status\": \"COMPLETED\", \"end_timestamp\": 17}'"),
    ("audit_phase", "'{\"status\": \"COMPLETED\", \"retry_number\": \"twice\"}'"),
    ("audit_phase", "'{\"status\": \"COMPLETED\", \"retry_number\": -3}'"),
    ("audit_phase", "'{\"status\": \"COMPLETED\", \"error_message\": {\"a\": 1}}'"),
    ("audit_phase", "'{\"status\": \"COMPLETED\", \"phase_specific_details\": [1]}'"),
    ("pipeline_status", "'DONE'"),
    ("pipeline_status", "''"),
    ("phases_completed", """'["audit", "no_such_phase"]'"""),  # SQL of the default SQLite drive file: lists as JSON
    ("phases_skipped", "'[null]'"),
    ("phases_pending", """'["x"]'"""),
    ("phase_failed", "'no_such_phase'"),
    ("config_snapshot", "'[\"not\", \"an\", \"object\"]'"),
]
#: Values that are well-formed but odd: read without damage, and every view of the row still works.
ODD: list[tuple[str, str]] = [
    ("audit_phase", "'{\"status\": \"COMPLETED\", \"phase_specific_details\": {\"source_count\": 1e308}}'"),
    ("source_count_phase", "'{\"status\": \"COMPLETED\", \"phase_specific_details\": {\"count\": 1e308}}'"),
    ("config_snapshot", "'{\"dag_schedule\": {\"timezone\": \"Mars/Olympus\"}}'"),
    ("config_snapshot", "'{\"dag_schedule\": {\"timezone\": 7}}'"),
    ("config_snapshot", "'{\"dag_schedule\": [1]}'"),
]


def every_view(record: RunRecord) -> None:
    """What the commands print of a record: none of it may raise."""
    from drivetrain.cli._records import header_rows, phase_rows, run_line

    header_rows(record)
    phase_rows(record)
    run_line(record)
    json.dumps(record.to_json(), default=str)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_pipeline_dir(tmp_path / "lab")


@pytest.fixture(scope="module")
def ran_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A folder whose first window ran once (SUCCESS); tests damage copies of it."""
    template = make_pipeline_dir(tmp_path_factory.mktemp("damaged") / "lab")
    return template, run(template).pipeline_id


@pytest.fixture
def one_run(ran_once: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    template, run_id = ran_once
    copy = tmp_path / "lab"
    shutil.copytree(template, copy, ignore=shutil.ignore_patterns("*.locks"))
    return copy, run_id


def run(folder: Path, window_index: int = 0) -> RunRecord:
    with Pipeline.load(folder) as pipeline:
        window = pipeline.grid.first()
        for _ in range(window_index):
            window = pipeline.grid.next(window)
        return pipeline.runner(heartbeat_seconds=0.2).run(window)


def damage(folder: Path, column: str, value_sql: str, run_id: str) -> None:
    drive_execute(folder, f'UPDATE pipeline_execution_drive SET "{column}" = {value_sql} WHERE pipeline_id = ?', [run_id])


def history(folder: Path) -> list[RunRecord]:
    with Pipeline.load(folder) as pipeline:
        return pipeline.drive_store().history(pipeline.name)


class TestDamagedRowIsRead:
    @pytest.mark.parametrize(("column", "value"), DAMAGE, ids=[f"{c}={v}" for c, v in DAMAGE])
    def test_every_reader_gets_the_row_with_its_damage_named(self, one_run: tuple[Path, str], column: str, value: str) -> None:
        folder, run_id = one_run
        damage(folder, column, value, run_id)
        with Pipeline.load(folder) as pipeline:
            store = pipeline.drive_store()
            (read,) = store.history(pipeline.name)
            assert store.get(run_id) == read
            assert store.attempts(pipeline.name, DAY, DAY + HOUR) == [read]
            assert pipeline.runner().next_window(now=DAY + 10 * HOUR) is not None
        assert read.pipeline_id == run_id
        assert any(problem.startswith(column) for problem in read.damage), read.damage
        every_view(read)

    @pytest.mark.parametrize(("column", "value"), ODD, ids=[f"{c}={v}" for c, v in ODD])
    def test_odd_but_well_formed_values_read_without_damage_and_print(self, one_run: tuple[Path, str], column: str,
                                                                      value: str) -> None:
        folder, run_id = one_run
        damage(folder, column, value, run_id)
        (read,) = history(folder)
        assert read.damage == ()
        every_view(read)

    def test_the_damage_is_logged_once_with_row_column_and_store(self, folder: Path, caplog: pytest.LogCaptureFixture) -> None:
        first = run(folder)
        damage(folder, "audit_phase", "'[1, 2]'", first.pipeline_id)
        with caplog.at_level(logging.WARNING, logger="drivetrain.record"):
            history(folder)
            history(folder)
        warnings = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
        assert len(warnings) == 1
        assert first.pipeline_id in warnings[0]
        assert "audit_phase: expected a JSON object, found a list [1, 2]" in warnings[0]
        assert "drive.sqlite" in warnings[0]  # the default drive file

    def test_a_sound_row_has_no_damage_and_no_damage_key_in_json(self, folder: Path) -> None:
        run(folder)
        (read,) = history(folder)
        assert read.damage == ()
        assert "damage" not in read.to_json()


class TestDamagedRowIsSteppedAround:
    def test_an_unreadable_status_reads_as_failed_and_the_window_runs_again(self, folder: Path) -> None:
        first = run(folder)
        damage(folder, "pipeline_status", "'DONE'", first.pipeline_id)
        (read,) = history(folder)
        assert read.pipeline_status is RunStatus.FAILED
        again = run(folder)
        assert again.pipeline_status is RunStatus.SUCCESS
        assert again.pipeline_retry_number == 1

    def test_the_next_window_runs_after_a_damaged_successful_row(self, folder: Path) -> None:
        first = run(folder)
        for name in PHASE_NAMES:
            damage(folder, VARIANT_COLUMN[name], "'\"garbage\"'", first.pipeline_id)
        second = run(folder, window_index=1)
        assert second.pipeline_status is RunStatus.SUCCESS

    def test_a_failed_row_with_a_damaged_phase_is_resumed_from_before_that_phase(self, folder: Path) -> None:
        with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
            failed = run(folder)
        assert failed.phase_failed == "stage_to_target_transfer"
        damage(folder, "stage_count_phase", "'[\"damaged\"]'", failed.pipeline_id)
        resumed = run(folder)
        assert resumed.pipeline_status is RunStatus.SUCCESS
        assert resumed.phases["source_to_stage_transfer"].carried_from == failed.pipeline_id
        assert resumed.phases["stage_count"].status is PhaseStatus.COMPLETED  # ran again, not carried

    def test_closing_a_dead_damaged_row_keeps_the_unreadable_value(self, folder: Path) -> None:
        first = run(folder)
        drive_execute(folder, "UPDATE pipeline_execution_drive SET pipeline_status = 'RUNNING', audit_phase = '[7]' "
                              "WHERE pipeline_id = ?", [first.pipeline_id])
        again = run(folder)
        assert again.pipeline_status is RunStatus.SUCCESS
        (stored,) = query(folder, "SELECT CAST(audit_phase AS VARCHAR) FROM pipeline_execution_drive WHERE pipeline_id = ?",
                          [first.pipeline_id])[0]
        assert json.loads(stored)["phase_specific_details"] == {"unreadable": [7]}


class TestUnreadableRow:
    def test_a_window_that_ends_before_it_starts_is_a_clear_error_naming_the_row(self, one_run: tuple[Path, str]) -> None:
        folder, run_id = one_run
        damage(folder, "query_window_end_timestamp", "'2000-01-01 00:00:00.000000+00:00'", run_id)
        with pytest.raises(PermanentError, match=rf"row '{run_id}' has a window that ends .* before it starts"):
            history(folder)

    def test_a_row_without_a_pipeline_name_is_a_clear_permanent_error(self) -> None:
        row = RunRecord.from_row({"pipeline_id": "x_run1", "pipeline_name": "x", "pipeline_status": "SUCCESS",
                                  "query_window_start_timestamp": DAY, "query_window_end_timestamp": DAY + HOUR,
                                  "target_date": DAY.date(), "query_window_duration": "1h"}).to_row()
        row["pipeline_name"] = None
        with pytest.raises(PermanentError, match=r"row 'x_run1' has no usable pipeline_name .*docs/runbook.md"):
            RunRecord.from_row(row, where="somewhere")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
PHASE_KEYS = ["status", "start_timestamp", "end_timestamp", "actual_run_duration", "expected_run_duration",
              "retry_number", "error_message", "skip_reason", "carried_from", "phase_specific_details"]
PHASE_VALUES = JSON_VALUES | st.dictionaries(st.sampled_from(PHASE_KEYS), JSON_VALUES, max_size=5)


def sound_row() -> dict[str, Any]:
    return RunRecord(pipeline_id="lab_run1", pipeline_name="lab", pipeline_start_timestamp=DAY,
                     query_window_start_timestamp=DAY, query_window_end_timestamp=DAY + HOUR,
                     target_date=DAY.date(), query_window_duration="1h").to_row()


class TestAnyValue:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        column=st.sampled_from([*VARIANT_COLUMN.values(), "config_snapshot", "pipeline_status", "phases_completed",
                                "phases_skipped", "phases_pending", "phase_failed", "pipeline_retry_number",
                                "pipeline_end_timestamp", "heartbeat_at", "target_date", "lease_holder",
                                "pipeline_start_timestamp", "created_at", "query_window_duration"]),
        value=PHASE_VALUES,
    )
    def test_any_json_value_in_any_column_reads_without_raising(self, column: str, value: Any) -> None:
        row = sound_row()
        row[column] = value
        record = RunRecord.from_row(row)
        assert record.pipeline_id == "lab_run1"
        assert set(record.phases) == set(PHASE_NAMES)
        assert all(name in PHASE_NAMES for name in (*record.phases_completed, *record.phases_skipped, *record.phases_pending))
        every_view(record)
        if record.damage:
            assert any(p.split(":")[0].split(".")[0] == column for p in record.damage), record.damage
