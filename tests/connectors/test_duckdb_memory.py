"""DuckDB's memory is bounded by default: a memory_limit derived from the machine and a
temp_directory next to the file, unless the config sets its own memory_limit.

Without them DuckDB takes 80% of the machine's memory as its limit and keeps what it wrote
cached up to it, so a process loading one large window grew with the window (1.4 GB for 2M
rows of 330 bytes, issue 22).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline
from drivetrain.connectors.duckdb import connection
from drivetrain.connectors.duckdb.connection import (
    ConnectionPool,
    default_memory_limit_mb,
    default_settings,
)

MEMORY_CHILD = Path(__file__).with_name("duckdb_memory_child.py")
MiB = 1024 * 1024


def settings_of(conn: Any) -> tuple[int, str]:
    """(memory_limit in bytes, temp_directory) of a DuckDB connection."""
    limit, temp = conn.execute(
        "SELECT (SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    number, unit = limit.split()
    return int(float(number) * {"KiB": 1024, "MiB": MiB, "GiB": 1024 * MiB}[unit]), temp


def scaffold(tmp_path: Path, **target: Any) -> Path:
    """``drivetrain new shop`` (files source, DuckDB stage and target), with ``target`` added to
    both DuckDB sections."""
    done = subprocess.run([sys.executable, "-c", "import sys; from drivetrain.cli import main; sys.exit(main())",
                           "new", "shop"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "shop"
    config = json.loads((folder / "config.json").read_text())
    for section in ("stage_system", "target_system"):
        config[section].update(target)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


class TestDefaults:
    def test_a_scaffolded_pipeline_bounds_duckdb_and_spills_next_to_its_file(self, tmp_path: Path) -> None:
        folder = scaffold(tmp_path)
        pipeline = Pipeline.load(folder)
        with pipeline:
            warehouse: Any = pipeline.stage().warehouse
            with warehouse.connect() as conn:
                limit, temp = settings_of(conn)
        assert abs(limit - default_memory_limit_mb() * 1000 * 1000) < MiB  # DuckDB's MB are 10^6 bytes
        assert Path(temp) == Path(str(warehouse.path) + ".tmp")
        assert Path(temp).parent == folder  # the scaffold's file is in the pipeline's folder

    def test_a_memory_limit_in_the_config_wins(self, tmp_path: Path) -> None:
        pipeline = Pipeline.load(scaffold(tmp_path, memory_limit="300MB"))
        with pipeline, pipeline.target().warehouse.connect() as conn:  # type: ignore[attr-defined]
            limit, _ = settings_of(conn)
        assert 280 * MiB <= limit <= 300 * MiB  # DuckDB shows 300MB as 286.1 MiB

    def test_the_default_is_64mb_a_thread_within_a_quarter_of_usable_memory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        db = tmp_path / "w.duckdb"
        cases = ((2, 64 * 1024 * MiB, "128MB"), (8, 1024 * MiB, "256MB"), (1, 128 * MiB, "64MB"),
                 (4, None, "256MB"), (2, 300 * MiB, "75MB"), (2, 100 * MiB, "64MB"))
        for threads, usable, expected in cases:
            monkeypatch.setattr(connection, "usable_memory", lambda usable=usable: usable)
            assert default_settings(db, threads) == {"memory_limit": expected, "temp_directory": str(tmp_path / "w.duckdb.tmp")}
        monkeypatch.setattr(connection, "usable_memory", lambda: 64 * 1024 * MiB)
        monkeypatch.setattr(connection.os, "cpu_count", lambda: 3)
        assert default_settings(db)["memory_limit"] == "192MB"  # DuckDB's default: a thread per core

    def test_usable_memory_is_at_most_the_machines(self) -> None:
        import os

        usable = connection.usable_memory()
        assert usable is not None and 0 < usable <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def child_peak(folder: Path, settings: dict[str, Any] | None) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(MEMORY_CHILD), str(folder), json.dumps(settings)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
class TestPeakMemory:
    """A child process (one DuckDB thread) writes about 350 MB of wide rows into a DuckDB file through the pool,
    then deduplicates them into a second table (the push-down's statement shape). With the
    defaults its peak stays near the limit plus the interpreter; with DuckDB's own limit
    (80% of the machine) DuckDB keeps what it wrote cached and the peak grows with the data."""

    def test_the_default_limit_bounds_a_process_writing_more_than_it(self, tmp_path: Path) -> None:
        bounded = child_peak(tmp_path / "bounded", {"threads": 1})  # the default: 64MB for one thread
        unbounded = child_peak(tmp_path / "unbounded", {"threads": 1, "memory_limit": "80%"})
        assert bounded["rows"] == unbounded["rows"] == bounded["kept"] * 2
        assert bounded["memory_limit"] == f"{default_memory_limit_mb(1)}MB"
        ceiling = bounded["baseline_mb"] + 1.5 * default_memory_limit_mb(1)
        assert bounded["peak_mb"] < ceiling, (bounded, unbounded)
        assert unbounded["peak_mb"] > ceiling, (bounded, unbounded)  # the data set is big enough to tell


def test_the_pool_applies_the_defaults_before_its_own_settings(tmp_path: Path) -> None:
    pool = ConnectionPool(tmp_path / "p.duckdb", settings={"threads": 1})
    with pool.connect() as conn:
        limit, temp = settings_of(conn)
        (threads,) = conn.execute("SELECT current_setting('threads')").fetchone()
    assert abs(limit - default_memory_limit_mb(1) * 1000 * 1000) < MiB and temp.endswith("p.duckdb.tmp") and threads == 1


def kept_blocks_of(conn: Any) -> int:
    """DuckDB's ``block_allocator_memory`` of a connection's database, in bytes."""
    (value,) = conn.execute("SELECT value FROM duckdb_settings() WHERE name = 'block_allocator_memory'").fetchone()
    number, unit = value.split()
    return int(float(number) * {"bytes": 1, "KiB": 1024, "MiB": MiB, "GiB": 1024 * MiB}[unit])


class TestKeptBlocks:
    """Under drivetrain's default memory_limit DuckDB keeps the memory of freed blocks for new
    ones, up to that limit (a window load faulted the same pages in again and again)."""

    def test_the_default_limit_is_kept_for_blocks(self, tmp_path: Path) -> None:
        pool = ConnectionPool(tmp_path / "k.duckdb", settings={"threads": 2})
        with pool.connect() as conn:
            kept = kept_blocks_of(conn)
        assert abs(kept - default_memory_limit_mb(2) * 1000 * 1000) < MiB

    def test_a_memory_limit_in_the_config_keeps_no_blocks(self, tmp_path: Path) -> None:
        pool = ConnectionPool(tmp_path / "k.duckdb", settings={"memory_limit": "300MB"})
        with pool.connect() as conn:
            assert kept_blocks_of(conn) == 0  # DuckDB's own default: a large limit is not kept for good

    def test_a_second_pool_with_a_smaller_default_opens_the_same_file(self, tmp_path: Path) -> None:
        # the setting is the database's and cannot be lowered: the smaller one is not an error
        big = ConnectionPool(tmp_path / "k.duckdb", settings={"threads": 2})
        small = ConnectionPool(tmp_path / "k.duckdb", settings={"threads": 1})
        with big.connect(), small.connect() as conn:
            conn.execute("CREATE TABLE t AS SELECT range AS i FROM range(10)")
            assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (10,)
            assert abs(kept_blocks_of(conn) - default_memory_limit_mb(2) * 1000 * 1000) < MiB
