"""The Snowflake drive store and its leases against fakesnow."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, date, datetime, timedelta

import attrs
import pytest

from drivetrain.drive import new_holder_id
from drivetrain.errors import LeaseError, PermanentError
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from tests.servers.fakesnow_server import LOCKS

from .conftest import make_warehouse, sf_rows

T0 = datetime(2025, 11, 15, 10, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


@pytest.fixture
def store(warehouse):
    s = warehouse.drive_store(warehouse.table_ref({"table": "pipeline_execution_drive"}, None))
    s.ensure()
    return s


def record(run_id: str = "lab_20251115T100000Z_run1", **changes) -> RunRecord:
    base = RunRecord(
        pipeline_id=run_id, pipeline_name="lab", pipeline_start_timestamp=T0 + timedelta(minutes=70),
        query_window_start_timestamp=T0, query_window_end_timestamp=T1, target_date=date(2025, 11, 15),
        query_window_duration="1h", phases_pending=tuple(PHASE_NAMES), lease_holder="host:1:abc",
        config_hash="h1", config_snapshot={"pipeline_metadata": {"pipeline_name": "lab"}, "n": [1, 2]},
    )
    return attrs.evolve(base, **changes)


def dead_holder() -> str:
    """A holder on this host whose process is gone."""
    import socket
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return f"{socket.gethostname()}:{int(proc.stdout)}:dead"


class TestLayout:
    def test_tables_have_the_spec_types_and_upper_case_names(self, store, fakesnow_server, database):
        columns = dict(sf_rows(fakesnow_server, database, "SELECT column_name, data_type FROM information_schema.columns "
                                                        "WHERE table_name = 'PIPELINE_EXECUTION_DRIVE'"))
        assert columns["PIPELINE_ID"] == "TEXT"
        assert columns["PIPELINE_RETRY_NUMBER"] == "NUMBER"
        assert columns["PIPELINE_START_TIMESTAMP"] == "TIMESTAMP_TZ"
        assert columns["TARGET_DATE"] == "DATE"
        assert columns["AUDIT_PHASE"] == columns["CONFIG_SNAPSHOT"] == "VARIANT"
        tables = {r[0] for r in sf_rows(fakesnow_server, database, "SELECT table_name FROM information_schema.tables")}
        assert {"PIPELINE_EXECUTION_DRIVE", "DRIVETRAIN_LEASES", "DRIVETRAIN_META"} <= tables

    def test_schema_version_is_recorded_once_and_a_newer_one_refused(self, store, warehouse, fakesnow_server, database):
        second = warehouse.drive_store(warehouse.table_ref({"table": "pipeline_execution_drive"}, None))
        second.ensure()
        rows = sf_rows(fakesnow_server, database, "SELECT META_VALUE FROM DRIVETRAIN_META WHERE META_KEY = 'schema_version'")
        assert rows == [(str(second.layout),)] == [("4",)]
        sf_rows(fakesnow_server, database, "UPDATE DRIVETRAIN_META SET META_VALUE = '99' WHERE META_KEY = 'schema_version'")
        third = warehouse.drive_store(warehouse.table_ref({"table": "pipeline_execution_drive"}, None))
        with pytest.raises(PermanentError, match="newer than this drivetrain"):
            third.ensure()

    def test_a_missing_column_of_an_older_layout_is_added(self, warehouse, fakesnow_server, database):
        ref = warehouse.table_ref({"table": "pipeline_execution_drive"}, None)
        warehouse.drive_store(ref).ensure()
        sf_rows(fakesnow_server, database, "ALTER TABLE PIPELINE_EXECUTION_DRIVE DROP COLUMN CONFIG_HASH")
        warehouse.drive_store(ref).ensure()
        assert "CONFIG_HASH" in warehouse.table_columns(ref)


class TestRows:
    def test_insert_then_get_round_trips_every_field(self, store):
        state = PhaseState(status=PhaseStatus.COMPLETED, start_timestamp=T1, end_timestamp=T1 + timedelta(seconds=5),
                           actual_run_duration="5s", phase_specific_details={"count": 12, "nested": {"a": [1, None]}})
        rec = record().with_phase("source_count", state, phases_completed=("stale_pipeline_handling", "source_count"))
        store.insert(rec)
        got = store.get(rec.pipeline_id)
        assert got.phases["source_count"] == state
        assert got.phases_completed == ("stale_pipeline_handling", "source_count")
        assert got.phases_pending == tuple(PHASE_NAMES) and got.phases_skipped == ()
        assert got.config_snapshot == rec.config_snapshot
        assert got.query_window_start_timestamp == T0 and got.target_date == date(2025, 11, 15)
        assert got.created_at is not None and got.heartbeat_at is not None

    def test_variant_and_array_columns_are_queryable_json(self, store, fakesnow_server, database):
        store.insert(record())
        value, pending = sf_rows(fakesnow_server, database, "SELECT SOURCE_COUNT_PHASE, PHASES_PENDING FROM PIPELINE_EXECUTION_DRIVE")[0]
        assert json.loads(value)["status"] == "PENDING"
        assert json.loads(pending) == list(PHASE_NAMES)

    def test_update_replaces_the_row(self, store):
        store.insert(record())
        store.update(record(pipeline_status=RunStatus.FAILED, phase_failed="audit", phases_pending=()))
        got = store.get(record().pipeline_id)
        assert got.pipeline_status is RunStatus.FAILED and got.phase_failed == "audit" and got.phases_pending == ()

    def test_inserting_the_same_run_twice_keeps_one_row(self, store, fakesnow_server, database):
        store.insert(record())
        store.insert(record())
        assert sf_rows(fakesnow_server, database, "SELECT COUNT(*) FROM PIPELINE_EXECUTION_DRIVE") == [(1,)]

    def test_updating_an_unknown_run_is_an_error(self, store):
        with pytest.raises(PermanentError, match="not in the drive table"):
            store.update(record("nope"))

    def test_attempts_history_and_pipelines(self, store):
        store.insert(record("r1", pipeline_status=RunStatus.FAILED))
        store.insert(record("r2", pipeline_retry_number=1, pipeline_start_timestamp=T0 + timedelta(hours=2)))
        store.insert(record("o1", pipeline_name="other"))
        assert [r.pipeline_id for r in store.attempts("lab", T0, T1)] == ["r1", "r2"]
        assert [r.pipeline_id for r in store.history("lab")] == ["r2", "r1"]
        assert [r.pipeline_id for r in store.history("lab", status=[RunStatus.FAILED])] == ["r1"]
        assert [r.pipeline_id for r in store.history(limit=1)] == ["r2"]
        assert store.pipelines() == ["lab", "other"]

    def test_heartbeat_changes_only_the_heartbeat(self, store):
        store.insert(record())
        at = T0 + timedelta(hours=5)
        store.heartbeat(record().pipeline_id, at)
        got = store.get(record().pipeline_id)
        assert got.heartbeat_at == at and got.pipeline_status is RunStatus.RUNNING


class TestLeases:
    def test_a_held_window_is_refused_naming_the_holder(self, store):
        store.acquire_lease("lab", T0, T1, "host-a:1:x", 60)
        with pytest.raises(LeaseError, match="host-a:1:x.*not starting a second run"):
            store.acquire_lease("lab", T0, T1, "host-b:2:y", 60)
        assert store.is_held("lab", T0)

    def test_other_windows_are_independent(self, store):
        store.acquire_lease("lab", T0, T1, "host-a:1:x", 60)
        assert store.acquire_lease("lab", T1, T1 + timedelta(hours=1), "host-b:2:y", 60).token == 1
        assert store.acquire_lease("other", T0, T1, "host-b:2:y", 60).token == 1

    def test_an_expired_lease_is_taken_over_with_the_next_token(self, store):
        first = store.acquire_lease("lab", T0, T1, "host-a:1:x", 0.001)
        second = store.acquire_lease("lab", T0, T1, "host-b:2:y", 60)
        assert second.token == first.token + 1
        with pytest.raises(LeaseError, match="lost its lease"):
            store.verify_lease(first)
        store.verify_lease(second)

    def test_the_lease_of_a_dead_process_on_this_host_is_taken_over(self, store):
        store.acquire_lease("lab", T0, T1, dead_holder(), 600)
        assert store.acquire_lease("lab", T0, T1, new_holder_id(), 60).token == 2

    def test_a_step_holder_is_honoured_until_it_expires(self, store):
        store.acquire_lease("lab", T0, T1, "step:host:1:x", 600)
        with pytest.raises(LeaseError, match="step by step"):
            store.acquire_lease("lab", T0, T1, new_holder_id(), 60)

    def test_the_same_holder_taking_it_again_keeps_the_token(self, store):
        first = store.acquire_lease("lab", T0, T1, "step:host:1:x", 600)
        store.release_lease(first, keep_row=True)
        again = store.acquire_lease("lab", T0, T1, "step:host:1:x", 600)
        assert again.token == first.token
        store.verify_lease(first)

    def test_release_frees_the_window_and_tokens_keep_growing(self, store):
        first = store.acquire_lease("lab", T0, T1, "host-a:1:x", 60)
        store.release_lease(first)
        assert store.current_lease("lab", T0) is None and not store.is_held("lab", T0)
        second = store.acquire_lease("lab", T0, T1, "host-b:2:y", 60)
        assert second.token == first.token + 1
        with pytest.raises(LeaseError):
            store.verify_lease(first)

    def test_release_after_a_takeover_does_not_touch_the_new_lease(self, store):
        first = store.acquire_lease("lab", T0, T1, "host-a:1:x", 0.001)
        second = store.acquire_lease("lab", T0, T1, "host-b:2:y", 60)
        store.release_lease(first)
        assert store.current_lease("lab", T0) == second

    def test_renew_extends_and_fails_once_taken_over(self, store):
        first = store.acquire_lease("lab", T0, T1, "host-a:1:x", 0.001)
        store.acquire_lease("lab", T0, T1, "host-b:2:y", 60)
        with pytest.raises(LeaseError):
            store.renew_lease(first, 60)
        mine = store.acquire_lease("lab", T1, T1 + timedelta(hours=1), "host-a:1:x", 1)
        renewed = store.renew_lease(mine, 600)
        assert renewed.expires_at > mine.expires_at and renewed.token == mine.token

    def test_a_fenced_update_is_refused_after_a_takeover(self, store):
        first = store.acquire_lease("lab", T0, T1, "host-a:1:x", 0.001)
        store.insert(record(), fence=first)
        store.acquire_lease("lab", T0, T1, "host-b:2:y", 60)
        with pytest.raises(LeaseError, match="lost the lease"):
            store.update(record(pipeline_status=RunStatus.SUCCESS), fence=first)
        with pytest.raises(LeaseError):
            store.insert(record("r2"), fence=first)
        assert store.get(record().pipeline_id).pipeline_status is RunStatus.RUNNING

    def test_simultaneous_acquirers_get_one_winner(self, store, fakesnow_server, database, sf_env):
        for window in range(4):
            start = T0 + timedelta(hours=window)
            results: list[object] = []
            barrier = threading.Barrier(3)

            def take(n: int, start: datetime = start, results: list = results, barrier: threading.Barrier = barrier) -> None:
                wh = make_warehouse(fakesnow_server, database, table="t")
                s = wh.drive_store(wh.table_ref({"table": "pipeline_execution_drive"}, None))
                s.ensure()
                barrier.wait()
                try:
                    results.append(s.acquire_lease("lab", start, start + timedelta(hours=1), f"host-{n}:{n}:x", 60))
                except LeaseError as exc:
                    results.append(exc)
                finally:
                    wh.close()

            threads = [threading.Thread(target=take, args=(n,)) for n in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            won = [r for r in results if not isinstance(r, Exception)]
            assert len(won) == 1 and len(results) == 3, results
            assert store.current_lease("lab", start) == won[0]
        rows = sf_rows(fakesnow_server, database, "SELECT WINDOW_START, COUNT(*) FROM DRIVETRAIN_LEASES GROUP BY 1")
        assert all(n == 1 for _, n in rows) and len(rows) == 4


class TestAbandonedTransactions:
    def test_a_step_that_ends_cleanly_leaves_no_session_to_end(self, store, fakesnow_server, database):
        first = store.acquire_lease("lab", T0, T1, "step:host:1:x", 600)
        store.release_lease(first, keep_row=True)
        assert sf_rows(fakesnow_server, database, "SELECT SESSION_ID, RELEASED_AT FROM DRIVETRAIN_LEASES") == [(None, None)]
        assert store.current_lease("lab", T0) == first

    def test_the_next_step_ends_the_session_the_previous_step_left(self, store, fakesnow_server, database, sf_env):
        from drivetrain.errors import TransientError

        earlier = make_warehouse(fakesnow_server, database, table="t")
        try:
            first = earlier.drive_store(earlier.table_ref({"table": "pipeline_execution_drive"}, None))
            first.acquire_lease("lab", T0, T1, "step:host:1:x", 600)  # the step is killed: no release
            store.acquire_lease("lab", T0, T1, "step:host:1:x", 600)
            with pytest.raises(TransientError):
                earlier.pool.session().rows("SELECT 1", what="probe")
        finally:
            earlier.close()

    def test_taking_over_aborts_the_session_the_dead_holder_left_in_a_transaction(self, store, warehouse, fakesnow_server, database):
        """A killed process can leave a transaction open, holding its locks; the next holder ends it."""
        import snowflake.connector

        sf_rows(fakesnow_server, database, "CREATE TABLE STG (K VARCHAR)")
        sf_rows(fakesnow_server, database, "INSERT INTO STG VALUES ('a'), ('b')")
        orphan = raw_session(fakesnow_server, database)
        orphan.cursor().execute("BEGIN")
        orphan.cursor().execute("DELETE FROM STG WHERE K = 'a'")
        holder = dead_holder()
        store.acquire_lease("lab", T0, T1, holder, 600)
        sf_rows(fakesnow_server, database, "UPDATE DRIVETRAIN_LEASES SET SESSION_ID = ?", [str(orphan.session_id)])
        other = raw_session(fakesnow_server, database, lock_timeout=1)
        # the orphan holds STG's lock: another session's DELETE waits its LOCK_TIMEOUT, then is cancelled
        with pytest.raises(snowflake.connector.errors.ProgrammingError, match="000630"):
            other.cursor().execute("DELETE FROM STG WHERE K = 'a'")
        store.acquire_lease("lab", T0, T1, new_holder_id(), 60)
        assert other.cursor().execute("DELETE FROM STG WHERE K = 'a'").fetchall() == [(1,)]
        assert any("SYSTEM$ABORT_SESSION" in s.sql for s in fakesnow_server.statements_for(database))
        other.close()


def raw_session(server, database: str, *, lock_timeout: float | None = None):
    """A connection of the test's own; ``lock_timeout`` sets its LOCK_TIMEOUT session parameter."""
    import snowflake.connector

    kwargs = {k: v for k, v in server.options(database).items() if k in ("account", "host", "port", "protocol", "database", "schema")}
    parameters = {"LOCK_TIMEOUT": lock_timeout} if lock_timeout is not None else {}
    return snowflake.connector.connect(user="fake", password="snow", paramstyle="qmark", network_timeout=1,
                                       session_parameters=parameters, **kwargs)


