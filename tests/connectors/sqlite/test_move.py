"""The embedded default's ``drive.sqlite`` (or a DuckDB ``drive_path`` naming a ``.sqlite`` file):
the runs already in ``drive.duckdb`` (the default before) or in the one-file layout's
``warehouse.duckdb`` move into the SQLite file once, at its first use.

The folders are made by real runs on the older layouts (``drive_path`` pinned to them); the move is
checked for what it keeps (every row, every lease, the next window), for happening once, and for a
process killed in the middle of it (nothing lost, the next use finishes it).
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline
from drivetrain.connectors.duckdb.drive import DuckDBDriveStore
from drivetrain.connectors.sqlite.drive import SqliteDriveStore
from drivetrain.drive import new_holder_id
from drivetrain.errors import LeaseError
from tests.sdk.factory import DAY, make_pipeline_dir, make_rows

from .test_drive import drivetrain
from .workers import killed_mid_move

HOURS = 3


#: A config's drive_path pinned to the DuckDB drive file, the default before drive.sqlite.
OLD_DEFAULT = {"stage_system__drive_path": "drive.duckdb", "target_system__drive_path": "drive.duckdb"}
#: ... and to the warehouse file: the one-file layout (drivetrain 0.1).
ONE_FILE = {"stage_system__drive_path": "warehouse.duckdb", "target_system__drive_path": "warehouse.duckdb"}


def made_by_default(root: Path, **changes: Any) -> Path:
    """A folder whose runs of three windows went into the old default's DuckDB drive file
    (``changes`` may pin another layout)."""
    folder = make_pipeline_dir(root, make_rows(n=90, hours=HOURS, duplicates=0, invalid_every=0), **{**OLD_DEFAULT, **changes})
    ran = drivetrain(folder, "run", str(folder), "--from", "2025-11-15T00:00:00Z", "--to", "2025-11-15T03:00:00Z")
    assert ran.returncode == 0, ran.stderr
    return folder


def set_drive_path(folder: Path, drive_path: str | None) -> None:
    """Name ``drive_path`` in the stage and target sections, or (None) name none: the default."""
    config = json.loads((folder / "config.json").read_text())
    for section in ("stage_system", "target_system"):
        config[section].pop("drive_path", None)
        if drive_path is not None:
            config[section]["drive_path"] = drive_path
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def switch_to_sqlite(folder: Path) -> None:
    set_drive_path(folder, "drive.sqlite")


def runs_in(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT pipeline_id, pipeline_status FROM pipeline_execution_drive").fetchall())


def old_runs(folder: Path) -> list[tuple[str, str]]:
    with Pipeline.load(folder) as pipeline:
        store = pipeline.drive_store()
        assert isinstance(store, DuckDBDriveStore)
        return sorted((r.pipeline_id, r.pipeline_status.value) for r in store.history())


class TestMove:
    @pytest.mark.parametrize("layout", ["drive.duckdb", "one file"])
    @pytest.mark.parametrize("switch", ["the new default", "drive_path drive.sqlite"])
    def test_every_run_and_lease_moves_once_and_the_next_run_follows_on(self, tmp_path: Path, layout: str, switch: str) -> None:
        folder = made_by_default(tmp_path / "lab", **({} if layout == "drive.duckdb" else ONE_FILE))
        before = old_runs(folder)
        assert len(before) == HOURS and not (folder / "drive.sqlite").exists()
        with Pipeline.load(folder) as pipeline:
            old_leases = [pipeline.drive_store().current_lease("lab", DAY + timedelta(hours=h)) for h in range(HOURS)]
        # a config that names no drive_path (as the old default's did) now means drive.sqlite
        set_drive_path(folder, None if switch == "the new default" else "drive.sqlite")

        status = drivetrain(folder, "status", str(folder), "--json")  # the first use, a read, moves them
        assert status.returncode == 0, status.stderr
        assert runs_in(folder / "drive.sqlite") == before
        with Pipeline.load(folder) as pipeline:
            store = pipeline.drive_store()
            assert isinstance(store, SqliteDriveStore)
            assert [store.current_lease("lab", DAY + timedelta(hours=h)) for h in range(HOURS)] == old_leases
            with store.sql() as s:
                (moved_from,) = s.rows("SELECT meta_value FROM drivetrain_meta WHERE meta_key = 'moved_from'")[0]
        assert moved_from.startswith(str(folder / ("drive.duckdb" if layout == "drive.duckdb" else "warehouse.duckdb")))

        plan = drivetrain(folder, "run", str(folder), "--dry-run", "--json")
        assert plan.returncode == 0 and "2025-11-15T03:00:00" in plan.stdout, plan.stdout + plan.stderr
        again = drivetrain(folder, "run", str(folder), "--window-start", "2025-11-15T01:00:00Z")  # a completed window, run again
        assert again.returncode == 0, again.stderr
        after = runs_in(folder / "drive.sqlite")
        assert len(after) == HOURS + 1 and set(before) < set(after)  # moved once: nothing copied a second time
        assert old_runs_unchanged(folder, before, layout)
        history = drivetrain(folder, "history", str(folder), "--json")
        assert history.returncode == 0, history.stderr
        assert sorted((r["pipeline_id"], r["pipeline_status"]) for r in json.loads(history.stdout)) == after

        follow = drivetrain(folder, "run", str(folder), "--json")  # a plain run: the next window, no other
        assert follow.returncode == 0, follow.stderr
        windows = sorted(r["query_window_start_timestamp"] for r in json.loads(history_of(folder)))
        assert len(windows) == HOURS + 2 and windows.count(windows[-1]) == 1 and windows[-1].startswith("2025-11-15T03:00:00")

    def test_a_process_killed_in_the_middle_of_the_move_loses_nothing_and_the_next_use_finishes_it(self, tmp_path: Path) -> None:
        folder = made_by_default(tmp_path / "lab")
        before = old_runs(folder)
        switch_to_sqlite(folder)
        child = multiprocessing.get_context("spawn").Process(target=killed_mid_move, args=(str(folder), 2))
        child.start()
        child.join(timeout=180)
        assert child.exitcode == -signal.SIGKILL
        assert (folder / "drive.sqlite").exists()
        with sqlite3.connect(folder / "drive.sqlite") as conn:  # rolled back: not even the table is there
            assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'pipeline_execution_drive'").fetchall() == []
        history = drivetrain(folder, "history", str(folder), "--json")
        assert history.returncode == 0, history.stderr
        assert sorted((r["pipeline_id"], r["pipeline_status"]) for r in json.loads(history.stdout)) == before
        assert runs_in(folder / "drive.sqlite") == before

    def test_a_window_leased_in_the_duckdb_layout_is_refused_in_the_sqlite_one(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(n=40, hours=1), **OLD_DEFAULT)
        with Pipeline.load(folder) as pipeline:
            old = pipeline.drive_store()
            lease = old.acquire_lease("lab", DAY, DAY + timedelta(hours=1), new_holder_id(), 60)
            switch_to_sqlite(folder)
            with Pipeline.load(folder) as moved:
                store = moved.drive_store()
                assert isinstance(store, SqliteDriveStore)
                with pytest.raises(LeaseError, match="not starting a second run"):
                    store.acquire_lease("lab", DAY, DAY + timedelta(hours=1), new_holder_id(), 60)
            old.release_lease(lease)


def history_of(folder: Path) -> str:
    history = drivetrain(folder, "history", str(folder), "--json")
    assert history.returncode == 0, history.stderr
    return history.stdout


def old_runs_unchanged(folder: Path, before: list[tuple[str, str]], layout: str = "drive.duckdb") -> bool:
    """The DuckDB drive table is only read by the move (read through a config pinning the old layout)."""
    saved = (folder / "config.json").read_text()
    set_drive_path(folder, "drive.duckdb")
    try:
        return old_runs(folder) == before if layout == "drive.duckdb" else _one_file(folder, before)
    finally:
        (folder / "config.json").write_text(saved)


def _one_file(folder: Path, before: list[tuple[str, str]]) -> bool:
    import duckdb

    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as conn:
        return sorted(conn.execute("SELECT pipeline_id, pipeline_status FROM pipeline_execution_drive").fetchall()) == before
