"""SIGKILL at a few points of a Snowflake run, then run again: the result is exact.

Window A (day 1) has succeeded; a child process (tests/sdk/crash_child.py) runs window B (day 2,
whose stage cleaning archives and deletes day 1's stage rows) and kills itself at one point. The
next run of B must succeed with each valid row once in the target and day 1 archived once. The
killed process leaves its lease behind (and, when killed inside a commit, an open transaction);
the re-run takes the lease over because its holder is dead, and aborts the session it left.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import DAY, expected_target, make_rows

from .conftest import sf_rows
from .scenario import make_snowflake_pipeline, register_snowflake, target_rows

CHILD = Path(__file__).with_name("child.py")
CRASH_CHILD = Path(__file__).resolve().parents[2] / "sdk" / "crash_child.py"
DAY2 = DAY + timedelta(days=1)
WINDOW_A = (DAY, DAY + timedelta(hours=1))
WINDOW_B = (DAY2, DAY2 + timedelta(hours=1))

POINTS = [
    "batch:1",
    "commit:source_to_stage_transfer",
    "before:stage_to_target_transfer",
    "commit:stage_to_target_transfer",
    "after:audit",
    "commit:stage_cleaning",
]
ARROW_POINTS = ["s2t_batch:0", "commit:stage_to_target_transfer"]


def rows():
    return make_rows(200, seed=3) + make_rows(200, seed=4, start=DAY2, prefix="U")


def prepare(tmp_path: Path, server, database: str) -> Path:
    register_snowflake()
    folder = make_snowflake_pipeline(
        tmp_path / "crash", server, database, rows(),
        phases__stage_cleaning={"archive_location": "archive", "delete_after_days": 0},
        source_system__batch_size=20,
    )
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(WINDOW_A[0]))
    assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
    return folder


def child(folder: Path, point: str, arrow: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(CHILD), str(CRASH_CHILD), str(folder), WINDOW_B[0].isoformat(), point] + (["--arrow"] if arrow else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def check_recovered(folder: Path, server, database: str, arrow: bool) -> None:
    done = child(folder, "none", arrow)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "SUCCESS", done.stdout[-3000:]
    data = rows()
    for window in (WINDOW_A, WINDOW_B):
        expected = expected_target(data, *window)
        assert target_rows(server, database, *window) == sorted((k, v["result"]) for k, v in expected.items())
    total, distinct = sf_rows(server, database, 'SELECT COUNT(*), COUNT(DISTINCT "test_id") FROM TESTS')[0]
    assert total == distinct
    statuses = [r[0] for r in sf_rows(server, database, "SELECT PIPELINE_STATUS FROM PIPELINE_EXECUTION_DRIVE")]
    assert "RUNNING" not in statuses
    assert sf_rows(server, database, 'SELECT COUNT(*) FROM STG_TESTS WHERE "_drivetrain_target_date" = ?', [DAY.date()]) == [(0,)]
    archived = sum(pq.ParquetFile(p).metadata.num_rows for p in (folder / "archive").rglob("*.parquet"))
    loaded_a = sf_rows(
        server, database,
        "SELECT SOURCE_TO_STAGE_TRANSFER_PHASE:phase_specific_details:rows_written FROM PIPELINE_EXECUTION_DRIVE "
        "WHERE QUERY_WINDOW_START_TIMESTAMP = ? AND PIPELINE_STATUS = 'SUCCESS'", [WINDOW_A[0]],
    )[0][0]
    assert archived == int(loaded_a)
    leftovers = sf_rows(server, database, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name ILIKE '%__load_%'")
    assert leftovers == [(0,)]


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_kill_then_rerun_recovers_push_down_path(tmp_path, fakesnow_server, database, sf_env, point):
    folder = prepare(tmp_path, fakesnow_server, database)
    killed = child(folder, point, arrow=False)
    assert killed.returncode == -9, f"expected SIGKILL at {point}: rc={killed.returncode}\n{killed.stdout}\n{killed.stderr[-3000:]}"
    check_recovered(folder, fakesnow_server, database, arrow=False)
    aborted = any("SYSTEM$ABORT_SESSION" in s.sql for s in fakesnow_server.statements_for(database))
    assert aborted, "the re-run should end the session the killed run left behind"


@pytest.mark.slow
@pytest.mark.parametrize("point", ARROW_POINTS)
def test_kill_then_rerun_recovers_arrow_path(tmp_path, fakesnow_server, database, sf_env, point):
    folder = prepare(tmp_path, fakesnow_server, database)
    killed = child(folder, point, arrow=True)
    assert killed.returncode == -9, f"expected SIGKILL at {point}: rc={killed.returncode}\n{killed.stderr[-3000:]}"
    check_recovered(folder, fakesnow_server, database, arrow=True)