def wait_until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


class TestTableLocks:
    """Snowflake's lock queue, as the emulator plays it: UPDATE/DELETE/MERGE wait for the holder's COMMIT."""

    def test_an_update_waits_for_the_other_transaction_and_then_sees_its_commit(self, fakesnow_server, database):
        sf_rows(fakesnow_server, database, "CREATE TABLE COUNTER (N INTEGER)")
        sf_rows(fakesnow_server, database, "INSERT INTO COUNTER VALUES (0)")
        first, second = raw_session(fakesnow_server, database), raw_session(fakesnow_server, database)
        first.cursor().execute("BEGIN")
        first.cursor().execute("UPDATE COUNTER SET N = N + 1")
        done: list[object] = []
        waiter = threading.Thread(target=lambda: done.append(second.cursor().execute("UPDATE COUNTER SET N = N + 1").fetchall()))
        waiter.start()
        wait_until(lambda: LOCKS.waiters(f"{database}.PUBLIC.COUNTER") == 1)
        assert done == [] and sf_rows(fakesnow_server, database, "SELECT N FROM COUNTER") == [(0,)]  # reads never wait
        first.cursor().execute("COMMIT")
        waiter.join(30)
        assert done == [[(1, 0)]]  # rows updated, multi-joined rows updated
        assert sf_rows(fakesnow_server, database, "SELECT N FROM COUNTER") == [(2,)]  # no update lost
        first.close(), second.close()

    def test_a_wait_longer_than_lock_timeout_is_cancelled_as_a_transient_error(self, fakesnow_server, database, sf_env):
        from drivetrain.errors import TransientError

        sf_rows(fakesnow_server, database, "CREATE TABLE T (K VARCHAR)")
        holder = raw_session(fakesnow_server, database)
        holder.cursor().execute("BEGIN")
        holder.cursor().execute("DELETE FROM T")
        wh = make_warehouse(fakesnow_server, database, table="t", lock_timeout_seconds=1)
        try:
            with pytest.raises(TransientError, match="lock_timeout_seconds"):
                wh.pool.session().execute("DELETE FROM T", what="clear T")
        finally:
            wh.close()
            holder.cursor().execute("ROLLBACK")
            holder.close()

    def test_closing_a_session_rolls_back_its_transaction_and_frees_its_locks(self, fakesnow_server, database):
        sf_rows(fakesnow_server, database, "CREATE TABLE T (K VARCHAR)")
        sf_rows(fakesnow_server, database, "INSERT INTO T VALUES ('a')")
        leaving = raw_session(fakesnow_server, database)
        leaving.cursor().execute("BEGIN")
        leaving.cursor().execute("DELETE FROM T")
        leaving.close()
        other = raw_session(fakesnow_server, database, lock_timeout=1)
        assert other.cursor().execute("UPDATE T SET K = 'b'").fetchall() == [(1, 0)]
        other.close()

    def test_the_lease_mutex_makes_acquirers_queue_behind_the_holders_commit(self, store, fakesnow_server, database, sf_env):
        mutex = raw_session(fakesnow_server, database)
        mutex.cursor().execute("BEGIN")
        mutex.cursor().execute("UPDATE DRIVETRAIN_META SET META_VALUE = 'test' WHERE META_KEY = 'lease_mutex'")
        results: list[object] = []

        def take(n: int) -> None:
            wh = make_warehouse(fakesnow_server, database, table="t")
            s = wh.drive_store(wh.table_ref({"table": "pipeline_execution_drive"}, None))
            try:
                results.append(s.acquire_lease("lab", T0, T1, f"host-{n}:{n}:x", 60))
            except LeaseError as exc:
                results.append(exc)
            finally:
                wh.close()

        threads = [threading.Thread(target=take, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        # all three read "no lease" and now queue on the mutex: a real race, whatever the scheduler does
        wait_until(lambda: LOCKS.waiters(f"{database}.PUBLIC.DRIVETRAIN_META") == 3)
        assert results == [] and store.current_lease("lab", T0) is None
        mutex.cursor().execute("COMMIT")
        for t in threads:
            t.join(60)
        won = [r for r in results if not isinstance(r, Exception)]
        assert len(won) == 1 and len(results) == 3, results
        assert all("not starting a second run" in str(r) for r in results if isinstance(r, Exception))
        assert sf_rows(fakesnow_server, database, "SELECT COUNT(*), MAX(TOKEN) FROM DRIVETRAIN_LEASES") == [(1, 1)]
        mutex.close()


class TestLockQueueLimit:
    def test_the_twenty_first_statement_queued_on_one_table_is_refused_with_000625(self):
        import snowflake.connector.errors as sf_errors

        from tests.servers.fakesnow_server import MAX_LOCK_WAITERS, TableLocks

        locks, table = TableLocks(), "DB.PUBLIC.T"
        holder = object()
        assert locks._acquire(holder, table) is False  # noqa: SLF001 - the emulator's own queue
        got: list[object] = []

        def wait(conn: object) -> None:
            got.append(locks._acquire(conn, table))  # noqa: SLF001
            locks.release(conn)

        waiters = [threading.Thread(target=wait, args=(object(),)) for _ in range(MAX_LOCK_WAITERS)]
        for t in waiters:
            t.start()
        wait_until(lambda: locks.waiters(table) == MAX_LOCK_WAITERS)
        with pytest.raises(sf_errors.ProgrammingError, match="exceeds the 20 statements limit") as refused:
            locks._acquire(object(), table)  # noqa: SLF001
        assert refused.value.errno == 625
        locks.release(holder)
        for t in waiters:
            t.join(30)
        assert got == [True] * MAX_LOCK_WAITERS
