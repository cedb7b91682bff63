"""Which window a plain run takes: never one that leaves a hole, never one that has not ended.

Runs go through the real runner on the embedded default (files -> DuckDB) with a clock passed
to the runner, so "now" can be anywhere in the windows' past; the property test drives the
real drive store with rows as the runner writes them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.drive import PARTIAL_WINDOW
from drivetrain.errors import WindowNotEnded
from drivetrain.monitoring import gaps
from drivetrain.record import PhaseStatus, RunRecord
from drivetrain.testing import FaultPlugin
from drivetrain.window import Window

from .factory import DAY, make_pipeline_dir, make_rows

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def at(instant: datetime):  # noqa: ANN201 - a clock for Runner(clock=...)
    return lambda: instant


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_pipeline_dir(tmp_path / "lab", make_rows(300, hours=8, invalid_every=0), dag_schedule__catchup=True)


def window(pipeline: Pipeline, hour: int) -> Window:
    return pipeline.grid.window_starting(DAY + hour * HOUR)


def run(pipeline: Pipeline, hour: int, *, now: datetime | None = None, partial: bool = False, fail: str | None = None) -> RunRecord:
    w = window(pipeline, hour)
    runner = pipeline.runner(clock=at(now or DAY + 24 * HOUR))
    with FaultPlugin(fail={fail: 1} if fail else {}).installed():
        return runner.run(w, partial=partial)


def plain(pipeline: Pipeline, now: datetime) -> list[int]:
    """Plain runs until nothing is due; the hours they ran, in order."""
    hours = []
    while (w := pipeline.runner().next_window(now=now)) is not None:
        assert len(hours) < 50, hours
        record = pipeline.runner(clock=at(now)).run(w)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        hours.append(int((w.start - DAY) / HOUR))
    return hours


class TestNeverSkip:
    def test_a_run_ahead_leaves_no_window_behind(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            run(pipeline, 4)
            assert plain(pipeline, DAY + 6 * HOUR) == [0, 1, 2, 3, 5]

    def test_the_oldest_failed_window_comes_before_older_windows_never_run(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            run(pipeline, 3, fail="stage_to_target_transfer")
            assert pipeline.runner().next_window(now=DAY + 6 * HOUR) == window(pipeline, 3)

    def test_a_window_a_live_process_is_running_is_passed_over(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            pipeline.runner().start(window(pipeline, 0))  # driven step by step, e.g. by Airflow: alive
            assert pipeline.runner().next_window(now=DAY + 6 * HOUR) == window(pipeline, 1)

    def test_nothing_is_due_when_every_ended_window_is_complete(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            plain(pipeline, DAY + 2 * HOUR + 30 * MINUTE)
            assert pipeline.runner().next_window(now=DAY + 2 * HOUR + 30 * MINUTE) is None


class TestCatchup:
    def test_without_catchup_a_new_pipeline_begins_with_the_latest_ended_window(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(300, hours=8, invalid_every=0), dag_schedule__catchup=False)
        with Pipeline.load(folder) as pipeline:
            assert plain(pipeline, DAY + 4 * HOUR + 30 * MINUTE) == [3]

    def test_without_catchup_a_run_ahead_leaves_no_window_after_the_first_run_behind(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(300, hours=8, invalid_every=0), dag_schedule__catchup=False)
        with Pipeline.load(folder) as pipeline:
            run(pipeline, 1)
            run(pipeline, 4)
            assert plain(pipeline, DAY + 6 * HOUR) == [2, 3, 5]

    def test_without_catchup_no_window_after_the_first_run_is_skipped(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(300, hours=8, invalid_every=0), dag_schedule__catchup=False)
        with Pipeline.load(folder) as pipeline:
            plain(pipeline, DAY + 2 * HOUR + 30 * MINUTE)
            assert plain(pipeline, DAY + 6 * HOUR) == [2, 3, 4, 5]

    def test_with_catchup_a_new_pipeline_begins_at_start_date(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            assert plain(pipeline, DAY + 3 * HOUR) == [0, 1, 2]


class TestWindowsThatHaveNotEnded:
    def test_a_window_that_has_not_ended_is_refused_saying_when_it_ends(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline, pytest.raises(WindowNotEnded, match="has not ended yet"):
            run(pipeline, 0, now=DAY + 30 * MINUTE)
            assert not pipeline.drive_store().history("lab")

    def test_a_partial_run_is_marked_in_its_row(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            record = run(pipeline, 0, now=DAY + 30 * MINUTE, partial=True)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases["pre_validation"].phase_specific_details[PARTIAL_WINDOW] is True

    def test_a_partial_window_is_run_again_by_a_plain_run_once_it_has_ended(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            run(pipeline, 0, now=DAY + 30 * MINUTE, partial=True)
            assert pipeline.runner().next_window(now=DAY + 50 * MINUTE) is None
            assert plain(pipeline, DAY + HOUR + MINUTE) == [0]
            (first, second) = pipeline.drive_store().attempts("lab", DAY, DAY + HOUR)
        assert PARTIAL_WINDOW not in second.phases["pre_validation"].phase_specific_details
        assert second.pipeline_status is RunStatus.SUCCESS

    def test_work_of_a_failed_partial_run_is_never_carried(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            run(pipeline, 0, now=DAY + 30 * MINUTE, partial=True, fail="stage_to_target_transfer")
            record = run(pipeline, 0, now=DAY + 2 * HOUR)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases["source_to_stage_transfer"].status is PhaseStatus.COMPLETED
        notes = record.phases["pre_validation"].phase_specific_details["continuation_notes"]
        assert any("ran before the window ended" in n for n in notes), notes

    def test_a_partial_success_is_a_gap_once_the_window_has_ended(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            run(pipeline, 0, now=DAY + 30 * MINUTE, partial=True)
            found = gaps.find_gaps(pipeline, end=DAY + HOUR, now=DAY + 2 * HOUR)
        assert [(g.window.start, g.kind) for g in found] == [(DAY, gaps.FAILED)]
