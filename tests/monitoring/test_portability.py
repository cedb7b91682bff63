"""The report queries run on Snowflake's, PostgreSQL's and SQLite's SQL too, as drivetrain ships them.

The drive rows of the DuckDB history are written into a drive table of the other warehouse by
its shipped store's ``insert`` (the real Snowflake connector against the fakesnow server; psycopg
against the test PostgreSQL server), and every metric, dashboard and gap query is then run by
that store, with its own dialect and table name, and must answer what the DuckDB store answers.
No stand-in dialect: a change to the shipped SQL (parameter style, VARIANT or jsonb paths,
casts) is what runs here.
"""

from __future__ import annotations

import inspect
import math
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.postgres.dialect import PostgresDialect
from drivetrain.connectors.postgres.drive import PostgresDriveStore
from drivetrain.connectors.snowflake.drive import SnowflakeDialect, SnowflakeDriveStore
from drivetrain.connectors.sqlite import SqliteWarehouse
from drivetrain.connectors.sqlite.dialect import SqliteDialect
from drivetrain.connectors.sqlite.drive import SqliteDriveStore
from drivetrain.drive import DriveStore
from drivetrain.monitoring import metrics
from drivetrain.monitoring.queries import Queries, Query, rows_of
from drivetrain.warehouse import TableRef
from tests.connectors.postgres.warehouse import make_warehouse as make_postgres_warehouse
from tests.connectors.snowflake.conftest import ENV, make_warehouse

#: Arguments for the Queries methods that take some; every other public method takes none.
ARGUMENTS: dict[str, tuple[Any, ...]] = {
    # the expected durations as conftest.CONFIG writes them: every load and every audit is over these limits
    "runs_over": ([("lab", "source_to_stage_transfer", "5ms", 0.001), ("lab", "audit", "1h", 0.0)],),
    "failed_runs": (50,),
    "reloads": (50,),
}
#: Queries this history has no rows for; each is compared on both engines by its own test
#: (reloads: tests/monitoring/test_late_data.py, through the shipped Snowflake store too).
NO_ROWS_HERE = {"reloads"}


@pytest.fixture(scope="module")
def snowflake_store(history, fakesnow_server) -> Iterator[SnowflakeDriveStore]:
    """The history's drive rows, written by the shipped Snowflake drive store into a database of its own."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ENV.items():
            patch.setenv(key, value)
        database = f"T_{uuid.uuid4().hex[:12].upper()}"
        warehouse = make_warehouse(fakesnow_server, database, table="pipeline_execution_drive")
        try:
            store = warehouse.drive_store(TableRef(name="pipeline_execution_drive"))
            assert isinstance(store, SnowflakeDriveStore) and isinstance(store.dialect, SnowflakeDialect)
            yield _with_history(store, history)
        finally:
            warehouse.close()


@pytest.fixture(scope="module")
def postgres_store(history, postgres) -> Iterator[PostgresDriveStore]:
    """The history's drive rows, written by the shipped PostgreSQL drive store into a schema of its own."""
    with pytest.MonkeyPatch.context() as patch:
        warehouse = make_postgres_warehouse(postgres, patch, table="pipeline_execution_drive")
        try:
            store = warehouse.drive_store(TableRef(name="pipeline_execution_drive"))
            assert isinstance(store, PostgresDriveStore) and isinstance(store.dialect, PostgresDialect)
            yield _with_history(store, history)
        finally:
            warehouse.close()


@pytest.fixture(scope="module")
def sqlite_store(history, tmp_path_factory) -> Iterator[SqliteDriveStore]:
    """The history's drive rows, written by the shipped SQLite drive store into a file of its own."""
    section = SystemConfig.from_section("drive_table", {"type": "sqlite"}, base_dir=tmp_path_factory.mktemp("sqlite-drive"))
    warehouse = SqliteWarehouse(section)
    try:
        store = warehouse.drive_store(TableRef(name="pipeline_execution_drive"))
        assert isinstance(store, SqliteDriveStore) and isinstance(store.dialect, SqliteDialect)
        yield _with_history(store, history)
    finally:
        warehouse.close()


@pytest.fixture(params=["snowflake", "postgres", "sqlite"])
def shipped_store(request) -> DriveStore:
    """The history in another warehouse's drive table, written and read by its shipped store."""
    return request.getfixturevalue(f"{request.param}_store")


