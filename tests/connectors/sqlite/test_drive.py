"""The drive table in SQLite: real processes writing at once, a writer killed mid-transaction,
instants stored as text, the config, and a real pipeline whose drive table is a SQLite file.

The suites written once for every drive store (tests/connectors/sql/test_store.py, the
migration in tests/wap/test_store.py, the report SQL in tests/monitoring/test_portability.py,
the same-window races in tests/reliability/test_races.py) run on SQLite too.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline
from drivetrain.connectors.sqlite.dialect import SqliteDialect
from drivetrain.connectors.sqlite.session import instant_text
from drivetrain.errors import ConfigError, PermanentError
from drivetrain.record import RunStatus
from tests.connectors.sql.test_store import record
from tests.sdk.factory import make_pipeline_dir, make_rows

from .workers import open_fresh_at, stop_mid_write, store_at, write_many

SCRIPT = Path(sys.executable).with_name("drivetrain")


class TestProcesses:
    def test_two_processes_writing_at_once_never_lose_a_write(self, tmp_path: Path) -> None:
        store_at(str(tmp_path)).ensure()
        ctx = multiprocessing.get_context("spawn")
        start = ctx.Event()
        runs, updates = 15, 4
        procs = [ctx.Process(target=write_many, args=(str(tmp_path), who, runs, updates, start)) for who in range(2)]
        for proc in procs:
            proc.start()
        start.set()
        for proc in procs:
            proc.join(timeout=240)
        assert [proc.exitcode for proc in procs] == [0, 0]
        store = store_at(str(tmp_path))
        for who in range(2):
            got = store.history(f"writer{who}")
            assert sorted(r.pipeline_id for r in got) == sorted(f"w{who}_run{i}" for i in range(runs))
            assert {(r.pipeline_status, r.pipeline_retry_number) for r in got} == {(RunStatus.SUCCESS, updates)}

    def test_a_writer_killed_mid_transaction_leaves_the_drive_row_readable(self, tmp_path: Path) -> None:
        store = store_at(str(tmp_path))
        committed = record("lab_20251115T100000Z_run1")
        store.insert(committed)
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        child = ctx.Process(target=stop_mid_write, args=(str(tmp_path), committed.pipeline_id, ready))
        child.start()
        try:
            assert ready.wait(120), "the child never began its write"
            assert store.get(committed.pipeline_id).pipeline_status is RunStatus.RUNNING  # a reader does not wait
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.join(timeout=60)
        assert child.exitcode == -signal.SIGKILL
        fresh = store_at(str(tmp_path))
        got = fresh.get(committed.pipeline_id)
        assert got is not None and got.pipeline_status is RunStatus.RUNNING and got.phase_failed is None
        assert fresh.get("torn_run") is None
        fresh.update(record(committed.pipeline_id, pipeline_status=RunStatus.FAILED, phase_failed="source_count"))
        assert fresh.get(committed.pipeline_id).phase_failed == "source_count"  # the write lock went with the process
        with sqlite3.connect(tmp_path / "drive.sqlite") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def test_processes_opening_a_new_file_at_once_all_get_it(self, tmp_path: Path) -> None:
        """The second switch to WAL of a brand-new file is refused at once by SQLite ("database is
        locked", no busy wait) while the first opener writes; every opener must still get the file."""
        met = []
        for i in range(12):
            path, results, start = tmp_path / f"drive{i}.sqlite", multiprocessing.Queue(), time.time() + 0.3
            procs = [multiprocessing.Process(target=open_fresh_at, args=(str(path), start, results)) for _ in range(4)]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join(60)
            met += [results.get(timeout=10) for _ in procs]
        assert met == ["ok"] * len(met), [m for m in met if m != "ok"]


zones = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
instants = st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)


class TestInstants:
    @settings(max_examples=300, deadline=None)
    @given(a=instants, b=instants)
    def test_stored_instants_read_back_exactly_and_sort_as_text_sorts(self, a: datetime, b: datetime) -> None:
        stored_a, stored_b = instant_text(a), instant_text(b)
        assert len(stored_a) == len(stored_b) == 32
        assert SqliteDialect.decode("timestamp", stored_a) == a and SqliteDialect.decode("timestamp", stored_a).tzinfo == UTC
        assert (stored_a < stored_b) == (a < b) and (stored_a == stored_b) == (a == b)

    @settings(max_examples=100, deadline=None)
    @given(a=instants, b=instants)
    def test_seconds_between_counts_microseconds(self, a: datetime, b: datetime) -> None:
        a, b = (datetime(2020, 1, 1, tzinfo=UTC) + (x - datetime(5000, 1, 1, tzinfo=UTC)) / 2000 for x in (a, b))
        sql = SqliteDialect().seconds_between("?", "?").replace("?", "{}")
        with sqlite3.connect(":memory:") as conn:
            (seconds,) = conn.execute("SELECT " + _fill(sql, instant_text(a), instant_text(b))).fetchone()
        assert seconds == pytest.approx((b - a).total_seconds(), abs=1e-5)


