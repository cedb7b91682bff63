"""The shared SQL layer on every backend: drive store, leases, push-down, cleaning, ownership."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import attrs
import pyarrow as pa
import pytest

from drivetrain.drive import SCHEMA_VERSION, new_holder_id
from drivetrain.errors import LeaseError, PermanentError
from drivetrain.ownership import owned
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.record import RunRecord, RunStatus
from drivetrain.warehouse import LINEAGE_COLUMNS, PushDown, TableRef, Warehouse
from drivetrain.window import Window

from .conftest import rows

T0 = datetime(2025, 11, 15, 10, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
LATER = Window(WINDOW.end, WINDOW.end + timedelta(hours=1))
DRIVE = "pipeline_execution_drive"


def record(run_id: str = "lab_20251115T100000Z_run1", **changes: object) -> RunRecord:
    base = RunRecord(
        pipeline_id=run_id, pipeline_name="lab", pipeline_start_timestamp=T0 + timedelta(minutes=70),
        query_window_start_timestamp=WINDOW.start, query_window_end_timestamp=WINDOW.end, target_date=date(2025, 11, 15),
        query_window_duration="1h", phases_pending=tuple(PHASE_NAMES), lease_holder="host:1:abc",
        config_hash="h1", config_snapshot={"pipeline_metadata": {"pipeline_name": "lab"}, "n": [1, 2]},
    )
    return attrs.evolve(base, **changes)


def store_of(wh: Warehouse):  # noqa: ANN201 - the backend's SqlDriveStore
    store = wh.drive_store(wh.table_ref({"table": DRIVE}, None))
    store.ensure()
    return store


def lineage(window: Window, run: str = "lab_20251115T100000Z_run1") -> dict[str, object]:
    return {"_drivetrain_pipeline_id": run, "_drivetrain_window_start": window.start, "_drivetrain_window_end": window.end,
            "_drivetrain_target_date": window.target_date, "_drivetrain_loaded_at": T0}


def stage_rows(wh: Warehouse, stage: TableRef, window: Window, items: list[dict[str, object]]) -> None:
    with wh.window_load(window, "k") as load:
        load.append(stage, pa.RecordBatch.from_pylist(items))
        load.commit([stage])


class TestDriveStore:
    def test_a_row_written_by_hand_gets_its_timestamps_and_retry_number_from_the_table(self, drive_backend):
        """The spec's drive table: created_at / updated_at default to the time of the insert."""
        store = store_of(drive_backend)
        with store.wh.sql("hand-written row") as session:  # the store's own: DuckDB's drive table has a file of its own
            session.execute(
                f"INSERT INTO {store.table_sql} (pipeline_id, pipeline_name, pipeline_status, pipeline_start_timestamp, "
                "query_window_start_timestamp, query_window_end_timestamp, target_date, query_window_duration) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ["by_hand_run1", "lab", "SUCCESS", T0, WINDOW.start, WINDOW.end, date(2025, 11, 15), "1h"],
            )
        [(retries, created, updated)] = rows(
            store.wh,
            f"SELECT pipeline_retry_number, created_at, updated_at FROM {store.table_sql} WHERE pipeline_id = ?", ["by_hand_run1"])
        assert retries == 0
        assert created is not None and updated is not None

    def test_insert_get_update_history_and_heartbeat(self, drive_backend):
        store = store_of(drive_backend)
        rec = record()
        store.insert(rec)
        store.insert(rec)  # a retried insert keeps one row
        got = store.get(rec.pipeline_id)
        assert got is not None and got.config_snapshot == rec.config_snapshot and got.phases_pending == rec.phases_pending
        assert len(store.history("lab")) == 1
        store.update(attrs.evolve(rec, pipeline_status=RunStatus.FAILED, phase_failed="source_count"))
        assert store.get(rec.pipeline_id).pipeline_status is RunStatus.FAILED
        second = record("lab_20251115T100000Z_run2", pipeline_retry_number=1)
        store.insert(second)
        assert [r.pipeline_id for r in store.attempts("lab", WINDOW.start, WINDOW.end)] == [rec.pipeline_id, second.pipeline_id]
        assert [r.pipeline_id for r in store.history("lab", status=[RunStatus.FAILED])] == [rec.pipeline_id]
        assert store.pipelines() == ["lab"]
        beat = T0 + timedelta(hours=5)
        store.heartbeat(second.pipeline_id, beat)
        assert store.get(second.pipeline_id).heartbeat_at == beat
        with pytest.raises(PermanentError, match="not in the drive table"):
            store.update(record("lab_20251115T100000Z_run9"))

    def test_a_table_at_the_newest_layout_of_any_store_is_used_as_it_is(self, drive_backend):
        """Layout 5 changed only SQLite's tables: another store written at 5 (by the version that
        wrote 5 everywhere) is read and written, and keeps its number."""
        store = store_of(drive_backend)
        key, value = store.meta_columns
        meta = store.dialect.qualified(store.meta)
        with store.wh.sql("test") as s:
            s.execute(f"UPDATE {meta} SET {value} = ? WHERE {key} = 'schema_version'", [str(SCHEMA_VERSION)])
        again = store_of(drive_backend)
        again.insert(record())
        assert again.get(record().pipeline_id) is not None
        assert rows(again.wh, f"SELECT {value} FROM {meta} WHERE {key} = 'schema_version'") == [(str(SCHEMA_VERSION),)]

    def test_the_schema_version_is_recorded_and_a_newer_one_refused(self, drive_backend):
        store = store_of(drive_backend)
        key, value = store.meta_columns
        meta = store.dialect.qualified(store.meta)
        assert rows(store.wh, f"SELECT {value} FROM {meta} WHERE {key} = 'schema_version'") == [(str(store.layout),)]
        assert store.layout == (5 if type(store).__name__ == "SqliteDriveStore" else 4)  # an older drivetrain reads the others
        with store.wh.sql("test") as s:
            s.execute(f"UPDATE {meta} SET {value} = '99' WHERE {key} = 'schema_version'")
        with pytest.raises(PermanentError, match="newer than this drivetrain"):
            store_of(drive_backend)

    def test_a_lost_lease_fences_writes_and_tokens_grow(self, drive_backend):
        store = store_of(drive_backend)
        first = store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        with pytest.raises(LeaseError, match="not starting a second run"):
            store_of(drive_backend).acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        rec = record()
        store.insert(rec, fence=first)
        store.release_lease(first)
        second = store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        assert second.token == first.token + 1
        with pytest.raises(LeaseError):
            store.verify_lease(first)
        with pytest.raises(LeaseError):
            store.update(attrs.evolve(rec, pipeline_status=RunStatus.SUCCESS), fence=first)
        with pytest.raises(LeaseError):
            store.insert(record("lab_20251115T100000Z_run2"), fence=first)
        store.update(attrs.evolve(rec, pipeline_status=RunStatus.FAILED), fence=second)
        assert store.get(rec.pipeline_id).pipeline_status is RunStatus.FAILED
        assert store.get("lab_20251115T100000Z_run2") is None
        store.release_lease(second)


