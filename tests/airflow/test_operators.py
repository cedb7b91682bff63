"""The operators' outcomes, task by task, without a scheduler: ``execute()`` on real runs.

The run id is passed explicitly (a documented argument), so no XCom is involved; the
context carries only the data interval, as Airflow's does.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from drivetrain import PermanentError, Pipeline, RunStatus, SourceCount, TargetCleaning
from drivetrain.airflow import PipelineFinishOperator, PipelinePhaseOperator, PipelineStartOperator
from drivetrain.record import PhaseStatus
from tests.sdk.factory import DAY, make_pipeline_dir

HOUR = timedelta(hours=1)
FIRST = {"data_interval_start": pendulum.instance(DAY), "data_interval_end": pendulum.instance(DAY + HOUR)}


class BrokenCount(SourceCount):
    def run(self, ctx):
        raise PermanentError("the source database is gone")


class BrokenCleaning(TargetCleaning):
    def run(self, ctx):
        raise PermanentError("the archive disk is full")


class BrokenPipeline(Pipeline):
    phase_classes = {"source_count": BrokenCount, "target_cleaning": BrokenCleaning}


@pytest.fixture
def folder(tmp_path):
    return make_pipeline_dir(tmp_path / "lab", phases__target_cleaning={"enabled": True, "continue_on_failure": True})


@pytest.fixture
def broken(folder):
    """A started run of a pipeline whose source_count and target_cleaning fail."""
    pipeline = BrokenPipeline(folder / "config.json")
    return pipeline, start(pipeline)


def start(pipeline) -> str:
    return PipelineStartOperator(task_id="initialize_pipeline", pipeline=pipeline).execute(FIRST)


def phase(pipeline, name, run_id):
    return PipelinePhaseOperator(phase=name, pipeline=pipeline, run_id=run_id).execute({})


def row(folder, run_id):
    with Pipeline.load(folder) as pipeline:
        return pipeline.drive_store().get(run_id)


class TestStart:
    def test_start_creates_the_row_of_the_interval_window_and_returns_its_id(self, folder):
        run_id = start(folder)
        record = row(folder, run_id)
        assert record.pipeline_status is RunStatus.RUNNING
        assert (record.query_window_start_timestamp, record.query_window_end_timestamp) == (DAY, DAY + HOUR)

    def test_start_records_disabled_phases_as_skipped(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "lab")
        record = row(folder, start(folder))
        assert record.phases["target_cleaning"].status is PhaseStatus.SKIPPED
        assert record.phases_skipped == ("target_cleaning",)

    def test_a_misaligned_interval_fails_the_task_without_retry(self, folder):
        context = {"data_interval_start": FIRST["data_interval_start"].add(minutes=30),
                   "data_interval_end": FIRST["data_interval_end"].add(minutes=30)}
        with pytest.raises(AirflowFailException, match="does not start a '1h' window"):
            PipelineStartOperator(task_id="initialize_pipeline", pipeline=folder).execute(context)


class TestPhaseOutcomes:
    def test_a_completed_phase_task_succeeds(self, folder):
        run_id = start(folder)
        assert phase(folder, "stale_pipeline_handling", run_id) is None
        assert row(folder, run_id).phases["stale_pipeline_handling"].status is PhaseStatus.COMPLETED

    def test_a_disabled_phase_task_is_skipped(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "lab")
        with pytest.raises(AirflowSkipException, match="disabled in config"):
            phase(folder, "target_cleaning", start(folder))

    def test_a_failed_phase_fails_the_task_with_its_error(self, broken):
        pipeline, run_id = broken
        with pytest.raises(AirflowFailException, match="source_count failed in .*the source database is gone"):
            phase(pipeline, "source_count", run_id)

    def test_a_phase_after_a_failed_one_fails_without_running(self, broken):
        pipeline, run_id = broken
        with pytest.raises(AirflowFailException):
            phase(pipeline, "source_count", run_id)
        with pytest.raises(AirflowFailException, match="not run: source_count failed earlier"):
            phase(pipeline, "source_to_stage_transfer", run_id)

    def test_a_failure_with_continue_on_failure_lets_the_task_succeed(self, broken, folder):
        pipeline, run_id = broken
        assert phase(pipeline, "target_cleaning", run_id) is None
        record = row(folder, run_id)
        assert record.phases["target_cleaning"].status is PhaseStatus.FAILED and record.phase_failed is None

    def test_a_phase_of_a_finished_run_says_to_clear_the_whole_dag_run(self, folder):
        run_id = start(folder)
        PipelineFinishOperator(task_id="finalize_pipeline", pipeline=folder, run_id=run_id).execute({})
        with pytest.raises(AirflowFailException, match="already FAILED; .*clear the whole DAG run"):
            phase(folder, "source_count", run_id)
