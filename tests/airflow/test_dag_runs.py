"""Whole DAG runs on real Airflow 3 (``dag.test()``): files source -> DuckDB, drive table checked.

Each DAG file is the one-liner users deploy, pointing at a pipeline folder from
tests/sdk/factory. A failure is injected by the pipeline's own ``pipeline.py`` (the usual way
to customise a phase): stage_to_target_transfer fails while a marker file exists. The DAG runs
happen once per module; the tests read what they left in Airflow and in the drive table.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from drivetrain import Pipeline, RunRecord, RunStatus
from drivetrain.record import PhaseStatus
from tests.sdk.factory import DAY, expected_target, make_rows, query, target_rows

from .conftest import DagRunResult, DeployedPipeline, deploy_pipeline, run_dag

HOUR = timedelta(hours=1)
#: The window of the DAG run whose logical date is DAY (a run's logical date is its window's start).
FIRST = (DAY, DAY + HOUR)
BEFORE_LOAD = ["stale_pipeline_handling", "pre_validation"]
LOADING = ["source_count", "source_to_stage_transfer", "stage_count"]
AFTER_FAILURE = ["target_count", "audit", "publish", "stage_cleaning"]
ENABLED = [*BEFORE_LOAD, *LOADING, "stage_to_target_transfer", *AFTER_FAILURE]

FLAKY_PIPELINE = """
    from pathlib import Path

    from drivetrain import Pipeline, PermanentError, StageToTargetTransfer

    MARKER = Path(__file__).with_name("fail_stage_to_target")


    class FlakyTransfer(StageToTargetTransfer):
        def run(self, ctx):
            if MARKER.exists():
                raise PermanentError("injected failure: the target refused the load")
            return super().run(ctx)


    class FlakyLab(Pipeline):
        phase_classes = {"stage_to_target_transfer": FlakyTransfer}
"""


@attrs.frozen
class Outcome:
    """One DAG run and the drive-table rows of the window right after it, oldest first."""

    deployed: DeployedPipeline
    airflow: DagRunResult
    rows: list[RunRecord]
    target: list[tuple[str, str]] | None
    """The target's rows in the window (None while the target table does not exist)."""

    @property
    def row(self) -> RunRecord:
        return self.rows[-1]


def run_and_read(deployed: DeployedPipeline) -> Outcome:
    result = run_dag(deployed, FIRST[0])
    with Pipeline.load(deployed.folder) as pipeline:
        rows = list(reversed(pipeline.drive_store().history(deployed.name)))
    exists = query(deployed.folder, "SELECT 1 FROM information_schema.tables WHERE table_name = 'tests'")
    target = target_rows(deployed.folder, *FIRST) if exists else None
    return Outcome(deployed, result, rows, target)


def expected_rows() -> list[tuple[str, str]]:
    return sorted((k, v["result"]) for k, v in expected_target(make_rows(), *FIRST).items())


@pytest.fixture(scope="module")
def succeeded(airflow_db, tmp_path_factory) -> Outcome:
    return run_and_read(deploy_pipeline(tmp_path_factory.mktemp("ok"), "af_success"))


@pytest.fixture(scope="module")
def failed_then_resumed(airflow_db, tmp_path_factory) -> tuple[Outcome, Outcome]:
    deployed = deploy_pipeline(tmp_path_factory.mktemp("flaky"), "af_flaky", pipeline_py=FLAKY_PIPELINE)
    marker = deployed.folder / "fail_stage_to_target"
    marker.touch()
    failed = run_and_read(deployed)
    marker.unlink()
    return failed, run_and_read(deployed)


@pytest.fixture(scope="module")
def failed(failed_then_resumed) -> Outcome:
    return failed_then_resumed[0]


@pytest.fixture(scope="module")
def resumed(failed_then_resumed) -> Outcome:
    return failed_then_resumed[1]


class TestSuccessfulRun:
    def test_dag_run_succeeds_with_every_task_up_to_notify_successful(self, succeeded):
        assert succeeded.airflow.state == "success", succeeded.airflow.tasks
        tasks = ["initialize_pipeline", *ENABLED, "finalize_pipeline", "notify_result"]
        assert succeeded.airflow.with_state("success") == sorted(tasks)

    def test_failure_watcher_is_skipped(self, succeeded):
        assert succeeded.airflow.tasks["watch_for_failure"] == "skipped"

    def test_drive_row_is_success_with_every_enabled_phase_completed(self, succeeded):
        (row,) = succeeded.rows
        assert row.pipeline_status is RunStatus.SUCCESS
        assert (row.query_window_start_timestamp, row.query_window_end_timestamp) == FIRST
        assert list(row.phases_completed) == ENABLED
        assert row.phases_pending == () and row.phase_failed is None
        assert row.pipeline_end_timestamp is not None and row.pipeline_run_duration

    def test_disabled_phase_gets_no_task_and_is_recorded_as_skipped(self, succeeded):
        assert "target_cleaning" not in succeeded.airflow.tasks
        assert succeeded.row.phases_skipped == ("target_cleaning",)
        assert succeeded.row.phases["target_cleaning"].skip_reason == "disabled in config"

    def test_target_holds_each_valid_row_of_the_window_once(self, succeeded):
        assert succeeded.target == expected_rows()


class TestFailedPhase:
    def test_dag_run_fails_and_so_does_the_phase_task(self, failed):
        assert failed.airflow.state == "failed", failed.airflow.tasks
        assert failed.airflow.tasks["stage_to_target_transfer"] == "failed"
        assert failed.airflow.tasks["watch_for_failure"] == "failed"

    def test_later_phases_do_not_run(self, failed):
        assert failed.airflow.with_state("upstream_failed") == sorted(AFTER_FAILURE)
        assert all(failed.row.phases[name].status is PhaseStatus.PENDING for name in AFTER_FAILURE)

    def test_finalize_and_notify_still_run(self, failed):
        assert failed.airflow.tasks["finalize_pipeline"] == "success"
        assert failed.airflow.tasks["notify_result"] == "success"

    def test_drive_row_is_closed_as_failed_naming_the_phase_and_error(self, failed):
        (row,) = failed.rows
        assert row.pipeline_status is RunStatus.FAILED
        assert row.phase_failed == "stage_to_target_transfer"
        assert "injected failure" in row.phases["stage_to_target_transfer"].error_message
        assert list(row.phases_completed) == [*BEFORE_LOAD, *LOADING]
        assert row.pipeline_end_timestamp is not None

    def test_target_is_not_written(self, failed):
        assert failed.target is None


class TestResume:
    def test_next_dag_run_of_the_interval_succeeds(self, resumed):
        assert resumed.airflow.state == "success", resumed.airflow.tasks
        assert resumed.airflow.tasks["stage_to_target_transfer"] == "success"

    def test_phases_completed_by_the_failed_run_show_as_skipped(self, resumed):
        assert resumed.airflow.with_state("skipped") == sorted([*LOADING, "watch_for_failure"])

    def test_drive_row_carries_the_completed_phases_from_the_failed_run(self, failed, resumed):
        first, second = resumed.rows
        assert first.pipeline_id == failed.row.pipeline_id and first.pipeline_status is RunStatus.FAILED
        assert second.pipeline_status is RunStatus.SUCCESS and second.pipeline_retry_number == 1
        for name in LOADING:
            assert second.phases[name].status is PhaseStatus.SKIPPED
            assert second.phases[name].carried_from == first.pipeline_id
        assert {"stage_to_target_transfer", *AFTER_FAILURE} <= set(second.phases_completed)

    def test_target_holds_each_valid_row_of_the_window_once(self, resumed):
        assert resumed.target == expected_rows()
