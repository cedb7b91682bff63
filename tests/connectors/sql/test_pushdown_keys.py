"""One row per key in the push-down, on every SQL warehouse: which copy wins, and what stays.

DuckDB and PostgreSQL pick the kept rows from the keys, the order columns and a row identity,
then read those rows (keys first); Snowflake ranks the rows themselves. The answers must be the
same everywhere: ties, NULL keys, NULL versions, empty windows, neighbouring windows.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.config import SystemConfig
from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.connectors.duckdb.sql import DuckDBDialect
from drivetrain.errors import PermanentError
from drivetrain.warehouse import PushDown, TableRef, Warehouse
from drivetrain.window import Window

from .conftest import rows
from .test_store import LATER, T0, WINDOW, lineage, stage_rows

STAGE, TARGET = TableRef(name="stg", query_field="at"), TableRef(name="tgt", query_field="at")
COLUMNS = [("id", '"id"'), ("v", '"v"'), ("ver", '"ver"'), ("at", '"at"')]
DEDUP = PushDown(stage=STAGE, target=TARGET, columns=COLUMNS, dedup_keys=("id",), order_by=("at", "_drivetrain_row"))
DEDUP_TEXT = attrs.evolve(DEDUP, columns=[("id", '"id"'), ("v", '"v"'), ("at", '"at"')])


def row(row_number: int, key: int | None, value: str, *, version: int | None = 1, minute: int = 0) -> dict[str, object]:
    return {"id": key, "v": value, "ver": version, "at": T0 + timedelta(minutes=minute), "_drivetrain_row": row_number}


def load(wh: Warehouse, window: Window, items: list[dict[str, object]]) -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.string()), ("ver", pa.int64()),
                        ("at", pa.timestamp("us", tz="UTC")), ("_drivetrain_row", pa.int64())])
    with wh.window_load(window, "k") as window_load:
        window_load.append(STAGE, pa.RecordBatch.from_pylist(items, schema=schema))
        window_load.commit([STAGE])


def target(wh: Warehouse) -> list[tuple[object, ...]]:
    return sorted(rows(wh, f'SELECT "id", "v" FROM {wh.dialect.qualified(TARGET)}'), key=repr)


class TestOneRowPerKey:
    def test_equal_versions_are_decided_by_the_query_field_then_source_order(self, warehouse_backend):
        wh = warehouse_backend
        load(wh, WINDOW, [row(0, 1, "first"), row(1, 1, "second"),
                          row(3, 2, "newest", version=3), row(4, 2, "older", version=2, minute=5),
                          row(5, 3, "late", minute=9), row(6, 3, "early", minute=1)])
        stats = wh.push_down(attrs.evolve(DEDUP, version_column="ver"), WINDOW, lineage(WINDOW))
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped) == (6, 3, 3)
        assert target(wh) == [(1, "second"), (2, "newest"), (3, "late")]

    def test_a_missing_version_loses_to_any_version(self, warehouse_backend):
        wh = warehouse_backend
        load(wh, WINDOW, [row(0, 1, "versioned", version=1), row(1, 1, "no version", version=None, minute=5),
                          row(2, 2, "no version either", version=None), row(3, 2, "later, no version", version=None)])
        wh.push_down(attrs.evolve(DEDUP, version_column="ver"), WINDOW, lineage(WINDOW))
        assert target(wh) == [(1, "versioned"), (2, "later, no version")]

    def test_rows_without_a_key_are_one_key(self, warehouse_backend):
        """NULL keys are equal to each other, as in GROUP BY: the latest of them is kept."""
        wh = warehouse_backend
        load(wh, WINDOW, [row(0, None, "a"), row(1, None, "b"), row(2, 1, "c")])
        stats = wh.push_down(DEDUP, WINDOW, lineage(WINDOW))
        assert (stats.rows_written, stats.rows_dropped) == (2, 1)
        assert target(wh) == [(1, "c"), (None, "b")]

    def test_a_window_without_rows_empties_the_targets_window_only(self, warehouse_backend):
        wh = warehouse_backend
        load(wh, WINDOW, [row(0, 1, "a")])
        later = [row(0, 1, "later a", minute=70), row(1, 2, "later b", minute=71)]
        load(wh, LATER, later)
        wh.push_down(DEDUP, WINDOW, lineage(WINDOW))
        wh.push_down(DEDUP, LATER, lineage(LATER))
        load(wh, WINDOW, [])  # the source's window is empty now
        stats = wh.push_down(DEDUP, WINDOW, lineage(WINDOW))
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped) == (0, 0, 0)
        assert target(wh) == [(1, "later a"), (2, "later b")]

    def test_the_same_keys_in_the_next_window_are_neither_read_nor_touched(self, warehouse_backend):
        """Ranking covers the window only: a key's newer copy in the next window does not hide this one."""
        wh = warehouse_backend
        load(wh, LATER, [row(0, 1, "next window", minute=70)])
        wh.push_down(DEDUP, LATER, lineage(LATER))
        load(wh, WINDOW, [row(0, 1, "old"), row(1, 1, "this window", minute=2)])
        stats = wh.push_down(DEDUP, WINDOW, lineage(WINDOW))
        assert (stats.rows_read, stats.rows_written) == (2, 1)
        assert target(wh) == [(1, "next window"), (1, "this window")]
        assert wh.count_window(TARGET, LATER) == 1

    def test_a_merge_takes_the_latest_copy_of_each_key(self, warehouse_backend):
        wh = warehouse_backend
        spec = PushDown(stage=STAGE, target=TARGET, columns=COLUMNS, merge_keys=("id",), order_by=("at", "_drivetrain_row"))
        load(wh, WINDOW, [row(0, 1, "a1"), row(1, 1, "a2"), row(2, 2, "b1", minute=3), row(3, 2, "b0", minute=1)])
        stats = wh.push_down(spec, WINDOW, lineage(WINDOW))
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped) == (4, 2, 2)
        assert target(wh) == [(1, "a2"), (2, "b1")]

    def test_a_stage_column_named_like_the_row_identity_does_not_change_the_answer(self, warehouse_backend):
        """DuckDB's ``rowid`` is hidden by a column of that name: the push-down then ranks rows."""
        wh = warehouse_backend
        items = [{"id": 1, "rowid": 7, "at": T0, "_drivetrain_row": 0}, {"id": 1, "rowid": 5, "at": T0, "_drivetrain_row": 1},
                 {"id": 2, "rowid": 5, "at": T0, "_drivetrain_row": 2}]
        stage_rows(wh, STAGE, WINDOW, items)
        spec = PushDown(stage=STAGE, target=TARGET, columns=[("id", '"id"'), ("rowid", '"rowid"'), ("at", '"at"')],
                        dedup_keys=("id",), order_by=("at", "_drivetrain_row"))
        stats = wh.push_down(spec, WINDOW, lineage(WINDOW))
        assert (stats.rows_written, stats.rows_dropped) == (2, 1)
        assert sorted(rows(wh, f'SELECT "id", "rowid" FROM {wh.dialect.qualified(TARGET)}')) == [(1, 5), (2, 5)]


