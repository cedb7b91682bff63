"""Child processes for the SQLite drive tests (importable, so ``spawn`` can start them)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from drivetrain.config import SystemConfig
from drivetrain.connectors.sqlite import SqliteWarehouse
from drivetrain.record import RunStatus
from drivetrain.sql.drive import SqlDriveStore


def store_at(folder: str) -> SqlDriveStore:
    wh = SqliteWarehouse(SystemConfig.from_section("drive_table", {"type": "sqlite", "path": "drive.sqlite",
                                                                   "lock_timeout_seconds": 60}, base_dir=Path(folder)))
    store = wh.drive_store(wh.table_ref({"table": "pipeline_execution_drive"}, None))
    assert isinstance(store, SqlDriveStore)
    return store


def write_many(folder: str, who: int, runs: int, updates: int, start: Any) -> None:
    """Insert ``runs`` rows, each then updated ``updates`` times (the retry number counts them)."""
    from tests.connectors.sql.test_store import record

    store = store_at(folder)
    start.wait()
    for i in range(runs):
        rec = record(f"w{who}_run{i}", pipeline_name=f"writer{who}")
        store.insert(rec)
        for n in range(1, updates + 1):
            store.update(attrs.evolve(rec, pipeline_retry_number=n, pipeline_status=RunStatus.RUNNING))
        store.update(attrs.evolve(rec, pipeline_retry_number=updates, pipeline_status=RunStatus.SUCCESS,
                                  pipeline_end_timestamp=rec.pipeline_start_timestamp + timedelta(minutes=1)))


def stop_mid_write(folder: str, run_id: str, ready: Any) -> None:
    """Begin an update of ``run_id`` and never commit it: the parent kills this process (SIGKILL)."""
    from tests.connectors.sql.test_store import record

    store = store_at(folder)
    rec = record(run_id)
    with store.wh.pool.hold(), store.sql() as s, s.transaction():
        s.execute(f"UPDATE {store.table_sql} SET pipeline_status = 'FAILED', phase_failed = 'torn' WHERE pipeline_id = ?",
                  [rec.pipeline_id])
        s.execute(f"INSERT INTO {store.table_sql} (pipeline_id, pipeline_name, pipeline_status, pipeline_start_timestamp, "
                  "query_window_start_timestamp, query_window_end_timestamp, target_date, query_window_duration) "
                  "VALUES ('torn_run', 'lab', 'RUNNING', ?, ?, ?, ?, '1h')",
                  [rec.pipeline_start_timestamp, rec.query_window_start_timestamp, rec.query_window_end_timestamp, rec.target_date])
        ready.set()
        time.sleep(600)


def killed_mid_move(folder: str, after_rows: int) -> None:
    """Open the pipeline's SQLite drive table (which moves the DuckDB rows into it) and die by
    SIGKILL after ``after_rows`` rows were copied, one row per chunk."""
    import os
    import signal

    from drivetrain import Pipeline
    from drivetrain.connectors.sqlite import move

    copied = [0]
    real = move._encoded

    def encoded(store: Any, name: str, value: Any) -> list[Any]:
        if name == "pipeline_id":
            copied[0] += 1
            if copied[0] > after_rows:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(store, name, value)

    move.CHUNK = 1
    move._encoded = encoded
    with Pipeline.load(folder) as pipeline:
        pipeline.drive_store().history()


def open_fresh_at(path: str, start: float, results: Any) -> None:
    """Open the (new) drive file at ``start``, as a process starting beside others would, and write."""
    from drivetrain.connectors.sqlite.session import Connections

    while time.time() < start:
        pass
    try:
        with Connections(Path(path), lock_timeout=30).connect("race") as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE IF NOT EXISTS t (a)")
            time.sleep(0.05)
            conn.execute("COMMIT")
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - the parent reports what each process met
        results.put(repr(exc))
