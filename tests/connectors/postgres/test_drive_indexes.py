"""A PostgreSQL drive table is read by index in every write and read of a run, on the real server.

Without indexes every drive write (the insert's guard, each update and heartbeat, the window
and phase summaries' refresh) and every lease statement scans its table, which grows by a row
per run for ever. Here the store's connections run with ``enable_seqscan = off`` (libpq's
``PGOPTIONS``): the planner then scans a table only when no index can answer, and the server's
own counters (``pg_stat_user_tables.seq_scan``) say whether it had to.
"""

from __future__ import annotations

import time
from datetime import timedelta

import attrs
import pytest

from drivetrain.connectors.postgres.drive import index_name
from drivetrain.drive import new_holder_id
from drivetrain.record import RunStatus
from drivetrain.sql import drive_indexes
from drivetrain.warehouse import TableRef
from tests.connectors.sql.test_store import DRIVE, LATER, T0, WINDOW, record
from tests.servers.postgres import ADMIN_USER, PostgresServer

from .warehouse import make_warehouse, new_schema

TABLES = (DRIVE, "drivetrain_leases", f"{DRIVE}__windows", f"{DRIVE}__phases")


def seq_scans(postgres: PostgresServer, schema: str) -> dict[str, int]:
    with postgres.admin() as conn:
        found = conn.execute("SELECT relname, seq_scan FROM pg_stat_user_tables WHERE schemaname = %s", [schema]).fetchall()
    return {name: int(count) for name, count in found if name in TABLES}


def settled_seq_scans(postgres: PostgresServer, schema: str) -> dict[str, int]:
    """The counters once the closed connections' statistics reached the server (they are sent
    when a backend ends, a moment after the client closed it)."""
    last, deadline = seq_scans(postgres, schema), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = seq_scans(postgres, schema)
        if now == last:
            return now
        last = now
    return last


def indexes(postgres: PostgresServer, schema: str) -> set[str]:
    with postgres.admin() as conn:
        return {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", [schema]).fetchall()}


@pytest.fixture
def schema(postgres: PostgresServer) -> str:
    return new_schema(postgres)


def store_in(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, schema: str):  # noqa: ANN201 - (warehouse, store)
    wh = make_warehouse(postgres, monkeypatch, schema=schema, role="drive_table")
    store = wh.drive_store(wh.table_ref({"table": DRIVE}, None))
    store.ensure()
    return wh, store


def test_a_run_s_drive_writes_and_reads_scan_no_table(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch,
                                                        schema: str) -> None:
    wh, store = store_in(postgres, monkeypatch, schema)
    for n in range(30):  # other runs of other windows and pipelines around the one under test
        store.insert(record(f"other_{n}", pipeline_name=f"p{n % 3}", pipeline_status=RunStatus.SUCCESS))
    wh.close()
    monkeypatch.setenv("PGOPTIONS", "-c enable_seqscan=off")
    before = settled_seq_scans(postgres, schema)
    assert set(before) == set(TABLES)

    wh, store = store_in(postgres, monkeypatch, schema)
    try:
        lease = store.acquire_lease("lab", WINDOW.start, WINDOW.end, new_holder_id(), 60)
        lease = store.renew_lease(lease, 60)
        store.verify_lease(lease)
        rec = record()
        store.insert(rec, fence=lease)
        store.heartbeat(rec.pipeline_id, T0 + timedelta(minutes=71))
        store.update(attrs.evolve(rec, pipeline_status=RunStatus.SUCCESS, pipeline_end_timestamp=T0 + timedelta(minutes=72)),
                     fence=lease)
        assert store.get(rec.pipeline_id).pipeline_status is RunStatus.SUCCESS
        assert len(store.attempts("lab", WINDOW.start, WINDOW.end)) == 1
        assert [r.pipeline_id for r in store.history("lab", limit=5)] == [rec.pipeline_id]
        assert store.current_lease("lab", LATER.start) is None
        store.release_lease(lease)
    finally:
        wh.close()
    after = settled_seq_scans(postgres, schema)
    assert after == before, {t: after[t] - before[t] for t in TABLES if after[t] != before[t]}


def test_an_older_drive_table_gets_its_indexes_at_its_next_use_and_keeps_its_rows(
        postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, schema: str) -> None:
    wh, store = store_in(postgres, monkeypatch, schema)
    store.insert(record())
    wh.close()
    made = indexes(postgres, schema)
    refs = drive_indexes.tables(TableRef(name=DRIVE, schema=schema), TableRef(name="drivetrain_leases", schema=schema))
    expected = {index_name(drive_indexes.name_of(i, refs)) for i in (*drive_indexes.INDEXES, drive_indexes.RUN_PHASES)}
    assert expected <= made
    with postgres.admin() as conn:  # as a drive table made before the indexes were
        for name in expected:
            conn.execute(f'DROP INDEX "{schema}"."{name}"')
    assert not expected & indexes(postgres, schema)
    wh, store = store_in(postgres, monkeypatch, schema)
    try:
        assert store.get(record().pipeline_id) is not None
    finally:
        wh.close()
    assert expected <= indexes(postgres, schema)


def test_long_names_stay_distinct_within_the_servers_63_bytes() -> None:
    long = "a" * 50
    one, two = (index_name(f"{long}__pipeline_name__{c}") for c in ("query_window_start_timestamp", "pipeline_start_timestamp"))
    assert one != two and len(one) <= 63 and len(two) <= 63
    assert index_name("short__pipeline_id") == "short__pipeline_id"


def test_a_drive_table_the_role_may_write_but_not_own_is_used_with_a_warning(
        postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, schema: str, caplog: pytest.LogCaptureFixture) -> None:
    wh, store = store_in(postgres, monkeypatch, schema)
    wh.close()
    refs = drive_indexes.tables(TableRef(name=DRIVE, schema=schema), TableRef(name="drivetrain_leases", schema=schema))
    with postgres.admin() as conn:  # as a DBA would have made them: owned by another role, rows granted
        for name in indexes(postgres, schema):
            conn.execute(f'DROP INDEX "{schema}"."{name}"')
        for table in (*TABLES, "drivetrain_meta"):
            conn.execute(f'ALTER TABLE "{schema}"."{table}" OWNER TO {ADMIN_USER}')
            conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{schema}"."{table}" TO {postgres.user}')
    with caplog.at_level("WARNING", logger="drivetrain.connectors.postgres.drive"):
        wh, store = store_in(postgres, monkeypatch, schema)
        try:
            store.insert(record())
            assert store.get(record().pipeline_id) is not None
        finally:
            wh.close()
    [warned] = [r.getMessage() for r in caplog.records if "owner runs" in r.getMessage()]
    assert "must be owner" in warned
    for index in (*drive_indexes.INDEXES, drive_indexes.RUN_PHASES):  # each statement, for the owner to run
        assert f'CREATE INDEX IF NOT EXISTS "{index_name(drive_indexes.name_of(index, refs))}" ON' in warned
    assert not indexes(postgres, schema)
