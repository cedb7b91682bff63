"""The shapes the speed work gave the PostgreSQL paths (issue 16), on the real server.

- The ADBC reader asks the server for numeric columns as their exact text (ADBC's own binary
  numeric conversion was most of its read time) and casts them to the delivered decimal type.
- A window load streams its batches into one COPY per table (binary, encoded by pgpq on the
  load's psycopg connection), and keeps that connection for the next window's load; a kept
  connection the server closed is replaced before anything is written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.errors import PermanentError
from drivetrain.warehouse import TableRef
from drivetrain.window import Window
from tests.servers.postgres import PostgresServer

from .conftest import make_source, read_all
from .warehouse import load, make_warehouse, new_schema

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def hour(n: int) -> Window:
    return Window(T0 + timedelta(hours=n), T0 + timedelta(hours=n + 1))


# -- the source's numeric columns --------------------------------------------------------------

NUMERIC_TABLE = """
DROP TABLE IF EXISTS amounts;
CREATE TABLE amounts (id int PRIMARY KEY, ts timestamptz NOT NULL, small numeric(4, 2),
    money numeric(18, 4), wide numeric(38, 0), huge numeric(60, 20), loose numeric);
"""

_PRECISION = {"small": (4, 2), "money": (18, 4), "wide": (38, 0), "huge": (60, 20)}


def _decimals(precision: int, scale: int) -> st.SearchStrategy[Decimal | None]:
    digits = st.integers(min_value=-(10**precision) + 1, max_value=10**precision - 1)
    return st.none() | digits.map(lambda n: Decimal(f"{n}E-{scale}"))  # exact (scaleb rounds to 28 digits)


ROWS = st.lists(st.fixed_dictionaries({name: _decimals(p, s) for name, (p, s) in _PRECISION.items()}),
                min_size=0, max_size=30)


@pytest.fixture(scope="module")
def amounts(pg: PostgresServer) -> PostgresServer:
    with pg.admin() as conn:
        conn.execute(NUMERIC_TABLE)
    return pg


def test_the_adbc_reader_sends_numeric_columns_as_text_and_the_cursor_reader_as_numeric(amounts: PostgresServer) -> None:
    with make_source(amounts, reader="adbc", table="amounts", query_field="ts") as src:
        assert '"money"::text AS "money"' in src.extract_statement(hour(0)).sql
    with make_source(amounts, reader="psycopg", table="amounts", query_field="ts") as src:
        assert '"money"::text' not in src.extract_statement(hour(0)).sql


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_every_numeric_value_arrives_exactly_by_both_readers(amounts: PostgresServer, rows: list[dict[str, Decimal | None]]) -> None:
    with amounts.admin() as conn:
        conn.execute("TRUNCATE amounts")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO amounts VALUES (%s, %s, %s, %s, %s, %s, %s)",
                            [(i, T0 + timedelta(seconds=i), r["small"], r["money"], r["wide"], r["huge"], r["money"])
                             for i, r in enumerate(rows)])
    tables = {}
    for reader in ("adbc", "psycopg"):
        with make_source(amounts, reader=reader, table="amounts", query_field="ts") as src:
            tables[reader] = read_all(src, hour(0)).sort_by("id")
    got = tables["adbc"]
    assert got.schema.field("small").type == pa.decimal128(4, 2)
    assert got.schema.field("huge").type == pa.decimal256(60, 20)
    for name in _PRECISION:
        assert got.column(name).to_pylist() == [r[name] for r in rows]
    assert got.column("loose").to_pylist() == [None if r["money"] is None else str(r["money"]) for r in rows]
    assert got.equals(tables["psycopg"])


def test_a_nan_in_a_numeric_column_with_a_scale_is_a_clear_error(amounts: PostgresServer) -> None:
    with amounts.admin() as conn:
        conn.execute("TRUNCATE amounts")
        conn.execute("INSERT INTO amounts (id, ts, money) VALUES (1, %s, 'NaN')", [T0])
    with make_source(amounts, reader="adbc", table="amounts", query_field="ts") as src, \
            pytest.raises(PermanentError, match=r"cannot be read as its Arrow type"):
        read_all(src, hour(0))


# -- the load ----------------------------------------------------------------------------------


@pytest.fixture
def wh(postgres, monkeypatch):  # noqa: ANN001, ANN201 - a fixture
    warehouse = make_warehouse(postgres, monkeypatch, schema=new_schema(postgres))
    yield warehouse
    warehouse.close()


@pytest.fixture
def calls(monkeypatch):  # noqa: ANN001, ANN201 - a fixture
    """Counts of the real driver's load connections (the ones not in autocommit) and COPYs (each still runs)."""
    counted = {"connect": 0, "ingest": 0}
    connect, copy = psycopg.connect, psycopg.Cursor.copy

    def counting_connect(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        counted["connect"] += kwargs.get("autocommit") is False
        return connect(*args, **kwargs)

    def counting_copy(self, statement, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        counted["ingest"] += statement.startswith("COPY")
        return copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting_connect)
    monkeypatch.setattr(psycopg.Cursor, "copy", counting_copy)
    return counted


def rows(window: Window, first: int, count: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({
        "at": pa.array([window.start + timedelta(seconds=i % 3600) for i in range(first, first + count)], pa.timestamp("us", tz="UTC")),
        "id": pa.array(range(first, first + count), pa.int64()),
        "label": [f'row {i}, "quoted"\n' if i % 2 else "" for i in range(first, first + count)],
    })


def ids(wh, table: TableRef, window: Window) -> list[int]:  # noqa: ANN001
    return sorted(r["id"] for b in wh.read_window(table, window, 10_000) for r in b.to_pylist())


def test_a_window_of_many_batches_goes_in_by_one_copy(wh, calls) -> None:  # noqa: ANN001
    table = TableRef(name="many", query_field="at")
    assert load(wh, table, hour(0), *(rows(hour(0), i * 100, 100) for i in range(40))) == {str(table): 4000}
    assert calls["ingest"] == 1
    assert ids(wh, table, hour(0)) == list(range(4000))
    [batch] = list(wh.read_window(table, hour(0), 10_000))
    assert batch.sort_by("id").column("label").to_pylist()[:2] == ["", 'row 1, "quoted"\n']


def test_batches_that_change_shape_mid_window_all_arrive_in_their_columns(wh) -> None:  # noqa: ANN001
    table = TableRef(name="shapes", query_field="at")
    w = hour(0)
    narrow = rows(w, 0, 5).append_column("n", pa.array([1] * 5, pa.int64()))
    cast = rows(w, 5, 5).append_column("n", pa.array([2] * 5, pa.int32()))  # not what a bigint column reads: by INSERT ... SELECT
    wider = rows(w, 10, 5).append_column("n", pa.array([3] * 5, pa.int64())).append_column("extra", pa.array(["e"] * 5))
    assert load(wh, table, w, narrow, cast, narrow.slice(0, 0), wider, rows(w, 15, 5)) == {str(table): 20}
    with wh.sql("look") as s:
        got = s.rows(f'SELECT "id", "n", "extra" FROM {wh.dialect.qualified(table)} ORDER BY "id"')
    assert got == [(i, 1, None) for i in range(5)] + [(i, 2, None) for i in range(5, 10)] + \
        [(i, 3, "e") for i in range(10, 15)] + [(i, None, None) for i in range(15, 20)]


def test_a_gathered_value_the_table_refuses_fails_the_commit_naming_the_table_and_keeps_the_old_rows(wh, postgres) -> None:  # noqa: ANN001
    table = TableRef(name="tight", query_field="at")
    with postgres.admin() as conn:
        conn.execute(f"CREATE TABLE {table_schema(wh)}.tight (at timestamptz, id bigint, label text, price numeric(4, 2))")
        conn.execute(f"ALTER TABLE {table_schema(wh)}.tight OWNER TO {postgres.user}")
    ok = rows(hour(0), 0, 2).append_column("price", pa.array([Decimal("1.50"), None], pa.decimal128(12, 2)))
    load(wh, table, hour(0), ok)
    too_big = rows(hour(0), 2, 2).append_column("price", pa.array([Decimal("12345.67"), None], pa.decimal128(12, 2)))
    with pytest.raises(PermanentError, match=r"load .*tight"):
        load(wh, table, hour(0), too_big)
    assert ids(wh, table, hour(0)) == [0, 1]


def table_schema(wh) -> str:  # noqa: ANN001
    return wh.options.schema


def test_an_empty_window_and_a_window_of_one_row(wh) -> None:  # noqa: ANN001
    table = TableRef(name="sizes", query_field="at")
    load(wh, table, hour(0), rows(hour(0), 0, 3))
    load(wh, table, hour(1), rows(hour(1), 10, 1))
    assert load(wh, table, hour(0)) == {str(table): 0}  # nothing appended: the window is emptied
    assert (ids(wh, table, hour(0)), ids(wh, table, hour(1))) == ([], [10])
    assert load(wh, table, hour(0), rows(hour(0), 20, 1)) == {str(table): 1}
    assert ids(wh, table, hour(0)) == [20]


def test_the_load_connection_serves_every_window_of_a_run(wh, calls) -> None:  # noqa: ANN001
    table = TableRef(name="reused", query_field="at")
    for n in range(4):
        load(wh, table, hour(n), rows(hour(n), n * 10, 10))
    load(wh, table, hour(4))  # an empty window too
    assert calls["connect"] == 1
    assert [len(ids(wh, table, hour(n))) for n in range(5)] == [10, 10, 10, 10, 0]


def test_a_kept_connection_the_server_closed_between_windows_is_replaced(wh, postgres, calls) -> None:  # noqa: ANN001
    table = TableRef(name="dropped", query_field="at")
    load(wh, table, hour(0), rows(hour(0), 0, 10))
    with postgres.admin() as conn:  # every idle load session of the role: the kept one
        ended = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s AND state = 'idle'"
            " AND query = 'COMMIT'", [postgres.user]).fetchone()[0]
    assert ended == 1
    load(wh, table, hour(1), rows(hour(1), 10, 10))
    assert calls["connect"] == 2
    assert (ids(wh, table, hour(0)), ids(wh, table, hour(1))) == (list(range(10)), list(range(10, 20)))


def test_an_aborted_load_gives_no_connection_back(wh, calls) -> None:  # noqa: ANN001
    table = TableRef(name="aborted", query_field="at")
    with wh.window_load(hour(0), "k") as job:
        job.append(table, rows(hour(0), 0, 5))
        job.abort()
    load(wh, table, hour(0), rows(hour(0), 5, 5))
    assert calls["connect"] == 2
    assert ids(wh, table, hour(0)) == list(range(5, 10))


def test_a_second_tables_rows_wait_for_the_streaming_copy_and_all_arrive(wh, calls, monkeypatch) -> None:  # noqa: ANN001
    """The stage's rows stream in one COPY; the rejects' (another table) are held, and go in when
    they grow past HOLD_BYTES (ending the stream, which then reopens) or at the commit."""
    from drivetrain.connectors.postgres import load as pg_load

    monkeypatch.setattr(pg_load, "HOLD_BYTES", 5_000)  # about 50 rows of these
    stage, rejects = TableRef(name="streamed", query_field="at"), TableRef(name="held", query_field="at")
    w = hour(0)
    with wh.window_load(w, "k") as job:
        for i in range(20):
            job.append(stage, rows(w, i * 100, 100))
            job.append(rejects, rows(w, 10_000 + i * 10, 10))
        assert job.commit([stage, rejects]) == {str(stage): 2000, str(rejects): 200}
    assert ids(wh, stage, w) == list(range(2000))
    assert ids(wh, rejects, w) == list(range(10_000, 10_200))
    assert 3 <= calls["ingest"] < 40  # the stream reopened after each flush of the held rows, never a COPY a batch


def test_a_value_the_server_refuses_mid_stream_fails_the_load_naming_the_table_and_writes_nothing(wh, postgres) -> None:  # noqa: ANN001
    table = TableRef(name="refusing", query_field="at")
    with postgres.admin() as conn:
        conn.execute(f"CREATE TABLE {table_schema(wh)}.refusing (at timestamptz, id bigint CHECK (id <> 150), label text)")
        conn.execute(f"ALTER TABLE {table_schema(wh)}.refusing OWNER TO {postgres.user}")
    load(wh, table, hour(0), rows(hour(0), 1000, 3))
    with pytest.raises(PermanentError, match=r"load .*refusing"):
        load(wh, table, hour(0), *(rows(hour(0), i * 100, 100) for i in range(5)))
    assert ids(wh, table, hour(0)) == [1000, 1001, 1002]
    load(wh, table, hour(0), rows(hour(0), 0, 100))  # the warehouse loads again afterwards
    assert ids(wh, table, hour(0)) == list(range(100))


def test_a_claim_is_one_statement_once_the_owners_table_exists_and_judges_as_before(wh, postgres, monkeypatch) -> None:  # noqa: ANN001
    """The first claim creates the owners table; the next ones insert and read the claims in one
    statement, with the same answers: a new claim, one already held, another pipeline refused."""
    from drivetrain.ownership import owned

    from .warehouse import make_warehouse

    executed: list[str] = []
    execute = psycopg.Cursor.execute

    def counting(self, query, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        executed.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    first, second = TableRef(name="one", query_field="at"), TableRef(name="two", query_field="at")
    wh.claim_table(owned(first, "alpha", False, "stage_system"))  # creates drivetrain_table_owners
    executed.clear()
    assert wh.record_claim(owned(second, "alpha", True, "stage_system"))[1] is True
    assert len(executed) == 1
    again = make_warehouse(postgres, monkeypatch, schema=wh.options.schema)  # the next run
    try:
        claims, new = again.record_claim(owned(second, "alpha", True, "stage_system"))
        assert (new, [(c.pipeline, c.shared) for c in claims]) == (False, [("alpha", True)])
        again.claim_table(owned(first, "alpha", False, "stage_system"))
        with pytest.raises(PermanentError, match="belongs to pipeline 'alpha'"):
            again.claim_table(owned(first, "beta", False, "stage_system"))
        assert [c.pipeline for c in again.table_claims(first)] == ["alpha"]
    finally:
        again.close()


def test_a_load_without_the_copy_encoder_installed_names_the_extra_and_writes_nothing(wh, monkeypatch) -> None:  # noqa: ANN001
    import sys

    from drivetrain.errors import MissingExtraError

    table = TableRef(name="noencoder", query_field="at")
    load(wh, table, hour(0), rows(hour(0), 0, 2))
    monkeypatch.setitem(sys.modules, "pgpq", None)
    with pytest.raises(MissingExtraError, match="postgres"):
        load(wh, table, hour(0), rows(hour(0), 10, 2))
    monkeypatch.delitem(sys.modules, "pgpq")
    assert ids(wh, table, hour(0)) == [0, 1]
