"""Parsing a DAG file reads the pipeline's config and nothing else.

Airflow parses every DAG file again and again (every 30 s by default), each within
``dagbag_import_timeout``; a fleet has hundreds. So ``build_dag`` must not open the drive table
or the warehouse, connect to a source, or import a connector's client library: the tasks do
that when they run. Checked in a child interpreter, as Airflow's DAG processor would parse:
its ``sys.modules`` and the pipeline folder's files afterwards (the time is in
``benchmarks/airflow_parse.py``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk.factory import make_pipeline_dir
from tests.test_startup_imports import CONNECTOR_CLIENTS

CONTRIB = Path(__file__).resolve().parents[2] / "contrib_pipelines"
REPO = CONTRIB.parent
AIRFLOW_DOC = REPO / "docs" / "airflow.md"
#: The embedded drive table and warehouse: a DuckDB pipeline's DAG needs neither to be built.
EMBEDDED = ("duckdb",)

_PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print("PARSE-PROBE " + json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()},
                                   "modules": sorted(sys.modules)}))
"""


def parse(dags: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _PARSE, str(dags)], capture_output=True, text=True, timeout=300, cwd=REPO,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PARSE-PROBE ")]
    assert lines, f"the parsing interpreter failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("PARSE-PROBE "))


def files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names)


def test_parsing_every_kind_of_pipeline_imports_no_client_and_touches_no_file(airflow_db: Path, tmp_path: Path) -> None:
    embedded = make_pipeline_dir(tmp_path / "lab", stage_system__path="wh/lab.duckdb", target_system__path="wh/lab.duckdb",
                                 stage_system__drive_path="wh/drive.duckdb", target_system__drive_path="wh/drive.duckdb")
    contrib = sorted(p for p in CONTRIB.iterdir() if (p / "config.json").is_file())
    dags = tmp_path / "dags"
    dags.mkdir()
    for folder in [embedded, *contrib]:
        (dags / f"pipeline_{folder.name}.py").write_text(f"from drivetrain.airflow import build_dag\n\ndag = build_dag({str(folder)!r})\n")
    before = {folder: files_under(folder) for folder in [embedded, *contrib]}

    found = parse(dags)

    assert not found["errors"], found["errors"]
    assert len(found["dags"]) == 1 + len(contrib), found["dags"]
    assert loaded(found["modules"], CONNECTOR_CLIENTS) == []
    assert loaded(found["modules"], EMBEDDED) == []
    for folder, files in before.items():
        assert files_under(folder) == files, f"parsing changed files under {folder}"
    assert not (embedded / "wh").exists()


def test_the_documented_file_building_a_fleet_parses_every_dag(airflow_db: Path, tmp_path: Path) -> None:
    home = tmp_path / "pipelines"
    for index in range(12):
        make_pipeline_dir(home / f"lab{index}", pipeline_metadata__pipeline_name=f"lab{index}")
    dags = tmp_path / "dags"
    dags.mkdir()
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", AIRFLOW_DOC.read_text(), flags=re.S) if "globals()" in b]
    (dags / "fleet_dags.py").write_text(example.replace('"/opt/airflow/pipelines"', repr(str(home))))
    found = parse(dags)
    assert not found["errors"], found["errors"]
    assert found["dags"] == sorted(f"pipeline_lab{i}" for i in range(12))
    assert not list(home.rglob("*.duckdb")) and not list(home.rglob("*.locks"))


@pytest.mark.slow
def test_the_parse_benchmark_runs_small(tmp_path: Path) -> None:
    from benchmarks import airflow_parse

    out = tmp_path / "airflow-parse.md"
    text = airflow_parse.main(["--pipelines", "3", "--samples", "1", "--out", str(out)])
    assert out.read_text() == text
    assert "Drive table files created by parsing: 0" in text
