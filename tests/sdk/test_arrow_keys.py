"""Keys on the Arrow path: a stage-to-target transfer that overrides transform() (or crosses
warehouses) deduplicates and merges like the SQL push-down, through a scratch table beside the
target, on the embedded DuckDB warehouse.

Run as a script (``python test_arrow_keys.py FOLDER``) it is the child process of the SIGKILL
test: it runs the first window and kills itself inside the push-down's transaction.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.errors import PermanentError
from drivetrain.phases import StageToTargetTransfer, TargetCount
from drivetrain.plugins import hookimpl
from drivetrain.testing import FaultPlugin
from tests.sdk.factory import (
    DAY,
    expected_target,
    is_valid,
    make_pipeline_dir,
    make_rows,
    query,
    target_rows,
    ts_of,
)

S2T = "stage_to_target_transfer"
HOUR = timedelta(hours=1)
WINDOW = (DAY, DAY + HOUR)
DUPLICATE = "duplicate of another row with the same key"
SUPERSEDED = "duplicate of another row with the same key, or an older version of a row the target holds newer"
REMOVED = "removed by transform()"
MERGE_TARGET = {"type": "duckdb", "path": "warehouse.duckdb", "table": "tests", "load_strategy": "merge", "merge_keys": ["test_id"]}
LENIENT = {"count_tolerances": {"source_to_stage_tolerance_percent": 100.0, "stage_to_target_tolerance_percent": 100.0}}


# -- transfers under test ---------------------------------------------------------------------

class Upper(StageToTargetTransfer):
    """Upper-cases ``result``: a transform that keeps every column."""

    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        i = batch.schema.get_field_index("result")
        return batch.set_column(i, "result", pc.utf8_upper(batch.column("result")))


class UpperInSmallBatches(Upper):
    batch_size = 7


class Identity(StageToTargetTransfer):
    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        return batch


class Reversed(StageToTargetTransfer):
    """Returns each batch's rows last to first: arrival order is then the opposite of the source's."""

    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        return batch.take(pa.array(range(batch.num_rows - 1, -1, -1)))


class DropNegatives(StageToTargetTransfer):
    batch_size = 13

    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        return batch.filter(pc.not_equal(batch.column("result"), "negative"))


class OwnColumnsOnly(StageToTargetTransfer):
    """Builds a new batch from the record's columns: no ``_drivetrain_row`` comes back."""

    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        return batch.select(["test_id", "age", "result", "reported_at"])


class RenameKey(StageToTargetTransfer):
    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        return batch.rename_columns({"test_id": "lab_id"})


class DropKey(StageToTargetTransfer):
    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        return batch.drop_columns(["test_id"])


class RenameTime(StageToTargetTransfer):
    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        return batch.rename_columns({"reported_at": "reported"})


class ShiftTime(StageToTargetTransfer):
    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        i = batch.schema.get_field_index("reported_at")
        shifted = pc.add(batch.column(i), pa.scalar(timedelta(days=1), type=pa.duration("us")))
        return batch.set_column(i, "reported_at", shifted)


