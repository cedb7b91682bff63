"""Where the embedded default keeps the drive table: its own file (``drive.sqlite``, or a DuckDB
file a config pins with ``drive_path``), shared by whoever names it.

With a DuckDB drive file, the one-file layout (drive table inside the warehouse file) is read
where it is, then moved into the drive file once, by the first write of this version. (The moves
into the default ``drive.sqlite`` are tested in tests/connectors/sqlite/test_move.py.)
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import duckdb
import pytest

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import make_pipeline_dir, make_rows

ONE_FILE = {"stage_system__drive_path": "warehouse.duckdb", "target_system__drive_path": "warehouse.duckdb"}
DUCKDB_DRIVE = {"stage_system__drive_path": "drive.duckdb", "target_system__drive_path": "drive.duckdb"}


def tables(path: Path) -> set[str]:
    if path.suffix == ".sqlite":
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    with duckdb.connect(str(path), read_only=True) as conn:
        return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def drive_rows(path: Path) -> list[tuple[str, str]]:
    sql = "SELECT pipeline_name, pipeline_status FROM pipeline_execution_drive ORDER BY 1"
    if path.suffix == ".sqlite":
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute(sql).fetchall()
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def run_window(folder: Path, index: int = 0) -> str:
    with Pipeline.load(folder) as pipeline:
        window = pipeline.grid.first()
        for _ in range(index):
            window = pipeline.grid.next(window)
        record = pipeline.runner(heartbeat_seconds=0.2).run(window)
    assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
    return record.pipeline_id


def history_ids(folder: Path) -> list[str]:
    with Pipeline.load(folder) as pipeline:
        return [r.pipeline_id for r in pipeline.drive_store().history(pipeline.name)]


@pytest.mark.parametrize("drive_file", ["drive.sqlite", "drive.duckdb"])
def test_the_drive_table_has_its_own_file_beside_the_warehouse(tmp_path: Path, drive_file: str) -> None:
    """drive.sqlite by default; drive.duckdb where a config pins it (as configs written for the old default may)."""
    folder = make_pipeline_dir(tmp_path / "lab", **(DUCKDB_DRIVE if drive_file == "drive.duckdb" else {}))
    run_window(folder)
    assert "pipeline_execution_drive" not in tables(folder / "warehouse.duckdb")
    assert {"pipeline_execution_drive", "drivetrain_leases", "drivetrain_meta"} <= tables(folder / drive_file)
    other = {"drive.sqlite", "drive.duckdb"} - {drive_file}
    assert not (folder / other.pop()).exists()
    assert (folder / "drive.duckdb.locks").is_dir()  # the window locks, in either layout (old and new versions exclude each other)


def test_drive_path_set_to_the_warehouse_file_keeps_the_one_file_layout(tmp_path: Path) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", **ONE_FILE)
    run_window(folder)
    assert "pipeline_execution_drive" in tables(folder / "warehouse.duckdb")
    assert not (folder / "drive.duckdb").exists() and not (folder / "drive.sqlite").exists()


def test_a_one_file_layout_is_read_in_place_then_moved_once_by_the_next_write(tmp_path: Path) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", rows=make_rows(hours=3), **ONE_FILE)
    first = run_window(folder)
    config = json.loads((folder / "config.json").read_text())
    for role in ("stage_system", "target_system"):
        config[role]["drive_path"] = "drive.duckdb"  # upgrade to the DuckDB drive file (the default before drive.sqlite)
    (folder / "config.json").write_text(json.dumps(config))

    assert history_ids(folder) == [first]  # read where it is, nothing created
    assert not (folder / "drive.duckdb").exists()

    second = run_window(folder, 1)
    assert set(history_ids(folder)) == {first, second}
    with duckdb.connect(str(folder / "drive.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM pipeline_execution_drive").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM drivetrain_meta WHERE key = 'schema_version'").fetchone() == (1,)
        tokens = conn.execute("SELECT count(*), max(token) FROM drivetrain_leases").fetchone()
    assert tokens == (2, 1)  # the first window's lease row came along
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as conn:
        note = conn.execute("SELECT value FROM drivetrain_meta WHERE key = 'moved_to'").fetchall()
    assert note == [(str((folder / "drive.duckdb").resolve()),)]

    third = run_window(folder, 2)  # moved once: the next write neither copies again nor loses anything
    assert set(history_ids(folder)) == {first, second, third}


@pytest.mark.parametrize("drive_file", ["drive.sqlite", "drive.duckdb"])
def test_pipelines_with_their_own_warehouse_files_share_one_drive_file_and_run_at_once(tmp_path: Path, drive_file: str) -> None:
    shared = tmp_path / "fleet" / drive_file
    folders = [make_pipeline_dir(tmp_path / f"p{i}", rows=make_rows(hours=1, prefix=f"P{i}"),
                                 pipeline_metadata__pipeline_name=f"p{i}",
                                 stage_system__drive_path=str(shared), target_system__drive_path=str(shared))
               for i in range(4)]
    ids: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i, f=f: ids.__setitem__(i, run_window(f))) for i, f in enumerate(folders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 4
    assert drive_rows(shared) == [(f"p{i}", "SUCCESS") for i in range(4)]
