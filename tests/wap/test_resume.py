"""SIGKILL around the gate: readers never see half a window, and the next run redoes only what is missing.

A window already holds its first load; a child process loads it again from changed records and
is killed at one of the gate's points. Right after the kill the target shows the old version or
the new one, whole; the next run finishes the window, carrying the audited transfer and counts
and running publish only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.record import PhaseStatus
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows, query

from .conftest import HOUR, changed, snapshot

CHILD = Path(__file__).parents[1] / "sdk" / "crash_child.py"
#: point -> the phases the next run carries from the killed one (the rest after them run again).
POINTS = {
    "after:stage_to_target_transfer": ("stage_to_target_transfer",),
    "after:audit": ("stage_to_target_transfer", "target_count", "audit"),
    "commit:publish": ("stage_to_target_transfer", "target_count", "audit"),
    "published": ("stage_to_target_transfer", "target_count", "audit"),
}


def pairs(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted((k, v["result"]) for k, v in expected_target(rows, DAY, DAY + HOUR).items())


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("arrow", [False, True], ids=["push-down", "arrow"])
def test_a_kill_around_publish_shows_a_whole_window_and_resumes_at_publish(tmp_path: Path, point: str, arrow: bool) -> None:
    rows = make_rows(300, hours=1, seed=5)
    folder = make_pipeline_dir(tmp_path / "lab", rows)
    with Pipeline.load(folder) as pipeline:
        assert pipeline.runner().run(pipeline.grid.window_starting(DAY)).pipeline_status is RunStatus.SUCCESS
    old, new_rows = pairs(rows), changed(rows)
    (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new_rows))

    cmd = [sys.executable, str(CHILD), str(folder), DAY.isoformat(), point] + (["--arrow"] if arrow else [])
    killed = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert killed.returncode == -9, killed.stderr[-3000:]

    visible = snapshot(folder)["window"]
    assert visible == (pairs(new_rows) if point == "published" else old)  # whole: never a mix of both
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
    assert record.pipeline_status is RunStatus.SUCCESS, record.phases[record.phase_failed or "audit"].error_message
    assert snapshot(folder)["window"] == pairs(new_rows)
    total, distinct = query(folder, "SELECT count(*), count(DISTINCT test_id) FROM tests")[0]
    assert total == distinct == len(pairs(new_rows))  # 0 lost, 0 duplicated
    pending = "tests__pending" if arrow else "tests__pending_rows"  # the push-down keeps row numbers pending
    assert query(folder, f"SELECT count(*) FROM {pending}")[0][0] == 0
    killed_run = f"lab_{DAY.strftime('%Y%m%dT%H%M%SZ')}_run2"
    for name in POINTS[point]:
        assert record.phases[name].status is PhaseStatus.SKIPPED and record.phases[name].carried_from == killed_run, name
    assert record.phases["publish"].status is PhaseStatus.COMPLETED
    if point == "published":
        assert record.phases["publish"].phase_specific_details["note"].startswith("already published")
