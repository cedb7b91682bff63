"""SnowflakeWarehouse against fakesnow: tables, window loads, push-down, cleaning, names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from drivetrain.errors import LeaseError, PermanentError
from drivetrain.warehouse import LINEAGE_COLUMNS, PushDown, quote_name
from drivetrain.window import Window

from .conftest import sf_rows

T0 = datetime(2025, 11, 15, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
WINDOW = Window(T0, T0 + HOUR)


def batch(ids: list[str], minutes: list[int], *, day: datetime = T0, extra: dict[str, list] | None = None) -> pa.RecordBatch:
    columns = {
        "test_id": pa.array(ids, pa.string()),
        "reported_at": pa.array([day + timedelta(minutes=m) for m in minutes], pa.timestamp("us", tz="UTC")),
        "age": pa.array(list(range(len(ids))), pa.int64()),
    }
    for name, values in (extra or {}).items():
        columns[name] = pa.array(values)
    return pa.RecordBatch.from_pydict(columns)


def lineage(run_id: str = "lab_run1", window: Window = WINDOW) -> dict:
    return {
        "_drivetrain_pipeline_id": run_id,
        "_drivetrain_window_start": window.start,
        "_drivetrain_window_end": window.end,
        "_drivetrain_target_date": window.start.date(),
        "_drivetrain_loaded_at": datetime.now(UTC),
    }


def with_lineage(b: pa.RecordBatch, window: Window = WINDOW, rows_from: int = 0) -> pa.RecordBatch:
    values = lineage(window=window)
    types = {"_drivetrain_pipeline_id": pa.string(), "_drivetrain_target_date": pa.date32()}
    arrays = list(b.columns) + [pa.array([values[c]] * b.num_rows, types.get(c, pa.timestamp("us", tz="UTC"))) for c in LINEAGE_COLUMNS]
    arrays.append(pa.array(range(rows_from, rows_from + b.num_rows), pa.int64()))
    return pa.RecordBatch.from_arrays(arrays, names=[*b.schema.names, *LINEAGE_COLUMNS, "_drivetrain_row"])


@pytest.fixture
def stage(warehouse):
    return warehouse.table_ref({"table": "stg_tests"}, "reported_at")


def load(warehouse, table, *batches, window=WINDOW):
    with warehouse.window_load(window, f"lab_{window.key}") as wl:
        for b in batches:
            wl.append(table, b)
        return wl.commit([table])


class TestTables:
    def test_missing_table_counts_zero_and_reads_nothing(self, warehouse, stage):
        assert not warehouse.table_exists(stage)
        assert warehouse.count_window(stage, WINDOW) == 0
        assert list(warehouse.read_window(stage, WINDOW, 100)) == []
        assert warehouse.table_columns(stage) == {}

    def test_ensure_table_maps_arrow_types(self, warehouse, stage):
        schema = pa.schema([("s", pa.string()), ("i", pa.int32()), ("f", pa.float64()), ("b", pa.bool_()), ("d", pa.date32()),
                            ("ts", pa.timestamp("us", tz="UTC")), ("naive", pa.timestamp("us")), ("n", pa.decimal128(10, 2)),
                            ("raw", pa.binary()), ("tags", pa.list_(pa.string()))])
        warehouse.ensure_table(stage, schema)
        assert warehouse.table_columns(stage) == {
            "s": "VARCHAR", "i": "NUMBER(38,0)", "f": "FLOAT", "b": "BOOLEAN", "d": "DATE", "ts": "TIMESTAMP_TZ",
            "naive": "TIMESTAMP_NTZ", "n": "NUMBER(10,2)", "raw": "BINARY", "tags": "VARIANT",
        }

    def test_ensure_table_adds_new_columns_to_an_existing_table(self, warehouse, stage):
        warehouse.ensure_table(stage, pa.schema([("a", pa.string())]))
        warehouse.ensure_table(stage, pa.schema([("a", pa.string()), ("b", pa.int64())]))
        assert list(warehouse.table_columns(stage)) == ["a", "b"]

    def test_columns_differing_only_by_case_are_refused(self, warehouse, stage):
        with pytest.raises(PermanentError, match="differ only by case"):
            warehouse.ensure_table(stage, pa.schema([("id", pa.string()), ("ID", pa.string())]))

    def test_object_names_are_upper_case_and_data_columns_keep_their_case(self, warehouse, stage, fakesnow_server, database):
        warehouse.ensure_table(stage, pa.schema([("test_id", pa.string()), ("@timestamp", pa.string()), ("Mixed Case", pa.int64())]))
        tables = sf_rows(fakesnow_server, database, "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name ILIKE 'stg_tests'")
        assert tables == [("PUBLIC", "STG_TESTS")]
        columns = sf_rows(fakesnow_server, database, "SELECT column_name FROM information_schema.columns WHERE table_name = 'STG_TESTS' ORDER BY ordinal_position")
        assert [c[0] for c in columns] == ["test_id", "@timestamp", "Mixed Case"]

    def test_table_and_schema_names_from_config_are_validated(self, warehouse):
        with pytest.raises(PermanentError, match="not a valid identifier"):
            warehouse.table_ref({"table": "t; drop table x"}, None)
        ref = warehouse.table_ref({"table": "t", "schema": "other"}, None)
        assert ref.schema == "other" and ref.database == warehouse.options.database

    def test_a_table_in_a_new_schema_creates_the_schema(self, warehouse, fakesnow_server, database):
        ref = warehouse.table_ref({"table": "t", "schema": "landing"}, "reported_at")
        load(warehouse, ref, batch(["a"], [1]))
        assert sf_rows(fakesnow_server, database, "SELECT COUNT(*) FROM LANDING.T") == [(1,)]


class TestWindowLoad:
    def test_batches_land_in_one_commit_and_are_counted_by_window(self, warehouse, stage):
        counts = load(warehouse, stage, batch(["a", "b"], [1, 2]), batch(["c"], [59]))
        assert counts == {str(stage): 3}
        assert warehouse.count_window(stage, WINDOW) == 3
        assert warehouse.count_window(stage, Window(T0 + HOUR, T0 + 2 * HOUR)) == 0

    def test_reloading_a_window_replaces_it(self, warehouse, stage):
        load(warehouse, stage, batch(["a", "b", "c"], [1, 2, 3]))
        load(warehouse, stage, batch(["x"], [5]))
        rows = pa.Table.from_batches(list(warehouse.read_window(stage, WINDOW, 10)))
        assert rows.column("test_id").to_pylist() == ["x"]

    def test_other_windows_are_left_alone(self, warehouse, stage):
        later = Window(T0 + HOUR, T0 + 2 * HOUR)
        load(warehouse, stage, batch(["a"], [1]))
        load(warehouse, stage, batch(["b", "c"], [61, 62]), window=later)
        load(warehouse, stage, batch(["d"], [2]))
        assert warehouse.count_window(stage, WINDOW) == 1
        assert warehouse.count_window(stage, later) == 2

    def test_read_window_round_trips_values_and_types(self, warehouse, stage):
        load(warehouse, stage, batch(["a", "b"], [1, 2], extra={"note": ["x", None], "score": [1.5, 2.5], "ok": [True, False],
                                                             "day": pa.array([date(2025, 1, 1), None], pa.date32())}))
        table = pa.Table.from_batches(list(warehouse.read_window(stage, WINDOW, 1)))
        assert table.num_rows == 2
        got = {r["test_id"]: r for r in table.to_pylist()}
        assert got["a"]["reported_at"] == T0 + timedelta(minutes=1)
        assert got["a"]["note"] == "x" and got["b"]["note"] is None
        assert got["b"]["score"] == 2.5 and got["b"]["ok"] is False
        assert got["a"]["day"] == date(2025, 1, 1)
        assert pa.types.is_timestamp(table.schema.field("reported_at").type) and table.schema.field("reported_at").type.tz

    def test_read_window_streams_in_batches_of_at_most_batch_size(self, warehouse, stage):
        load(warehouse, stage, batch([f"id{i}" for i in range(25)], [i for i in range(25)]))
        sizes = [b.num_rows for b in warehouse.read_window(stage, WINDOW, 10)]
        assert sum(sizes) == 25 and max(sizes) <= 10

    def test_a_batch_with_a_new_column_extends_table_and_load(self, warehouse, stage):
        counts = load(warehouse, stage, batch(["a"], [1]), batch(["b"], [2], extra={"late": ["x"]}))
        assert counts == {str(stage): 2}
        assert "late" in warehouse.table_columns(stage)
        rows = {r["test_id"]: r["late"] for r in pa.Table.from_batches(list(warehouse.read_window(stage, WINDOW, 10))).to_pylist()}
        assert rows == {"a": None, "b": "x"}

    def test_a_column_with_only_nulls_is_loaded_as_text(self, warehouse, stage):
        load(warehouse, stage, batch(["a"], [1], extra={"empty": pa.array([None], pa.null())}))
        assert warehouse.table_columns(stage)["empty"] == "VARCHAR"
        assert warehouse.count_window(stage, WINDOW) == 1

    def test_many_batches_are_sent_as_few_files(self, warehouse, stage, fakesnow_server, database):
        load(warehouse, stage, *[batch([f"id{i}"], [i]) for i in range(30)])
        # the driver sends each PUT twice: ours (tagged), then its own request for the upload URL
        puts = [s for s in fakesnow_server.statements_for(database) if s.sql.startswith("PUT ") and s.query_tag]
        assert warehouse.count_window(stage, WINDOW) == 30
        assert len(puts) == 1

    def test_rows_are_never_inserted_one_by_one(self, warehouse, stage, fakesnow_server, database):
        load(warehouse, stage, batch(["a", "b", "c"], [1, 2, 3]))
        inserts = [s.sql for s in fakesnow_server.statements_for(database) if s.sql.upper().startswith("INSERT")]
        assert inserts and all("SELECT" in sql.upper() and "VALUES" not in sql.upper() for sql in inserts)
        assert any(s.sql.startswith("COPY INTO") and "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE" in s.sql
                   for s in fakesnow_server.statements_for(database))

    def test_commit_drops_the_load_tables(self, warehouse, stage, fakesnow_server, database):
        load(warehouse, stage, batch(["a"], [1]))
        left = sf_rows(fakesnow_server, database, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name ILIKE '%__load_%'")
        assert left == [(0,)]

    def test_a_failing_fence_rolls_the_window_back(self, warehouse, stage):
        load(warehouse, stage, batch(["a", "b"], [1, 2]))

        def fence():
            raise LeaseError("taken over")

        with pytest.raises(LeaseError), warehouse.window_load(WINDOW, "lab_x") as wl:
            wl.append(stage, batch(["z"], [3]))
            wl.commit([stage], fence=fence)
        assert warehouse.count_window(stage, WINDOW) == 2

    def test_no_ddl_runs_between_begin_and_commit(self, warehouse, stage, fakesnow_server, database):
        load(warehouse, stage, batch(["a"], [1]))
        load(warehouse, stage, batch(["b"], [2]))
        inside = False
        for s in fakesnow_server.statements_for(database):
            word = s.sql.split()[0].upper()
            if word == "BEGIN":
                inside = True
            elif word in ("COMMIT", "ROLLBACK"):
                inside = False
            elif inside:
                assert word not in ("CREATE", "DROP", "ALTER", "PUT", "COPY"), s.sql

    def test_an_untouched_table_in_the_commit_has_its_window_emptied(self, warehouse, stage):
        rejects = stage.sibling("__rejects", query_field="reported_at")
        load(warehouse, rejects, batch(["r"], [1]))
        with warehouse.window_load(WINDOW, "lab_k") as wl:
            wl.append(stage, batch(["a"], [1]))
            counts = wl.commit([stage, rejects])
        assert counts == {str(stage): 1, str(rejects): 0}
        assert warehouse.count_window(rejects, WINDOW) == 0

    def test_abort_leaves_the_real_table_untouched(self, warehouse, stage, fakesnow_server, database):
        load(warehouse, stage, batch(["a"], [1]))
        with warehouse.window_load(WINDOW, "lab_y") as wl:
            wl.append(stage, batch(["b", "c"], [2, 3]))
        assert warehouse.count_window(stage, WINDOW) == 1
        left = sf_rows(fakesnow_server, database, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name ILIKE '%__load_%'")
        assert left == [(0,)]


def pushdown_spec(warehouse, stage, target, **changes) -> PushDown:
    columns = [(c, quote_name(c)) for c in warehouse.table_columns(stage) if not c.startswith("_drivetrain_")]
    return PushDown(stage=stage, target=target, columns=columns, order_by=("reported_at", "_drivetrain_row"), **changes)


class TestPushDown:
    @pytest.fixture
    def target(self, warehouse):
        return warehouse.table_ref({"table": "tests"}, "reported_at")

    def test_replace_copies_the_window_with_lineage(self, warehouse, stage, target):
        load(warehouse, stage, with_lineage(batch(["a", "b"], [1, 2])))
        stats = warehouse.push_down(pushdown_spec(warehouse, stage, target), WINDOW, lineage("run9"))
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped) == (2, 2, 0)
        rows = pa.Table.from_batches(list(warehouse.read_window(target, WINDOW, 10))).to_pylist()
        assert {r["_drivetrain_pipeline_id"] for r in rows} == {"run9"}
        assert {r["_drivetrain_target_date"] for r in rows} == {WINDOW.start.date()}
        assert warehouse.table_columns(target)["_drivetrain_window_start"] == "TIMESTAMP_TZ"

    def test_dedup_keeps_the_latest_row_per_key(self, warehouse, stage, target):
        load(warehouse, stage, with_lineage(batch(["a", "b", "a"], [1, 2, 3], extra={"result": ["old", "x", "new"]})))
        stats = warehouse.push_down(pushdown_spec(warehouse, stage, target, dedup_keys=("test_id",)), WINDOW, lineage())
        assert (stats.rows_read, stats.rows_written, stats.rows_dropped) == (3, 2, 1)
        rows = {r["test_id"]: r["result"] for r in pa.Table.from_batches(list(warehouse.read_window(target, WINDOW, 10))).to_pylist()}
        assert rows == {"a": "new", "b": "x"}

    def test_running_twice_leaves_the_same_rows(self, warehouse, stage, target):
        load(warehouse, stage, with_lineage(batch(["a", "b"], [1, 2])))
        spec = pushdown_spec(warehouse, stage, target)
        warehouse.push_down(spec, WINDOW, lineage())
        warehouse.push_down(spec, WINDOW, lineage())
        assert warehouse.count_window(target, WINDOW) == 2

    def test_merge_upserts_by_key(self, warehouse, stage, target):
        load(warehouse, stage, with_lineage(batch(["a", "b"], [1, 2], extra={"result": ["1", "2"]})))
        spec = pushdown_spec(warehouse, stage, target, dedup_keys=("test_id",), merge_keys=("test_id",))
        warehouse.push_down(spec, WINDOW, lineage())
        load(warehouse, stage, with_lineage(batch(["b", "c"], [2, 3], extra={"result": ["2b", "3"]})))
        stats = warehouse.push_down(spec, WINDOW, lineage())
        rows = {r["test_id"]: r["result"] for r in pa.Table.from_batches(list(warehouse.read_window(target, WINDOW, 10))).to_pylist()}
        assert rows == {"a": "1", "b": "2b", "c": "3"}
        assert stats.rows_written == 2  # the window's records now held: b and c ("a" is kept, not written)

    def test_a_missing_stage_moves_nothing(self, warehouse, stage, target):
        stats = warehouse.push_down(PushDown(stage=stage, target=target, columns=[("a", '"a"')]), WINDOW, lineage())
        assert stats.rows_read == stats.rows_written == 0

    def test_a_failing_fence_leaves_the_target_as_it_was(self, warehouse, stage, target):
        load(warehouse, stage, with_lineage(batch(["a"], [1])))
        spec = pushdown_spec(warehouse, stage, target)
        warehouse.push_down(spec, WINDOW, lineage())
        load(warehouse, stage, with_lineage(batch(["b", "c"], [1, 2])))

        def fence():
            raise LeaseError("lost")

        with pytest.raises(LeaseError):
            warehouse.push_down(spec, WINDOW, lineage(), fence=fence)
        assert [r["test_id"] for r in pa.Table.from_batches(list(warehouse.read_window(target, WINDOW, 10))).to_pylist()] == ["a"]

    def test_same_warehouse_means_same_account(self, warehouse, fakesnow_server, database):
        from .conftest import make_warehouse

        other_db = make_warehouse(fakesnow_server, "OTHER_" + database, table="x")
        other_account = make_warehouse(fakesnow_server, database, table="x", account="elsewhere")
        try:
            assert warehouse.same_warehouse(other_db)
            assert not warehouse.same_warehouse(other_account)
        finally:
            other_db.close()
            other_account.close()


class TestCleaning:
    def test_dates_read_count_and_delete_by_target_date(self, warehouse, stage):
        day2 = Window(T0 + timedelta(days=1), T0 + timedelta(days=1, hours=1))
        load(warehouse, stage, with_lineage(batch(["a", "b"], [1, 2])))
        load(warehouse, stage, with_lineage(batch(["c"], [1], day=day2.start), window=day2), window=day2)
        assert warehouse.dates_before(stage, day2.start.date() + timedelta(days=1)) == [WINDOW.start.date(), day2.start.date()]
        assert warehouse.count_date(stage, WINDOW.start.date()) == 2
        read = sum(b.num_rows for b in warehouse.read_date(stage, WINDOW.start.date(), 10))
        assert read == 2
        assert warehouse.delete_date(stage, WINDOW.start.date(), 2) == 2
        assert warehouse.dates_before(stage, day2.start.date() + timedelta(days=1)) == [day2.start.date()]

    def test_delete_rolls_back_when_the_count_differs_from_the_archive(self, warehouse, stage):
        load(warehouse, stage, with_lineage(batch(["a", "b"], [1, 2])))
        with pytest.raises(PermanentError, match="nothing deleted"):
            warehouse.delete_date(stage, WINDOW.start.date(), 5)
        assert warehouse.count_date(stage, WINDOW.start.date()) == 2

    def test_vacuum_is_reported_as_not_done(self, warehouse, stage):
        assert warehouse.vacuum(stage) == (False, "Snowflake has no VACUUM; storage is reclaimed automatically")


class TestChecks:
    def test_check_connects_and_reports_the_version(self, warehouse):
        (line,) = warehouse.check()
        assert "connected (Snowflake" in line and warehouse.options.database in line

    def test_group_count_counts_the_window_by_a_column(self, warehouse, stage):
        load(warehouse, stage, batch(["a", "b", "c"], [1, 2, 3], extra={"result": ["x", "y", "x"]}))
        assert warehouse.group_count(stage, WINDOW, "result") == {"x": 2, "y": 1}
