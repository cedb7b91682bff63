"""Each contrib pipeline's dag.py parses in real Airflow 3, without reaching any system."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drivetrain.phase_names import PHASE_NAMES

CONTRIB = Path(__file__).resolve().parents[2] / "contrib_pipelines"
PIPELINES = ("genetic_tests", "incidents", "lab_results")
PHASE_TASKS = [name for name in PHASE_NAMES if name != "target_cleaning"]  # off by default


@pytest.fixture(scope="module")
def bag(airflow_db: Path) -> Any:
    """The whole contrib folder parsed as Airflow's DAG processor parses a dags folder."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(CONTRIB))


class TestContribDags:
    def test_the_folder_parses_without_import_errors(self, bag: Any) -> None:
        assert bag.import_errors == {}

    def test_every_contrib_pipeline_has_its_dag(self, bag: Any) -> None:
        assert {f"pipeline_{name}" for name in PIPELINES} <= set(bag.dag_ids)

    @pytest.mark.parametrize("name", PIPELINES)
    def test_one_task_per_enabled_phase_between_initialize_and_finalize(self, bag: Any, name: str) -> None:
        dag = bag.get_dag(f"pipeline_{name}")
        expected = {"initialize_pipeline", *PHASE_TASKS, "finalize_pipeline", "notify_result", "watch_for_failure"}
        assert set(dag.task_dict) == expected

    @pytest.mark.parametrize("name", PIPELINES)
    def test_hourly_utc_schedule_tags_and_owner_come_from_the_config(self, bag: Any, name: str) -> None:
        dag = bag.get_dag(f"pipeline_{name}")
        assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 * * * *", "UTC")
        assert dag.catchup is False
        assert "contrib" in dag.tags and name in dag.tags
        owner = json.loads((CONTRIB / name / "config.json").read_text())["pipeline_metadata"]["owner_name"]
        assert dag.default_args["owner"] == owner
