"""SIGTERM to ``drivetrain run``: the work in hand finishes, the run ends FAILED as interrupted.

The CLI turns SIGTERM into ``Runner.cancel``. Each scenario holds the run at a known point (a
phase of the folder's ``pipeline.py`` writes a marker file, then waits for a "go" file), sends
SIGTERM, lets it go on, and reads the drive row: status, the failed phase, the three phase
arrays and the error. The next run must resume the window and end with the exact target.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows, query, target_rows

SCRIPT = Path(sys.executable).with_name("drivetrain")
WINDOW = (DAY, DAY.replace(hour=1))
BEFORE_TRANSFER = ("stale_pipeline_handling", "pre_validation", "source_count")

PIPELINE = '''
import time
from pathlib import Path

from drivetrain import Pipeline, SourceToStageTransfer, StageToTargetTransfer
from drivetrain.testing import FaultySource

MARKS = Path({marks!r})


def hold(name):
    """Say we are at ``name``, then wait for the test's go-ahead."""
    (MARKS / name).write_text("here")
    for _ in range(6000):
        if (MARKS / "go").exists():
            return
        time.sleep(0.01)
    raise RuntimeError("the test never said go")


class CountingTransfer(SourceToStageTransfer):
    """Logs each batch it transforms; holds inside batch 2."""

    seen = 0

    def transform(self, batch, ctx):
        n = CountingTransfer.seen
        CountingTransfer.seen += 1
        with open(MARKS / "batches.log", "a") as log:
            log.write(f"start {{n}}\\n")
        if n == 2 and {scenario!r} == "mid_batch":
            hold("in_batch")
        with open(MARKS / "batches.log", "a") as log:
            log.write(f"end {{n}}\\n")
        return batch


class HeldPushDown(StageToTargetTransfer):
    """Holds before the push-down, which cannot stop half way once it starts."""

    def run(self, ctx):
        if {scenario!r} == "push_down":
            hold("before_push_down")
        return super().run(ctx)


class HoldingFaultySource(FaultySource):
    """Fails with a transient error, once the test has had the chance to send SIGTERM."""

    def extract(self, window):
        hold("failing")
        yield from super().extract(window)


