"""Warehouse faults: another process holding the DuckDB file, a load the warehouse refuses,
and a disk that fills up.

The lock scenarios need a moment when the runner has let go of the file, which is between
two phases. A holder process queues for the file's lock (a blocking POSIX lock, the kind DuckDB
takes) while a phase runs; the kernel hands it the lock the instant the runner closes the
file, so the next phase always finds the file taken. The drive table lives in a file of its
own, so the run can still record what happened.

The disk scenario archives to a tiny tmpfs (when this process may mount one, as root) or,
elsewhere, to a file that is /dev/full: either way the kernel answers "no space left".
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus, hookimpl
from drivetrain.plugins import get_plugin_manager
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows, query, target_rows

WINDOW = (DAY, DAY.replace(hour=1))
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)  # queues behind the runner's lock, as DuckDB's own is a POSIX lock
print("held", flush=True)
sys.stdin.readline()
os.close(fd)
print("released", flush=True)
"""


class FileHolder:
    """A process that asks for the DuckDB file and takes its lock as soon as the runner lets go."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.process: subprocess.Popen[str] | None = None

    def queue_up(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, str(self.path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not self._waiting():
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail("the holder process never queued for the DuckDB file's lock")
            time.sleep(0.01)
        # and says so, as a drivetrain process does: the runner keeps the file between phases
        # unless someone asks for it (ConnectionPool.keep_open)
        mark = self.path.with_name(self.path.name + ".locks") / "wanted"
        mark.parent.mkdir(exist_ok=True)
        mark.touch()

    def _waiting(self) -> bool:
        with open("/proc/locks", encoding="ascii") as fh:
            return any("->" in line and f" {self.process.pid} " in line for line in fh)

    def release(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
            assert self.process.stdout.readline() == "held\n"
            assert self.process.stdout.readline() == "released\n"
            self.process.wait(timeout=30)


class QueueAfter:
    """Starts the holder queueing while ``phase`` runs (inside the runner's hold), so it gets the
    file once that phase is done. (Not on ``drivetrain_phase_finished``: that fires once the
    phase's end is written, with the next phase's start, inside the next phase's hold.)"""

    def __init__(self, holder: FileHolder, phase: str) -> None:
        self.holder, self.phase = holder, phase
        self.active = True

    @hookimpl
    def drivetrain_phase_started(self, phase: str) -> None:
        if phase == self.phase and self.active:
            self.holder.queue_up()


class ReleaseOnRetry(logging.Handler):
    """Lets the holder go when the runner announces its first retry (before it waits)."""

    def __init__(self, holder: FileHolder) -> None:
        super().__init__()
        self.holder = holder

    def emit(self, record: logging.LogRecord) -> None:
        if "transient error, retry 1 of" in record.getMessage():
            self.holder.release()


Locked = tuple[Path, FileHolder, QueueAfter]


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Locked]:
    """A pipeline whose warehouse file is taken by another process once source_count is done."""
    rows = make_rows(300, hours=1, seed=9)
    folder = make_pipeline_dir(tmp_path / "lab", rows, stage_system__lock_timeout_seconds=0.3,
                               target_system__lock_timeout_seconds=0.3,
                               drive_table={"type": "duckdb", "path": "drive.duckdb"})
    holder = FileHolder(folder / "warehouse.duckdb")
    trigger = QueueAfter(holder, "source_count")
    get_plugin_manager().register(trigger)
    try:
        yield folder, holder, trigger
    finally:
        holder.release()


def run(folder: Path) -> Any:
    with Pipeline.load(folder) as pipeline:
        return pipeline.runner().run(pipeline.grid.window_starting(WINDOW[0]))


def assert_exact(folder: Path) -> None:
    expected = expected_target(make_rows(300, hours=1, seed=9), *WINDOW)
    assert target_rows(folder, *WINDOW) == sorted((k, v["result"]) for k, v in expected.items())


class TestFileLockedByAnotherProcess:
    def test_a_lock_released_while_the_phase_retries_is_waited_out(self, locked: Locked) -> None:
        folder, holder, _ = locked
        handler = ReleaseOnRetry(holder)
        logging.getLogger("drivetrain.run").addHandler(handler)
        try:
            record = run(folder)
        finally:
            logging.getLogger("drivetrain.run").removeHandler(handler)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases["source_to_stage_transfer"].error_message
        assert record.phases["source_to_stage_transfer"].retry_number == 1
        assert_exact(folder)

    def test_a_lock_held_through_every_retry_fails_the_phase_readably(self, locked: Locked) -> None:
        folder, holder, _ = locked
        record = run(folder)
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "source_to_stage_transfer"
        error = record.phases["source_to_stage_transfer"].error_message
        assert f"held by PID {holder.process.pid}" in error and "lock_timeout_seconds" in error, error

    def test_once_the_lock_is_gone_the_next_run_resumes(self, locked: Locked) -> None:
        folder, holder, trigger = locked
        run(folder)
        holder.release()
        trigger.active = False
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases["source_count"].status.value == "COMPLETED"  # counted again with the extract
        assert_exact(folder)


class TestLoadRefusedByTheWarehouse:
    def test_a_stage_column_of_another_type_fails_pre_validation_naming_it(self, tmp_path: Path) -> None:
        """A stage table made by hand with another type: refused before any row moves, with the column named."""
        import duckdb

        folder = make_pipeline_dir(tmp_path / "lab", make_rows(100, hours=1, invalid_every=0))
        with duckdb.connect(str(folder / "warehouse.duckdb")) as conn:
            conn.execute("CREATE TABLE stg_tests (test_id VARCHAR, age BIGINT, result INTEGER, reported_at TIMESTAMPTZ)")
        record = run(folder)
        state = record.phases["pre_validation"]
        assert (record.pipeline_status, record.phase_failed) == (RunStatus.FAILED, "pre_validation")
        assert "column 'result' is INTEGER" in state.error_message, state.error_message
        assert query(folder, "SELECT count(*) FROM stg_tests") == [(0,)]

    def test_a_value_the_stage_table_cannot_hold_fails_at_once_with_the_warehouse_reason(self, tmp_path: Path) -> None:
        """A stage table whose own rule refuses a value the config allows: a permanent error, not a retried "conflict"."""
        import duckdb

        folder = make_pipeline_dir(tmp_path / "lab", make_rows(100, hours=1, invalid_every=0))
        with duckdb.connect(str(folder / "warehouse.duckdb")) as conn:
            conn.execute("CREATE TABLE stg_tests (test_id VARCHAR, age BIGINT, result VARCHAR CHECK (length(result) < 2), "
                         "reported_at TIMESTAMPTZ)")
        record = run(folder)
        state = record.phases["source_to_stage_transfer"]
        assert (record.pipeline_status, record.phase_failed) == (RunStatus.FAILED, "source_to_stage_transfer")
        assert state.retry_number == 0, state.error_message
        assert "CHECK constraint" in state.error_message, state.error_message
        assert query(folder, "SELECT count(*) FROM stg_tests") == [(0,)]


class FullDisk:
    """An archive folder on a disk with no room: a 64 KiB tmpfs, or a temporary file on /dev/full."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted = False
        root.mkdir(parents=True)
        if os.geteuid() == 0:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)], capture_output=True)
            self.mounted = done.returncode == 0

    def arm(self, pipeline: str, day: str, run_id: str) -> None:
        """Without a tmpfs, make the archive's temporary file /dev/full."""
        if not self.mounted:
            folder = self.root / f"pipeline_name={pipeline}" / f"target_date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f".part-{run_id}.parquet.tmp").symlink_to("/dev/full")

    def grow(self) -> None:
        """Make room: a bigger tmpfs, or no more /dev/full."""
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(self.root)], check=True)
        else:
            for link in self.root.rglob("*.tmp"):
                link.unlink()

    def remove(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.root)], check=False)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    disk = FullDisk(tmp_path / "archive")
    try:
        yield disk
    finally:
        disk.remove()


