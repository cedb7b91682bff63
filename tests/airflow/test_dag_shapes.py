"""The fast DAG shapes on real Airflow 3 (``dag.test()``): files source -> DuckDB, drive table checked.

``shape="window"``: one task loads the DAG run's window; ``shape="catchup"``: one task walks the
due windows. Both must keep the default shape's drive-table semantics: one row per attempt, a
failed attempt resumed by the next from the failed phase, the DAG run FAILED when a run failed.
A failure is injected for one window by the pipeline's own ``pipeline.py`` (a marker file
holding that window's start).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from drivetrain import Pipeline, RunRecord, RunStatus
from drivetrain.airflow import AIRFLOW_RUN_KEY, build_dag
from drivetrain.errors import ConfigError
from drivetrain.record import PhaseStatus
from tests.sdk.factory import DAY, expected_target, make_rows, target_rows

from .conftest import DagRunResult, DeployedPipeline, deploy_pipeline, run_dag
from .deployment import MARKED_PIPELINE

HOUR = timedelta(hours=1)
LOADING = ["source_count", "source_to_stage_transfer", "stage_count"]


def rows_of(deployed: DeployedPipeline) -> list[RunRecord]:
    with Pipeline.load(deployed.folder) as pipeline:
        return list(reversed(pipeline.drive_store().history(deployed.name)))


def expected(start, end) -> list[tuple[str, str]]:
    return sorted((k, v["result"]) for k, v in expected_target(make_rows(), start, end).items())


def windows(rows: list[RunRecord]) -> list[tuple[object, str]]:
    return [(r.query_window_start_timestamp, r.pipeline_status.value.lower()) for r in rows]


@attrs.frozen
class Step:
    airflow: DagRunResult
    rows: list[RunRecord]


def deploy_marked(tmp_path_factory, name: str, build_args: str, fail_at=None, **changes) -> DeployedPipeline:
    deployed = deploy_pipeline(tmp_path_factory.mktemp(name), name, pipeline_py=MARKED_PIPELINE,
                               build_args=build_args, **changes)
    if fail_at is not None:
        (deployed.folder / "fail_window").write_text(fail_at.isoformat())
    return deployed


class TestShapes:
    def test_window_shape_is_one_task_and_catchup_shape_one_task_without_airflow_catchup(self, airflow_db, tmp_path):
        folder = deploy_pipeline(tmp_path, "af_shapes", dag_schedule__catchup=True).folder
        window = build_dag(str(folder), shape="window")
        catchup = build_dag(str(folder), shape="catchup", max_windows=5)
        assert window.task_ids == ["run_window"] and window.catchup is True
        assert catchup.task_ids == ["catch_up"] and catchup.catchup is False
        assert catchup.get_task("catch_up").max_windows == 5
        assert build_dag(str(folder)).task_ids[0] == "initialize_pipeline"

    def test_config_chooses_the_shape_and_build_dag_overrides_it(self, airflow_db, tmp_path):
        folder = deploy_pipeline(tmp_path, "af_config_shape", dag_schedule__dag_shape="catchup",
                                 dag_schedule__max_windows_per_run=7).folder
        dag = build_dag(str(folder))
        assert dag.task_ids == ["catch_up"] and dag.get_task("catch_up").max_windows == 7
        assert build_dag(str(folder), shape="window").task_ids == ["run_window"]
        assert build_dag(str(folder), max_windows=3).get_task("catch_up").max_windows == 3

    def test_an_unknown_shape_in_config_is_a_config_error_naming_the_key(self, airflow_db, tmp_path):
        folder = deploy_pipeline(tmp_path, "af_config_bad", dag_schedule__dag_shape="fast").folder
        with pytest.raises(ConfigError, match="dag_schedule.dag_shape"):
            build_dag(str(folder))

    def test_an_unknown_shape_is_refused_naming_the_shapes(self, airflow_db, tmp_path):
        folder = deploy_pipeline(tmp_path, "af_bad_shape").folder
        with pytest.raises(ValueError, match="unknown DAG shape 'fast'.*phases, window, catchup"):
            build_dag(str(folder), shape="fast")


@pytest.fixture(scope="module")
def window_shape(airflow_db, tmp_path_factory) -> tuple[DeployedPipeline, Step, Step, Step]:
    deployed = deploy_marked(tmp_path_factory, "af_window", 'shape="window"', fail_at=DAY + HOUR)
    ok = Step(run_dag(deployed, DAY), rows_of(deployed))
    failed = Step(run_dag(deployed, None, conf={"window_start": (DAY + HOUR).isoformat()}), rows_of(deployed))
    (deployed.folder / "fail_window").unlink()
    resumed = Step(run_dag(deployed, None, conf={"window_start": (DAY + HOUR).isoformat()}), rows_of(deployed))
    return deployed, ok, failed, resumed


class TestWindowShape:
    def test_one_task_loads_the_window_of_the_logical_date(self, window_shape):
        deployed, ok, _, _ = window_shape
        assert ok.airflow.tasks == {"run_window": "success"} and ok.airflow.state == "success"
        (row,) = ok.rows
        assert row.pipeline_status is RunStatus.SUCCESS and row.query_window_start_timestamp == DAY
        assert row.config_snapshot[AIRFLOW_RUN_KEY]["window_rule"] == "the logical date is the window start"
        assert target_rows(deployed.folder, DAY, DAY + HOUR) == expected(DAY, DAY + HOUR)

    def test_a_failed_phase_fails_the_dag_run_and_closes_the_row_as_failed(self, window_shape):
        _, _, failed, _ = window_shape
        assert failed.airflow.state == "failed" and failed.airflow.tasks == {"run_window": "failed"}
        row = failed.rows[-1]
        assert row.query_window_start_timestamp == DAY + HOUR
        assert row.pipeline_status is RunStatus.FAILED and row.phase_failed == "stage_to_target_transfer"
        assert row.config_snapshot[AIRFLOW_RUN_KEY]["window_rule"] == "conf window_start"

    def test_the_next_run_of_the_window_resumes_from_the_failed_phase(self, window_shape):
        deployed, _, failed, resumed = window_shape
        assert resumed.airflow.state == "success"
        first, second = [r for r in resumed.rows if r.query_window_start_timestamp == DAY + HOUR]
        assert first.pipeline_id == failed.rows[-1].pipeline_id
        assert second.pipeline_status is RunStatus.SUCCESS and second.pipeline_retry_number == 1
        for name in LOADING:
            assert second.phases[name].status is PhaseStatus.SKIPPED and second.phases[name].carried_from == first.pipeline_id
        assert target_rows(deployed.folder, DAY + HOUR, DAY + 2 * HOUR) == expected(DAY + HOUR, DAY + 2 * HOUR)


@pytest.fixture(scope="module")
def catchup_shape(airflow_db, tmp_path_factory) -> tuple[DeployedPipeline, Step, Step]:
    """Windows DAY .. DAY+2h are due at the DAG run of DAY+2h; DAY+1h fails once."""
    deployed = deploy_marked(tmp_path_factory, "af_catchup", 'shape="catchup"', fail_at=DAY + HOUR,
                             dag_schedule__catchup=True)
    failed = Step(run_dag(deployed, DAY + 2 * HOUR), rows_of(deployed))
    (deployed.folder / "fail_window").unlink()
    resumed = Step(run_dag(deployed, DAY + 2 * HOUR), rows_of(deployed))
    return deployed, failed, resumed


class TestCatchUpShape:
    def test_it_stops_at_the_first_failed_window_and_fails_the_dag_run(self, catchup_shape):
        _, failed, _ = catchup_shape
        assert failed.airflow.state == "failed" and failed.airflow.tasks == {"catch_up": "failed"}
        assert windows(failed.rows) == [(DAY, "success"), (DAY + HOUR, "failed")]
        assert failed.rows[-1].phase_failed == "stage_to_target_transfer"

    def test_the_next_dag_run_resumes_the_failed_window_first_then_goes_on(self, catchup_shape):
        deployed, failed, resumed = catchup_shape
        assert resumed.airflow.state == "success"
        assert windows(resumed.rows) == [(DAY, "success"), (DAY + HOUR, "failed"), (DAY + HOUR, "success"),
                                         (DAY + 2 * HOUR, "success")]
        retried = resumed.rows[2]
        assert retried.pipeline_retry_number == 1
        assert all(retried.phases[n].carried_from == failed.rows[1].pipeline_id for n in LOADING)
        assert target_rows(deployed.folder, DAY, DAY + 3 * HOUR) == expected(DAY, DAY + 3 * HOUR)

    def test_rows_record_the_dag_run_and_the_catch_up_rule(self, catchup_shape):
        _, _, resumed = catchup_shape
        recorded = resumed.rows[-1].config_snapshot[AIRFLOW_RUN_KEY]
        assert recorded["run_type"] == "manual"
        assert recorded["window_rule"].startswith("catch-up: the due windows up to 2025-11-15T03:00:00+00:00")

    def test_it_runs_at_most_max_windows_and_the_next_dag_run_goes_on(self, airflow_db, tmp_path_factory):
        deployed = deploy_marked(tmp_path_factory, "af_catchup_max", 'shape="catchup", max_windows=2',
                                 dag_schedule__catchup=True)
        first = run_dag(deployed, DAY + 2 * HOUR)
        after_first = windows(rows_of(deployed))
        second = run_dag(deployed, DAY + 2 * HOUR)
        assert first.state == second.state == "success"
        assert after_first == [(DAY, "success"), (DAY + HOUR, "success")]
        assert windows(rows_of(deployed)) == [*after_first, (DAY + 2 * HOUR, "success")]

    def test_windows_after_the_dag_runs_window_are_left_for_later(self, airflow_db, tmp_path_factory):
        deployed = deploy_marked(tmp_path_factory, "af_catchup_upto", 'shape="catchup"', dag_schedule__catchup=True)
        assert run_dag(deployed, DAY + HOUR).state == "success"
        assert windows(rows_of(deployed)) == [(DAY, "success"), (DAY + HOUR, "success")]


def test_the_catch_up_example_of_the_docs_parses(airflow_db, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    doc = (Path(__file__).resolve().parents[2] / "docs" / "airflow.md").read_text()
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if 'shape="catchup"' in b]
    folder = deploy_pipeline(tmp_path, "af_doc_catchup").folder
    dag_file = tmp_path / "example_dag.py"
    dag_file.write_text(example.replace('"lab_results"', repr(str(folder))))
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    (dag,) = bag.dags.values()
    assert dag.task_ids == ["catch_up"] and dag.get_task("catch_up").max_windows == 500