COLUMNS = [("id", '"id"'), ("v", '"v"'), ("at", '"at"')]


class TestPushDown:
    def test_dedup_keeps_the_latest_row_per_key_and_a_rerun_changes_nothing(self, warehouse_backend):
        wh = warehouse_backend
        stage, target = TableRef(name="stg", query_field="at"), TableRef(name="tgt", query_field="at")
        stage_rows(wh, stage, WINDOW, [{"id": 1, "v": "old", "at": T0, "_drivetrain_row": 0},
                                       {"id": 1, "v": "new", "at": T0, "_drivetrain_row": 1},
                                       {"id": 2, "v": "x", "at": T0 + timedelta(minutes=1), "_drivetrain_row": 2}])
        spec = PushDown(stage=stage, target=target, columns=COLUMNS, dedup_keys=("id",), order_by=("at", "_drivetrain_row"))
        for _ in range(2):
            stats = wh.push_down(spec, WINDOW, lineage(WINDOW))
            assert (stats.rows_read, stats.rows_written, stats.rows_dropped) == (3, 2, 1)
        assert sorted(rows(wh, f'SELECT "id", "v" FROM {wh.dialect.qualified(target)}')) == [(1, "new"), (2, "x")]
        assert wh.count_window(target, WINDOW) == 2
        assert set(wh.table_columns(target)) >= set(LINEAGE_COLUMNS)

    def test_merge_never_replaces_a_newer_version_and_deletes_missing_records(self, warehouse_backend):
        wh = warehouse_backend
        stage, target = TableRef(name="stg", query_field="at"), TableRef(name="tgt", query_field="at")
        spec = PushDown(stage=stage, target=target, columns=COLUMNS, merge_keys=("id",), order_by=("at",))
        for window, version, minute in ((LATER, "new", 70), (WINDOW, "old", 10)):  # the older window is resumed last
            stage_rows(wh, stage, window, [{"id": 1, "v": version, "at": T0 + timedelta(minutes=minute)},
                                           {"id": 2, "v": version, "at": T0 + timedelta(minutes=minute + 1)}])
            stats = wh.push_down(spec, window, lineage(window))
        assert sorted(rows(wh, f'SELECT "id", "v" FROM {wh.dialect.qualified(target)}')) == [(1, "new"), (2, "new")]
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped, stats.rows_superseded) == (2, 2, 0, 2)
        assert wh.count_merged(stage, target, WINDOW, [("id", '"id"')], ("at", '"at"')) == (2, 2)
        # record 2 disappears from the later window at the source
        stage_rows(wh, stage, LATER, [{"id": 1, "v": "newer", "at": T0 + timedelta(minutes=75)}])
        stats = wh.push_down(attrs.evolve(spec, delete_missing=True), LATER, lineage(LATER))
        assert stats.rows_removed == 1
        assert sorted(rows(wh, f'SELECT "id", "v" FROM {wh.dialect.qualified(target)}')) == [(1, "newer")]


