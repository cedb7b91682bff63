"""Airflow's operators drive a run step by step on a SQLite drive table (real operators, no scheduler)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk.exceptions import AirflowSkipException

from drivetrain import Pipeline, RunStatus
from drivetrain.airflow import PipelineFinishOperator, PipelinePhaseOperator, PipelineStartOperator
from drivetrain.connectors.sqlite.drive import SqliteDriveStore
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.record import PhaseStatus
from tests.sdk.factory import DAY, make_pipeline_dir, make_rows

HOUR = timedelta(hours=1)
FIRST = {"data_interval_start": pendulum.instance(DAY), "data_interval_end": pendulum.instance(DAY + HOUR)}


def test_a_dag_run_task_by_task_writes_and_closes_its_row_in_the_sqlite_drive_table(tmp_path: Path) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", make_rows(n=40, hours=1, duplicates=0, invalid_every=0),
                               drive_table={"type": "sqlite"})
    run_id = PipelineStartOperator(task_id="initialize_pipeline", pipeline=folder).execute(FIRST)
    for name in PHASE_NAMES:
        try:
            PipelinePhaseOperator(phase=name, pipeline=folder, run_id=run_id).execute({})
        except AirflowSkipException:
            assert name == "target_cleaning"  # turned off in the test config
        with Pipeline.load(folder) as pipeline:
            store = pipeline.drive_store()
            assert isinstance(store, SqliteDriveStore)
            lease = store.current_lease("lab", DAY)
            assert lease is not None and lease.holder.startswith("step:")  # kept between the steps
    PipelineFinishOperator(task_id="finalize_pipeline", pipeline=folder, run_id=run_id).execute({})
    with Pipeline.load(folder) as pipeline:
        row = pipeline.drive_store().get(run_id)
    assert row is not None and row.pipeline_status is RunStatus.SUCCESS
    assert row.phases["audit"].status is PhaseStatus.COMPLETED
