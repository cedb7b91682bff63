"""The first block of docs/airflow.md, from ``airflow db migrate`` to a first green run, run as written.

The block runs in bash with a scratch HOME (so ``$HOME/airflow`` and ``$HOME/pipelines`` are
throwaway folders) and this environment's ``airflow`` and ``drivetrain`` scripts first on PATH.
Only the ``pip install`` line is left out (the test environment has the extras). Then the
drive table must hold the window ``airflow dags test`` loaded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DOC = (Path(__file__).resolve().parents[2] / "docs" / "airflow.md").read_text()


def first_run_block() -> str:
    section = DOC.split("## From `pip install` to a first green run", 1)[1]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0]


def test_the_first_green_run_block_runs_as_written(tmp_path: Path) -> None:
    script = "\n".join(line for line in first_run_block().splitlines() if not line.startswith("pip install"))
    assert "airflow dags reserialize" in script and "orders_dag.py" in script
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(HOME=str(tmp_path), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=800, check=False)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    with Pipeline.load(tmp_path / "pipelines" / "orders") as pipeline:
        (row,) = pipeline.drive_store().history("orders")
    assert row.pipeline_status is RunStatus.SUCCESS
    assert row.query_window_start_timestamp == datetime(2025, 1, 1, tzinfo=UTC)
    assert row.config_snapshot["airflow_run"]["run_type"] == "manual"
