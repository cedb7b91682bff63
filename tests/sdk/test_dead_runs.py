"""Runs killed with SIGKILL are closed by the next run of the pipeline, whatever its window.

On DuckDB the window's file lock, which the kernel drops when its holder dies, proves at once
that the process is gone: no waiting for the stale timeout. A RUNNING row of a dead process is
never counted as running (or covered) by gap detection.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.monitoring import gaps
from drivetrain.monitoring.cli import only_gaps
from drivetrain.record import PhaseStatus, RunRecord

from .factory import DAY, make_pipeline_dir, make_rows

CHILD = Path(__file__).with_name("crash_child.py")
HOUR = timedelta(hours=1)
FIRST, SECOND, THIRD = DAY, DAY + HOUR, DAY + 2 * HOUR


def killed_run(folder: Path, start: datetime, point: str) -> None:
    """Run the window starting at ``start`` in a child process that SIGKILLs itself at ``point``."""
    done = subprocess.run([sys.executable, str(CHILD), str(folder), start.isoformat(), point],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == -9, f"expected SIGKILL at {point}: rc={done.returncode}\n{done.stderr[-3000:]}"


def rows_of(folder: Path, start: datetime) -> list[RunRecord]:
    with Pipeline.load(folder) as pipeline:
        return pipeline.drive_store().attempts("lab", start, start + HOUR)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_pipeline_dir(tmp_path / "lab", make_rows(300, invalid_every=100))


class TestClosedByTheNextRun:
    def test_a_run_of_another_window_closes_the_killed_row_at_once(self, folder: Path) -> None:
        killed_run(folder, FIRST, "before:source_to_stage_transfer")
        assert rows_of(folder, FIRST)[0].pipeline_status is RunStatus.RUNNING
        with Pipeline.load(folder) as pipeline:
            pipeline.runner().run(pipeline.grid.window_starting(THIRD))
        (closed,) = rows_of(folder, FIRST)
        assert closed.pipeline_status is RunStatus.FAILED
        assert closed.phase_failed == "source_to_stage_transfer"
        message = closed.phases["source_to_stage_transfer"].error_message or ""
        assert "killed or crashed" in message, message

    def test_a_row_killed_between_phases_names_the_next_phase_and_the_reason(self, folder: Path) -> None:
        killed_run(folder, FIRST, "after:source_count")
        with Pipeline.load(folder) as pipeline:
            pipeline.runner().run(pipeline.grid.window_starting(THIRD))
        (closed,) = rows_of(folder, FIRST)
        assert closed.phase_failed == "source_to_stage_transfer"
        state = closed.phases["source_to_stage_transfer"]
        assert state.status is PhaseStatus.FAILED
        assert state.error_message and "killed or crashed" in state.error_message
        assert closed.phases["source_count"].status is PhaseStatus.COMPLETED

    def test_a_plain_run_takes_the_killed_window_and_completes_it(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            pipeline.runner().run(pipeline.grid.window_starting(FIRST))
        killed_run(folder, SECOND, "before:stage_count")
        with Pipeline.load(folder) as pipeline:
            window = pipeline.runner().next_window(now=DAY + 10 * HOUR)
            assert window is not None and window.start == SECOND
            record = pipeline.runner().run(window)
        assert record.pipeline_status is RunStatus.SUCCESS
        first, second = rows_of(folder, SECOND)
        assert first.pipeline_status is RunStatus.FAILED and record.pipeline_id == second.pipeline_id

    def test_a_live_run_of_another_window_is_left_alone(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            runner = pipeline.runner()
            started = runner.start(pipeline.grid.window_starting(FIRST))  # step by step: no process holds it between steps
            pipeline.runner().run(pipeline.grid.window_starting(THIRD))
            assert pipeline.drive_store().get(started.pipeline_id).pipeline_status is RunStatus.RUNNING


class TestGaps:
    def test_a_killed_row_is_a_failed_gap_not_a_running_one(self, folder: Path) -> None:
        killed_run(folder, FIRST, "before:source_to_stage_transfer")
        with Pipeline.load(folder) as pipeline:
            found = gaps.find_gaps(pipeline, end=SECOND, now=DAY + 10 * HOUR)
        assert [(g.window.start, g.kind) for g in found] == [(FIRST, gaps.FAILED)]

    def test_only_gaps_runs_the_killed_window(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            pipeline.runner().run(pipeline.grid.window_starting(SECOND))
        killed_run(folder, FIRST, "before:source_to_stage_transfer")
        with Pipeline.load(folder) as pipeline:
            windows = list(pipeline.grid.windows_between(FIRST, THIRD))
            assert [w.start for w in only_gaps(pipeline, windows, now=DAY + 10 * HOUR)] == [FIRST]


class TestHistory:
    def test_history_shows_why_the_closed_run_failed(self, folder: Path) -> None:
        killed_run(folder, FIRST, "after:pre_validation")
        script = Path(sys.executable).with_name("drivetrain")
        ran = subprocess.run([str(script), "run", str(folder), "--window-start", THIRD.isoformat()],
                             capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        shown = subprocess.run([str(script), "history", str(folder), "--json"], capture_output=True, text=True, timeout=120)
        rows = {r["pipeline_id"]: r for r in json.loads(shown.stdout)}
        killed = rows["lab_20251115T000000Z_run1"]
        assert killed["pipeline_status"] == "FAILED"
        assert killed["phase_failed"] == "source_count"
        assert "killed or crashed" in json.dumps(killed["source_count_phase"])


class TestStatus:
    def test_status_counts_a_killed_run_as_an_open_failure_before_anything_closes_it(self, folder: Path) -> None:
        killed_run(folder, FIRST, "before:source_to_stage_transfer")
        script = Path(sys.executable).with_name("drivetrain")
        shown = subprocess.run([str(script), "status", str(folder)], capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr
        header, row = shown.stdout.splitlines()[:2]
        column = header.index("open failures")
        assert row[column:].split()[0] == "1", shown.stdout
        assert "1 failed" in shown.stdout


class TestClosedByHeartbeatAge:
    def test_a_row_nothing_else_can_judge_is_closed_by_its_heartbeat_age_with_the_reason_on_its_next_phase(self, folder: Path) -> None:
        import attrs

        from drivetrain.record import PhaseState

        with Pipeline.load(folder) as pipeline:
            done = pipeline.runner().run(pipeline.grid.window_starting(SECOND))
            old = done.pipeline_start_timestamp - timedelta(hours=5)
            phases = {n: (s if n in ("stale_pipeline_handling", "pre_validation", "source_count") else PhaseState())
                      for n, s in done.phases.items()}
            ghost = attrs.evolve(done, pipeline_id="ghost", pipeline_status=RunStatus.RUNNING, pipeline_end_timestamp=None,
                                 phase_failed=None, pipeline_start_timestamp=old, lease_holder=None, phases=phases,
                                 phases_completed=("stale_pipeline_handling", "pre_validation", "source_count"),
                                 phases_pending=tuple(n for n, s in phases.items() if s.status is PhaseStatus.PENDING))
            store = pipeline.drive_store()
            store.insert(ghost)
            store.heartbeat("ghost", old)
            pipeline.runner().run(pipeline.grid.window_starting(THIRD))
            closed = store.get("ghost")
        assert closed is not None and closed.pipeline_status is RunStatus.FAILED
        assert closed.phase_failed == "source_to_stage_transfer"
        assert "stale: no heartbeat since" in (closed.phases["source_to_stage_transfer"].error_message or "")
