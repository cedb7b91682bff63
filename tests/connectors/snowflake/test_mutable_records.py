"""Merge on Snowflake (fakesnow): the newest version wins and the audit balances after updates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import DAY, make_rows

from .conftest import sf_rows
from .scenario import make_snowflake_pipeline, register_snowflake

HOUR = timedelta(hours=1)


@pytest.fixture
def folder(tmp_path, fakesnow_server, database, sf_env):
    register_snowflake()
    rows = make_rows(10, hours=1, invalid_every=0, duplicates=0)
    newer = dict(rows[0], result="corrected", reported_at=(DAY + 2 * HOUR + timedelta(minutes=7)).isoformat().replace("+00:00", "Z"))
    return make_snowflake_pipeline(
        tmp_path / "lab", fakesnow_server, database, [*rows, newer],
        target_system__load_strategy="merge", target_system__merge_keys=["test_id"], target_system__dedup_keys=[],
        phases__audit__count_tolerances__stage_to_target_tolerance_percent=0,
    )


def run(folder, hour):
    register_snowflake()
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(DAY + hour * HOUR))
    assert record.pipeline_status is RunStatus.SUCCESS, record.phases[record.phase_failed or "audit"].error_message
    return record


class TestMergeOnSnowflake:
    def test_an_old_window_run_after_a_newer_version_keeps_it_and_its_audit_balances(self, folder, fakesnow_server, database):
        run(folder, 2)
        record = run(folder, 0)
        first = sf_rows(fakesnow_server, database, 'SELECT "result" FROM TESTS WHERE "test_id" = ?', ["T000000"])
        assert first == [("corrected",)]
        assert sf_rows(fakesnow_server, database, 'SELECT COUNT(*), COUNT(DISTINCT "test_id") FROM TESTS')[0] == (10, 10)
        counted = record.phases["target_count"].phase_specific_details
        assert counted["count"] == record.phases["stage_count"].phase_specific_details["count"] == 10
        assert counted["held_at_a_newer_version"] == 1
        assert counted["pending_rows_in_window"] == 10  # counted before publish, which keeps the newer version
        assert sf_rows(fakesnow_server, database, 'SELECT COUNT(*) FROM TESTS WHERE "reported_at" < ?', [DAY + HOUR]) == [(9,)]

    def test_windows_in_order_then_again_keep_one_newest_row_per_key(self, folder, fakesnow_server, database):
        for hour in (0, 1, 2, 0):
            run(folder, hour)
        assert sf_rows(fakesnow_server, database, 'SELECT COUNT(*), COUNT(DISTINCT "test_id") FROM TESTS')[0] == (10, 10)
        assert sf_rows(fakesnow_server, database, 'SELECT "result" FROM TESTS WHERE "test_id" = ?', ["T000000"]) == [("corrected",)]


class TestVersionColumnOnSnowflake:
    def test_the_highest_version_wins_over_a_later_arrival(self, tmp_path, fakesnow_server, database, sf_env):
        register_snowflake()
        rows = [dict(r, rev=1) for r in make_rows(4, hours=1, invalid_every=0, duplicates=0)]
        newest = dict(rows[0], result="newest", rev=3)
        late = dict(rows[0], result="late", rev=2, reported_at=(DAY + 2 * HOUR).isoformat().replace("+00:00", "Z"))
        columns = [{"name": "test_id", "type": "string", "required": True}, {"name": "age", "type": "integer"},
                   {"name": "result", "type": "string"}, {"name": "reported_at", "type": "timestamp", "required": True},
                   {"name": "rev", "type": "integer"}]
        folder = make_snowflake_pipeline(
            tmp_path / "lab", fakesnow_server, database, [*rows, newest, late], stage_system__columns=columns,
            target_system__load_strategy="merge", target_system__merge_keys=["test_id"], target_system__dedup_keys=[],
            target_system__version_column="rev",
        )
        for hour in (0, 1, 2):
            run(folder, hour)
        assert sf_rows(fakesnow_server, database, 'SELECT "result", "rev" FROM TESTS WHERE "test_id" = ?', ["T000000"]) == [("newest", 3)]