class AtPushDown(FaultPlugin):
    """FaultPlugin acting at the transfer's second commit: the push-down, once the scratch load is in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commits = 0

    @hookimpl
    def drivetrain_before_commit(self, record: Any, phase: str) -> None:
        if phase == S2T:
            self.commits += 1
            if self.commits == 2:
                super().drivetrain_before_commit(record, phase)


# -- helpers ----------------------------------------------------------------------------------

def run(folder: Path, transfer: type[StageToTargetTransfer] | None = None, start=DAY, **phases: Any):
    classes = {S2T: transfer} if transfer else {}
    pipeline = type("P", (Pipeline,), {"phase_classes": {**classes, **phases}})(folder / "config.json")
    with pipeline:
        return pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(start))


def details(record) -> dict[str, Any]:
    return record.phases[S2T].phase_specific_details


def upper(expected: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((k, v["result"].upper()) for k, v in expected.items())


def in_window(rows: list[dict[str, Any]], start=DAY, end=DAY + HOUR) -> list[dict[str, Any]]:
    return [r for r in rows if is_valid(r) and start <= ts_of(r) < end]


def row(test_id: str, minutes: int, result: str) -> dict[str, Any]:
    return {"test_id": test_id, "age": 30, "result": result,
            "reported_at": (DAY + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")}


def scratch_count(folder: Path, start=DAY, end=DAY + HOUR) -> int:
    sql = "SELECT count(*) FROM tests__drivetrain_transfer WHERE reported_at >= ? AND reported_at < ?"
    return query(folder, sql, [start, end])[0][0]


def all_target(folder: Path) -> list[tuple[Any, ...]]:
    return query(folder, "SELECT test_id, result, reported_at FROM tests ORDER BY test_id")


# -- tests ------------------------------------------------------------------------------------

class TestDeduplication:
    def test_copies_in_one_batch_keep_the_later_copy(self, tmp_path):
        rows = make_rows(200, hours=1, duplicates=5)
        folder = make_pipeline_dir(tmp_path / "p", rows)
        record = run(folder, Upper)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert target_rows(folder, *WINDOW) == upper(expected_target(rows, *WINDOW))
        assert details(record)["reject_reasons"] == {DUPLICATE: 5}

    def test_copies_in_later_batches_keep_the_later_copy(self, tmp_path):
        rows = make_rows(200, hours=1, duplicates=5)
        folder = make_pipeline_dir(tmp_path / "p", rows)
        record = run(folder, UpperInSmallBatches)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert target_rows(folder, *WINDOW) == upper(expected_target(rows, *WINDOW))
        assert {r[1] for r in target_rows(folder, *WINDOW)} >= {"CORRECTED"}

    def test_the_source_order_decides_even_when_transform_reorders_rows(self, tmp_path):
        rows = [row("A", 10, "first"), row("B", 20, "only"), row("A", 10, "second")]
        folder = make_pipeline_dir(tmp_path / "p", rows, phases__audit=LENIENT)
        record = run(folder, Reversed)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert target_rows(folder, *WINDOW) == [("A", "second"), ("B", "only")]

    def test_a_newer_query_field_value_wins_over_a_later_copy(self, tmp_path):
        rows = [row("A", 40, "newer"), row("A", 10, "older but sent later")]
        folder = make_pipeline_dir(tmp_path / "p", rows, phases__audit=LENIENT)
        assert run(folder, Upper).pipeline_status is RunStatus.SUCCESS
        assert target_rows(folder, *WINDOW) == [("A", "NEWER")]

    def test_without_its_row_numbers_the_copy_returned_later_wins(self, tmp_path):
        rows = make_rows(100, hours=1, duplicates=3)
        folder = make_pipeline_dir(tmp_path / "p", rows)
        record = run(folder, OwnColumnsOnly)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert target_rows(folder, *WINDOW) == sorted((k, v["result"]) for k, v in expected_target(rows, *WINDOW).items())

    def test_the_target_gets_lineage_but_not_the_row_numbers(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", make_rows(50, hours=1, duplicates=2))  # within the 5% audit tolerance
        record = run(folder, Upper)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        columns = [r[0] for r in query(folder, "SELECT column_name FROM information_schema.columns WHERE table_name = 'tests'")]
        assert "_drivetrain_row" not in columns
        assert "_drivetrain_pipeline_id" in columns
        assert query(folder, "SELECT DISTINCT _drivetrain_pipeline_id FROM tests") == [(record.pipeline_id,)]

    def test_a_key_renamed_by_transform_is_used_by_its_new_name(self, tmp_path):
        rows = make_rows(100, hours=1, duplicates=3)
        folder = make_pipeline_dir(tmp_path / "p", rows, target_system__dedup_keys=["lab_id"])
        record = run(folder, RenameKey)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        got = query(folder, "SELECT lab_id, result FROM tests ORDER BY lab_id")
        assert got == sorted((k, v["result"]) for k, v in expected_target(rows, *WINDOW).items())

    def test_stage_and_target_in_different_files_are_deduplicated_too(self, tmp_path):
        rows = make_rows(100, hours=1, duplicates=3)
        folder = make_pipeline_dir(tmp_path / "p", rows, target_system__path="target.duckdb")
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert details(record)["method"] == "arrow"
        import duckdb

        with duckdb.connect(str(folder / "target.duckdb"), read_only=True) as conn:
            got = conn.execute("SELECT test_id, result FROM tests ORDER BY test_id").fetchall()
        assert got == sorted((k, v["result"]) for k, v in expected_target(rows, *WINDOW).items())

    def test_the_arrow_path_and_the_push_down_build_the_same_target(self, tmp_path):
        rows = make_rows(300, hours=2, duplicates=8)
        arrow = make_pipeline_dir(tmp_path / "arrow", rows)
        sql = make_pipeline_dir(tmp_path / "sql", rows)
        for start in (DAY, DAY + HOUR):
            assert details(run(arrow, Identity, start))["method"] == "arrow"
            assert details(run(sql, None, start))["method"] == "push-down SQL"
        assert all_target(arrow) == all_target(sql)

    def test_a_rerun_leaves_the_same_target_and_an_empty_scratch_window(self, tmp_path):
        rows = make_rows(150, hours=1, duplicates=4)
        folder = make_pipeline_dir(tmp_path / "p", rows)
        run(folder, Upper)
        first = all_target(folder)
        again = run(folder, Upper)
        assert again.pipeline_status is RunStatus.SUCCESS
        assert all_target(folder) == first
        assert scratch_count(folder) == 0


class TestMerge:
    def rows(self) -> list[dict[str, Any]]:
        return [
            row("K1", 10, "v1"), row("K1", 20, "v2"),          # a newer version later in the window
            row("K2", 30, "v2"), row("K2", 5, "v1"),           # an older version sent later
            row("K3", 15, "a"), row("K3", 70, "b"),            # a newer version in the next window
        ]

    def test_merge_keeps_the_newest_version_of_each_key(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", self.rows(), target_system=MERGE_TARGET, phases__audit=LENIENT)
        first = run(folder, Upper)
        assert first.pipeline_status is RunStatus.SUCCESS, first.phase_failed
        assert [r[:2] for r in all_target(folder)] == [("K1", "V2"), ("K2", "V2"), ("K3", "A")]
        assert details(first)["reject_reasons"] == {SUPERSEDED: 2}
        run(folder, Upper, DAY + HOUR)
        assert [r[:2] for r in all_target(folder)] == [("K1", "V2"), ("K2", "V2"), ("K3", "B")]

    def test_a_rerun_of_an_older_window_does_not_bring_old_versions_back(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", self.rows(), target_system=MERGE_TARGET, phases__audit=LENIENT)
        run(folder, Upper)
        run(folder, Upper, DAY + HOUR)
        rerun = run(folder, Upper)
        assert rerun.pipeline_status is RunStatus.SUCCESS, rerun.phase_failed
        assert [r[:2] for r in all_target(folder)] == [("K1", "V2"), ("K2", "V2"), ("K3", "B")]

    def test_merge_on_the_arrow_path_matches_the_push_down(self, tmp_path):
        arrow = make_pipeline_dir(tmp_path / "arrow", self.rows(), target_system=MERGE_TARGET, phases__audit=LENIENT)
        sql = make_pipeline_dir(tmp_path / "sql", self.rows(), target_system=MERGE_TARGET, phases__audit=LENIENT)
        for start in (DAY, DAY + HOUR, DAY):
            run(arrow, Identity, start)
            run(sql, None, start)
        assert all_target(arrow) == all_target(sql)


class TestAccounting:
    def test_rows_removed_by_transform_and_duplicates_are_counted_apart(self, tmp_path):
        rows = make_rows(200, hours=1, duplicates=6)
        folder = make_pipeline_dir(tmp_path / "p", rows, phases__audit=LENIENT)
        record = run(folder, DropNegatives)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        staged = in_window(rows)
        kept = [r for r in staged if r["result"] != "negative"]
        unique = {r["test_id"] for r in kept}
        got = details(record)
        assert got["rows_read"] == len(staged)
        assert got["rows_written"] == len(unique) == record.phases["target_count"].phase_specific_details["count"]
        assert got["reject_reasons"] == {REMOVED: len(staged) - len(kept), DUPLICATE: len(kept) - len(unique)}
        assert got["rows_dropped"] == len(staged) - len(unique)
        reasons = record.phases["audit"].phase_specific_details["loss_reasons"]
        assert f"stage -> target: {len(staged) - len(kept)} dropped: {REMOVED}" in reasons
        assert f"stage -> target: {len(kept) - len(unique)} dropped: {DUPLICATE}" in reasons

    def test_a_transform_that_removes_every_row_empties_the_window(self, tmp_path):
        rows = make_rows(60, hours=1, invalid_every=0, duplicates=0)
        folder = make_pipeline_dir(tmp_path / "p", rows, phases__audit=LENIENT)
        run(folder, Upper)
        for r in rows:
            r["result"] = "negative"
        (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        record = run(folder, DropNegatives)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert target_rows(folder, *WINDOW) == []
        assert details(record)["reject_reasons"] == {REMOVED: 60}


class TestCrashAndResume:
    def test_a_failure_between_scratch_load_and_push_down_leaves_the_target_and_the_resume_is_exact(self, tmp_path):
        before = make_rows(200, hours=1, duplicates=0)
        folder = make_pipeline_dir(tmp_path / "p", before)
        assert run(folder, Upper).pipeline_status is RunStatus.SUCCESS
        after = make_rows(200, hours=1, duplicates=6)
        (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in after))
        with AtPushDown(fail={S2T: 1}).installed():
            failed = run(folder, Upper)
        assert failed.phase_failed == S2T and "injected failure" in failed.phases[S2T].error_message
        assert target_rows(folder, *WINDOW) == upper(expected_target(before, *WINDOW))
        assert scratch_count(folder) == len(in_window(after))  # the scratch load had committed

        resumed = run(folder, Upper)
        assert resumed.pipeline_status is RunStatus.SUCCESS, resumed.phase_failed
        assert "source_to_stage_transfer" in resumed.phases_skipped
        assert target_rows(folder, *WINDOW) == upper(expected_target(after, *WINDOW))
        assert scratch_count(folder) == 0

    def test_sigkill_inside_the_push_down_then_a_rerun_makes_the_target_exact(self, tmp_path):
        rows = make_rows(200, hours=1, duplicates=6)
        folder = make_pipeline_dir(tmp_path / "p", rows)
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        killed = subprocess.run([sys.executable, __file__, str(folder)], capture_output=True, text=True, timeout=120, env=env, cwd=root)
        assert killed.returncode == -9, f"expected SIGKILL: rc={killed.returncode}\n{killed.stderr[-3000:]}"
        assert scratch_count(folder) == len(in_window(rows))
        # the pending table exists from before the push-down; the killed transaction wrote nothing to it
        assert query(folder, "SELECT count(*) FROM tests__pending")[0][0] == 0

        resumed = run(folder, Upper)
        assert resumed.pipeline_status is RunStatus.SUCCESS, resumed.phase_failed
        assert target_rows(folder, *WINDOW) == upper(expected_target(rows, *WINDOW))
        assert scratch_count(folder) == 0

    def test_a_completed_keyed_transfer_is_carried_while_the_target_holds_what_it_wrote(self, tmp_path):
        class FailingOnce(TargetCount):
            failed = False

            def run(self, ctx):
                if not FailingOnce.failed:
                    FailingOnce.failed = True
                    raise PermanentError("injected failure in target_count")
                return super().run(ctx)

        folder = make_pipeline_dir(tmp_path / "p", make_rows(200, hours=1, duplicates=5))
        failed = run(folder, Upper, target_count=FailingOnce)
        assert failed.phase_failed == "target_count"
        resumed = run(folder, Upper, target_count=FailingOnce)
        assert resumed.pipeline_status is RunStatus.SUCCESS
        assert resumed.phases[S2T].carried_from == failed.pipeline_id


class TestTransformOutputChecks:
    def test_a_missing_key_column_fails_naming_the_column_and_the_fix(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", make_rows(50, hours=1))
        record = run(folder, DropKey)
        assert record.phase_failed == S2T
        message = record.phases[S2T].error_message
        assert "target_system.dedup_keys" in message and "'test_id'" in message and "DropKey.transform()" in message
        assert record.phases[S2T].retry_number == 0
        assert query(folder, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'tests'")[0][0] == 0

    def test_a_missing_merge_key_fails_naming_it(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", make_rows(50, hours=1), target_system=MERGE_TARGET)
        message = run(folder, DropKey).phases[S2T].error_message
        assert "target_system.merge_keys" in message and "'test_id'" in message

    def test_a_missing_query_field_fails_naming_it(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", make_rows(50, hours=1))
        message = run(folder, RenameTime).phases[S2T].error_message
        assert "target_system.query_field" in message and "'reported_at'" in message

    def test_a_transform_moving_rows_out_of_the_window_fails(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", make_rows(50, hours=1))
        record = run(folder, ShiftTime)
        assert record.phase_failed == S2T
        assert "outside the window" in record.phases[S2T].error_message
        assert query(folder, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'tests'")[0][0] == 0


def _child(folder: str) -> None:
    """Run the first window with Upper; SIGKILL inside the push-down's transaction."""
    pipeline = type("P", (Pipeline,), {"phase_classes": {S2T: Upper}})(Path(folder) / "config.json")
    with AtPushDown(kill_before_commit=[S2T]).installed(), pipeline:
        pipeline.runner(heartbeat_seconds=0.1).run(pipeline.grid.window_starting(DAY))


if __name__ == "__main__":
    _child(sys.argv[1])
    pytest.fail("the child should have been killed")
