"""The settle DAG of docs/airflow.md, run by real Airflow 3 (``dag.test()``) on a pipeline whose
recent windows were loaded before late records arrived."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import make_pipeline_dir, query

from .conftest import DAGS_FOLDER

DOC = (Path(__file__).resolve().parents[2] / "docs" / "airflow.md").read_text()
HOUR = timedelta(hours=1)


def settle_example() -> str:
    (example,) = [block for block in re.findall(r"```python\n(.*?)```", DOC, flags=re.S) if "settle(pipeline)" in block]
    return example


def record(i: int, when: datetime, prefix: str = "T") -> dict[str, Any]:
    return {"test_id": f"{prefix}{i:05d}", "age": 40, "result": "positive", "reported_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


def test_the_documented_settle_dag_reloads_the_window_that_received_late_records(airflow_db: Path, tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = hour - 2 * HOUR
    rows = [record(w * 10 + i, first + w * HOUR + timedelta(minutes=10 * i)) for w in range(2) for i in range(3)]
    folder = make_pipeline_dir(tmp_path / "late_lab", rows, query_window__settle_horizon="6h",
                               pipeline_metadata__pipeline_name="late_lab", dag_schedule__start_date=first.date().isoformat())
    with Pipeline.load(folder) as pipeline:
        for window in pipeline.grid.windows_between(first, hour):
            assert pipeline.runner().run(window).pipeline_status is RunStatus.SUCCESS
    with open(folder / "data" / "records.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record(900, first + timedelta(minutes=50), prefix="L")) + "\n")

    dag_file = DAGS_FOLDER / "settle_late_lab_dag.py"
    dag_file.write_text(settle_example().replace('"/opt/airflow/pipelines/lab_results"', repr(str(folder))))
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    run = bag.get_dag("settle_lab_results").test(logical_date=hour)
    assert str(getattr(run.state, "value", run.state)) == "success"

    with Pipeline.load(folder) as pipeline:
        newest = pipeline.drive_store().history("late_lab", limit=1)[0]
    assert newest.pipeline_id == f"late_lab_{first:%Y%m%dT%H%M%SZ}_run2" and newest.pipeline_status is RunStatus.SUCCESS
    reason = newest.phases["source_count"].phase_specific_details["reload"]["reason"]
    assert reason == f"source count 3 -> 4 since the run of late_lab_{first:%Y%m%dT%H%M%SZ}_run1"
    count = query(folder, "SELECT count(*) FROM tests WHERE reported_at >= ? AND reported_at < ?", [first, first + HOUR])
    assert count[0][0] == 4
