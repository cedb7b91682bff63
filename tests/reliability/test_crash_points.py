"""SIGKILL at the crash points tests/sdk/test_crash.py does not reach, then run again.

test_crash.py kills before and after every phase, after some source batches and inside each
commit transaction. This file adds the edges of a commit: the whole window sitting in the load
table before the commit starts, and the instant after a commit returned but before the runner
recorded the phase (the data is in, the drive table still says RUNNING). It also kills runs
that were themselves resuming a failed attempt. Recovery is judged as in test_crash.py: the
next run ends SUCCESS, the target holds each valid row once, the archive holds day 1 once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk.factory import query
from tests.sdk.test_crash import WINDOW_B, check_recovered, prepare

CHILD = Path(__file__).with_name("child.py")

#: Push-down path (stage and target in one DuckDB file).
POINTS = [
    "loaded:source_to_stage_transfer",
    "committed:source_to_stage_transfer",
    "committed:stage_to_target_transfer",
    "committed:stage_cleaning",
    "batch:0",
    "batch:6",
]
#: Arrow path (a transform() override): the commit of a load table into the target.
ARROW_POINTS = ["loaded:source_to_stage_transfer", "committed:stage_to_target_transfer"]
#: (phase that fails first, point where the resuming attempt is killed)
RESUMED = [
    ("stage_to_target_transfer", "before:stage_to_target_transfer"),
    ("stage_to_target_transfer", "committed:stage_to_target_transfer"),
    ("stage_cleaning", "committed:stage_cleaning"),
]
CRASH_POINTS = len(POINTS) + len(ARROW_POINTS) + len(RESUMED)


def child(folder: Path, point: str = "none", *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(CHILD), str(folder), WINDOW_B[0].isoformat(), "--point", point, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def assert_killed(done: subprocess.CompletedProcess[str], point: str) -> None:
    assert done.returncode == -9, f"expected SIGKILL at {point}: rc={done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"


def statuses(folder: Path) -> list[str]:
    return [r[0] for r in query(
        folder, "SELECT pipeline_status FROM pipeline_execution_drive WHERE query_window_start_timestamp = ? "
        "ORDER BY pipeline_retry_number", [WINDOW_B[0]],
    )]


@pytest.mark.slow
class TestKillAtCommitEdges:
    @pytest.mark.parametrize("point", POINTS)
    def test_push_down_path_recovers(self, tmp_path: Path, point: str) -> None:
        folder = prepare(tmp_path)
        assert_killed(child(folder, point), point)
        check_recovered(folder, arrow=False)

    @pytest.mark.parametrize("point", ARROW_POINTS)
    def test_arrow_path_recovers(self, tmp_path: Path, point: str) -> None:
        folder = prepare(tmp_path)
        assert_killed(child(folder, point, "--arrow"), point)
        check_recovered(folder, arrow=True)

    def test_a_kill_after_the_target_commit_is_closed_as_failed_with_the_phase_still_running(self, tmp_path: Path) -> None:
        folder = prepare(tmp_path)
        assert_killed(child(folder, "committed:stage_to_target_transfer"), "committed")
        check_recovered(folder, arrow=False)
        first = query(
            folder, "SELECT phase_failed, stage_to_target_transfer_phase->>'$.error_message' FROM pipeline_execution_drive "
            "WHERE query_window_start_timestamp = ? AND pipeline_retry_number = 0", [WINDOW_B[0]],
        )[0]
        assert first[0] == "stage_to_target_transfer"
        assert "stopped before finishing" in first[1]
        assert statuses(folder) == ["FAILED", "SUCCESS"]


@pytest.mark.slow
class TestKillWhileResuming:
    @pytest.mark.parametrize(("failing", "point"), RESUMED)
    def test_a_resuming_attempt_killed_is_resumed_again(self, tmp_path: Path, failing: str, point: str) -> None:
        folder = prepare(tmp_path)
        failed = child(folder, "none", "--fail", failing)
        assert failed.returncode == 0, failed.stderr[-3000:]
        assert json.loads(failed.stdout.strip().splitlines()[-1])["status"] == "FAILED"
        assert_killed(child(folder, point), point)
        check_recovered(folder, arrow=False)
        assert statuses(folder) == ["FAILED", "FAILED", "SUCCESS"]
        carried = query(
            folder, "SELECT source_to_stage_transfer_phase->>'$.status' FROM pipeline_execution_drive "
            "WHERE query_window_start_timestamp = ? AND pipeline_retry_number = 2", [WINDOW_B[0]],
        )[0][0]
        assert carried == "SKIPPED", "the third attempt should carry the first attempt's load forward"
