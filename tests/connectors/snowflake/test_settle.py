"""Settling late data and the shrink guard with Snowflake (fakesnow) as drive table, stage and
target: the reload, its reason in the report (the Snowflake drive store's own SQL), the guard."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.monitoring import metrics
from drivetrain.settle import reload_reason, settle
from tests.sdk.factory import DAY
from tests.servers.fakesnow_server import FakeSnowServer

from .conftest import sf_rows
from .scenario import make_snowflake_pipeline, register_snowflake

HOUR = timedelta(hours=1)


def record(i: int, minute: int, prefix: str = "T") -> dict[str, Any]:
    ts = (DAY + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    return {"test_id": f"{prefix}{i:04d}", "age": 33, "result": "positive", "reported_at": ts}


def target_count(server: FakeSnowServer, database: str, hour: int) -> int:
    start = DAY + hour * HOUR
    rows = sf_rows(server, database, 'SELECT COUNT(*) FROM TESTS WHERE "reported_at" >= ? AND "reported_at" < ?', [start, start + HOUR])
    return int(rows[0][0])


@pytest.fixture
def folder(tmp_path: Path, fakesnow_server: FakeSnowServer, database: str, sf_env: dict[str, str]) -> Path:
    register_snowflake()
    rows = [record(i, i * 10) for i in range(12)]  # six records in each of the first two hours
    return make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database, rows, query_window__settle_horizon="1d")


def test_late_records_are_reloaded_reported_and_a_purge_is_stopped(folder: Path, fakesnow_server: FakeSnowServer,
                                                                   database: str) -> None:
    with Pipeline.load(folder) as pipeline:
        runner = pipeline.runner(heartbeat_seconds=0.2)
        windows = list(pipeline.grid.windows_between(DAY, DAY + 2 * HOUR))
        for window in windows:
            assert runner.run(window).pipeline_status is RunStatus.SUCCESS
        with open(folder / "data" / "records.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(record(100 + i, 70 + i, prefix="L")) + "\n" for i in range(2))
        outcome = settle(pipeline, now=DAY + 3 * HOUR)
        assert outcome.reloaded == [windows[1]]
        assert reload_reason(outcome.records[0]) == "source count 6 -> 8 since the run of lab_20251115T010000Z_run1"
        assert target_count(fakesnow_server, database, 1) == 8
        (reload,) = metrics.compute(pipeline.drive_store(), ["lab"], since=DAY - HOUR, now=DAY + 3 * HOUR).reloads
        assert (reload.run_id, reload.previous_count, reload.source_count) == ("lab_20251115T010000Z_run2", 6, 8)

        (folder / "data" / "records.jsonl").write_text(json.dumps(record(0, 0)) + "\n")
        stopped = runner.run(windows[0])
    assert stopped.pipeline_status is RunStatus.FAILED and stopped.phase_failed == "stage_to_target_transfer"
    assert "had 6 rows (6 in the target); this load has only 1" in (stopped.phases["stage_to_target_transfer"].error_message or "")
    assert target_count(fakesnow_server, database, 0) == 6
