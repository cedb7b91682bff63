"""build_dag, the operators' arguments, the window of a data interval, and the package boundary.

These build DAGs and parse DAG files without running them.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest

from drivetrain import ConfigError, Pipeline, PipelineNotFound
from drivetrain.airflow import PipelinePhaseOperator, build_dag, window_for_interval
from drivetrain.phase_names import PHASE_NAMES
from tests.sdk.factory import DAY, make_pipeline_dir

CONTRIB = Path(__file__).resolve().parents[2] / "contrib_pipelines"
HOUR = timedelta(hours=1)


@pytest.fixture
def folder(tmp_path):
    return make_pipeline_dir(
        tmp_path / "lab",
        pipeline_metadata__pipeline_description="Lab results.\nMore words for the docs.",
        pipeline_metadata__tags=["lab", "pii"],
        dag_schedule__timezone="Europe/Berlin",
        dag_schedule__catchup=True,
    )


@pytest.fixture
def dag(folder):
    return build_dag(folder)


def upstream(dag, task_id):
    return sorted(dag.task_dict[task_id].upstream_task_ids)


class TestBuildDag:
    def test_dag_id_is_pipeline_and_the_name(self, dag):
        assert dag.dag_id == "pipeline_lab"

    def test_schedule_is_a_cron_data_interval_timetable_in_the_config_zone(self, dag):
        from airflow.sdk import CronDataIntervalTimetable

        assert isinstance(dag.timetable, CronDataIntervalTimetable)
        assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 * * * *", "Europe/Berlin")
        assert str(dag.timezone.name) == "Europe/Berlin"

    def test_start_date_is_midnight_of_the_config_start_date_in_its_zone(self, dag):
        assert dag.start_date == pendulum.datetime(2025, 11, 15, tz="Europe/Berlin")

    def test_catchup_owner_and_retries_come_from_config(self, dag):
        assert dag.catchup is True
        assert dag.default_args == {"owner": "Test Owner", "retries": 0, "start_date": dag.start_date}
        assert dag.task_dict["audit"].owner == "Test Owner"

    def test_tags_are_drivetrain_the_name_and_the_config_tags(self, dag):
        assert set(dag.tags) == {"drivetrain", "lab", "pii"}

    def test_doc_is_the_description_with_a_summary_of_the_systems(self, dag):
        assert dag.description == "Lab results."
        assert "More words for the docs." in dag.doc_md
        assert "duckdb: stg_tests" in dag.doc_md and "files" in dag.doc_md

    def test_tasks_run_initialize_then_each_enabled_phase_then_finalize_then_notify(self, dag):
        order = ["initialize_pipeline", *PHASE_NAMES[:-1], "finalize_pipeline", "notify_result"]
        for before, after in zip(order, order[1:], strict=False):
            assert upstream(dag, after) == [before]

    def test_watcher_follows_every_other_task(self, dag):
        assert upstream(dag, "watch_for_failure") == sorted(t for t in dag.task_dict if t != "watch_for_failure")
        assert dag.task_dict["watch_for_failure"].downstream_task_ids == set()

    def test_trigger_rules_let_skips_through_stop_at_failures_and_always_close(self, dag):
        rules = {task_id: task.trigger_rule.value for task_id, task in dag.task_dict.items()}
        assert {rules[name] for name in PHASE_NAMES[:-1]} == {"none_failed"}
        assert rules["finalize_pipeline"] == rules["notify_result"] == "all_done"
        assert rules["watch_for_failure"] == "one_failed"

    def test_disabled_phases_get_no_task(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "lab", phases__audit={"enabled": False})
        dag = build_dag(folder)
        assert "audit" not in dag.task_dict and "target_cleaning" not in dag.task_dict
        assert upstream(dag, "publish") == ["target_count"] and upstream(dag, "stage_cleaning") == ["publish"]

    def test_dag_arguments_override_config_and_default_args_merge(self, folder):
        dag = build_dag(folder, dag_id="lab_custom", max_active_runs=3, default_args={"retries": 2})
        assert dag.dag_id == "lab_custom" and dag.max_active_runs == 3
        assert dag.default_args == {"owner": "Test Owner", "retries": 2, "start_date": dag.start_date}

    def test_a_pipeline_object_is_accepted(self, folder):
        pipeline = Pipeline.load(folder)
        assert build_dag(pipeline).task_dict["audit"].pipeline is pipeline

    def test_a_deep_copy_or_a_subset_of_the_dag_keeps_the_pipeline(self, dag):
        pipeline = dag.task_dict["audit"].pipeline
        copied = copy.deepcopy(dag)
        subset = dag.partial_subset(task_ids=["audit"], include_downstream=True, include_upstream=False)
        assert copied.task_dict["audit"].pipeline.config is pipeline.config
        assert sorted(subset.task_dict) == ["audit", "finalize_pipeline", "notify_result", "publish", "stage_cleaning", "watch_for_failure"]

    def test_building_opens_no_connection(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "lab", stage_system__path="wh/lab.duckdb", target_system__path="wh/lab.duckdb")
        build_dag(folder)
        assert not (folder / "wh").exists()

    def test_two_builds_serialise_the_same(self, folder):
        from airflow.serialization.serialized_objects import DagSerialization

        first, second = (DagSerialization.to_dict(build_dag(folder)) for _ in range(2))
        assert first == second


class TestContribDags:
    @pytest.mark.parametrize("name", sorted(p.name for p in CONTRIB.iterdir() if (p / "config.json").is_file()))
    def test_each_contrib_pipeline_has_a_dag_file_airflow_parses(self, airflow_db, name):
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(CONTRIB / name / "dag.py"))
        assert not bag.import_errors, bag.import_errors
        assert bag.dag_ids == [f"pipeline_{name}"]


class TestPipelineNames:
    """A DAG file names its pipeline the same way wherever the Airflow process runs."""

    def test_a_registered_name_ignores_a_folder_of_that_name_in_the_working_directory(self, airflow_db, tmp_path, monkeypatch):
        """The reported case: the contrib demo DAG loaded ./demo when parsed from its parent."""
        from airflow.dag_processing.dagbag import DagBag

        make_pipeline_dir(tmp_path / "demo", pipeline_metadata__pipeline_name="demo")
        monkeypatch.chdir(tmp_path)
        bag = DagBag(dag_folder=str(CONTRIB / "demo" / "dag.py"))
        assert not bag.import_errors, bag.import_errors
        pipeline = bag.get_dag("pipeline_demo").task_dict["audit"].pipeline
        assert Path(pipeline.config.source_file) == CONTRIB / "demo" / "config.json"

    def test_a_relative_path_is_refused_saying_what_to_write(self, tmp_path, monkeypatch):
        make_pipeline_dir(tmp_path / "lab")
        monkeypatch.chdir(tmp_path)
        with pytest.raises(PipelineNotFound, match=r"'./lab' is a relative path.*Path\(__file__\).parent / 'lab'"):
            build_dag("./lab")

    def test_a_name_under_the_pipelines_home(self, tmp_path, monkeypatch):
        make_pipeline_dir(tmp_path / "home" / "orders", pipeline_metadata__pipeline_name="orders")
        monkeypatch.setenv("DRIVETRAIN_PIPELINES_HOME", str(tmp_path / "home"))
        assert build_dag("orders").dag_id == "pipeline_orders"


class TestDocs:
    """The DAG files in docs/airflow.md parse, pointed at a real pipeline folder."""

    DOC = (Path(__file__).resolve().parents[2] / "docs" / "airflow.md").read_text()

    @pytest.mark.parametrize("index", range(3))
    def test_each_dag_example_parses(self, airflow_db, folder, tmp_path, index):
        from airflow.dag_processing.dagbag import DagBag

        one_dag_each = [b for b in re.findall(r"```python\n(.*?)```", self.DOC, flags=re.S) if "globals()" not in b]
        example = one_dag_each[index]  # the file building many DAGs: test_parse_reads_only_config.py
        example = example.replace('"/opt/airflow/pipelines/lab_results"', repr(str(folder)))
        example = example.replace('"lab_results"', repr(str(folder)))
        dag_file = tmp_path / "example_dag.py"
        dag_file.write_text(example)
        bag = DagBag(dag_folder=str(dag_file))
        assert not bag.import_errors, bag.import_errors
        (dag,) = bag.dags.values()
        assert upstream(dag, "finalize_pipeline") == ["stage_cleaning"]
        assert len(upstream(dag, "watch_for_failure")) == len(dag.tasks) - 1


class TestPhaseOperator:
    def test_an_unknown_phase_is_refused_when_the_dag_is_parsed(self, folder):
        with pytest.raises(ValueError, match="unknown phase 'audits'"):
            PipelinePhaseOperator(phase="audits", pipeline=folder)

    def test_task_id_defaults_to_the_phase(self, folder):
        assert PipelinePhaseOperator(phase="audit", pipeline=folder).task_id == "audit"


class TestWindowForInterval:
    @pytest.fixture
    def pipeline(self, tmp_path):
        return Pipeline.load(make_pipeline_dir(tmp_path / "lab"))

    def test_a_one_window_interval_gives_that_window(self, pipeline):
        window = window_for_interval(pipeline, pendulum.instance(DAY), pendulum.instance(DAY + HOUR))
        assert (window.start, window.end) == (DAY, DAY + HOUR)

    def test_an_interval_in_another_zone_is_the_same_instant(self, pipeline):
        start = pendulum.instance(DAY).in_timezone("America/New_York")
        window = window_for_interval(pipeline, start, start.add(hours=1))
        assert window.start == DAY

    def test_an_interval_starting_between_windows_is_a_clear_error(self, pipeline):
        with pytest.raises(ConfigError, match="does not start a '1h' window.*cron expression"):
            window_for_interval(pipeline, DAY + HOUR / 2, DAY + 3 * HOUR / 2)

    def test_an_interval_longer_than_a_window_is_a_clear_error(self, pipeline):
        with pytest.raises(ConfigError, match="is not one '1h' window.*fire once per window"):
            window_for_interval(pipeline, DAY, DAY + 2 * HOUR)

    def test_a_run_without_data_interval_is_a_clear_error(self, pipeline):
        with pytest.raises(ConfigError, match="no data interval"):
            window_for_interval(pipeline, None, None)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


class TestPackageBoundary:
    def test_the_core_never_imports_airflow(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "lab")
        code = (
            "import sys, drivetrain, drivetrain.cli, drivetrain.connectors.duckdb, drivetrain.connectors.files\n"
            f"from drivetrain import Pipeline\nPipeline.load({str(folder)!r}).runner().run(Pipeline.load({str(folder)!r}).grid.first())\n"
            "print('airflow' in sys.modules)\n"
        )
        done = run_python(code)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "False"

    def test_without_airflow_the_package_names_the_extra_to_install(self):
        done = run_python("import sys\nsys.modules['airflow'] = None\nimport drivetrain.airflow\n")
        assert done.returncode != 0
        assert "MissingExtraError" in done.stderr and "pip install 'drivetrain[airflow]'" in done.stderr