class TestUniqueKeysAreNotRanked:
    """A window in which no two rows share a key keeps every row: the push-down then selects them
    without ranking (a count of the keys proves it). Any shared key, NULL keys included, ranks."""

    def test_unique_keys_keep_every_row_without_a_ranking(self, warehouse_backend):
        wh = warehouse_backend
        load(wh, WINDOW, [row(0, 1, "a"), row(1, 2, "b", minute=3), row(2, None, "no key", minute=1)])
        stats = wh.push_down(DEDUP, WINDOW, lineage(WINDOW))
        ranks_rows = wh.dialect.row_identity is None  # Snowflake: the ranking is inside the insert, no check
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped, stats.ranked) == (3, 3, 0, ranks_rows)
        assert target(wh) == [(1, "a"), (2, "b"), (None, "no key")]

    @pytest.mark.parametrize("shared", [1, None], ids=["key", "null-key"])
    def test_one_shared_key_ranks_the_window(self, warehouse_backend, shared):
        wh = warehouse_backend
        load(wh, WINDOW, [row(0, shared, "old"), row(1, 2, "b"), row(2, shared, "new", minute=4)])
        stats = wh.push_down(DEDUP, WINDOW, lineage(WINDOW))
        assert (stats.rows_written, stats.rows_dropped, stats.ranked) == (2, 1, True)
        assert target(wh) == sorted([(shared, "new"), (2, "b")], key=repr)

    def test_keys_shared_only_with_the_next_window_are_unique_here(self, warehouse_backend):
        wh = warehouse_backend
        load(wh, LATER, [row(0, 1, "next window", minute=70)])
        load(wh, WINDOW, [row(0, 1, "this window")])
        stats = wh.push_down(DEDUP, WINDOW, lineage(WINDOW))
        assert (stats.rows_written, stats.ranked) == (1, wh.dialect.row_identity is None)

    def test_a_merge_still_ranks_its_keys(self, warehouse_backend):
        wh = warehouse_backend
        spec = PushDown(stage=STAGE, target=TARGET, columns=COLUMNS, merge_keys=("id",), dedup_keys=("id",),
                        order_by=("at", "_drivetrain_row"))
        load(wh, WINDOW, [row(0, 1, "a1"), row(1, 2, "b1")])
        stats = wh.push_down(spec, WINDOW, lineage(WINDOW))
        assert (stats.rows_written, stats.ranked) == (2, True)


