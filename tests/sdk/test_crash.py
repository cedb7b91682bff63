"""SIGKILL at every phase boundary and in the middle of each transfer, then run again.

Each scenario: window A (day 1) has already succeeded; a child process runs window B (day 2,
whose stage cleaning archives and deletes day 1's stage rows) and is killed at one point. The
next run of B must end SUCCESS with the target holding each valid row exactly once, and the
archive holding day 1's stage rows exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from drivetrain import PHASE_NAMES, Pipeline, RunStatus

from .factory import DAY, expected_target, make_pipeline_dir, make_rows, query, target_rows

CHILD = Path(__file__).with_name("crash_child.py")
DAY2 = DAY + timedelta(days=1)
WINDOW_A = (DAY, DAY + timedelta(hours=1))
WINDOW_B = (DAY2, DAY2 + timedelta(hours=1))

POINTS = (
    [f"before:{p}" for p in PHASE_NAMES]
    + [f"after:{p}" for p in PHASE_NAMES]
    + ["batch:1", "batch:3", "commit:source_to_stage_transfer", "commit:stage_to_target_transfer", "commit:stage_cleaning"]
    + ["commit:publish", "published"]  # inside the publish transaction, and after it committed unrecorded
)
ARROW_POINTS = ["s2t_batch:0", "commit:stage_to_target_transfer", "after:stage_to_target_transfer", "after:audit",
                "commit:publish", "published"]


def rows():
    return make_rows(400, seed=3) + make_rows(400, seed=4, start=DAY2, prefix="U")


def prepare(tmp_path: Path, **changes: Any) -> Path:
    """The crash folder with window A done (``changes``: more config changes, see make_pipeline_dir)."""
    folder = make_pipeline_dir(
        tmp_path / "crash", rows(),
        phases__stage_cleaning={"archive_location": "archive", "delete_after_days": 0},
        phases__target_cleaning={"enabled": True},
        source_system__batch_size=20,
        **changes,
    )
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.window_starting(WINDOW_A[0]))
    assert record.pipeline_status is RunStatus.SUCCESS
    return folder


def child(folder: Path, point: str, arrow: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(CHILD), str(folder), WINDOW_B[0].isoformat(), point] + (["--arrow"] if arrow else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def check_recovered(folder: Path, arrow: bool) -> None:
    done = child(folder, "none", arrow)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "SUCCESS", done.stdout
    data = rows()
    for window in (WINDOW_A, WINDOW_B):
        expected = expected_target(data, *window)
        assert target_rows(folder, *window) == sorted((k, v["result"]) for k, v in expected.items())
    total, distinct = query(folder, "SELECT count(*), count(DISTINCT test_id) FROM tests")[0]
    assert total == distinct
    statuses = [r[0] for r in query(folder, "SELECT pipeline_status FROM pipeline_execution_drive")]
    assert "RUNNING" not in statuses
    assert query(folder, "SELECT count(*) FROM stg_tests WHERE _drivetrain_target_date = ?", [DAY.date()])[0][0] == 0
    archived = sum(pq.ParquetFile(p).metadata.num_rows for p in (folder / "archive").rglob("*.parquet"))
    loaded_a = query(
        folder,
        "SELECT source_to_stage_transfer_phase->>'$.phase_specific_details.rows_written' FROM pipeline_execution_drive "
        "WHERE query_window_start_timestamp = ? AND pipeline_status = 'SUCCESS'",
        [WINDOW_A[0]],
    )[0][0]
    assert archived == int(loaded_a)
    leftovers = query(folder, "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '%__load_%'")[0][0]
    assert leftovers == 0


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_kill_then_rerun_recovers_push_down_path(tmp_path, point):
    folder = prepare(tmp_path)
    killed = child(folder, point, arrow=False)
    assert killed.returncode == -9, f"expected SIGKILL at {point}: rc={killed.returncode}\n{killed.stdout}\n{killed.stderr[-3000:]}"
    check_recovered(folder, arrow=False)


@pytest.mark.slow
@pytest.mark.parametrize("point", ARROW_POINTS)
def test_kill_then_rerun_recovers_arrow_path(tmp_path, point):
    folder = prepare(tmp_path)
    killed = child(folder, point, arrow=True)
    assert killed.returncode == -9, f"expected SIGKILL at {point}: rc={killed.returncode}\n{killed.stderr[-3000:]}"
    check_recovered(folder, arrow=True)