def _fill(sql: str, start: str, end: str) -> str:
    """The seconds-between SQL with the two texts in place of its two markers (end first)."""
    parts = sql.split("{}")
    values = iter([f"'{end}'"] * (len(parts) // 2) + [f"'{start}'"] * (len(parts) - 1 - len(parts) // 2))
    return "".join(p + (next(values) if i < len(parts) - 1 else "") for i, p in enumerate(parts))


class TestConfig:
    def test_sqlite_as_a_stage_is_a_config_error_naming_the_key(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", stage_system__type="sqlite")
        with Pipeline.load(folder) as pipeline, pytest.raises(ConfigError, match=r"stage_system\.type: 'sqlite' holds only the drive table"):
            pipeline.stage()

    def test_an_unknown_key_is_refused(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", drive_table={"type": "sqlite", "file": "d.sqlite"})
        with Pipeline.load(folder) as pipeline, pytest.raises(ConfigError, match="file"):
            pipeline.drive_store()

    def test_reading_a_missing_drive_file_creates_nothing(self, tmp_path: Path) -> None:
        store = store_at(str(tmp_path))
        assert not store.exists() and store.history() == [] and store.pipelines() == []
        assert store.current_lease("lab", datetime(2025, 11, 15, tzinfo=UTC)) is None
        assert not (tmp_path / "drive.sqlite").exists()

    def test_loading_a_window_into_sqlite_is_refused(self, tmp_path: Path) -> None:
        wh = store_at(str(tmp_path)).wh
        with pytest.raises(PermanentError, match="holds only the drive table"):
            wh.window_load(None, "k")  # type: ignore[arg-type]


def drivetrain(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], cwd=folder, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "NO_COLOR": "1"}, check=False)


class TestPipeline:
    def test_a_pipeline_runs_on_a_sqlite_drive_table_and_every_reader_reads_it(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(n=60, hours=2, duplicates=0, invalid_every=0),
                                   drive_table={"type": "sqlite", "path": "runs/drive.sqlite"})
        for start in ("2025-11-15T00:00:00Z", "2025-11-15T01:00:00Z"):
            ran = drivetrain(folder, "run", str(folder), "--window-start", start, "--json")
            assert ran.returncode == 0, ran.stderr
        assert (folder / "runs" / "drive.sqlite").exists() and not (folder / "drive.duckdb").exists()
        with Pipeline.load(folder) as pipeline:
            runs = pipeline.drive_store().history("lab")
        assert [r.pipeline_status for r in runs] == [RunStatus.SUCCESS, RunStatus.SUCCESS]
        status = drivetrain(folder, "status", str(folder), "--json")
        assert status.returncode == 0, status.stderr
        assert "SUCCESS" in status.stdout
        history = drivetrain(folder, "history", str(folder), "--json")
        assert history.returncode == 0 and history.stdout.count("SUCCESS") >= 2, history.stderr
        shown = drivetrain(folder, "show", runs[0].pipeline_id, "--pipeline", str(folder), "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["pipeline_id"] == runs[0].pipeline_id
        report = drivetrain(folder, "report", str(folder), "--json")
        assert report.returncode == 0, report.stderr
        html = drivetrain(folder, "report", str(folder), "--html", str(tmp_path / "report.html"))
        assert html.returncode == 0 and (tmp_path / "report.html").stat().st_size > 0, html.stderr
        plan = drivetrain(folder, "run", str(folder), "--dry-run", "--json")
        assert plan.returncode == 0, plan.stderr
        assert "2025-11-15T02:00:00" in plan.stdout  # the next window comes from the SQLite drive table


class TestDamagedFile:
    def test_damage_past_the_header_names_the_file_once_and_the_fix(self, tmp_path: Path) -> None:
        store = store_at(str(tmp_path))
        store.insert_many([record(f"lab_{i:04d}") for i in range(300)])  # rows on pages past the schema's
        path = tmp_path / "drive.sqlite"
        data = bytearray(path.read_bytes())
        page = 4096
        assert len(data) > 4 * page
        data[2 * page:] = b"\xa5" * (len(data) - 2 * page)  # every page after the schema's: damaged
        path.write_bytes(bytes(data))
        with pytest.raises(PermanentError) as raised:
            store_at(str(tmp_path)).history("lab")
        message = str(raised.value)
        assert "the SQLite drive file is damaged" in message and "restore it from a backup" in message
        assert message.count(str(path)) == 1, message
