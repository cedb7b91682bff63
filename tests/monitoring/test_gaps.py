"""Gap detection over the history's drive table: which windows still need a successful run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drivetrain.monitoring import gaps
from drivetrain.monitoring.cli import gap_lines, only_gaps
from tests.sdk.factory import DAY

HOUR = timedelta(hours=1)
#: Six windows after the start date have ended: 00:00 .. 05:00.
NOW = DAY + 6 * HOUR + timedelta(minutes=10)


@pytest.fixture(scope="module")
def pipeline(history):
    with history.pipeline() as pipe:
        yield pipe


def kinds(found):
    return [(g.window.start - DAY, g.kind, g.attempts) for g in found]


class TestFindGaps:
    def test_windows_without_a_successful_run_are_gaps(self, pipeline):
        # 00:00 ok, 01:00 failed then ok, 02:00 failed, 03:00 skipped (empty), 04:00 and 05:00 never ran
        assert kinds(gaps.find_gaps(pipeline, now=NOW)) == [(2 * HOUR, "failed", 1), (4 * HOUR, "missing", 0), (5 * HOUR, "missing", 0)]

    def test_a_window_that_has_not_ended_is_not_a_gap(self, pipeline):
        found = gaps.find_gaps(pipeline, now=DAY + 5 * HOUR + timedelta(minutes=59))
        assert [g.window.start - DAY for g in found] == [2 * HOUR, 4 * HOUR]

    def test_the_range_can_be_limited(self, pipeline):
        found = gaps.find_gaps(pipeline, start=DAY + 3 * HOUR, end=DAY + 5 * HOUR, now=NOW)
        assert kinds(found) == [(4 * HOUR, "missing", 0)]

    def test_a_run_in_progress_is_a_running_gap(self, history_copy):
        from tests.sdk.factory import drive_execute

        drive_execute(history_copy.folder, "UPDATE pipeline_execution_drive SET pipeline_status = 'RUNNING' WHERE pipeline_id = ?",
                      [history_copy.runs[4].pipeline_id])
        with history_copy.pipeline() as pipe:
            run = history_copy.runs[4]  # a live process (this one) holds the window, as a running run does
            pipe.drive_store().acquire_lease(pipe.name, run.query_window_start_timestamp, run.query_window_end_timestamp, "live", 60)
            assert kinds(gaps.find_gaps(pipe, now=NOW))[0] == (2 * HOUR, "running", 1)

    def test_a_running_row_whose_process_is_gone_is_a_failed_gap(self, history_copy):
        from tests.sdk.factory import drive_execute

        drive_execute(history_copy.folder, "UPDATE pipeline_execution_drive SET pipeline_status = 'RUNNING' WHERE pipeline_id = ?",
                      [history_copy.runs[4].pipeline_id])
        with history_copy.pipeline() as pipe:  # nobody holds the window's lock: its process is gone
            assert kinds(gaps.find_gaps(pipe, now=NOW))[0] == (2 * HOUR, "failed", 1)


class TestRanges:
    def test_consecutive_gaps_of_one_kind_form_one_range(self, pipeline):
        ranges = gaps.group_gaps("lab", gaps.find_gaps(pipeline, now=NOW))
        assert [(r.kind, r.start - DAY, r.end - DAY, r.windows) for r in ranges] == [
            ("failed", 2 * HOUR, 3 * HOUR, 1), ("missing", 4 * HOUR, 6 * HOUR, 2)]

    def test_each_range_has_the_command_that_fills_it(self, pipeline):
        ranges = gaps.group_gaps("lab", gaps.find_gaps(pipeline, now=NOW))
        assert ranges[1].fill_command() == "drivetrain run lab --from 2025-11-15T04:00:00Z --to 2025-11-15T06:00:00Z"

    def test_the_summary_counts_missing_and_failed_windows(self, pipeline):
        summary = gaps.summarize("lab", gaps.find_gaps(pipeline, now=NOW))
        assert (summary.missing, summary.failed, summary.first) == (2, 1, DAY + 2 * HOUR)


class TestForTheCli:
    def test_status_lines_list_the_ranges_with_their_commands(self, pipeline):
        lines = gap_lines(pipeline, now=NOW)
        assert lines[0] == "gaps since 2025-11-15: 2 never ran, 1 failed"
        assert lines[1].split() [:2] == ["failed", "2025-11-15"] and "(1 window, 1 attempt)" in lines[1]
        assert lines[2].endswith("drivetrain run lab --from 2025-11-15T04:00:00Z --to 2025-11-15T06:00:00Z")

    def test_status_says_so_when_there_is_no_gap(self, pipeline):
        assert gap_lines(pipeline, now=DAY + 2 * HOUR) == ["gaps: none: every window since 2025-11-15 has a successful run"]

    def test_long_lists_are_cut(self, pipeline):
        lines = gap_lines(pipeline, now=NOW, limit=1)
        assert lines[-1] == "  ... and 1 more range(s)"

    def test_a_backfill_keeps_only_the_windows_that_need_a_run(self, pipeline):
        windows = list(pipeline.grid.windows_between(DAY, DAY + 6 * HOUR))
        assert [w.start - DAY for w in only_gaps(pipeline, windows, now=NOW)] == [2 * HOUR, 4 * HOUR, 5 * HOUR]

    def test_a_backfill_of_nothing_is_nothing(self, pipeline):
        assert only_gaps(pipeline, []) == []