class TestDiskFullWhileArchiving:
    @pytest.fixture
    def folder(self, tmp_path: Path, full_disk: FullDisk) -> Path:
        """Day 1 loaded (wide rows: its archive needs far more than 64 KiB); day 2 not yet run."""
        rows = [{**r, "result": r["result"] + os.urandom(300).hex()} for r in make_rows(600, hours=1, seed=13)]
        day2 = make_rows(100, hours=1, seed=14, start=DAY.replace(day=16), prefix="U")
        folder = make_pipeline_dir(tmp_path / "lab", rows + day2, retry={"max_retries": 0},
                                   phases__stage_cleaning={"archive_location": str(full_disk.root), "delete_after_days": 0})
        with Pipeline.load(folder) as pipeline:
            assert pipeline.runner().run(pipeline.grid.window_starting(DAY)).pipeline_status is RunStatus.SUCCESS
        full_disk.arm("lab", "2025-11-15", "lab_20251116T000000Z_run1")
        return folder

    def run_day2(self, folder: Path) -> Any:
        with Pipeline.load(folder) as pipeline:
            return pipeline.runner().run(pipeline.grid.window_starting(DAY.replace(day=16)))

    def day1_stage_rows(self, folder: Path) -> int:
        return query(folder, "SELECT count(*) FROM stg_tests WHERE _drivetrain_target_date = DATE '2025-11-15'")[0][0]

    def test_the_run_fails_at_stage_cleaning_saying_the_disk_is_full(self, folder: Path) -> None:
        record = self.run_day2(folder)
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "stage_cleaning"
        assert "No space left on device" in record.phases["stage_cleaning"].error_message

    def test_stage_is_untouched_and_no_partial_file_is_left(self, folder: Path, full_disk: FullDisk) -> None:
        before = self.day1_stage_rows(folder)
        self.run_day2(folder)
        assert self.day1_stage_rows(folder) == before > 0
        assert not [p for p in full_disk.root.rglob("*") if p.is_file() or p.is_symlink()]

    def test_with_room_again_the_next_run_archives_and_cleans(self, folder: Path, full_disk: FullDisk) -> None:
        before = self.day1_stage_rows(folder)
        self.run_day2(folder)
        full_disk.grow()
        record = self.run_day2(folder)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases["stage_cleaning"].error_message
        import pyarrow.parquet as pq

        assert sum(pq.ParquetFile(p).metadata.num_rows for p in full_disk.root.rglob("*.parquet")) == before
        assert self.day1_stage_rows(folder) == 0
