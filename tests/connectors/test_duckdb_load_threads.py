"""A DuckDB window load inserts on one thread, and gives the database its threads back for the commit.

With several threads a streamed insert was split between them: each filled and compressed row
groups of its own and the partial ones were merged after the last row (0.1-0.2 s for 400k rows),
some rewritten once more by the next checkpoint. On one thread each row group is written once.
Drivetrain's default memory_limit is per thread, so the one thread gets one thread's worth
(issue 22: 40-60 MB less resident on 2M wide rows); a limit set in the config is left as set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.connectors.duckdb.connection import default_memory_limit_mb
from drivetrain.warehouse import TableRef
from drivetrain.window import Window

START = datetime(2025, 11, 15, 10, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=1))
STG = TableRef(name="stg", query_field="at")
ROW_GROUP = 122_880


def warehouse(tmp_path: Path, threads: int, **settings: str) -> DuckDBWarehouse:
    section = {"type": "duckdb", "path": "w.duckdb", "table": "stg", "threads": threads, **settings}
    return DuckDBWarehouse(SystemConfig.from_section("stage_system", section, base_dir=tmp_path))


def batches(rows: int, size: int = 10_000) -> list[pa.RecordBatch]:
    out = []
    for first in range(0, rows, size):
        ids = pa.array(range(first, min(first + size, rows)), pa.int64())
        at = pa.array([START + timedelta(microseconds=i) for i in range(first, min(first + size, rows))], pa.timestamp("us", tz="UTC"))
        out.append(pa.RecordBatch.from_arrays([ids, at, pa.array([f"note {i % 7}" for i in range(len(ids))])], names=["id", "at", "note"]))
    return out


def threads_of(wh: DuckDBWarehouse) -> int:
    with wh.connect() as conn:
        return int(conn.execute("SELECT current_setting('threads')").fetchone()[0])


def memory_limit_of(wh: DuckDBWarehouse) -> str:
    """The database's memory_limit as DuckDB shows it (``183.1 MiB``)."""
    with wh.connect() as conn:
        return str(conn.execute("SELECT current_setting('memory_limit')").fetchone()[0])


def mb(n: int) -> str:
    """``n`` MB as DuckDB shows a memory_limit of ``'{n}MB'``."""
    return f"{n * 1000 * 1000 / 1024 / 1024:.1f} MiB"


@pytest.mark.parametrize("threads", [2, 4])
def test_a_window_is_written_in_as_few_row_groups_as_it_fills(tmp_path: Path, threads: int) -> None:
    wh = warehouse(tmp_path, threads)
    rows = 2 * ROW_GROUP + 50_000
    with wh.session():
        with wh.window_load(WINDOW, "k") as load:
            for b in batches(rows):
                load.append(STG, b)
            load.commit([STG])
        with wh.connect() as conn:
            groups = conn.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('stg')").fetchone()[0]
            assert conn.execute("SELECT count(*), count(DISTINCT id) FROM stg").fetchone() == (rows, rows)
    assert groups == 3


@pytest.mark.parametrize("end", ["commit", "abort"])
def test_the_database_gets_its_threads_back_when_the_load_ends(tmp_path: Path, end: str) -> None:
    wh = warehouse(tmp_path, 3)
    with wh.session():
        assert threads_of(wh) == 3
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batches(100)[0])
            assert threads_of(wh) == 1  # while the window streams in
            if end == "commit":
                load.commit([STG])
        assert threads_of(wh) == 3


@pytest.mark.parametrize("end", ["commit", "abort"])
def test_the_default_memory_limit_follows_the_one_thread_and_comes_back(tmp_path: Path, end: str) -> None:
    wh = warehouse(tmp_path, 3)
    whole = default_memory_limit_mb(3)
    assert whole > default_memory_limit_mb(1)  # on any machine with room for three threads' worth
    with wh.session():
        assert memory_limit_of(wh) == mb(whole)
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batches(100)[0])
            assert memory_limit_of(wh) == mb(default_memory_limit_mb(1))  # while the window streams in
            if end == "commit":
                load.commit([STG])
        assert memory_limit_of(wh) == mb(whole)


def test_a_memory_limit_from_the_config_is_left_as_set(tmp_path: Path) -> None:
    wh = warehouse(tmp_path, 3, memory_limit="300MB")
    with wh.session():
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batches(100)[0])
            assert memory_limit_of(wh) == mb(300)
            load.commit([STG])
        assert memory_limit_of(wh) == mb(300)
