"""The query field of every table drivetrain writes is indexed (BRIN), so a window's DELETE and
count read the window's block ranges instead of scanning the table (issue 16), on the real server."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from drivetrain.warehouse import PushDown, TableRef
from drivetrain.window import Window
from tests.servers.postgres import PostgresServer

from .warehouse import load, make_warehouse, new_schema

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def day(n: int) -> Window:
    return Window(T0 + timedelta(days=n), T0 + timedelta(days=n + 1))


@pytest.fixture
def wh(postgres, monkeypatch):  # noqa: ANN001, ANN201 - a fixture
    warehouse = make_warehouse(postgres, monkeypatch, schema=new_schema(postgres))
    yield warehouse
    warehouse.close()


def indexes(postgres: PostgresServer, schema: str, table: str) -> list[str]:
    """The definitions of the table's indexes, as the server writes them."""
    with postgres.admin() as conn:
        return [r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s"
                                           " ORDER BY indexname", [schema, table]).fetchall()]


def batch(window: Window, ids: range) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"at": pa.array([window.start + timedelta(minutes=i) for i in ids], pa.timestamp("us", tz="UTC")),
                                       "id": pa.array(list(ids), pa.int64())})


def test_a_table_the_load_creates_gets_an_index_on_its_query_field(wh, postgres) -> None:  # noqa: ANN001
    table = TableRef(name="Fresh", query_field="at")
    load(wh, table, day(0), batch(day(0), range(3)))
    [index] = indexes(postgres, wh.options.schema, "fresh")
    assert index.endswith("USING brin (at) WITH (autosummarize='on')")
    load(wh, table, day(1), batch(day(1), range(2)))  # the next window finds it: no second index
    assert len(indexes(postgres, wh.options.schema, "fresh")) == 1


def test_an_existing_table_gets_the_index_at_its_next_ensure_and_keeps_its_rows(wh, postgres, monkeypatch) -> None:  # noqa: ANN001
    schema = wh.options.schema
    with postgres.admin() as conn:
        conn.execute(f"CREATE TABLE {schema}.old (at timestamptz, id bigint)")
        conn.execute(f"ALTER TABLE {schema}.old OWNER TO {postgres.user}")
        conn.execute(f"INSERT INTO {schema}.old VALUES (%s, 1), (%s, 2)", [day(0).start, day(1).start])
    assert indexes(postgres, schema, "old") == []
    table = TableRef(name="old", query_field="at")
    wh.ensure_table(table, batch(day(0), range(1)).schema)
    assert [i.split(" ON ")[1] for i in indexes(postgres, schema, "old")] == [f"{schema}.old USING brin (at) WITH (autosummarize='on')"]
    assert load(wh, table, day(0), batch(day(0), range(5, 7))) == {str(table): 2}
    assert wh.count_window(table, day(0)) == 2 and wh.count_window(table, day(1)) == 1
    # a new warehouse object (the next run) reads that the field is indexed and creates nothing
    other = make_warehouse(postgres, monkeypatch, schema=schema)
    try:
        other.ensure_table(table, batch(day(0), range(1)).schema)
    finally:
        other.close()
    assert len(indexes(postgres, schema, "old")) == 1


def test_an_index_the_user_made_that_starts_with_the_query_field_is_enough(wh, postgres) -> None:  # noqa: ANN001
    schema = wh.options.schema
    with postgres.admin() as conn:
        conn.execute(f"CREATE TABLE {schema}.own (at timestamptz, id bigint)")
        conn.execute(f"CREATE INDEX own_at_id ON {schema}.own (at, id)")
        conn.execute(f"ALTER TABLE {schema}.own OWNER TO {postgres.user}")
    load(wh, TableRef(name="own", query_field="at"), day(0), batch(day(0), range(2)))
    assert [i.split(" ")[2] for i in indexes(postgres, schema, "own")] == ["own_at_id"]


def test_a_table_the_user_may_write_but_not_index_still_loads_with_a_warning(wh, postgres, caplog) -> None:  # noqa: ANN001
    schema = wh.options.schema
    with postgres.admin() as conn:
        conn.execute(f"CREATE TABLE {schema}.foreign_owned (at timestamptz, id bigint)")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.foreign_owned TO {postgres.user}")
    table = TableRef(name="foreign_owned", query_field="at")
    with caplog.at_level(logging.WARNING, logger="drivetrain.connectors.postgres.warehouse"):
        assert load(wh, table, day(0), batch(day(0), range(4))) == {str(table): 4}
    assert indexes(postgres, schema, "foreign_owned") == []
    [warning] = [r.getMessage() for r in caplog.records if "CREATE INDEX" in r.getMessage()]
    assert "owner" in warning and f'ON "{schema}"."foreign_owned" USING brin ("at")' in warning
    assert postgres.password not in warning
    assert wh.count_window(table, day(0)) == 4


def test_the_push_down_target_is_indexed_when_created_and_when_it_existed(wh, postgres) -> None:  # noqa: ANN001
    schema = wh.options.schema
    stage = TableRef(name="stg", query_field="at")
    for name in ("made", "hand"):
        if name == "hand":
            with postgres.admin() as conn:
                conn.execute(f"CREATE TABLE {schema}.hand (id bigint, at timestamptz)")
                conn.execute(f"ALTER TABLE {schema}.hand OWNER TO {postgres.user}")
        target = TableRef(name=name, query_field="at")
        spec = PushDown(stage=stage, target=target, columns=[("id", '"id"'), ("at", '"at"')])
        for n in range(2):
            load(wh, stage, day(n), batch(day(n), range(n * 10, n * 10 + 3)))
            lineage = {"_drivetrain_pipeline_id": "r", "_drivetrain_window_start": day(n).start, "_drivetrain_window_end": day(n).end,
                       "_drivetrain_target_date": day(n).target_date, "_drivetrain_loaded_at": T0}
            assert wh.push_down(spec, day(n), lineage).rows_written == 3
        assert [i.split(" USING ")[1] for i in indexes(postgres, schema, name)] == ["brin (at) WITH (autosummarize='on')"], name
        assert wh.count_window(target, day(0)) == 3 and wh.count_window(target, day(1)) == 3
    assert [i.split(" USING ")[1] for i in indexes(postgres, schema, "stg")] == ["brin (at) WITH (autosummarize='on')"]
