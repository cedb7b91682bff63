"""The shrink guard: reloading a window must not quietly replace its rows with far fewer.

Files source -> DuckDB stage and target; the source file is rewritten between runs the way a
rotated or purged source answers for an old window.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.phases import StageToTargetTransfer
from drivetrain.phases.base import PhaseContext

from .factory import DAY, make_pipeline_dir, query

GUARD = "phases.stage_to_target_transfer"
#: Rows a transform() filters count as lost to the audit; these tests filter on purpose.
LENIENT = {"phases.audit.count_tolerances.stage_to_target_tolerance_percent": 100.0}


def rows(n: int, *, prefix: str = "T") -> list[dict[str, Any]]:
    """``n`` valid records inside the first hour of DAY."""
    return [{"test_id": f"{prefix}{i:04d}", "age": 30, "result": "negative",
             "reported_at": (DAY + timedelta(minutes=i % 60, seconds=i // 60)).isoformat().replace("+00:00", "Z")}
            for i in range(n)]


def write_source(folder: Path, records: list[dict[str, Any]]) -> None:
    (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def target_count(folder: Path) -> int:
    return int(query(folder, "SELECT count(*) FROM tests")[0][0])


def run(folder: Path, pipeline_class: type[Pipeline] = Pipeline, **overrides: Any):
    with pipeline_class(folder / "config.json", overrides=overrides or None) as pipeline:
        return pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    """A pipeline whose first window was loaded with 12 rows."""
    folder = make_pipeline_dir(tmp_path / "lab", rows(12))
    assert run(folder).pipeline_status is RunStatus.SUCCESS
    assert target_count(folder) == 12
    return folder


class ArrowCopy(StageToTargetTransfer):
    """The Arrow path: transform() overridden, rows unchanged."""

    def transform(self, batch: pa.RecordBatch, ctx: PhaseContext) -> pa.RecordBatch:
        return batch


class ArrowPipeline(Pipeline):
    phase_classes = {"stage_to_target_transfer": ArrowCopy}


class TestShrinkGuard:
    def test_a_reload_after_the_source_was_purged_fails_and_leaves_the_target_alone(self, loaded: Path) -> None:
        write_source(loaded, rows(1))
        record = run(loaded)
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "stage_to_target_transfer"
        error = record.phases["stage_to_target_transfer"].error_message or ""
        assert "last successful load (lab_20251115T000000Z_run1) had 12 rows (12 in the target)" in error
        assert "this load has only 1 (91.7% fewer)" in error
        assert "--accept-shrink" in error and f"{GUARD}.accept_shrink" in error
        assert target_count(loaded) == 12
        guard = record.phases["stage_to_target_transfer"].phase_specific_details["shrink_guard"]
        assert guard["previous_rows"] == guard["previous_target_rows"] == 12 and guard["rows"] == 1 and guard["stopped"] is True

    def test_emptying_a_window_fails_whatever_the_percentage(self, loaded: Path) -> None:
        write_source(loaded, [])
        record = run(loaded, **{f"{GUARD}.max_shrink_percent": 100})
        assert record.pipeline_status is RunStatus.FAILED
        assert "this load has none" in (record.phases["stage_to_target_transfer"].error_message or "")
        assert target_count(loaded) == 12

    def test_a_shrink_within_the_threshold_goes_through_and_is_recorded(self, loaded: Path) -> None:
        write_source(loaded, rows(10))
        record = run(loaded)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert target_count(loaded) == 10
        guard = record.phases["stage_to_target_transfer"].phase_specific_details["shrink_guard"]
        assert guard["stopped"] is False and guard["accepted"] is False and guard["shrink_percent"] == pytest.approx(16.67)

    def test_a_lower_threshold_stops_a_smaller_shrink(self, loaded: Path) -> None:
        write_source(loaded, rows(10))
        record = run(loaded, **{f"{GUARD}.max_shrink_percent": 10})
        assert record.pipeline_status is RunStatus.FAILED
        assert f"{GUARD}.max_shrink_percent (10%)" in (record.phases["stage_to_target_transfer"].error_message or "")
        assert target_count(loaded) == 12

    def test_accept_shrink_in_config_lets_the_load_through_and_says_so(self, loaded: Path) -> None:
        write_source(loaded, rows(1))
        record = run(loaded, **{f"{GUARD}.accept_shrink": True})
        assert record.pipeline_status is RunStatus.SUCCESS
        assert target_count(loaded) == 1
        guard = record.phases["stage_to_target_transfer"].phase_specific_details["shrink_guard"]
        assert guard["accepted"] is True and guard["previous_target_rows"] == 12

    def test_a_retry_of_the_stopped_window_is_stopped_again(self, loaded: Path) -> None:
        write_source(loaded, rows(1))
        assert run(loaded).pipeline_status is RunStatus.FAILED
        again = run(loaded)
        assert again.pipeline_status is RunStatus.FAILED and again.phase_failed == "stage_to_target_transfer"
        assert target_count(loaded) == 12

    def test_a_source_that_grew_is_not_guarded(self, loaded: Path) -> None:
        write_source(loaded, rows(20))
        record = run(loaded)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert target_count(loaded) == 20
        assert "shrink_guard" not in record.phases["stage_to_target_transfer"].phase_specific_details

    def test_a_merge_target_is_not_guarded_because_merge_removes_nothing(self, tmp_path: Path) -> None:
        merge = {"target_system.load_strategy": "merge", "target_system.merge_keys": ["test_id"]}
        folder = make_pipeline_dir(tmp_path / "lab", rows(12))
        assert run(folder, **merge).pipeline_status is RunStatus.SUCCESS
        write_source(folder, rows(1))
        assert run(folder, **merge).pipeline_status is RunStatus.SUCCESS
        assert target_count(folder) == 12

    @pytest.mark.parametrize("dedup_keys", [["test_id"], []], ids=["keyed", "unkeyed"])
    def test_the_arrow_path_is_guarded_before_the_target_changes(self, tmp_path: Path, dedup_keys: list[str]) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", rows(12), target_system__dedup_keys=dedup_keys)
        assert run(folder, ArrowPipeline).pipeline_status is RunStatus.SUCCESS
        write_source(folder, rows(1))
        record = run(folder, ArrowPipeline)
        assert record.pipeline_status is RunStatus.FAILED
        assert "shrink guard" in (record.phases["stage_to_target_transfer"].error_message or "")
        assert target_count(folder) == 12
        accepted = run(folder, ArrowPipeline, **{f"{GUARD}.accept_shrink": True})
        assert accepted.pipeline_status is RunStatus.SUCCESS
        assert target_count(folder) == 1
        details = accepted.phases["stage_to_target_transfer"].phase_specific_details
        assert details["method"] == "arrow" and details["shrink_guard"]["accepted"] is True


class DropNegatives(StageToTargetTransfer):
    """A transform that keeps only positive results."""

    def transform(self, batch: pa.RecordBatch, ctx: PhaseContext) -> pa.RecordBatch:
        import pyarrow.compute as pc

        return batch.filter(pc.not_equal(batch.column("result"), "negative"))


class FilteringPipeline(Pipeline):
    phase_classes = {"stage_to_target_transfer": DropNegatives}


class TestWhatCountsAsAShrink:
    def test_a_transform_that_now_filters_every_row_is_not_a_shrink_of_the_source(self, loaded: Path) -> None:
        record = run(loaded, FilteringPipeline, **LENIENT)  # every record is "negative": the window empties on purpose
        assert record.pipeline_status is RunStatus.SUCCESS
        assert target_count(loaded) == 0

    def test_a_purge_under_a_filtering_transform_is_measured_on_the_rows_before_it(self, tmp_path: Path) -> None:
        mixed = [dict(r, result="positive" if i % 6 == 0 else "negative") for i, r in enumerate(rows(12))]
        folder = make_pipeline_dir(tmp_path / "lab", mixed)
        assert run(folder, FilteringPipeline, **LENIENT).pipeline_status is RunStatus.SUCCESS
        assert target_count(folder) == 2
        write_source(folder, mixed[:3])  # 12 records became 3; the target would keep 1 of its 2
        record = run(folder, FilteringPipeline, **LENIENT)
        assert record.pipeline_status is RunStatus.FAILED
        assert "had 12 rows (2 in the target); this load has only 3 (75.0% fewer)" in (
            record.phases["stage_to_target_transfer"].error_message or "")
        assert target_count(folder) == 2

    def test_a_window_the_last_load_left_empty_in_the_target_has_nothing_to_guard(self, loaded: Path) -> None:
        assert run(loaded, FilteringPipeline, **LENIENT).pipeline_status is RunStatus.SUCCESS  # 12 stage rows, 0 kept
        write_source(loaded, [])
        record = run(loaded, FilteringPipeline, **LENIENT)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert "shrink_guard" not in record.phases["stage_to_target_transfer"].phase_specific_details
