"""PostgreSQL as drive table, stage and target under SIGKILL and under two runs at once.

Crash: window A (day 1) has succeeded; a child process (tests/sdk/crash_child.py) runs window B
(day 2, whose stage cleaning archives and deletes day 1's stage rows) and kills itself at one
point. The server ends the killed session, rolling back its open transaction and dropping its
advisory lock, so the next run of B takes the window at once (its holder is known dead) and
must leave each valid row once in the target and day 1 archived once.

Race: two processes released together on one window (tests/sdk/race_child.py): one runs it,
the other is refused while the first holds it.
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
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows
from tests.sdk.race import assert_one_ran_while_the_other_was_refused, race

from .test_warehouse_pipeline import pg_rows, sections, target_rows

CRASH_CHILD = Path(__file__).resolve().parents[2] / "sdk" / "crash_child.py"
DAY2 = DAY + timedelta(days=1)
WINDOW_A = (DAY, DAY + timedelta(hours=1))
WINDOW_B = (DAY2, DAY2 + timedelta(hours=1))
POINTS = ["batch:1", "commit:source_to_stage_transfer", "commit:stage_to_target_transfer", "after:audit", "commit:stage_cleaning"]
ARROW_POINTS = ["s2t_batch:0", "commit:stage_to_target_transfer"]
RACES = 3


def rows():  # noqa: ANN201
    return make_rows(200, seed=3) + make_rows(200, seed=4, start=DAY2, prefix="U")


def prepare(tmp_path: Path, server, schema: str) -> Path:  # noqa: ANN001
    folder = make_pipeline_dir(tmp_path / "crash", rows(), **sections(server, schema),
                               phases__stage_cleaning={"archive_location": "archive", "delete_after_days": 0},
                               source_system__batch_size=20)
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(WINDOW_A[0]))
    assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
    return folder


def child(folder: Path, point: str, arrow: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(CRASH_CHILD), str(folder), WINDOW_B[0].isoformat(), point] + (["--arrow"] if arrow else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def check_recovered(folder: Path, server, schema: str, arrow: bool) -> None:  # noqa: ANN001
    done = child(folder, "none", arrow)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "SUCCESS", done.stdout[-3000:]
    data = rows()
    for window in (WINDOW_A, WINDOW_B):
        expected = expected_target(data, *window)
        assert target_rows(server, schema, *window) == sorted((k, v["result"]) for k, v in expected.items())
    total, distinct = pg_rows(server, f'SELECT COUNT(*), COUNT(DISTINCT "test_id") FROM {schema}.tests')[0]
    assert total == distinct
    assert "RUNNING" not in [r[0] for r in pg_rows(server, f"SELECT pipeline_status FROM {schema}.pipeline_execution_drive")]
    assert pg_rows(server, f'SELECT COUNT(*) FROM {schema}.stg_tests WHERE "_drivetrain_target_date" = %s', (DAY.date(),)) == [(0,)]
    archived = sum(pq.ParquetFile(p).metadata.num_rows for p in (folder / "archive").rglob("*.parquet"))
    loaded_a = pg_rows(server, f"SELECT source_to_stage_transfer_phase #>> '{{phase_specific_details,rows_written}}' "
                               f"FROM {schema}.pipeline_execution_drive WHERE query_window_start_timestamp = %s "
                               "AND pipeline_status = 'SUCCESS'", (WINDOW_A[0],))[0][0]
    assert archived == int(loaded_a)


@pytest.fixture
def schema(postgres, monkeypatch) -> str:  # noqa: ANN001
    from .warehouse import env, new_schema

    for key, value in env(postgres).items():
        monkeypatch.setenv(key, value)  # the children inherit the credentials
    return new_schema(postgres)


@pytest.mark.slow
@pytest.mark.parametrize(("point", "arrow"), [*((p, False) for p in POINTS), *((p, True) for p in ARROW_POINTS)],
                         ids=[*(f"push_down-{p}" for p in POINTS), *(f"arrow-{p}" for p in ARROW_POINTS)])
def test_kill_then_rerun_recovers(tmp_path, postgres, schema, point, arrow):
    folder = prepare(tmp_path, postgres, schema)
    killed = child(folder, point, arrow=arrow)
    assert killed.returncode == -9, f"expected SIGKILL at {point}: rc={killed.returncode}\n{killed.stdout}\n{killed.stderr[-3000:]}"
    check_recovered(folder, postgres, schema, arrow=arrow)


@pytest.mark.slow
def test_same_window_started_twice_at_once_runs_once(tmp_path, postgres, schema):
    folder = make_pipeline_dir(tmp_path / "race", make_rows(400, hours=RACES, invalid_every=0), **sections(postgres, schema))
    with Pipeline.load(folder) as pipeline:
        pipeline.drive_store().ensure()  # the tables exist before the children start
    for i in range(RACES):
        start = DAY + timedelta(hours=i)
        codes, errors, reports = race([sys.executable], folder, start.isoformat(), tmp_path / f"sync{i}")
        assert_one_ran_while_the_other_was_refused(codes, errors, reports, f"race {i}")
        runs = pg_rows(postgres, f"SELECT COUNT(*) FROM {schema}.pipeline_execution_drive WHERE query_window_start_timestamp = %s", (start,))
        assert runs == [(1,)], f"race {i}: {runs[0][0]} drive rows for one window"
    assert {r[0] for r in pg_rows(postgres, f"SELECT DISTINCT pipeline_status FROM {schema}.pipeline_execution_drive")} == {"SUCCESS"}
    assert pg_rows(postgres, f"SELECT COUNT(*), MAX(token) FROM {schema}.drivetrain_leases") == [(RACES, 1)]
