"""The publish gate's pending row numbers, on every SQL warehouse (drivetrain.sql.pending_rows).

The transfer writes only the numbers of the stage rows the push-down keeps; publish copies those
rows from the stage into the target in one transaction. The statements are plain SQL, so they
must give the same answer everywhere, whether or not a dialect turns them on by default: the
same rows as a push-down straight into the target, lineage of the transfer, nothing published
when the stage window no longer holds the rows the numbers name.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import pyarrow as pa
import pytest

from drivetrain.errors import PermanentError
from drivetrain.sql import pending_rows
from drivetrain.warehouse import PushDown, TableRef, Warehouse
from drivetrain.window import Window

from .conftest import rows
from .test_store import LATER, T0, WINDOW, lineage

STAGE, TARGET = TableRef(name="stg", query_field="at"), TableRef(name="tgt", query_field="at")
NUMBERS = TARGET.sibling(pending_rows.PENDING_ROWS_SUFFIX, query_field="at")
COLUMNS = [("id", '"id"'), ("value", '"v"'), ("at", '"at"')]  # a rename, as a projection may have
DEDUP = PushDown(stage=STAGE, target=NUMBERS, columns=COLUMNS, dedup_keys=("id",), order_by=("at", "_drivetrain_row"))
TRANSFER = lineage(WINDOW, "lab_transfer_run")
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string()), ("at", pa.timestamp("us", tz="UTC")),
                    ("_drivetrain_pipeline_id", pa.string()), ("_drivetrain_window_start", pa.timestamp("us", tz="UTC")),
                    ("_drivetrain_window_end", pa.timestamp("us", tz="UTC")), ("_drivetrain_target_date", pa.date32()),
                    ("_drivetrain_loaded_at", pa.timestamp("us", tz="UTC")), ("_drivetrain_row", pa.int64())])


def fill(wh: Warehouse, window: Window, run: str, items: list[tuple[int, str, int]]) -> None:
    """Load the stage window as run ``run``: (key, value, minute) in source order."""
    base = lineage(window, run)
    batch = [{"id": k, "v": v, "at": window.start + timedelta(minutes=m), **base, "_drivetrain_row": n}
             for n, (k, v, m) in enumerate(items)]
    with wh.window_load(window, "k") as load:
        load.append(STAGE, pa.RecordBatch.from_pylist(batch, schema=SCHEMA))
        load.commit([STAGE])


def target(wh: Warehouse) -> list[tuple[object, ...]]:
    q = wh.dialect.quote
    return sorted(rows(wh, f"SELECT {q('id')}, {q('value')}, {q('_drivetrain_pipeline_id')} FROM {wh.dialect.qualified(TARGET)}"),
                  key=repr)


def write(wh: Warehouse, window: Window = WINDOW) -> int:
    return pending_rows.write_row_numbers(wh, DEDUP, window, TRANSFER, NUMBERS, None).rows_written


def publish(wh: Warehouse, window: Window = WINDOW) -> int:
    return pending_rows.publish_rows(wh, STAGE, TARGET, NUMBERS, window, None).rows_written


def test_the_published_window_is_what_a_push_down_writes_with_the_transfers_lineage(warehouse_backend):
    wh = warehouse_backend
    fill(wh, WINDOW, "lab_load_run", [(1, "old", 0), (1, "new", 5), (2, "only", 1), (3, "a", 2), (3, "b", 2)])
    assert pending_rows.usable(wh, STAGE, merge=False) is wh.dialect.pending_row_numbers

    assert write(wh) == 3
    assert pending_rows.rows_problem(wh, STAGE, NUMBERS, WINDOW, 3) is None
    assert not wh.table_exists(TARGET)  # nothing shows before publish
    assert publish(wh) == 3

    assert target(wh) == [(1, "new", "lab_transfer_run"), (2, "only", "lab_transfer_run"), (3, "b", "lab_transfer_run")]
    assert rows(wh, f"SELECT COUNT(*) FROM {wh.dialect.qualified(NUMBERS)}") == [(0,)]  # pending emptied


def test_the_pending_query_shows_the_rows_publish_will_write(warehouse_backend):
    wh = warehouse_backend
    fill(wh, WINDOW, "lab_load_run", [(1, "old", 0), (1, "new", 5), (2, "only", 1)])
    write(wh)
    query = pending_rows.window_query(wh, STAGE, NUMBERS, COLUMNS, WINDOW)
    q = wh.dialect.quote
    assert sorted(rows(wh, query.replace("SELECT *", f"SELECT {q('id')}, {q('value')}", 1))) == [(1, "new"), (2, "only")]


def test_publishing_replaces_only_its_own_window(warehouse_backend):
    wh = warehouse_backend
    fill(wh, WINDOW, "lab_load_run", [(1, "a", 0)])
    fill(wh, LATER, "lab_later_run", [(1, "later", 0), (2, "later too", 1)])
    write(wh)
    publish(wh)
    write(wh, LATER)
    publish(wh, LATER)
    fill(wh, WINDOW, "lab_load_run2", [(5, "again", 3)])
    write(wh)
    publish(wh)
    assert sorted(r[:2] for r in target(wh)) == [(1, "later"), (2, "later too"), (5, "again")]


def test_an_empty_window_empties_the_targets_window(warehouse_backend):
    wh = warehouse_backend
    fill(wh, WINDOW, "lab_load_run", [(1, "a", 0), (2, "b", 1)])
    write(wh)
    publish(wh)
    fill(wh, WINDOW, "lab_load_run2", [])
    assert write(wh) == 0
    assert publish(wh) == 0
    assert target(wh) == []


@pytest.mark.parametrize("change", ["loaded again", "cleaned"])
def test_numbers_of_a_stage_window_loaded_again_or_cleaned_publish_nothing(warehouse_backend, change):
    """Numbers coincide between loads (both start at 0): the run that loaded the stage tells them apart."""
    wh = warehouse_backend
    fill(wh, LATER, "lab_old_run", [(9, "published before", 0)])
    write(wh, LATER)
    publish(wh, LATER)
    fill(wh, WINDOW, "lab_load_run", [(1, "a", 0), (2, "b", 1)])
    write(wh)
    fill(wh, WINDOW, "lab_other_run", [(1, "x", 0), (2, "y", 1)] if change == "loaded again" else [])

    assert "loaded again or cleaned" in (pending_rows.rows_problem(wh, STAGE, NUMBERS, WINDOW, 2) or "")
    with pytest.raises(PermanentError, match="nothing was published"):
        publish(wh)
    assert target(wh) == [(9, "published before", "lab_transfer_run")]  # rolled back: unchanged
    assert rows(wh, f"SELECT COUNT(*) FROM {wh.dialect.qualified(NUMBERS)}") == [(2,)]  # kept for the next attempt


def test_a_merge_or_a_stage_without_row_numbers_keeps_whole_pending_rows(warehouse_backend):
    wh = warehouse_backend
    fill(wh, WINDOW, "lab_load_run", [(1, "a", 0)])
    assert pending_rows.usable(wh, STAGE, merge=True) is False
    plain = attrs.evolve(STAGE, name="plain")
    with wh.window_load(WINDOW, "k") as load:
        load.append(plain, pa.RecordBatch.from_pylist([{"id": 1, "at": T0}]))
        load.commit([plain])
    assert pending_rows.usable(wh, plain, merge=False) is False


def test_duckdb_inserts_without_keeping_order_inside_the_push_down_and_publish_only(tmp_path):
    """The fence runs inside each transaction: the setting is off there, back on after."""
    from drivetrain.config import SystemConfig
    from drivetrain.connectors.duckdb import DuckDBWarehouse

    wh = DuckDBWarehouse(SystemConfig.from_section("target_system", {"type": "duckdb", "path": "w.duckdb", "table": "tgt"},
                                                   base_dir=tmp_path))
    seen: list[object] = []

    def setting() -> object:
        return rows(wh, "SELECT current_setting('preserve_insertion_order')")[0][0]

    try:
        fill(wh, WINDOW, "lab_load_run", [(1, "a", 0), (2, "b", 1)])
        pending_rows.write_row_numbers(wh, DEDUP, WINDOW, TRANSFER, NUMBERS, lambda: seen.append(setting()))
        pending_rows.publish_rows(wh, STAGE, TARGET, NUMBERS, WINDOW, lambda: seen.append(setting()))
        wh.push_down(attrs.evolve(DEDUP, target=TARGET), WINDOW, TRANSFER, fence=lambda: seen.append(setting()))
        assert seen == [False, False, False]
        assert setting() is True  # other statements of the session keep DuckDB's default
    finally:
        wh.close()


@pytest.mark.parametrize("items, ranked", [
    ([(1, "a", 0), (2, "b", 1), (None, "no key", 2)], False),
    ([(1, "a", 0), (2, "b", 1), (1, "newer a", 2)], True),
    ([(None, "a", 0), (2, "b", 1), (None, "newer", 2)], True),
], ids=["unique", "shared-key", "two-null-keys"])
def test_numbers_of_a_window_with_unique_keys_are_written_without_ranking(warehouse_backend, items, ranked):
    """Every row of a window whose keys are unique is kept: the numbers are written without the
    ranking. A shared key, or two rows without one, ranks as before; publish writes the same rows."""
    wh = warehouse_backend
    fill(wh, WINDOW, "lab_load_run", items)
    stats = pending_rows.write_row_numbers(wh, DEDUP, WINDOW, TRANSFER, NUMBERS, None)
    assert (stats.rows_read, stats.ranked) == (3, ranked or wh.dialect.row_identity is None)
    assert stats.rows_written == (2 if ranked else 3)
    assert publish(wh) == stats.rows_written
    kept = {(k, v) for k, v, _ in items if (k, v) not in {(1, "a"), (None, "a")} or not ranked}
    assert {(k, v) for k, v, _ in target(wh)} == kept


def test_the_projection_is_written_once_per_window_and_read_from_older_tables_too(warehouse_backend):
    """The projection's text goes on one row of the window, not on every row; a table written by
    an earlier version (the text on every row) is read alike, and publishes the same rows."""
    wh = warehouse_backend
    q, numbers = wh.dialect.quote, wh.dialect.qualified(NUMBERS)
    fill(wh, WINDOW, "lab_load_run", [(1, "a", 0), (2, "b", 1), (3, "c", 2)])
    assert write(wh) == 3
    assert rows(wh, f"SELECT COUNT({q(pending_rows.PROJECTION)}) FROM {numbers}") == [(1,)]
    assert pending_rows.projection(wh, NUMBERS, WINDOW) == [tuple(c) for c in COLUMNS]

    with wh.sql("as an earlier version wrote it") as s:
        s.execute(f"UPDATE {numbers} SET {q(pending_rows.PROJECTION)} = (SELECT MAX({q(pending_rows.PROJECTION)}) FROM {numbers})")
    assert rows(wh, f"SELECT COUNT({q(pending_rows.PROJECTION)}) FROM {numbers}") == [(3,)]
    assert pending_rows.projection(wh, NUMBERS, WINDOW) == [tuple(c) for c in COLUMNS]
    assert publish(wh) == 3
    assert target(wh) == [(1, "a", "lab_transfer_run"), (2, "b", "lab_transfer_run"), (3, "c", "lab_transfer_run")]
