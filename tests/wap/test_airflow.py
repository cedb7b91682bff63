"""The Airflow DAG runs publish between audit and stage_cleaning, watched like every phase task."""

from __future__ import annotations

from pathlib import Path

from drivetrain.airflow import build_dag
from tests.sdk.factory import make_pipeline_dir


def upstream(dag, task_id: str) -> list[str]:
    return sorted(dag.task_dict[task_id].upstream_task_ids)


def test_publish_follows_the_audit_and_precedes_stage_cleaning(tmp_path: Path) -> None:
    dag = build_dag(make_pipeline_dir(tmp_path / "lab"))
    assert upstream(dag, "publish") == ["audit"]
    assert upstream(dag, "stage_cleaning") == ["publish"]
    assert dag.task_dict["publish"].trigger_rule.value == "none_failed"
    assert "publish" in dag.task_dict["watch_for_failure"].upstream_task_ids


def test_a_direct_pipeline_keeps_the_task_which_records_the_skip(tmp_path: Path) -> None:
    dag = build_dag(make_pipeline_dir(tmp_path / "lab", target_system__publish="direct"))
    assert upstream(dag, "stage_cleaning") == ["publish"]
