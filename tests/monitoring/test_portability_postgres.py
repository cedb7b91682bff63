"""The report queries run on PostgreSQL's SQL too, as drivetrain ships them.

As for Snowflake (tests/monitoring/test_portability.py): the DuckDB history's drive rows are
written by the shipped ``PostgresDriveStore.insert`` into a drive table on the test server, and
every metric, dashboard and gap query run by that store, in its own dialect, must answer what
the DuckDB store answers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivetrain.connectors.postgres.dialect import PostgresDialect
from drivetrain.connectors.postgres.drive import PostgresDriveStore
from drivetrain.monitoring import metrics
from drivetrain.monitoring.queries import Queries, rows_of
from drivetrain.warehouse import TableRef
from tests.connectors.postgres.warehouse import make_warehouse

from .test_portability import NO_ROWS_HERE, close, comparable, every_query


@pytest.fixture(scope="module")
def postgres_store(history, postgres) -> Iterator[PostgresDriveStore]:
    """The history's drive rows, written by the shipped PostgreSQL drive store into a schema of its own."""
    with pytest.MonkeyPatch.context() as patch:
        warehouse = make_warehouse(postgres, patch, table="pipeline_execution_drive")
        try:
            store = warehouse.drive_store(TableRef(name="pipeline_execution_drive"))
            assert isinstance(store, PostgresDriveStore) and isinstance(store.dialect, PostgresDialect)
            with history.pipeline() as pipeline:
                records = pipeline.drive_store().history("lab")
            assert len(records) == len(history.runs)
            for record in reversed(records):
                store.insert(record)
            yield store
        finally:
            warehouse.close()


class TestPostgresSql:
    def test_every_query_builder_answers_as_on_duckdb(self, history, postgres_store):
        with history.pipeline() as pipeline:
            duck = pipeline.drive_store()
            since = min(r.pipeline_start_timestamp for r in history.runs)
            on_duck = every_query(Queries(duck.dialect, duck.table_sql, ("lab",), since))
            on_pg = every_query(Queries(postgres_store.dialect, postgres_store.table_sql, ("lab",), since))
            assert on_duck.keys() == on_pg.keys() and {"counts", "daily", "failed_runs", "runs_over"} <= on_duck.keys()
            for name in on_duck:
                want, got = rows_of(duck, on_duck[name]), rows_of(postgres_store, on_pg[name])
                if name in NO_ROWS_HERE:
                    assert want == got == [], name
                    continue
                assert want, f"{name}: no rows on DuckDB, so nothing is compared"
                close(comparable(want), comparable(got), name)

    def test_every_metric_and_dashboard_matches_duckdb(self, history, postgres_store):
        with history.pipeline() as pipeline:
            duck = metrics.compute(pipeline.drive_store(), ["lab"], days=7)
        pg = metrics.compute(postgres_store, ["lab"], since=duck.since, now=duck.generated_at)
        assert pg.success_rates and pg.failed_runs and pg.durations
        a, b = duck.to_json(), pg.to_json()
        a.pop("sources"), b.pop("sources")
        close(a, b)

    def test_gaps_read_the_same_windows(self, history, postgres_store):
        from drivetrain.monitoring.gaps import find_gaps

        with history.pipeline() as pipeline:
            duck = find_gaps(pipeline)
            pg = find_gaps(pipeline, store=postgres_store)
        assert pg == duck
