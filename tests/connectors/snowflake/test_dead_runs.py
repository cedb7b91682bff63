"""Snowflake: a RUNNING row whose lease expired is closed by the next run of any window."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.record import RunRecord

from .scenario import make_snowflake_pipeline, register_snowflake

HOUR = timedelta(hours=1)


@pytest.fixture
def folder(tmp_path: Path, fakesnow_server, database: str, sf_env) -> Path:  # type: ignore[no-untyped-def]
    register_snowflake()
    return make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database)


def running_row(pipeline: Pipeline, hours: int, holder: str, lease_seconds: float) -> str:
    """A run of the window ``hours`` after the first, RUNNING under ``holder``'s lease."""
    store = pipeline.drive_store()
    store.ensure()
    window = pipeline.grid.window_starting(pipeline.grid.first().start + hours * HOUR)
    store.acquire_lease(pipeline.name, window.start, window.end, holder, lease_seconds)
    now = datetime.now(UTC)
    record = RunRecord(pipeline_id=f"lab_other_{hours}", pipeline_name=pipeline.name, pipeline_start_timestamp=now,
                       query_window_start_timestamp=window.start, query_window_end_timestamp=window.end,
                       target_date=window.target_date, query_window_duration="1h", lease_holder=holder, heartbeat_at=now)
    store.insert(record)
    return record.pipeline_id


class TestDeadRuns:
    def test_an_expired_lease_closes_its_row_at_the_next_run_of_another_window(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            dead = running_row(pipeline, 2, "other-host:1:gone", 0.5)
            time.sleep(1)
            record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())
            closed = pipeline.drive_store().get(dead)
        assert record.phases["stale_pipeline_handling"].phase_specific_details["resolved_runs"] == [dead]
        assert closed is not None and closed.pipeline_status is RunStatus.FAILED
        message = closed.phases[closed.phase_failed or "?"].error_message or ""
        assert "expired" in message, message

    def test_a_row_whose_lease_is_renewed_is_left_running(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            alive = running_row(pipeline, 2, "other-host:1:alive", 600)
            pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())
            assert pipeline.drive_store().get(alive).pipeline_status is RunStatus.RUNNING
