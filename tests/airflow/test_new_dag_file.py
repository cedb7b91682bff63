"""``drivetrain new`` writes the pipeline's DAG file, and the scaffold's own test checks that it parses.

The CLI runs as a subprocess (the installed script, as a user runs it). The DAG file is then
deployed the two ways its docstring offers, a link in the dags folder and the whole folder in
the dags folder, and parsed by Airflow's DagBag as the DAG processor would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("drivetrain")


def new(tmp_path: Path, name: str, *args: str) -> Path:
    done = subprocess.run([str(SCRIPT), "new", name, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp_path / name


def parse(dags_folder: Path) -> tuple[dict[str, str], list[str]]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    return {k: str(v) for k, v in bag.import_errors.items()}, sorted(bag.dag_ids)


@pytest.mark.parametrize("source", ["files", "mysql"])
def test_the_scaffold_writes_a_dag_file_and_its_test_passes(airflow_db, tmp_path: Path, source: str) -> None:
    folder = new(tmp_path, "orders", "--source", source)
    assert "build_dag(Path(__file__).resolve().parent)" in (folder / "orders_dag.py").read_text()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           str(folder / "test_dag.py")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "skipped" not in done.stdout, done.stdout


def test_a_link_in_the_dags_folder_serves_the_pipeline_it_points_to(airflow_db, tmp_path: Path) -> None:
    folder = new(tmp_path, "orders")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "orders_dag.py").symlink_to(folder / "orders_dag.py")
    errors, dag_ids = parse(dags)
    assert (errors, dag_ids) == ({}, ["pipeline_orders"])


def test_the_whole_folder_in_the_dags_folder_gives_one_dag_and_no_import_error(airflow_db, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    new(dags, "orders")
    errors, dag_ids = parse(dags)
    assert (errors, dag_ids) == ({}, ["pipeline_orders"])
