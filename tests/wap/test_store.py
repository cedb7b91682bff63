"""The gate on the shared SQL layer, on every backend: publish SQL, and the drive table's new column."""

from __future__ import annotations

import attrs

from drivetrain.ownership import owned
from drivetrain.record import PhaseStatus
from drivetrain.tables import Target
from drivetrain.warehouse import TableRef, Warehouse
from tests.connectors.sql.conftest import database, drive_backend, rows, warehouse_backend  # noqa: F401 - fixtures
from tests.connectors.sql.test_store import LATER, WINDOW, lineage, record, stage_rows, store_of


def target_of(wh: Warehouse, shared: bool = False, owner: str = "lab") -> Target:
    return Target(wh, owned(TableRef(name="orders", query_field="ts"), owner, shared, "target_system"))


def pending_load(wh: Warehouse, target: Target, items: list[dict[str, object]], run: str = "lab_20251115T100000Z_run1") -> None:
    extra = lineage(WINDOW, run)
    stage_rows(wh, target.pending().ref, WINDOW, [{**item, **extra} for item in items])


def ids(wh: Warehouse, table: str = "orders") -> list[tuple[object, ...]]:
    q = wh.dialect.quote
    return rows(wh, f"SELECT {q('id')}, {q('v')} FROM {wh.dialect.qualified(TableRef(name=table))} ORDER BY 1")


class TestPublishSql:
    def test_publish_replaces_the_window_in_one_step_and_empties_pending(self, warehouse_backend):  # noqa: F811
        wh, target = warehouse_backend, target_of(warehouse_backend)
        outside = {"id": 9, "v": "later window", "ts": LATER.start}
        stage_rows(wh, target.ref, LATER, [{**outside, **lineage(LATER)}])
        pending_load(wh, target, [{"id": 1, "v": "a", "ts": WINDOW.start}, {"id": 2, "v": "b", "ts": WINDOW.start}])
        stats = target.publish(WINDOW)
        assert stats.rows_written == 2
        assert ids(wh) == [(1, "a"), (2, "b"), (9, "later window")]
        assert target.pending().count(WINDOW) == 0
        assert target.count_written_by(WINDOW, "lab_20251115T100000Z_run1") == 2  # lineage kept from pending
        pending_load(wh, target, [{"id": 3, "v": "c", "ts": WINDOW.start}], run="lab_20251115T100000Z_run2")
        target.publish(WINDOW)
        assert ids(wh) == [(3, "c"), (9, "later window")]

    def test_publish_merges_never_over_a_newer_version_and_deletes_missing(self, warehouse_backend):  # noqa: F811
        wh, target = warehouse_backend, target_of(warehouse_backend)
        pending_load(wh, target, [{"id": 1, "v": "a", "ts": WINDOW.start}, {"id": 2, "v": "b", "ts": WINDOW.start}])
        target.publish(WINDOW, merge_keys=("id",))
        pending_load(wh, target, [{"id": 2, "v": "b2", "ts": WINDOW.start}], run="lab_20251115T100000Z_run2")
        stats = target.publish(WINDOW, merge_keys=("id",), delete_missing=True)
        assert ids(wh) == [(2, "b2")]
        assert stats.rows_removed == 1 and target.pending().count(WINDOW) == 0

    def test_a_shared_target_publishes_only_its_owners_rows(self, warehouse_backend):  # noqa: F811
        wh = warehouse_backend
        mine, theirs = target_of(wh, shared=True), target_of(wh, shared=True, owner="other")
        stage_rows(wh, theirs.pending().ref, WINDOW,
                   [{"id": 7, "v": "theirs", "ts": WINDOW.start, **lineage(WINDOW, "other_20251115T100000Z_run1")}])
        theirs.publish(WINDOW)
        pending_load(wh, mine, [{"id": 1, "v": "mine", "ts": WINDOW.start}])
        mine.publish(WINDOW)
        pending_load(wh, mine, [{"id": 2, "v": "mine again", "ts": WINDOW.start}], run="lab_20251115T100000Z_run2")
        mine.publish(WINDOW)
        assert ids(wh) == [(2, "mine again"), (7, "theirs")]

    def test_an_empty_window_with_nothing_pending_empties_the_targets_window(self, warehouse_backend):  # noqa: F811
        wh, target = warehouse_backend, target_of(warehouse_backend)
        stage_rows(wh, target.ref, WINDOW, [{"id": 1, "v": "a", "ts": WINDOW.start, **lineage(WINDOW)}])
        assert target.publish(WINDOW).rows_written == 0
        assert ids(wh) == []


class TestDriveMigration:
    def test_a_version_1_drive_table_gains_publish_phase(self, drive_backend):  # noqa: F811
        wh = drive_backend
        store = store_of(wh)
        old = record()
        store.insert(old)
        key, value = store.meta_columns
        with store.sql() as s:  # where the drive table lives (on DuckDB its own file)
            for index in getattr(store, "index_names", dict)():  # DuckDB: version 1 had no indexes
                s.execute(f"DROP INDEX {index}")
            for trigger in ("insert", "update", "delete") if store.summary_by_trigger else ():  # SQLite: the phase
                s.execute(f"DROP TRIGGER {store.dialect.owned(store.table.name + '__phases_' + trigger)}")  # summary's (4) read it
            s.execute(f"ALTER TABLE {store.table_sql} DROP COLUMN publish_phase")
            s.execute(f"UPDATE {store.dialect.qualified(store.meta)} SET {value} = '1' WHERE {key} = 'schema_version'")
        migrated = store_of(wh)
        with migrated.sql() as s:
            assert s.rows(f"SELECT {value} FROM {store.dialect.qualified(store.meta)} WHERE {key} = 'schema_version'") == [
                (str(migrated.layout),)]
        got = migrated.get(old.pipeline_id)
        assert got is not None and got.phases["publish"].status is PhaseStatus.PENDING
        done = attrs.evolve(got).with_phase("publish", attrs.evolve(got.phases["publish"], status=PhaseStatus.COMPLETED,
                                                                    phase_specific_details={"rows_published": 3}))
        migrated.update(done)
        assert migrated.get(old.pipeline_id).phases["publish"].phase_specific_details == {"rows_published": 3}

