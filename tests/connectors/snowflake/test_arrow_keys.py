"""Keys on the Arrow path with Snowflake (fakesnow) as stage and target: transform()'s rows go
through the scratch table ``TESTS__DRIVETRAIN_TRANSFER`` and Snowflake's own push-down, so
duplicates and older versions are dropped exactly as the SQL path drops them.

The transfers are the ones the DuckDB tests use (tests/sdk/test_arrow_keys.py).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import DAY, expected_target, make_rows
from tests.sdk.test_arrow_keys import (
    DUPLICATE,
    LENIENT,
    REMOVED,
    S2T,
    SUPERSEDED,
    AtPushDown,
    DropKey,
    DropNegatives,
    Reversed,
    Upper,
    UpperInSmallBatches,
    in_window,
    row,
    upper,
)

from .conftest import sf_rows
from .scenario import make_snowflake_pipeline, register_snowflake, target_rows

HOUR = timedelta(hours=1)
WINDOW = (DAY, DAY + HOUR)
MERGE = {"target_system__load_strategy": "merge", "target_system__merge_keys": ["test_id"]}


@pytest.fixture
def make(tmp_path, fakesnow_server, database, sf_env):
    register_snowflake()

    def build(rows: list[dict[str, Any]], **changes: Any):
        return make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database, rows, **changes)

    return build


@pytest.fixture
def sql(fakesnow_server, database):
    return lambda text, params=None: sf_rows(fakesnow_server, database, text, params)


def run(folder, transfer, start=DAY):
    register_snowflake()
    pipeline = type("P", (Pipeline,), {"phase_classes": {S2T: transfer}})(folder / "config.json")
    with pipeline:
        return pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(start))


def scratch_count(sql) -> int:
    return sql('SELECT COUNT(*) FROM TESTS__DRIVETRAIN_TRANSFER WHERE "reported_at" >= ? AND "reported_at" < ?', list(WINDOW))[0][0]


class TestArrowKeysOnSnowflake:
    def test_copies_in_later_batches_keep_the_later_copy(self, make, sql, fakesnow_server, database):
        rows = make_rows(120, hours=1, duplicates=4)
        folder = make(rows)
        record = run(folder, UpperInSmallBatches)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert target_rows(fakesnow_server, database, *WINDOW) == upper(expected_target(rows, *WINDOW))
        assert record.phases[S2T].phase_specific_details["reject_reasons"] == {DUPLICATE: 4}
        assert scratch_count(sql) == 0

    def test_the_source_order_decides_even_when_transform_reorders_rows(self, make, fakesnow_server, database):
        folder = make([row("A", 10, "first"), row("B", 20, "only"), row("A", 10, "second")], phases__audit=LENIENT)
        record = run(folder, Reversed)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert target_rows(fakesnow_server, database, *WINDOW) == [("A", "second"), ("B", "only")]

    def test_merge_keeps_the_newest_version_of_each_key(self, make, sql):
        rows = [row("K1", 10, "v1"), row("K1", 20, "v2"), row("K2", 30, "v2"), row("K2", 5, "v1"),
                row("K3", 15, "a"), row("K3", 70, "b")]
        folder = make(rows, phases__audit=LENIENT, **MERGE)
        first = run(folder, Upper)
        assert first.pipeline_status is RunStatus.SUCCESS, first.phase_failed
        assert first.phases[S2T].phase_specific_details["reject_reasons"] == {SUPERSEDED: 2}
        run(folder, Upper, DAY + HOUR)
        rerun = run(folder, Upper)  # the older window again: K3's old version must not come back
        assert rerun.pipeline_status is RunStatus.SUCCESS, rerun.phase_failed
        assert sql('SELECT "test_id", "result" FROM TESTS ORDER BY 1') == [("K1", "V2"), ("K2", "V2"), ("K3", "B")]

    def test_rows_removed_by_transform_and_duplicates_are_counted_apart(self, make):
        rows = make_rows(150, hours=1, duplicates=5)
        folder = make(rows, phases__audit=LENIENT)
        record = run(folder, DropNegatives)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        staged = in_window(rows)
        kept = [r for r in staged if r["result"] != "negative"]
        unique = {r["test_id"] for r in kept}
        got = record.phases[S2T].phase_specific_details
        assert got["rows_read"] == len(staged) and got["rows_written"] == len(unique)
        assert got["reject_reasons"] == {REMOVED: len(staged) - len(kept), DUPLICATE: len(kept) - len(unique)}
        reasons = record.phases["audit"].phase_specific_details["loss_reasons"]
        assert f"stage -> target: {len(staged) - len(kept)} dropped: {REMOVED}" in reasons

    def test_a_failure_between_scratch_load_and_push_down_leaves_the_target_and_the_resume_is_exact(
            self, make, sql, fakesnow_server, database):
        before = make_rows(120, hours=1, duplicates=0)
        folder = make(before)
        assert run(folder, Upper).pipeline_status is RunStatus.SUCCESS
        after = make_rows(120, hours=1, duplicates=5)
        (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in after))
        with AtPushDown(fail={S2T: 1}).installed():
            failed = run(folder, Upper)
        assert failed.phase_failed == S2T
        assert target_rows(fakesnow_server, database, *WINDOW) == upper(expected_target(before, *WINDOW))
        assert scratch_count(sql) == len(in_window(after))
        resumed = run(folder, Upper)
        assert resumed.pipeline_status is RunStatus.SUCCESS, resumed.phase_failed
        assert "source_to_stage_transfer" in resumed.phases_skipped
        assert target_rows(fakesnow_server, database, *WINDOW) == upper(expected_target(after, *WINDOW))
        assert scratch_count(sql) == 0

    def test_a_missing_key_column_fails_naming_it(self, make):
        folder = make(make_rows(40, hours=1))
        record = run(folder, DropKey)
        assert record.phase_failed == S2T
        message = record.phases[S2T].error_message
        assert "target_system.dedup_keys" in message and "'test_id'" in message
