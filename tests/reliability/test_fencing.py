"""A run paused (SIGSTOP) past its lease: who may write the window afterwards.

On DuckDB the window's lease is an OS file lock that the paused process still holds, so no one
can take the window over: a second run is refused while the first is stopped, and the first
finishes correctly after SIGCONT. On Snowflake the lease is a row that expires: a second run
takes the window over and completes it, and the first, once resumed, is fenced off and writes
nothing (no data row, no drive-row change).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivetrain import Pipeline
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows, query, target_rows

CHILD = Path(__file__).with_name("child.py")
SF_CHILD = Path(__file__).resolve().parents[1] / "connectors" / "snowflake" / "child.py"
WINDOW = (DAY, DAY + timedelta(hours=1))
PAUSE_AT = "pause:stage_to_target_transfer"


def rows() -> list[dict[str, object]]:
    return make_rows(300, hours=1, seed=21)


def expected() -> list[tuple[str, str]]:
    return sorted((k, v["result"]) for k, v in expected_target(rows(), *WINDOW).items())


def start_child(folder: Path, *extra: str, snowflake: bool = False) -> subprocess.Popen[str]:
    prefix = [sys.executable, str(SF_CHILD), str(CHILD)] if snowflake else [sys.executable, str(CHILD)]
    return subprocess.Popen([*prefix, str(folder), WINDOW[0].isoformat(), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outcome(process: subprocess.Popen[str]) -> tuple[int, dict[str, str], str]:
    out, err = process.communicate(timeout=180)
    lines = out.strip().splitlines()
    return process.returncode, (json.loads(lines[-1]) if lines else {}), err


def wait_until(condition: Callable[[], bool], what: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    out, err = process.communicate()
    pytest.fail(f"{what} never happened: rc={process.returncode}\n{out}\n{err[-3000:]}")


def is_stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


def paused_run(folder: Path, *, snowflake: bool = False) -> subprocess.Popen[str]:
    """A run stopped as its stage-to-target transfer starts, with a 1 s lease it never renews."""
    process = start_child(folder, "--point", PAUSE_AT, "--lease", "1", "--heartbeat", "3600", snowflake=snowflake)
    wait_until(lambda: is_stopped(process.pid), "the SIGSTOP of the first run", process)
    return process


def wait_past_lease(folder: Path, process: subprocess.Popen[str]) -> str:
    """Wait until the paused run's lease has expired; returns its holder."""
    note = json.loads((folder / "paused.json").read_text())
    expires = datetime.fromisoformat(note["expires_at"])
    wait_until(lambda: datetime.now(UTC) > expires, "the expiry of the paused run's lease", process)
    return str(note["holder"])


class TestPausedOnDuckDB:
    @pytest.fixture
    def folder(self, tmp_path: Path) -> Path:
        folder = make_pipeline_dir(tmp_path / "lab", rows())
        with Pipeline.load(folder) as pipeline:
            pipeline.drive_store().ensure()
        return folder

    def test_a_second_run_is_refused_while_the_first_is_stopped_past_its_lease(self, folder: Path) -> None:
        first = paused_run(folder)
        try:
            holder = wait_past_lease(folder, first)
            code, result, err = outcome(start_child(folder))
            assert code == 3, err[-3000:]
            assert holder in result["error"], result
        finally:
            first.send_signal(signal.SIGCONT)
            first.communicate(timeout=180)

    def test_after_sigcont_the_first_run_finishes_the_window_correctly(self, folder: Path) -> None:
        first = paused_run(folder)
        wait_past_lease(folder, first)
        refused = start_child(folder)
        assert refused.wait(timeout=180) == 3
        first.send_signal(signal.SIGCONT)
        code, result, err = outcome(first)
        assert (code, result.get("status")) == (0, "SUCCESS"), err[-3000:]
        assert target_rows(folder, *WINDOW) == expected()
        assert query(folder, "SELECT count(*), max(token) FROM drivetrain_leases")[0] == (1, 1)
        assert query(folder, "SELECT pipeline_status FROM pipeline_execution_drive") == [("SUCCESS",)]


@pytest.mark.slow
class TestPausedOnSnowflake:
    @pytest.fixture
    def folder(self, tmp_path: Path, fakesnow_server: object, sf_database: str, sf_env: dict[str, str]) -> Path:
        from tests.connectors.snowflake.scenario import make_snowflake_pipeline, register_snowflake

        folder = make_snowflake_pipeline(tmp_path / "sf", fakesnow_server, sf_database, rows())
        register_snowflake()
        with Pipeline.load(folder) as pipeline:
            pipeline.drive_store().ensure()
        return folder

    def test_the_paused_run_writes_nothing_after_another_run_took_the_window(
        self, folder: Path, fakesnow_server: object, sf_database: str,
    ) -> None:
        from tests.connectors.snowflake.conftest import sf_rows
        from tests.connectors.snowflake.scenario import target_rows as sf_target_rows

        def drive() -> list[tuple[object, ...]]:
            return sf_rows(fakesnow_server, sf_database, "SELECT PIPELINE_ID, PIPELINE_STATUS, UPDATED_AT, PHASE_FAILED "
                           "FROM PIPELINE_EXECUTION_DRIVE ORDER BY PIPELINE_RETRY_NUMBER")

        first = paused_run(folder, snowflake=True)
        try:
            wait_past_lease(folder, first)
            code, taken, err = outcome(start_child(folder, snowflake=True))
            assert (code, taken.get("status")) == (0, "SUCCESS"), err[-3000:]
            before = drive()
        finally:
            resumed_at = datetime.now(UTC)
            first.send_signal(signal.SIGCONT)
        code, result, err = outcome(first)
        # it finds its lease gone and ends FAILED (exit 0 from the child: not "locked"), writing nothing:
        # the run that took the window over had already closed its row
        assert (code, result.get("status")) == (0, "FAILED"), f"the resumed run was not fenced off: {result}\n{err[-3000:]}"
        assert "no longer holds the window" in err, err[-3000:]
        assert drive() == before
        assert [r[1] for r in before] == ["FAILED", "SUCCESS"]
        assert sf_target_rows(fakesnow_server, sf_database, *WINDOW) == expected()
        for table in ("TESTS", "STG_TESTS"):
            last = sf_rows(fakesnow_server, sf_database, f'SELECT MAX("_drivetrain_loaded_at") FROM {table}')[0][0]
            assert last.astimezone(UTC) < resumed_at, f"{table} was written after the paused run resumed"
        writers = sf_rows(fakesnow_server, sf_database, 'SELECT DISTINCT "_drivetrain_pipeline_id" FROM TESTS')
        assert writers == [(taken["run_id"],)]
