"""The examples in docs/writing-a-pipeline.md run as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb

from drivetrain import Pipeline, RunStatus

from .factory import make_rows, query, ts_of


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


def test_the_spec_style_script_example_runs_as_the_source_count(tmp_path):
    """The script goes into user_scripts/ as printed; only its ``...`` placeholder is filled in."""
    folder = tmp_path / "lab_results"
    (folder / "data").mkdir(parents=True)
    (folder / "user_scripts").mkdir()
    (folder / "config.json").write_text(blocks("json")[0])
    rows = make_rows(200, hours=2, duplicates=1)
    (folder / "data" / "part1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = next(b for b in blocks("python") if "def source_count(config, record)" in b)
    assert script.count("count = ...") == 1, "the example's placeholder changed; update this test"
    helper = f"""
import json
from datetime import datetime
from pathlib import Path


def count_in_source(config, start, end):
    Path({str(folder / "calls.txt")!r}).open("a").write(f"{{start}} {{end}}\\n")
    lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
    rows = [json.loads(line) for path in Path({str(folder)!r}).glob(config["source_system"]["path"]) for line in path.open()]
    return sum(lo <= datetime.fromisoformat(r["reported_at"].replace("Z", "+00:00")) < hi for r in rows)
"""
    filled = script.replace("count = ...", "count = count_in_source(config, start, end)")
    (folder / "user_scripts" / "source_count.py").write_text(helper + "\n" + filled)

    with Pipeline.load(folder, overrides={"phases.audit.count_tolerances.source_to_stage_tolerance_percent": 5.0}) as pipeline:
        window = pipeline.grid.first()
        record = pipeline.runner().run(window)
    assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
    in_window = sum(window.start <= ts_of(r) < window.end for r in rows)
    assert 0 < in_window < len(rows)
    assert record.phases["source_count"].phase_specific_details["count"] == in_window
    assert (folder / "calls.txt").read_text().split() == [window.start.isoformat(), window.end.isoformat()]


def test_the_testing_example_runs_each_of_its_tests(tmp_path, monkeypatch):
    """The pytest file of section 5 is executed: each test in a fresh copy of the lab_results folder."""
    example = next(b for b in blocks("python") if "from drivetrain.testing import" in b)
    namespace: dict = {}
    exec(compile(example, "test_lab_results.py", "exec"), namespace)  # noqa: S102 - the documented example
    tests = {name: fn for name, fn in namespace.items() if name.startswith("test_") and callable(fn)}
    assert set(tests) == {"test_rows_from_memory_reach_the_target", "test_a_failed_extract_is_resumed_by_the_next_run"}
    for name, test in tests.items():
        folder = tmp_path / name / "lab_results"
        (folder / "data").mkdir(parents=True)
        (folder / "config.json").write_text(blocks("json")[0])
        python = blocks("python")
        (folder / "pipeline.py").write_text(python[0] + "\n" + python[1] + "\n" + python[2])
        rows = make_rows(200, hours=1, invalid_every=0, duplicates=1)
        (folder / "data" / "part1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        monkeypatch.chdir(folder.parent)
        test()
        assert query(folder, "SELECT count(*) FROM pipeline_execution_drive")[0][0] >= 1
