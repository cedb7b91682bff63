"""Two processes started on the same window at the same instant: exactly one runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from .factory import DAY, make_pipeline_dir, make_rows, query

CHILD = Path(__file__).with_name("race_child.py")
RACES = 20


@pytest.mark.slow
def test_same_window_started_twice_at_once_runs_once(tmp_path):
    folder = make_pipeline_dir(tmp_path / "race", make_rows(2000, hours=RACES, invalid_every=0))
    for i in range(RACES):
        start = (DAY + timedelta(hours=i)).isoformat()
        at = time.time() + 2.0
        procs = [
            subprocess.Popen([sys.executable, str(CHILD), str(folder), start, str(at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        codes = sorted(p.wait(timeout=120) for p in procs)
        outputs = [p.communicate() for p in procs]
        assert codes == [0, 3], f"race {i}: exit codes {codes}: {outputs}"
        rows = query(folder, "SELECT count(*) FROM pipeline_execution_drive WHERE query_window_start_timestamp = ?", [DAY + timedelta(hours=i)])
        assert rows[0][0] == 1, f"race {i}: {rows[0][0]} drive rows for one window"
    statuses = {r[0] for r in query(folder, "SELECT DISTINCT pipeline_status FROM pipeline_execution_drive")}
    assert statuses == {"SUCCESS"}
