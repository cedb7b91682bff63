"""DuckDB as warehouse and drive store: window loads, push-down, leases, schema version."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.drive import new_holder_id
from drivetrain.errors import LeaseError, PermanentError
from drivetrain.warehouse import LINEAGE_COLUMNS, PushDown, TableRef
from drivetrain.window import Window

START = datetime(2025, 11, 15, 10, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=1))


@pytest.fixture
def wh(tmp_path):
    """A DuckDB warehouse whose drive table is pinned to a DuckDB file (these tests are about that store)."""
    section = {"type": "duckdb", "path": "w.duckdb", "table": "stg", "drive_path": "drive.duckdb"}
    return DuckDBWarehouse(SystemConfig.from_section("stage_system", section, base_dir=tmp_path))


def batch(ids, minute=0):
    return pa.RecordBatch.from_pylist([{"id": i, "at": START + timedelta(minutes=minute + k)} for k, i in enumerate(ids)])


STG = TableRef(name="stg", query_field="at")


class TestWindowLoad:
    def test_commit_replaces_the_window_atomically(self, wh):
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batch([1, 2, 3]))
            assert wh.count_window(STG, WINDOW) == 0  # not visible before commit
            load.commit([STG])
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batch([4, 5]))
            load.commit([STG])
        assert wh.count_window(STG, WINDOW) == 2

    def test_rows_outside_the_window_are_untouched(self, wh):
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batch([1], minute=-30))
            load.commit([STG])
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batch([2]))
            load.commit([STG])
        assert wh.count_window(STG, Window(START - timedelta(hours=1), START)) == 1

    def test_abort_leaves_the_table_as_it_was_and_drops_the_load_table(self, wh):
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batch([1]))
            load.commit([STG])
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batch([7, 8, 9]))
        assert wh.count_window(STG, WINDOW) == 1
        assert not wh.table_exists(TableRef(name="stg__load_k"))

    def test_a_failing_fence_rolls_the_commit_back(self, wh):
        def fence():
            raise LeaseError("lost")

        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batch([1, 2]))
            with pytest.raises(LeaseError):
                load.commit([STG], fence=fence)
        assert wh.count_window(STG, WINDOW) == 0

    def test_new_columns_in_later_batches_are_added(self, wh):
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, batch([1]))
            load.append(STG, pa.RecordBatch.from_pylist([{"id": 2, "at": START, "extra": "x"}]))
            load.commit([STG])
        assert "extra" in wh.table_columns(STG)

    def test_table_names_are_checked_before_use(self):
        with pytest.raises(PermanentError, match="not a valid identifier"):
            TableRef(name='x"; DROP TABLE y; --')


class TestPushDown:
    def test_dedup_keeps_the_latest_row_per_key(self, wh):
        rows = pa.RecordBatch.from_pylist([
            {"id": 1, "v": "old", "at": START, "_drivetrain_row": 0},
            {"id": 1, "v": "new", "at": START, "_drivetrain_row": 1},
            {"id": 2, "v": "x", "at": START + timedelta(minutes=1), "_drivetrain_row": 2},
        ])
        with wh.window_load(WINDOW, "k") as load:
            load.append(STG, rows)
            load.commit([STG])
        target = TableRef(name="tgt", query_field="at")
        lineage = dict.fromkeys(LINEAGE_COLUMNS)
        lineage.update(_drivetrain_pipeline_id="run1", _drivetrain_window_start=WINDOW.start, _drivetrain_window_end=WINDOW.end,
                       _drivetrain_target_date=WINDOW.target_date, _drivetrain_loaded_at=START)
        spec = PushDown(stage=STG, target=target, columns=[("id", '"id"'), ("v", '"v"'), ("at", '"at"')],
                        dedup_keys=("id",), order_by=("at", "_drivetrain_row"))
        stats = wh.push_down(spec, WINDOW, lineage)
        again = wh.push_down(spec, WINDOW, lineage)
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped) == (3, 2, 1) == (again.rows_read, again.rows_written, again.rows_dropped)
        with duckdb.connect(str(wh.path), read_only=True) as conn:
            assert conn.execute("SELECT id, v FROM tgt ORDER BY id").fetchall() == [(1, "new"), (2, "x")]


class TestDriveStore:
    def test_the_default_drive_table_is_drive_sqlite_beside_the_warehouse_file(self, tmp_path):
        from drivetrain.connectors.sqlite.drive import SqliteDriveStore

        default = DuckDBWarehouse(SystemConfig.from_section("stage_system", {"type": "duckdb", "path": "w.duckdb", "table": "stg"},
                                                            base_dir=tmp_path))
        assert default.drive_path == (tmp_path / "drive.sqlite").resolve()
        store = default.drive_store(TableRef(name="pipeline_execution_drive"))
        assert isinstance(store, SqliteDriveStore)
        store.ensure()
        assert (tmp_path / "drive.sqlite").exists() and not (tmp_path / "drive.duckdb").exists()

    def test_schema_version_is_recorded_and_a_newer_one_refused(self, wh):
        store = wh.drive_store(TableRef(name="pipeline_execution_drive"))
        store.ensure()
        with duckdb.connect(str(wh.drive_path)) as conn:
            assert conn.execute("SELECT value FROM drivetrain_meta WHERE key = 'schema_version'").fetchone() == (str(store.layout),) == ("4",)
            conn.execute("UPDATE drivetrain_meta SET value = '99' WHERE key = 'schema_version'")
        with pytest.raises(PermanentError, match="newer than this drivetrain"):
            wh.drive_store(TableRef(name="pipeline_execution_drive")).ensure()

    def test_lease_is_exclusive_and_tokens_grow(self, wh):
        store = wh.drive_store(TableRef(name="pipeline_execution_drive"))
        first = store.acquire_lease("p", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        with pytest.raises(LeaseError, match="not starting a second run"):
            wh.drive_store(TableRef(name="pipeline_execution_drive")).acquire_lease("p", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        store.release_lease(first)
        second = store.acquire_lease("p", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        assert second.token == first.token + 1
        with pytest.raises(LeaseError):
            store.verify_lease(first)
        store.verify_lease(second)
        store.release_lease(second)

    def test_lock_files_live_beside_the_drive_file(self, wh):
        store = wh.drive_store(TableRef(name="pipeline_execution_drive"))
        lease = store.acquire_lease("p", WINDOW.start, WINDOW.end, "me:1:x", 60)
        assert wh.drive_path == wh.path.with_name("drive.duckdb")
        locks = wh.path.with_name("drive.duckdb.locks")
        assert [n for n in os.listdir(locks) if n.endswith(".lock")] == ["p__20251115T100000Z.lock"]  # beside open.gate
        store.release_lease(lease)


class TestMerge:
    def test_an_older_version_never_replaces_a_newer_one(self, wh):
        target = TableRef(name="tgt", query_field="at")
        lineage = {"_drivetrain_pipeline_id": "r", "_drivetrain_window_start": WINDOW.start, "_drivetrain_window_end": WINDOW.end,
                   "_drivetrain_target_date": WINDOW.target_date, "_drivetrain_loaded_at": START}
        spec = PushDown(stage=STG, target=target, columns=[("id", '"id"'), ("v", '"v"'), ("at", '"at"')],
                        merge_keys=("id",), order_by=("at",))
        later = Window(WINDOW.end, WINDOW.end + timedelta(hours=1))
        for window, version, minute in ((later, "new", 70), (WINDOW, "old", 10)):  # the older window is resumed last
            with wh.window_load(window, "k") as load:
                load.append(STG, pa.RecordBatch.from_pylist([{"id": 1, "v": version, "at": START + timedelta(minutes=minute)},
                                                             {"id": 2, "v": version, "at": START + timedelta(minutes=minute + 1)}]))
                load.commit([STG])
            stats = wh.push_down(spec, window, lineage)
        with duckdb.connect(str(wh.path), read_only=True) as conn:
            assert conn.execute("SELECT id, v FROM tgt ORDER BY id").fetchall() == [(1, "new"), (2, "new")]
        # both records are held, in a newer version: accounted for, not dropped
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped, stats.rows_superseded) == (2, 2, 0, 2)
