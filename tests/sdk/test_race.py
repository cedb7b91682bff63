"""Two fresh processes released together on the same window: exactly one runs it.

The contenders start at a barrier (see race_child.py), not at an agreed instant, and the winner
holds the window until the other has been refused, so every race really is a race.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest

from .factory import DAY, make_pipeline_dir, make_rows, query
from .race import assert_one_ran_while_the_other_was_refused, race

RACES = 20


@pytest.mark.slow
def test_same_window_started_twice_at_once_runs_once(tmp_path):
    folder = make_pipeline_dir(tmp_path / "race", make_rows(2000, hours=RACES, invalid_every=0))
    for i in range(RACES):
        start = DAY + timedelta(hours=i)
        codes, errors, reports = race([sys.executable], folder, start.isoformat(), tmp_path / f"sync{i}")
        assert_one_ran_while_the_other_was_refused(codes, errors, reports, f"race {i}")
        rows = query(folder, "SELECT count(*) FROM pipeline_execution_drive WHERE query_window_start_timestamp = ?", [start])
        assert rows[0][0] == 1, f"race {i}: {rows[0][0]} drive rows for one window"
    statuses = {r[0] for r in query(folder, "SELECT DISTINCT pipeline_status FROM pipeline_execution_drive")}
    assert statuses == {"SUCCESS"}
