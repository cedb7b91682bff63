"""A window load's commit writes its rows into the DuckDB file, not into the WAL first: a run
that closes the file afterwards has no checkpoint left to do, and the rows are as durable as
through the WAL (a process killed right after the commit loses none)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.config import SystemConfig
from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.warehouse import TableRef
from drivetrain.window import Window

START = datetime(2025, 11, 15, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=1))
STG = TableRef(name="stg", query_field="at")
ROWS = 40_000  # a few MB of WAL, short of one row group (which DuckDB writes to the file anyway)


def warehouse(folder: Path) -> DuckDBWarehouse:
    section = {"type": "duckdb", "path": "w.duckdb", "table": "stg"}
    return DuckDBWarehouse(SystemConfig.from_section("stage_system", section, base_dir=folder))


def window_rows() -> pa.RecordBatch:
    micros = pa.array(range(0, ROWS * 2_000_000, 2_000_000), pa.int64())
    at = pc.add(pc.cast(micros, pa.timestamp("us", tz="UTC")).cast(pa.int64()), int(START.timestamp() * 1e6))
    return pa.RecordBatch.from_pydict({
        "id": pa.array(range(ROWS), pa.int64()), "at": at.cast(pa.timestamp("us", tz="UTC")),
        "label": pa.array([f"row {i}\twith text" for i in range(ROWS)]), "score": pa.array([i / 7 for i in range(ROWS)]),
    })


def wal(folder: Path) -> int:
    path = folder / "w.duckdb.wal"
    return path.stat().st_size if path.exists() else 0


def test_the_commit_leaves_no_wal_for_the_close_to_checkpoint(tmp_path: Path) -> None:
    wh = warehouse(tmp_path)
    with wh.session():  # the file stays open after the commit, as in a run
        with wh.window_load(WINDOW, "k") as load:
            for offset in range(0, ROWS, 10_000):
                load.append(STG, window_rows().slice(offset, 10_000))
            load.commit([STG])
        assert wal(tmp_path) < 64 * 1024  # before: the window's rows, about 2 MB
        assert wh.count_window(STG, WINDOW) == ROWS


def test_rows_committed_just_before_the_process_is_killed_are_kept(tmp_path: Path) -> None:
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path[:0] = {sys.path!r}
        from pathlib import Path
        from tests.connectors.test_duckdb_commit_checkpoint import STG, WINDOW, warehouse, window_rows
        wh = warehouse(Path({str(tmp_path)!r}))
        with wh.session(), wh.window_load(WINDOW, "k") as load:
            load.append(STG, window_rows())
            load.commit([STG])
            os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint at exit
    """)
    done = subprocess.run([sys.executable, "-c", child], cwd=Path(__file__).parents[2], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    assert warehouse(tmp_path).count_window(STG, WINDOW) == ROWS
    assert os.path.exists(tmp_path / "w.duckdb")
