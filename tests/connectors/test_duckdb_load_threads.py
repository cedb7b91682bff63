"""A DuckDB window load inserts on one thread (more for a large window given the memory), and
gives the database its threads back for the commit.

With several threads a streamed insert was split between them: each filled and compressed row
groups of its own and the partial ones were merged after the last row (0.1-0.2 s for 400k rows),
some rewritten once more by the next checkpoint. On one thread each row group is written once.
Drivetrain's default memory_limit is per thread, so the one thread gets one thread's worth
(issue 22: 40-60 MB less resident on 2M wide rows); a limit set in the config is left as set.
A window expected to be large (the source count, given through ``expect``) keeps more threads
when the configured limit holds the memory for them (2M wide rows at 1 GB: 17% faster).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from drivetrain import Pipeline, hookimpl
from drivetrain.config import SystemConfig
from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.connectors.duckdb import load as load_module
from drivetrain.connectors.duckdb.connection import default_memory_limit_mb
from drivetrain.connectors.duckdb.load import (
    MEMORY_PER_INSERT_THREAD_MB,
    ROWS_PER_INSERT_THREAD,
    insert_threads,
    megabytes,
)
from drivetrain.phases.transfers import SourceToStageTransfer
from drivetrain.plugins import get_plugin_manager
from drivetrain.record import RunStatus
from drivetrain.warehouse import TableRef
from drivetrain.window import Window
from tests.sdk.factory import make_pipeline_dir, make_rows

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


def threads_while_loading(wh: DuckDBWarehouse, expected: int | None) -> int:
    """The database's threads while a window the load was told to expect ``expected`` rows of
    streams in (then committed), and checks they come back after."""
    with wh.session():
        before = threads_of(wh)
        with wh.window_load(WINDOW, "k") as load:
            if expected is not None:
                load.expect(expected)
            load.append(STG, batches(100)[0])
            during = threads_of(wh)
            load.commit([STG])
        assert threads_of(wh) == before
    return during


class TestInsertThreads:
    def test_a_large_window_with_the_memory_for_them_is_inserted_on_every_thread(self, tmp_path: Path) -> None:
        wh = warehouse(tmp_path, 2, memory_limit="1GB")
        assert threads_while_loading(wh, 2 * ROWS_PER_INSERT_THREAD) == 2

    def test_the_threads_are_as_many_as_the_memory_holds(self, tmp_path: Path) -> None:
        wh = warehouse(tmp_path, 4, memory_limit=f"{2 * MEMORY_PER_INSERT_THREAD_MB + 10}MiB")
        assert threads_while_loading(wh, 10 * ROWS_PER_INSERT_THREAD) == 2

    def test_a_large_window_under_the_default_memory_limit_is_inserted_on_one_thread(self, tmp_path: Path) -> None:
        wh = warehouse(tmp_path, 2)
        assert threads_while_loading(wh, 10 * ROWS_PER_INSERT_THREAD) == 1

    @pytest.mark.parametrize("expected", [None, 0, ROWS_PER_INSERT_THREAD])
    def test_a_window_not_known_to_be_large_is_inserted_on_one_thread_whatever_the_memory(self, tmp_path: Path,
                                                                                         expected: int | None) -> None:
        wh = warehouse(tmp_path, 2, memory_limit="4GB")
        assert threads_while_loading(wh, expected) == 1

    def test_the_choice(self) -> None:
        cases = [
            # threads, memory_limit MiB (None: drivetrain's default), expected rows -> insert threads
            (2, None, 10**8, 1),
            (1, 4096.0, 10**8, 1),
            (2, 4096.0, None, 1),
            (2, 4096.0, 2 * ROWS_PER_INSERT_THREAD - 1, 1),
            (2, 4096.0, 2 * ROWS_PER_INSERT_THREAD, 2),
            (8, 4096.0, 3 * ROWS_PER_INSERT_THREAD, 3),
            (8, 3.5 * MEMORY_PER_INSERT_THREAD_MB, 10**8, 3),
            (8, MEMORY_PER_INSERT_THREAD_MB - 1.0, 10**8, 1),
        ]
        assert [insert_threads(t, m, r) for t, m, r, _ in cases] == [want for *_, want in cases]

    def test_memory_sizes_are_read_as_duckdb_shows_them(self) -> None:
        shown = ["953.6 MiB", "1.0 GiB", "512 bytes", "2 GB", "100KiB", "unlimited", ""]
        assert [megabytes(s) for s in shown] == [953.6, 1024.0, 512 / 1024**2, 2 * 1000**3 / 1024**2, 100 / 1024, None, None]


class TestThroughTheTransfer:
    def test_the_transfer_tells_the_stage_how_many_rows_the_source_counted(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The window's insert threads follow the source count: the run's 300 rows pass as a large
        window once a thread's share is one row (the stage's 1 GB hold two threads)."""
        seen: list[int] = []

        class Watching(SourceToStageTransfer):
            def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
                with ctx.pipeline.stage().warehouse.connect() as conn:
                    seen.append(int(conn.execute("SELECT current_setting('threads')").fetchall()[0][0]))
                return batch

        class Plugin:
            @hookimpl
            def drivetrain_register_phases(self) -> dict[str, Any]:
                return {"source_to_stage_transfer": Watching}

        get_plugin_manager().register(Plugin())
        for share, expected in ((1, 2), (10**9, 1)):
            monkeypatch.setattr(load_module, "ROWS_PER_INSERT_THREAD", share)
            seen.clear()
            folder = make_pipeline_dir(tmp_path / f"lab{share}", make_rows(300, hours=1, invalid_every=0, duplicates=0),
                                       stage_system__threads=2, stage_system__memory_limit="1GB",
                                       target_system__threads=2, target_system__memory_limit="1GB")
            with Pipeline.load(folder) as pipeline:
                record = pipeline.runner().run(pipeline.grid.first())
            assert record.pipeline_status is RunStatus.SUCCESS
            assert len(seen) == 6 and seen[0] == 2  # 50 rows a batch; the first before the load began
            assert set(seen[1:]) == {expected}
