"""The examples in docs/writing-a-pipeline.md run as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb

from drivetrain import Pipeline, RunStatus

from .factory import make_rows


def query_db(path, sql):
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()

DOC = (Path(__file__).resolve().parents[2] / "docs" / "writing-a-pipeline.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)


def test_the_config_and_pipeline_examples_run(tmp_path):
    folder = tmp_path / "lab_results"
    (folder / "data").mkdir(parents=True)
    config = json.loads(blocks("json")[0])
    (folder / "config.json").write_text(json.dumps(config))
    rows = make_rows(200, hours=1, duplicates=1)
    (folder / "data" / "part1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    python = blocks("python")
    (folder / "pipeline.py").write_text(python[0] + "\n" + python[1] + "\n" + python[2])
    with Pipeline.load(folder, overrides={"phases.audit.count_tolerances.source_to_stage_tolerance_percent": 5.0}) as pipeline:
        assert type(pipeline).__name__ == "LabResults"
        record = pipeline.runner().run(pipeline.grid.first())
    assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
    bands = {r[0] for r in query_db(folder / "warehouse.duckdb", "SELECT DISTINCT age_band FROM lab_results")}
    assert bands == {"minor", "adult"}


def test_the_spec_style_script_example_is_valid_python():
    script = next(b for b in blocks("python") if "def source_count(config, record)" in b)
    compile(script, "source_count.py", "exec")