class TestCleaningAndOwnership:
    def test_dates_are_listed_read_counted_and_deleted_exactly(self, warehouse_backend):
        wh = warehouse_backend
        stage = TableRef(name="stg", query_field="at")
        stage_rows(wh, stage, WINDOW, [{"id": i, "at": T0, "_drivetrain_target_date": date(2025, 11, 15)} for i in range(3)])
        assert wh.dates_before(stage, date(2025, 11, 16)) == [date(2025, 11, 15)]
        assert wh.dates_before(stage, date(2025, 11, 15)) == []
        assert wh.count_date(stage, date(2025, 11, 15)) == 3
        assert sum(b.num_rows for b in wh.read_date(stage, date(2025, 11, 15), 2)) == 3
        with pytest.raises(PermanentError, match="nothing deleted"):
            wh.delete_date(stage, date(2025, 11, 15), 2)
        assert wh.count_date(stage, date(2025, 11, 15)) == 3
        assert wh.delete_date(stage, date(2025, 11, 15), 3) == 3
        assert wh.count_window(stage, WINDOW) == 0

    def test_a_table_claimed_by_one_pipeline_is_refused_to_another(self, warehouse_backend):
        wh = warehouse_backend
        base = TableRef(name="tgt", query_field="at")
        wh.claim_table(owned(base, "alpha", False, "target_system"))
        with pytest.raises(PermanentError, match="belongs to pipeline 'alpha'"):
            wh.claim_table(owned(base, "beta", False, "target_system"))
        assert [c.pipeline for c in wh.table_claims(base)] == ["alpha"]
        assert wh.ownership_problem(owned(base, "beta", False, "target_system")) is not None
