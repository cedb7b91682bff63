"""Two processes start the same window at the same instant, drive table on Snowflake: one runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from drivetrain import Pipeline
from tests.sdk.factory import DAY, make_rows

from .conftest import sf_rows
from .scenario import make_snowflake_pipeline, register_snowflake

CHILD = Path(__file__).with_name("child.py")
RACE_CHILD = Path(__file__).resolve().parents[2] / "sdk" / "race_child.py"
RACES = 4


@pytest.mark.slow
def test_same_window_started_twice_at_once_runs_once(tmp_path, fakesnow_server, database, sf_env):
    folder = make_snowflake_pipeline(tmp_path / "race", fakesnow_server, database, make_rows(400, hours=RACES, invalid_every=0))
    register_snowflake()
    with Pipeline.load(folder) as pipeline:
        pipeline.drive_store().ensure()  # the tables exist before the children start
    for i in range(RACES):
        start = DAY + timedelta(hours=i)
        at = time.time() + 3.5
        procs = [
            subprocess.Popen([sys.executable, str(CHILD), str(RACE_CHILD), str(folder), start.isoformat(), str(at)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=180) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 3], f"race {i}: exit codes {codes}: {[o[1][-2000:] for o in outputs]}"
        runs = sf_rows(fakesnow_server, database, "SELECT COUNT(*) FROM PIPELINE_EXECUTION_DRIVE WHERE QUERY_WINDOW_START_TIMESTAMP = ?", [start])
        assert runs == [(1,)], f"race {i}: {runs[0][0]} drive rows for one window"
    statuses = {r[0] for r in sf_rows(fakesnow_server, database, "SELECT DISTINCT PIPELINE_STATUS FROM PIPELINE_EXECUTION_DRIVE")}
    assert statuses == {"SUCCESS"}
    tokens = sf_rows(fakesnow_server, database, "SELECT COUNT(*), MAX(TOKEN) FROM DRIVETRAIN_LEASES")
    assert tokens == [(RACES, 1)]
