"""Window choice on a Snowflake drive table: the same aggregate queries as on DuckDB."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.testing import FaultPlugin
from tests.sdk.factory import DAY, make_rows

from .scenario import make_snowflake_pipeline, register_snowflake

HOUR = timedelta(hours=1)


@pytest.fixture
def folder(tmp_path: Path, fakesnow_server, database: str, sf_env) -> Path:  # type: ignore[no-untyped-def]
    register_snowflake()
    return make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database, make_rows(200, hours=4, invalid_every=0),
                                   dag_schedule__catchup=True)


def test_plain_runs_go_back_for_the_windows_a_run_ahead_left_behind(folder: Path) -> None:
    now = DAY + 4 * HOUR
    with Pipeline.load(folder) as pipeline:
        runner = pipeline.runner(heartbeat_seconds=0.2, clock=lambda: now)
        assert runner.run(pipeline.grid.window_starting(DAY + 2 * HOUR)).pipeline_status is RunStatus.SUCCESS
        with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
            runner.run(pipeline.grid.window_starting(DAY + 3 * HOUR))
        chosen = []
        while (window := runner.next_window(now=now)) is not None and len(chosen) < 6:
            chosen.append(int((window.start - DAY) / HOUR))
            assert runner.run(window).pipeline_status is RunStatus.SUCCESS
    assert chosen == [3, 0, 1]
