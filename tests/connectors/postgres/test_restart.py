"""A PostgreSQL restart drops every advisory lock: a live run must not be taken for a dead one.

A run of window A is stopped (SIGSTOP) in its stage-to-target transfer, its lease row unexpired;
the server restarts, so its lock is gone. Then a run of window B, whose stale handling looks at
A's RUNNING row, must leave it alone; a second run of A must be refused, naming the holder; a
checker on another host (which cannot look at the holder's process) must still see A as alive
(its lock was taken before the server started). Resumed, the run takes its lock again at its
next heartbeat and finishes the window. This server is the test's own: a restart would break the
connections other tests keep to the session's server.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from drivetrain import LeaseError, Pipeline, RunStatus
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows
from tests.servers import serving
from tests.servers.postgres import PostgresServer, ServerError

from .test_warehouse_pipeline import sections, target_rows
from .warehouse import env, new_schema

CHILD = Path(__file__).resolve().parents[2] / "reliability" / "child.py"
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    with serving(PostgresServer.start, ServerError, "a PostgreSQL server") as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path, own_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in env(own_server).items():
        monkeypatch.setenv(key, value)
    folder = make_pipeline_dir(tmp_path / "lab", make_rows(300, hours=2, seed=5), **sections(own_server, new_schema(own_server)))
    with Pipeline.load(folder) as pipeline:
        pipeline.drive_store().ensure()
    return folder


def is_stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


def paused_run(folder: Path) -> subprocess.Popen[str]:
    """Window A in a child process, stopped as its stage-to-target transfer starts (lease: 10 minutes)."""
    process = subprocess.Popen([sys.executable, str(CHILD), str(folder), DAY.isoformat(), "--point", "pause:stage_to_target_transfer",
                                "--lease", "600", "--heartbeat", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(2400):
        if process.poll() is not None or is_stopped(process.pid):
            break
        time.sleep(0.05)
    if process.poll() is not None or not is_stopped(process.pid):
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the first run never paused: rc={process.returncode}\n{out}\n{err[-3000:]}")
    return process


@pytest.mark.slow
def test_a_live_run_whose_lock_went_with_a_restart_is_neither_closed_nor_taken_over(folder, own_server, monkeypatch):
    first = paused_run(folder)
    try:
        own_server.restart()
        with Pipeline.load(folder) as pipeline:
            record_b = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(DAY + HOUR))
            assert record_b.pipeline_status is RunStatus.SUCCESS, record_b.phase_failed
            assert record_b.phases["stale_pipeline_handling"].phase_specific_details["stale_records_found"] == 0
            store = pipeline.drive_store()
            running = store.history(pipeline.name, status=[RunStatus.RUNNING])
            assert [r.query_window_start_timestamp for r in running] == [DAY], "the paused run was closed"
            with pytest.raises(LeaseError, match="server restart") as refused:
                pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(DAY))
            assert running[0].lease_holder in str(refused.value)
            monkeypatch.setattr(socket, "gethostname", lambda: "another-host")  # a checker that cannot see the process
            assert store.dead_reason(running[0]) is None
    finally:
        first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=180)
    assert first.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["status"] == "SUCCESS", err[-3000:]
    schema = json.loads((folder / "config.json").read_text())["target_system"]["schema"]
    data = make_rows(300, hours=2, seed=5)
    for start in (DAY, DAY + HOUR):
        expected = sorted((k, v["result"]) for k, v in expected_target(data, start, start + HOUR).items())
        assert target_rows(own_server, schema, start, start + HOUR) == expected
