"""The PostgreSQL warehouse on its own: leases as advisory locks, loads, types, names, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import attrs
import pyarrow as pa
import pytest

from drivetrain.drive import new_holder_id
from drivetrain.errors import LeaseError, PermanentError
from drivetrain.record import RunRecord, RunStatus
from drivetrain.warehouse import TableRef
from drivetrain.window import Window
from tests.servers.postgres import PostgresServer

from .warehouse import env, make_warehouse, new_schema, section

T0 = datetime(2025, 11, 15, 10, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))


@pytest.fixture
def schema(postgres: PostgresServer) -> str:
    return new_schema(postgres)


@pytest.fixture
def wh(postgres, monkeypatch, schema):  # noqa: ANN001, ANN201 - a fixture
    warehouse = make_warehouse(postgres, monkeypatch, schema=schema)
    yield warehouse
    warehouse.close()


def store_of(wh):  # noqa: ANN001, ANN201
    store = wh.drive_store(wh.table_ref({"table": "pipeline_execution_drive"}, None))
    store.ensure()
    return store


HOLDER = """
import sys, time
from datetime import datetime
from drivetrain.config import SystemConfig
from drivetrain.connectors.postgres import PostgresWarehouse
config = SystemConfig.from_section("drive_table", {section!r})
wh = PostgresWarehouse(config, config.credentials())
store = wh.drive_store(wh.table_ref({{"table": "pipeline_execution_drive"}}, None))
lease = store.acquire_lease("lab", datetime.fromisoformat({start!r}), datetime.fromisoformat({end!r}), "{holder}", 3600)
print(lease.token, flush=True)
time.sleep(600)
"""


class TestLease:
    def test_a_killed_holder_frees_its_window_at_once_and_the_next_token_is_larger(self, wh, postgres, schema):
        store = store_of(wh)
        holder = f"otherhost:{os.getpid()}:child"  # another host: never judged dead by its pid
        code = HOLDER.format(section=section(postgres, schema), start=WINDOW.start.isoformat(), end=WINDOW.end.isoformat(), holder=holder)
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, **env(postgres)})
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "1"
            assert store.is_held("lab", WINDOW.start)
            running = RunRecord(pipeline_id="lab_run1", pipeline_name="lab", pipeline_start_timestamp=WINDOW.end,
                                query_window_start_timestamp=WINDOW.start, query_window_end_timestamp=WINDOW.end,
                                target_date=date(2025, 11, 15), query_window_duration="1h", lease_holder=holder,
                                pipeline_status=RunStatus.RUNNING)
            assert store.dead_reason(running) is None
            with pytest.raises(LeaseError, match=f"being run by {holder}"):
                store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            # the server notices the closed socket at once; the lease row still says "until in an hour"
            deadline = datetime.now(UTC) + timedelta(seconds=30)
            while store.is_held("lab", WINDOW.start) and datetime.now(UTC) < deadline:
                threading.Event().wait(0.05)
            assert "no session holds the window's lock" in (store.dead_reason(running) or "")
            assert store.current_lease("lab", WINDOW.start).expires_at > datetime.now(UTC) + timedelta(minutes=50)
            taken = store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
            assert taken.token == 2
            store.release_lease(taken)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

    def test_of_many_threads_racing_for_one_window_exactly_one_wins(self, wh, postgres, monkeypatch, schema):
        store_of(wh)
        stores = [store_of(make_warehouse(postgres, monkeypatch, schema=schema)) for _ in range(6)]
        barrier, won, lost = threading.Barrier(len(stores)), [], []

        def race(store) -> None:  # noqa: ANN001
            barrier.wait()
            try:
                won.append(store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60))
            except LeaseError as exc:
                lost.append(exc)

        threads = [threading.Thread(target=race, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1 and len(lost) == len(stores) - 1
        for store in stores:
            store.close()
            store.wh.close()

    def test_a_run_whose_lock_session_was_ended_keeps_its_window_until_its_lease_expires_then_is_fenced_out(
        self, wh, postgres, monkeypatch, schema
    ):
        """The server ends the lease's session (pg_terminate_backend, a dropped link) while the run
        lives on in a process of this host: no one takes the window while its lease row is
        unexpired. Once it expired unrenewed, another run takes the window, and every write of
        the first one is refused."""
        first_store = store_of(wh)
        first = first_store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 2)
        running = RunRecord(pipeline_id="lab_run1", pipeline_name="lab", pipeline_start_timestamp=WINDOW.end,
                            query_window_start_timestamp=WINDOW.start, query_window_end_timestamp=WINDOW.end,
                            target_date=date(2025, 11, 15), query_window_duration="1h", lease_holder=first.holder)
        first_store.insert(running, fence=first)
        [lock_session] = first_store._held.values()
        with postgres.admin() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [lock_session.info.backend_pid])
        other = make_warehouse(postgres, monkeypatch, schema=schema)
        second_store = store_of(other)
        assert second_store.is_held("lab", WINDOW.start)
        assert second_store.dead_reason(running) is None
        with pytest.raises(LeaseError, match="went with its session while its process lives"):
            second_store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        while datetime.now(UTC) <= first.expires_at:
            threading.Event().wait(0.05)
        second = second_store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        assert second.token == first.token + 1
        with pytest.raises(LeaseError, match="lost its lease"):
            first_store.verify_lease(first)
        with pytest.raises(LeaseError):
            first_store.renew_lease(first, 60)
        with pytest.raises(LeaseError):
            first_store.update(attrs.evolve(running, pipeline_status=RunStatus.SUCCESS), fence=first)
        table = TableRef(name="fenced", query_field="at")
        with pytest.raises(LeaseError), wh.window_load(WINDOW, "k") as load:
            load.append(table, pa.RecordBatch.from_pydict({"at": [T0]}))
            load.commit([table], fence=lambda: first_store.verify_lease(first))
        assert wh.count_window(table, WINDOW) == 0
        assert first_store.get("lab_run1").pipeline_status is RunStatus.RUNNING
        second_store.release_lease(second)
        other.close()

    def test_a_live_holder_whose_session_was_ended_takes_its_lock_again_at_its_next_heartbeat(self, wh, postgres, monkeypatch, schema):
        first_store = store_of(wh)
        first = first_store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        [lock_session] = first_store._held.values()
        with postgres.admin() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [lock_session.info.backend_pid])
        renewed = first_store.renew_lease(first, 60)
        [relocked] = first_store._held.values()
        assert relocked is not lock_session and not relocked.closed
        with postgres.admin() as conn:  # the lock is held by a session again: the lock tells, not the host rule
            held = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND granted",
                                [relocked.info.backend_pid]).fetchone()[0]
        assert held == 1
        first_store.release_lease(renewed)


    def test_a_step_holder_keeps_its_window_between_steps_without_a_lock(self, wh):
        store = store_of(wh)
        lease = store.acquire_lease("lab", WINDOW.start, WINDOW.end, "step:dag_run_1", 3600)
        store.release_lease(lease, keep_row=True)
        assert not store.is_held("lab", WINDOW.start)
        with pytest.raises(LeaseError, match="driven step by step"):
            store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        again = store.acquire_lease("lab", WINDOW.start, WINDOW.end, "step:dag_run_1", 3600)
        assert again.token == lease.token
        store.release_lease(again)


class TestConcurrentFirstUse:
    def test_processes_creating_the_drive_tables_at_the_same_moment_all_succeed(self, postgres, monkeypatch):
        """Two sessions' CREATE TABLE IF NOT EXISTS can both pass the check; the loser's catalog
        insert fails (23505 on pg_type). The session runs it again, and now it is a no-op."""
        for _ in range(5):
            schema = new_schema(postgres)
            warehouses = [make_warehouse(postgres, monkeypatch, schema=schema) for _ in range(8)]
            barrier, errors = threading.Barrier(len(warehouses)), []

            def ensure(wh, barrier: threading.Barrier, errors: list[Exception]) -> None:  # noqa: ANN001
                barrier.wait()
                try:
                    wh.drive_store(wh.table_ref({"table": "pipeline_execution_drive"}, None)).ensure()
                except Exception as exc:  # noqa: BLE001 - collected for the assertion
                    errors.append(exc)

            threads = [threading.Thread(target=ensure, args=(wh, barrier, errors)) for wh in warehouses]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for wh in warehouses:
                wh.close()
            assert errors == []


class TestLoad:
    def test_arrow_types_load_and_read_back_and_an_aborted_load_leaves_nothing(self, wh):
        table = TableRef(name="Typed", query_field="at")
        batch = pa.RecordBatch.from_pydict({
            "at": pa.array([T0, T0 + timedelta(minutes=1)], pa.timestamp("ns", tz="UTC")),
            "small": pa.array([1, None], pa.int8()), "big": pa.array([2**40, 3], pa.uint64()),
            "price": pa.array([Decimal("1.50"), None], pa.decimal128(10, 2)), "ok": [True, False],
            "tags": pa.array([["a", "b"], None], pa.list_(pa.string())), "doc": pa.array([{"k": 1}, {"k": None}]),
            "day": pa.array([date(2025, 1, 1), None], pa.date32()), "blob": [b"\x00\x01", None], "nothing": pa.nulls(2),
            "@odd name?": ["x", "y%"],
        })
        with wh.window_load(WINDOW, "k") as load:
            load.append(table, batch)
            load.commit([table])
        assert wh.count_window(table, WINDOW) == 2
        assert wh.table_columns(table)["doc"] == "jsonb"
        [read] = list(wh.read_window(table, WINDOW, 10))
        got = read.to_pylist()[0]
        assert (got["small"], got["big"], got["price"], got["ok"], got["day"], got["blob"]) == (1, Decimal(2**40), Decimal("1.50"), True,
                                                                                                  date(2025, 1, 1), b"\x00\x01")
        assert got["tags"] == '["a", "b"]' and got["doc"] == '{"k": 1}' and read.column("@odd name?").to_pylist() == ["x", "y%"]
        with wh.window_load(WINDOW, "k") as load:
            load.append(table, batch.slice(0, 1))
            load.abort()
        assert wh.count_window(table, WINDOW) == 2

    def test_a_table_made_by_hand_with_arrays_json_and_intervals_reads_as_text(self, wh, postgres, schema):
        with postgres.admin() as conn:
            conn.execute(f"CREATE TABLE {schema}.hand (at timestamptz, tags text[], doc jsonb, took interval, n numeric)")
            conn.execute(f"INSERT INTO {schema}.hand VALUES (%s, ARRAY['a', 'b'], '{{\"k\": 1}}', interval '90 seconds', 1.5)", [T0])
            conn.execute(f"GRANT SELECT ON {schema}.hand TO {postgres.user}")
        [batch] = list(wh.read_window(TableRef(name="hand", query_field="at"), WINDOW, 10))
        assert batch.to_pylist() == [{"at": T0, "tags": '["a", "b"]', "doc": '{"k": 1}', "took": "0:01:30", "n": Decimal("1.5")}]

    def test_a_later_batch_with_a_new_column_and_a_wider_type_is_loaded(self, wh):
        table = TableRef(name="grow", query_field="at")
        with wh.window_load(WINDOW, "k") as load:
            load.append(table, pa.RecordBatch.from_pydict({"at": [T0], "n": pa.array([1], pa.int32())}))
            load.append(table, pa.RecordBatch.from_pydict({"at": [T0], "n": pa.array([2], pa.int64()), "extra": ["e"]}))
            assert load.commit([table]) == {str(table): 2}
        with wh.sql("look") as s:
            assert sorted(s.rows(f'SELECT "n", "extra" FROM {wh.dialect.qualified(table)}'), key=str) == [(1, None), (2, "e")]

    def test_a_value_that_does_not_fit_fails_the_load_naming_the_table_and_keeps_the_old_rows(self, wh):
        table = TableRef(name="narrow", query_field="at")
        with wh.window_load(WINDOW, "k") as load:
            load.append(table, pa.RecordBatch.from_pydict({"at": [T0], "n": pa.array([1], pa.int32())}))
            load.commit([table])
        with pytest.raises(PermanentError, match=r"load .*narrow"), wh.window_load(WINDOW, "k") as load:
            # (a wider integer no longer fails: the load widens the column, see tests/schema)
            load.append(table, pa.RecordBatch.from_pydict({"at": [T0], "n": pa.array(["not a number"])}))
        assert wh.count_window(table, WINDOW) == 1


class TestConfigAndErrors:
    def test_a_wrong_password_is_a_clear_permanent_error_without_the_password(self, postgres, monkeypatch, schema):
        monkeypatch.setenv("PG_WH_USER", postgres.user)
        from drivetrain.config import SystemConfig
        from drivetrain.connectors.postgres import PostgresWarehouse

        monkeypatch.setenv("PG_WH_PASSWORD", "wrong-Secret-42")
        config = SystemConfig.from_section("target_system", section(postgres, schema, table="t"))
        wh = PostgresWarehouse(config, config.credentials())
        with pytest.raises(PermanentError) as caught:
            wh.table_columns(TableRef(name="t"))
        assert "authentication failed" in str(caught.value) and "wrong-Secret-42" not in str(caught.value)
        assert "wrong-Secret-42" not in repr(wh.options)

    def test_a_section_without_a_user_says_which_variables_to_set(self, postgres, monkeypatch, schema):
        from drivetrain.config import SystemConfig
        from drivetrain.connectors.postgres import PostgresWarehouse
        from drivetrain.errors import ConfigError

        monkeypatch.delenv("NOBODY_USER", raising=False)
        config = SystemConfig.from_section("target_system", section(postgres, schema, table="t", credentials_ref="nobody"))
        with pytest.raises(ConfigError, match="NOBODY_USER"):
            PostgresWarehouse(config, config.credentials())

    def test_config_names_are_stored_lower_case_like_unquoted_names(self, wh, postgres, schema):
        table = TableRef(name="Lab_Results", query_field="at")
        with wh.window_load(WINDOW, "k") as load:
            load.append(table, pa.RecordBatch.from_pydict({"at": [T0]}))
            load.commit([table])
        with postgres.admin() as conn:
            assert conn.execute(f"SELECT COUNT(*) FROM {schema}.Lab_Results").fetchone() == (1,)

    def test_the_pipeline_finds_the_warehouse_by_its_type(self):
        from drivetrain import plugins
        from drivetrain.connectors.postgres import PostgresWarehouse

        for name in ("postgres", "postgresql"):
            assert plugins.connector_class("warehouse", name, json_path="target_system.type") is PostgresWarehouse


def test_record_round_trips_through_the_drive_table(wh):
    store = store_of(wh)
    rec = RunRecord(pipeline_id="lab_run1", pipeline_name="lab", pipeline_start_timestamp=WINDOW.end,
                    query_window_start_timestamp=WINDOW.start, query_window_end_timestamp=WINDOW.end,
                    target_date=date(2025, 11, 15), query_window_duration="1h", phases_pending=("pre_validation", "source_count"),
                    config_snapshot={"x": [1, "two", None]})
    store.insert(rec)
    got = store.get("lab_run1")
    assert got is not None and got.phases_pending == ("pre_validation", "source_count") and got.config_snapshot == {"x": [1, "two", None]}
    store.update(attrs.evolve(rec, phases_pending=(), phases_completed=("pre_validation",)))
    assert store.get("lab_run1").phases_pending == ()


@pytest.mark.parametrize("server_version", [150000, 140000], ids=["merge", "delete-insert"])
def test_a_merge_keeps_the_newer_version_with_merge_and_on_servers_before_15(wh, server_version):
    """PostgreSQL 15 has MERGE; before it, the same upsert runs as DELETE of older versions + INSERT."""
    from drivetrain.warehouse import PushDown

    wh._version = server_version
    wh.dialect.merge = server_version >= 150000
    stage, target = TableRef(name="stg", query_field="at"), TableRef(name="tgt", query_field="at")
    spec = PushDown(stage=stage, target=target, columns=[("id", '"id"'), ("v", '"v"'), ("at", '"at"')], merge_keys=("id",))
    later = Window(WINDOW.end, WINDOW.end + timedelta(hours=1))
    for window, version, minute in ((later, "new", 70), (WINDOW, "old", 10), (WINDOW, "old2", 11)):
        with wh.window_load(window, "k") as load:
            load.append(stage, pa.RecordBatch.from_pylist([{"id": 1, "v": version, "at": T0 + timedelta(minutes=minute)},
                                                           {"id": 2 if window is later else 3, "v": version,
                                                            "at": T0 + timedelta(minutes=minute)}]))
            load.commit([stage])
        lineage = {"_drivetrain_pipeline_id": "r", "_drivetrain_window_start": window.start, "_drivetrain_window_end": window.end,
                   "_drivetrain_target_date": window.target_date, "_drivetrain_loaded_at": T0}
        stats = wh.push_down(spec, window, lineage)
    assert (stats.rows_read, stats.rows_written, stats.rows_superseded) == (2, 2, 1)
    with wh.sql("look") as s:
        assert sorted(s.rows(f'SELECT "id", "v" FROM {wh.dialect.qualified(target)}')) == [(1, "new"), (2, "new"), (3, "old2")]
