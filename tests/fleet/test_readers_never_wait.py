"""Readers of the drive table never wait for a phase that holds the warehouse file.

A real run in another process is held inside its extract phase by the Elasticsearch emulator,
which answers the run's first search only after a long stall; meanwhile ``status``, ``history``
and ``show`` must answer, and what they show is the run still inside that phase (a reader that
waited for the file would only see the run after the phase, or after the run). They must hold on
the default layout (the drive table in ``drive.sqlite``) and on a drive table pinned to a DuckDB
file (``drive_path: drive.duckdb``, handed over between processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.emulators.elasticsearch import EsEmulator
from tests.reliability.sources import es_pipeline
from tests.sdk.factory import make_rows

SCRIPT = Path(sys.executable).with_name("drivetrain")
#: The drive table pinned to a DuckDB file (the default before drive.sqlite).
DUCKDB_DRIVE = {"stage_system__drive_path": "drive.duckdb", "target_system__drive_path": "drive.duckdb"}
STALL_SECONDS = 12.0
WINDOW = "2025-11-15T00:00:00Z"


def drivetrain(folder: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], cwd=folder, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1"}, check=False)


def wait_for(condition, what: str, timeout: float = 60) -> None:  # noqa: ANN001 - a callable
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


@contextmanager
def run_stalled_in_its_extract(tmp_path: Path, es: EsEmulator, **changes: object) -> Iterator[tuple[Path, subprocess.Popen[str], list[dict]]]:
    """A real ``drivetrain run`` in another process, held inside its extract by the emulator's
    stalled first search; yields its folder, the process, and (after the block) its JSON result,
    which must be a success. ``changes`` are config changes (see make_pipeline_dir)."""
    folder = es_pipeline(tmp_path / "lab", es, make_rows(n=120, hours=1), **changes)
    es.stall_next(1, seconds=STALL_SECONDS, path="/_search")
    run = subprocess.Popen([str(SCRIPT), "run", str(folder), "--window-start", WINDOW, "--json"], cwd=folder,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result: list[dict] = []
    try:
        wait_for(lambda: es.requests_to("/_search") or run.poll() is not None, "the run's first search")
        assert run.poll() is None, run.communicate()
        yield folder, run, result
    finally:
        out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    result.extend(json.loads(out))
    assert result[-1]["pipeline_status"] == "SUCCESS"


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["default", "drive.duckdb"])
def test_status_history_and_show_answer_while_another_process_is_inside_its_extract(
        tmp_path: Path, es: EsEmulator, layout: str) -> None:
    with run_stalled_in_its_extract(tmp_path, es, **(DUCKDB_DRIVE if layout == "drive.duckdb" else {})) as (folder, run, _):
        drive_file = "drive.duckdb" if layout == "drive.duckdb" else "drive.sqlite"
        assert (folder / drive_file).exists() and not (folder / ({"drive.duckdb", "drive.sqlite"} - {drive_file}).pop()).exists()
        status = drivetrain(folder, "status", str(folder), "--json")
        assert status.returncode == 0, status.stderr
        (latest,) = json.loads(status.stdout)
        assert latest["pipeline_status"] == "RUNNING"
        assert latest["source_to_stage_transfer_phase"]["status"] == "RUNNING"  # still inside the stalled phase
        history = drivetrain(folder, "history", str(folder), "--json")
        assert history.returncode == 0, history.stderr
        assert [r["pipeline_id"] for r in json.loads(history.stdout)] == [latest["pipeline_id"]]
        show = drivetrain(folder, "show", latest["pipeline_id"], "--pipeline", str(folder), "--json")
        assert show.returncode == 0, show.stderr
        shown = json.loads(show.stdout)
        assert shown["source_to_stage_transfer_phase"]["status"] == "RUNNING"
        assert run.poll() is None  # the answers came while the phase still held the warehouse file


def drive_file_holder(path: Path) -> int | None:
    """The PID of the process that has the DuckDB file open now (None when it is free)."""
    import re

    import duckdb

    try:
        duckdb.connect(str(path)).close()
    except duckdb.IOException as exc:
        found = re.search(r"\(PID (\d+)\)", str(exc))
        assert found, exc
        return int(found.group(1))
    return None


@pytest.mark.slow
def test_a_reader_gets_the_drive_file_a_run_keeps_open_through_a_long_phase(tmp_path: Path, es: EsEmulator) -> None:
    """The run keeps the drive file open between its drive writes (opening it costs 20-50 ms, a run
    writes its row about twenty times) and gives it up while it is inside a long phase as soon as a
    reader asks; its next drive write opens the file again."""
    with run_stalled_in_its_extract(tmp_path, es, **DUCKDB_DRIVE) as (folder, run, result):
        # the run wrote its row and the extract phase's start, and still holds the drive file
        assert drive_file_holder(folder / "drive.duckdb") == run.pid

        status = drivetrain(folder, "status", str(folder), "--json")
        assert status.returncode == 0, status.stderr
        (latest,) = json.loads(status.stdout)
        assert latest["source_to_stage_transfer_phase"]["status"] == "RUNNING"  # answered inside the phase
        assert run.poll() is None
        assert drive_file_holder(folder / "drive.duckdb") is None  # let go, and not taken back while idle
    final = result[-1]  # a success: its later drive writes opened the file again
    assert final["pipeline_id"] == latest["pipeline_id"]
