"""Two processes released together on the same window, drive table on Snowflake: one runs it.

The contenders meet at a barrier and the winner holds the window until the other was refused
(see tests/sdk/race_child.py), so each race really overlaps.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest

from drivetrain import Pipeline
from tests.sdk.factory import DAY, make_rows
from tests.sdk.race import assert_one_ran_while_the_other_was_refused, race

from .conftest import sf_rows
from .scenario import make_snowflake_pipeline, register_snowflake

CHILD = Path(__file__).with_name("child.py")
RACES = 4


@pytest.mark.slow
def test_same_window_started_twice_at_once_runs_once(tmp_path, fakesnow_server, database, sf_env):
    folder = make_snowflake_pipeline(tmp_path / "race", fakesnow_server, database, make_rows(400, hours=RACES, invalid_every=0))
    register_snowflake()
    with Pipeline.load(folder) as pipeline:
        pipeline.drive_store().ensure()  # the tables exist before the children start
    for i in range(RACES):
        start = DAY + timedelta(hours=i)
        codes, errors, reports = race([sys.executable, str(CHILD)], folder, start.isoformat(), tmp_path / f"sync{i}")
        assert_one_ran_while_the_other_was_refused(codes, errors, reports, f"race {i}")
        runs = sf_rows(fakesnow_server, database, "SELECT COUNT(*) FROM PIPELINE_EXECUTION_DRIVE WHERE QUERY_WINDOW_START_TIMESTAMP = ?", [start])
        assert runs == [(1,)], f"race {i}: {runs[0][0]} drive rows for one window"
    statuses = {r[0] for r in sf_rows(fakesnow_server, database, "SELECT DISTINCT PIPELINE_STATUS FROM PIPELINE_EXECUTION_DRIVE")}
    assert statuses == {"SUCCESS"}
    tokens = sf_rows(fakesnow_server, database, "SELECT COUNT(*), MAX(TOKEN) FROM DRIVETRAIN_LEASES")
    assert tokens == [(RACES, 1)]
