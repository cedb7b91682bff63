"""The ADBC reader reads no type catalogue, and yields the rows the catalogue-reading ADBC reader
and the psycopg reader yield, for generated values of every column type the source supports."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Json

from drivetrain.connectors.postgres import readers
from drivetrain.window import Window
from tests.servers.postgres import PostgresServer

from .conftest import make_source, read_all

WINDOW = Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))

TABLE = """
CREATE EXTENSION IF NOT EXISTS citext;
DROP TABLE IF EXISTS every_type;
CREATE TABLE every_type (
    id int PRIMARY KEY, ts timestamptz NOT NULL, naive timestamp, small smallint, big bigint,
    real_ real, dbl double precision, money_ numeric(12, 2), wide numeric(50, 10), loose numeric,
    flag boolean, body text, fixed char(3), short varchar(8), ci citext, doc json, docb jsonb,
    raw bytea, uid uuid, day date, clock time, ints int[], words text[], span interval
);
"""
COLUMNS = ("id", "ts", "naive", "small", "big", "real_", "dbl", "money_", "wide", "loose", "flag", "body",
           "fixed", "short", "ci", "doc", "docb", "raw", "uid", "day", "clock", "ints", "words", "span")

#: Text the COPY formats must escape: tabs, newlines, quotes, backslashes, commas, non-ASCII.
tricky = st.text(st.one_of(st.sampled_from("\t\n\r\\\"',;|{}[] \x01"), st.characters(exclude_characters="\x00",
                                                                                      exclude_categories=("Cs",))),
                 max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | tricky,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky, inner, max_size=3), max_leaves=6,
)


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


rows = st.fixed_dictionaries({
    "ts": st.integers(0, 86_400_000_000 - 1).map(lambda us: WINDOW.start + timedelta(microseconds=us)),
    "naive": nullable(st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1))),
    "small": nullable(st.integers(-(2**15), 2**15 - 1)),
    "big": nullable(st.integers(-(2**63), 2**63 - 1)),
    "real_": nullable(st.floats(width=32, allow_nan=False)),
    "dbl": nullable(st.floats(allow_nan=False)),
    "money_": nullable(st.decimals(-(10**10) + 1, 10**10 - 1, places=2)),
    "wide": nullable(st.decimals(-(10**40) + 1, 10**40 - 1, places=10)),
    "loose": nullable(st.decimals(allow_nan=False, allow_infinity=False) | st.just(Decimal("NaN"))),
    "flag": nullable(st.booleans()),
    "body": nullable(tricky),
    "fixed": nullable(st.text("ab \\\t\"'", max_size=3)),
    "short": nullable(st.text("xy\n\\,", max_size=8)),
    "ci": nullable(tricky),
    "doc": nullable(json_values.map(Json)),
    "docb": nullable(json_values.map(Json)),
    "raw": nullable(st.binary(max_size=16)),
    "uid": nullable(st.uuids()),
    "day": nullable(st.dates()),
    "clock": nullable(st.times()),
    "ints": nullable(st.lists(nullable(st.integers(-(2**31), 2**31 - 1)), max_size=4)),
    "words": nullable(st.lists(nullable(tricky), max_size=3)),
    "span": nullable(st.timedeltas(timedelta(days=-10_000), timedelta(days=10_000))),
})


@pytest.fixture(scope="module")
def every_type(pg: PostgresServer) -> PostgresServer:
    with pg.admin() as conn:
        conn.execute(TABLE)
    return pg


def test_the_adbc_reader_reads_no_type_catalogue(pg: PostgresServer) -> None:
    """The driver's default reads pg_type and pg_attribute on a connection of its own before the
    first row (a quarter of a second under load); the extract asks for its built-in table."""
    with pg.admin() as conn:
        conn.execute("DROP ROLE IF EXISTS dt_logged")
        conn.execute("CREATE ROLE dt_logged LOGIN PASSWORD 'logged-Pa55' IN ROLE drivetrain")
        conn.execute("ALTER ROLE dt_logged SET log_min_duration_statement = 0")  # its statements only
    before = pg.log.stat().st_size
    with make_source(pg, reader="adbc", user="dt_logged", password="logged-Pa55") as src:
        assert read_all(src, Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 0, 1, tzinfo=UTC))).num_rows == 60
    with pg.log.open("rb") as log:
        log.seek(before)
        logged = log.read().decode(errors="replace")
    assert "COPY (SELECT" in logged  # the role's statements are in the log
    assert "typreceive" not in logged  # the driver's reads of pg_type (the source's own look-up names no such column)
    assert re.search(r"FROM\s+pg_catalog.pg_attribute\s+ORDER BY", logged) is None  # ... and of every column


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=st.lists(rows, min_size=1, max_size=6))
def test_readers_yield_the_same_rows_for_every_type(
    every_type: PostgresServer, monkeypatch: pytest.MonkeyPatch, generated: list[dict[str, Any]]
) -> None:
    with every_type.admin() as conn, conn.cursor() as cursor:
        conn.execute("TRUNCATE every_type")
        cursor.executemany(f"INSERT INTO every_type ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})",
                           [(i, *(row[c] for c in COLUMNS[1:])) for i, row in enumerate(generated)])
    tables: dict[str, pa.Table] = {}
    for name, reader, options in (("adbc", "adbc", readers.ADBC_DATABASE_OPTIONS),
                                  ("adbc, server's catalogue", "adbc", {"adbc.postgresql.type_resolver_mode": "server"}),
                                  ("psycopg", "psycopg", readers.ADBC_DATABASE_OPTIONS)):
        monkeypatch.setattr(readers, "ADBC_DATABASE_OPTIONS", options)
        with make_source(every_type, reader=reader, table="every_type", query_field="ts") as src:
            tables[name] = read_all(src, WINDOW).sort_by("id")
    assert tables["adbc"].num_rows == len(generated)
    assert tables["adbc"].column("ci").to_pylist() == [row["ci"] for row in generated]
    assert tables["adbc"].equals(tables["adbc, server's catalogue"])
    assert tables["adbc"].equals(tables["psycopg"])