def _with_history(store: DriveStore, history: Any) -> DriveStore:
    """``store`` after the shipped ``insert`` wrote every drive row of the DuckDB history into it."""
    with history.pipeline() as pipeline:
        records = pipeline.drive_store().history("lab")
    assert len(records) == len(history.runs)
    for record in reversed(records):
        store.insert(record)
    return store


def close(a: Any, b: Any, path: str = "") -> None:
    """Equal; floats to 1e-4 (DuckDB subtracts epoch seconds as doubles, Snowflake counts microseconds)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4), (path, a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]")
    elif isinstance(a, datetime) and isinstance(b, datetime):
        assert a == b, (path, a, b)
    else:
        assert a == b, (path, a, b)


def every_query(queries: Queries) -> dict[str, Query]:
    """Each public method of Queries that builds a query, called (so a new one is covered at once)."""
    built = {}
    for name, method in inspect.getmembers(queries, inspect.ismethod):
        if name.startswith("_") or inspect.signature(method).return_annotation not in (Query, "Query"):
            continue
        built[name] = method(*ARGUMENTS.get(name, ()))
    return built


def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in a fixed order (queries without ORDER BY may come in any), numbers as floats."""
    norm = [{k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in r.items()} for r in rows]
    return sorted(norm, key=lambda r: repr(sorted(r.items(), key=lambda kv: kv[0])))


class TestShippedSql:
    def test_every_query_builder_answers_as_on_duckdb(self, history, shipped_store):
        with history.pipeline() as pipeline:
            duck = pipeline.drive_store()
            since = min(r.pipeline_start_timestamp for r in history.runs)
            on_duck = every_query(Queries(duck.dialect, duck.table_sql, ("lab",), since))
            on_other = every_query(Queries(shipped_store.dialect, shipped_store.table_sql, ("lab",), since))
            assert on_duck.keys() == on_other.keys() and {"counts", "daily", "failed_runs", "runs_over"} <= on_duck.keys()
            for name in on_duck:
                want, got = rows_of(duck, on_duck[name]), rows_of(shipped_store, on_other[name])
                if name in NO_ROWS_HERE:
                    assert want == got == [], name
                    continue
                assert want, f"{name}: no rows on DuckDB, so nothing is compared"
                close(comparable(want), comparable(got), name)

    def test_every_metric_and_dashboard_matches_duckdb(self, history, shipped_store):
        with history.pipeline() as pipeline:
            duck = metrics.compute(pipeline.drive_store(), ["lab"], days=7)
        other = metrics.compute(shipped_store, ["lab"], since=duck.since, now=duck.generated_at)
        assert other.success_rates and other.failed_runs and other.durations
        a, b = duck.to_json(), other.to_json()
        a.pop("sources"), b.pop("sources")
        close(a, b)

    def test_gaps_read_the_same_windows(self, history, shipped_store):
        from drivetrain.monitoring.gaps import find_gaps

        with history.pipeline() as pipeline:
            duck = find_gaps(pipeline)
            other = find_gaps(pipeline, store=shipped_store)
        assert other == duck

    def test_islands_of_completed_windows_are_the_same(self, history, shipped_store):
        """The fleet's window facts (island edges by anti-joins, window lengths, open windows, oldest start)."""
        from drivetrain.monitoring.fleet_windows import window_facts

        with history.pipeline() as pipeline:
            duck = window_facts(pipeline.drive_store(), ["lab", "nobody"])
        other = window_facts(shipped_store, ["lab", "nobody"])
        assert duck["lab"].islands and duck["nobody"].islands == ()
        assert other == duck

    def test_status_reads_the_same_states(self, history, shipped_store):
        """What ``status`` shows of each pipeline (newest run, open failures, newest success):
        grouped on DuckDB, one index seek per pipeline where the store seeks (SQLite)."""
        from drivetrain.monitoring.fleet import fleet_states

        with history.pipeline() as pipeline:
            duck = fleet_states(pipeline.drive_store(), ["lab", "nobody"])
        other = fleet_states(shipped_store, ["lab", "nobody"])
        assert duck["lab"].latest is not None and duck["nobody"].latest is None
        assert {n: (s.latest.pipeline_id if s.latest else None, s.open_failures, s.last_success_at) for n, s in other.items()} == \
            {n: (s.latest.pipeline_id if s.latest else None, s.open_failures, s.last_success_at) for n, s in duck.items()}