class ReliabilityPipeline(Pipeline):
    phase_classes = {{"source_to_stage_transfer": CountingTransfer, "stage_to_target_transfer": HeldPushDown}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if {scenario!r} == "retry_wait":
            self.use(source=HoldingFaultySource(self.source(), fail_at_batch=0, times=100))
'''


def make_folder(tmp_path: Path, scenario: str, **changes: object) -> tuple[Path, Path]:
    marks = tmp_path / "marks"
    marks.mkdir()
    rows = make_rows(300, hours=1, seed=11)
    folder = make_pipeline_dir(tmp_path / "lab", rows, source_system__batch_size=20, **changes)
    (folder / "pipeline.py").write_text(PIPELINE.format(marks=str(marks), scenario=scenario))
    return folder, marks


def start_cli(folder: Path, cwd: Path) -> subprocess.Popen[str]:
    if not SCRIPT.exists():
        pytest.fail(f"the drivetrain console script is not installed next to {sys.executable}: pip install -e .")
    env = {**os.environ, "HOME": str(cwd), "NO_COLOR": "1"}
    return subprocess.Popen([str(SCRIPT), "run", str(folder), "--window-start", WINDOW[0].isoformat()], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(marker: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if not marker.exists():
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the run never reached {marker.name}: rc={process.returncode}\n{out}\n{err[-3000:]}")


def interrupt(folder: Path, marks: Path, marker: str) -> tuple[int, str]:
    process = start_cli(folder, marks)
    wait_for(marks / marker, process)
    process.send_signal(signal.SIGTERM)
    (marks / "go").write_text("go")
    out, err = process.communicate(timeout=120)
    return process.returncode, out + err


def drive_row(folder: Path) -> dict[str, object]:
    names = ["pipeline_status", "phase_failed", "phases_completed", "phases_skipped", "phases_pending", "pipeline_end_timestamp"]
    row = query(folder, f"SELECT {', '.join(names)} FROM pipeline_execution_drive ORDER BY pipeline_retry_number")[0]
    return dict(zip(names, row, strict=True))


def phase_error(folder: Path, phase: str) -> str:
    return query(folder, f"SELECT {phase}_phase->>'$.error_message' FROM pipeline_execution_drive ORDER BY pipeline_retry_number")[0][0]


def resume_and_check(folder: Path) -> None:
    (folder / "pipeline.py").unlink()
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.window_starting(WINDOW[0]))
    assert record.pipeline_status is RunStatus.SUCCESS, record.phases
    assert record.pipeline_retry_number == 1
    rows = make_rows(300, hours=1, seed=11)
    expected = expected_target(rows, *WINDOW)
    assert target_rows(folder, *WINDOW) == sorted((k, v["result"]) for k, v in expected.items())


class TestSigterm:
    def test_mid_transfer_the_current_batch_finishes_and_no_other_starts(self, tmp_path: Path) -> None:
        folder, marks = make_folder(tmp_path, "mid_batch")
        code, output = interrupt(folder, marks, "in_batch")
        assert code == 1, output
        assert "stopped by SIGTERM" in output
        assert (marks / "batches.log").read_text().split("\n")[-3:] == ["start 2", "end 2", ""]

    def test_mid_transfer_the_row_is_failed_at_the_transfer_with_accurate_arrays(self, tmp_path: Path) -> None:
        folder, marks = make_folder(tmp_path, "mid_batch")
        interrupt(folder, marks, "in_batch")
        row = drive_row(folder)
        assert row["pipeline_status"] == "FAILED"
        assert row["phase_failed"] == "source_to_stage_transfer"
        assert tuple(row["phases_completed"]) == BEFORE_TRANSFER
        assert tuple(row["phases_skipped"]) == ("target_cleaning",)
        assert tuple(row["phases_pending"]) == ("stage_count", "stage_to_target_transfer", "target_count", "audit", "publish",
                                                "stage_cleaning")
        assert row["pipeline_end_timestamp"] is not None
        assert "stopped by SIGTERM" in phase_error(folder, "source_to_stage_transfer")

    def test_mid_transfer_nothing_reaches_stage_and_no_load_table_is_left(self, tmp_path: Path) -> None:
        folder, marks = make_folder(tmp_path, "mid_batch")
        interrupt(folder, marks, "in_batch")
        assert query(folder, "SELECT count(*) FROM stg_tests")[0][0] == 0
        assert query(folder, "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '%__load_%'")[0][0] == 0

    def test_mid_transfer_the_next_run_resumes_the_window(self, tmp_path: Path) -> None:
        folder, marks = make_folder(tmp_path, "mid_batch")
        interrupt(folder, marks, "in_batch")
        resume_and_check(folder)

    def test_during_a_push_down_the_phase_commits_and_the_next_phase_is_not_started(self, tmp_path: Path) -> None:
        folder, marks = make_folder(tmp_path, "push_down")
        code, output = interrupt(folder, marks, "before_push_down")
        assert code == 1, output
        row = drive_row(folder)
        assert row["phase_failed"] == "target_count"
        assert tuple(row["phases_completed"])[-2:] == ("stage_count", "stage_to_target_transfer")
        assert tuple(row["phases_pending"]) == ("audit", "publish", "stage_cleaning")
        assert phase_error(folder, "target_count") == "not started: stopped by SIGTERM"
        assert query(folder, "SELECT count(*) FROM tests__pending_rows")[0][0] > 0  # written (the row numbers), not yet published
        resume_and_check(folder)

    def test_a_transient_error_met_after_sigterm_is_not_retried_and_says_why(self, tmp_path: Path) -> None:
        folder, marks = make_folder(tmp_path, "retry_wait", retry={"max_retries": 5, "backoff_strategy": "linear", "backoff_seconds": 600})
        code, output = interrupt(folder, marks, "failing")
        assert code == 1, output
        row = drive_row(folder)
        assert row["phase_failed"] == "source_to_stage_transfer"
        error = phase_error(folder, "source_to_stage_transfer")
        assert "injected fault" in error and "stopped by SIGTERM" in error, error
        resume_and_check(folder)