def _kept_by_ranking(items: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """The ranking's answer written out: per key (NULLs one key), the latest by (at, row)."""
    best: dict[object, dict[str, object]] = {}
    for item in items:
        held = best.get(item["id"])
        if held is None or (item["at"], item["_drivetrain_row"]) > (held["at"], held["_drivetrain_row"]):  # type: ignore[operator]
            best[item["id"]] = item
    return sorted(((i["id"], i["v"]) for i in best.values()), key=repr)


_KEYED_ROWS = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 6)), st.integers(0, 3)), max_size=12)


def test_duckdb_keeps_what_the_ranking_keeps_whether_or_not_keys_repeat(tmp_path):
    """Property: unique windows (skipped ranking) and windows with shared or NULL keys (ranked)
    give the target the rows the ranking defines, and ``ranked`` says which way was taken. One
    warehouse for every example: each loads the stage window and replaces the target's."""
    wh = DuckDBWarehouse(SystemConfig.from_section("stage_system", {"type": "duckdb", "path": "w.duckdb", "table": "stg"},
                                                   base_dir=tmp_path))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(keyed=_KEYED_ROWS)
    def check(keyed: list[tuple[int | None, int]]) -> None:
        items = [row(n, key, f"v{n}", minute=minute) for n, (key, minute) in enumerate(keyed)]
        load(wh, WINDOW, items)
        stats = wh.push_down(DEDUP, WINDOW, lineage(WINDOW))
        expected = _kept_by_ranking(items)
        assert target(wh) == expected
        assert stats.rows_written == len(expected)
        assert stats.ranked is (len({k for k, _ in keyed}) < len(keyed))

    try:
        with wh.session():
            check()
    finally:
        wh.close()


def test_a_duckdb_window_larger_than_the_memory_limit_is_deduplicated(tmp_path):
    """Keys first: the ranking holds keys, versions and row ids, not the rows' text. Ranking
    whole rows of this window under a 20 MB limit on one thread failed with "Out of Memory"."""
    wh = DuckDBWarehouse(SystemConfig.from_section(
        "target_system", {"type": "duckdb", "path": "w.duckdb", "table": "tgt", "memory_limit": "20MB", "threads": 1},
        base_dir=tmp_path))
    try:
        n = 100_000
        text = pa.array([f"{i:08d}" * 60 for i in range(n)])  # 480 bytes a row: 48 MB of text
        batch = pa.RecordBatch.from_arrays(
            [pa.array([i % (n // 2) for i in range(n)], pa.int64()), text,
             pa.repeat(pa.scalar(T0, pa.timestamp("us", tz="UTC")), n), pa.array(range(n), pa.int64())],
            names=["id", "v", "at", "_drivetrain_row"])
        with wh.window_load(WINDOW, "k") as window_load:
            window_load.append(STAGE, batch)
            window_load.commit([STAGE])
        stats = wh.push_down(DEDUP_TEXT, WINDOW, lineage(WINDOW))
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped) == (n, n // 2, n // 2)
        kept = rows(wh, f'SELECT min("v"), max("v") FROM {wh.dialect.qualified(TARGET)}')
        assert kept == [(f"{n // 2:08d}" * 60, f"{n - 1:08d}" * 60)]  # the later copy of every key
    finally:
        wh.close()


@pytest.mark.parametrize("keys_first", [True, False])
def test_the_duckdb_clause_names_the_row_identity_only_when_keys_come_first(keys_first):
    clause = DuckDBDialect().one_row_per_key(("id",), ['"at" DESC'], STAGE, WINDOW, keys_first=keys_first)
    assert ("rowid IN (SELECT rowid" in clause) is keys_first
    assert '"at" DESC NULLS LAST' in clause


def test_a_duckdb_limit_too_small_for_the_rows_says_which_setting_to_raise(tmp_path):
    """DuckDB's own message suggests SQL settings; the error names the config keys instead."""
    wh = DuckDBWarehouse(SystemConfig.from_section(
        "target_system", {"type": "duckdb", "path": "w.duckdb", "table": "tgt", "memory_limit": "4MB", "threads": 1},
        base_dir=tmp_path))
    try:
        n = 50_000
        batch = pa.RecordBatch.from_arrays(
            [pa.array(range(n), pa.int64()), pa.array([f"{i:08d}" * 60 for i in range(n)]),
             pa.repeat(pa.scalar(T0, pa.timestamp("us", tz="UTC")), n), pa.array(range(n), pa.int64())],
            names=["id", "v", "at", "_drivetrain_row"])
        with pytest.raises(PermanentError, match=r"ran out of its memory_limit.*raise 'memory_limit'.*'threads': 1"):
            with wh.window_load(WINDOW, "k") as window_load:
                window_load.append(STAGE, batch)
                window_load.commit([STAGE])
            wh.push_down(DEDUP_TEXT, WINDOW, lineage(WINDOW))
    finally:
        wh.close()
