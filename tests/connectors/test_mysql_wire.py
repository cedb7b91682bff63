"""The pymysql reader's bulk row reader (``connectors/mysql/wire.py``) on the real MariaDB server.

The reader must yield exactly what pymysql's own row parser would (the server's bytes of each
value, NULL kept apart from the empty string) and what the connectorx reader yields, for every
type, every length prefix (1, 3, 4 and 9 bytes), rows split over several packets and reads that
end anywhere in a packet. A hypothesis property checks the three against each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.connectors.mysql import MySQLSource, wire
from drivetrain.connectors.mysql.types import arrow_schema, decoders, to_batch
from drivetrain.errors import TransientError
from drivetrain.window import Window
from tests.connectors.sql_sources import read_all, server_source
from tests.servers.mariadb import MariaDBServer

TABLE = "wire_types"
DAY = datetime(2025, 3, 1)
EVERYTHING = Window(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))

_CREATE = f"""
CREATE TABLE {TABLE} (
  id BIGINT PRIMARY KEY, ts DATETIME(6) NOT NULL,
  c_int INT, c_ubig BIGINT UNSIGNED, c_bit BIT(12), c_dec DECIMAL(24, 6), c_double DOUBLE,
  c_date DATE, c_dt DATETIME(6), c_stamp TIMESTAMP(6) NULL, c_time TIME(6),
  c_char CHAR(4), c_vc VARCHAR(400), c_text MEDIUMTEXT, c_enum ENUM('red', 'green'),
  c_json JSON, c_vb VARBINARY(400), c_blob LONGBLOB, c_uuid UUID, c_inet6 INET6, KEY (ts)
) DEFAULT CHARSET = utf8mb4
"""
COLUMNS = ("id", "ts", "c_int", "c_ubig", "c_bit", "c_dec", "c_double", "c_date", "c_dt",
           "c_stamp", "c_time", "c_char", "c_vc", "c_text", "c_enum", "c_json", "c_vb", "c_blob",
           "c_uuid", "c_inet6")


def admin_run(server: MariaDBServer, *statements: str, rows: list[tuple[Any, ...]] | None = None) -> None:
    conn = server.admin(database=server.database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = ''")  # zero dates, as lax servers store them
            for statement in statements:
                cursor.execute(statement)
            if rows:
                marks = ", ".join(["%s"] * len(rows[0]))
                cursor.executemany(f"INSERT INTO {TABLE} VALUES ({marks})", rows)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(mariadb: MariaDBServer) -> Iterator[MariaDBServer]:
    admin_run(mariadb, f"DROP TABLE IF EXISTS {TABLE}", _CREATE,
              "SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    yield mariadb
    admin_run(mariadb, f"DROP TABLE IF EXISTS {TABLE}")


def make(server: MariaDBServer, **options: Any) -> MySQLSource:
    return server_source(MySQLSource, server, "mysql", {"table": TABLE, "query_field": "ts", **options},
                         ref="test_wire", user=None, password=None, base_dir=Path("."))


def by_pymysql(server: MariaDBServer) -> pa.Table:
    """The window as pymysql's own row parser reads it, through the same column decoders."""
    with make(server, reader="pymysql") as src:
        info = src._table_info()
        schema = arrow_schema(info.columns)
        statement = src.extract_statement(EVERYTHING)
        conn = src._connect(decode=False)
        try:
            with conn.cursor(pymysql.cursors.SSCursor) as cursor:
                cursor.execute(statement.sql, statement.params)
                rows = cursor.fetchall()
        finally:
            conn.close()
    if not rows:
        return schema.empty_table()
    return pa.Table.from_batches([to_batch(rows, schema, decoders(info.columns, "UTC"))])


def by_reader(server: MariaDBServer, reader: str, batch_size: int = 10_000) -> pa.Table:
    with make(server, reader=reader, batch_size=batch_size) as src:
        return read_all(src, EVERYTHING)


def in_order(table: pa.Table) -> pa.Table:
    return table.sort_by([("ts", "ascending"), ("id", "ascending")])


# -- generated rows ----------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=120)
long_texts = st.builds(lambda piece, n: piece * n, st.sampled_from(["x", "é", "🚀", "ab\n"]),
                       st.integers(0, 70_000))


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def rows(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    count = draw(st.integers(0, 14))
    out = []
    for i in range(count):
        ts = DAY + timedelta(microseconds=draw(st.integers(0, 3 * 86_400_000_000)))
        out.append((
            i + 1, ts,
            draw(nullable(st.integers(-(2**31), 2**31 - 1))),
            draw(nullable(st.integers(0, 2**64 - 1))),
            draw(nullable(st.integers(0, 4095))),
            draw(nullable(st.decimals(min_value=-(10**17), max_value=10**17, places=6,
                                      allow_nan=False, allow_infinity=False))),
            draw(nullable(st.floats(allow_nan=False, allow_infinity=False, width=64))),
            draw(nullable(st.one_of(st.dates(date(1000, 1, 1), date(9999, 12, 31)),
                                    st.just("0000-00-00")))),
            draw(nullable(st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31)))),
            draw(nullable(st.datetimes(datetime(1970, 1, 2), datetime(2038, 1, 1)))),
            draw(nullable(st.timedeltas(timedelta(hours=-838), timedelta(hours=838)))),
            draw(nullable(st.text(st.characters(codec="utf-8", exclude_characters="\x00 "),
                                  max_size=4))),
            draw(nullable(st.one_of(texts, st.text(st.sampled_from("aé🚀"), min_size=60,
                                                   max_size=400)))),
            draw(nullable(st.one_of(texts, long_texts))),
            draw(nullable(st.sampled_from(["red", "green", ""]))),
            draw(nullable(st.builds(json.dumps, st.dictionaries(texts, st.integers() | texts,
                                                                max_size=3)))),
            draw(nullable(st.binary(max_size=400))),
            draw(nullable(st.one_of(st.binary(max_size=40),
                                    st.builds(lambda n: bytes(range(256)) * n, st.integers(0, 300))))),
            draw(nullable(st.uuids().map(str))),
            draw(nullable(st.ip_addresses(v=6).map(str))),
        ))
    return out


class TestSameRowsAsPymysqlAndConnectorx:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(table=rows(), batch_size=st.sampled_from([1, 3, 10_000]), chunk=st.sampled_from([7, 4096, wire.CHUNK]))
    def test_generated_rows_of_every_type(
        self, server: MariaDBServer, table: list[tuple[Any, ...]], batch_size: int, chunk: int
    ) -> None:
        admin_run(server, f"TRUNCATE TABLE {TABLE}", rows=table)
        with mock.patch.object(wire, "CHUNK", chunk):
            read = by_reader(server, "pymysql", batch_size)
        assert read.num_rows == len(table)
        assert in_order(read).equals(in_order(by_pymysql(server)))
        assert by_reader(server, "connectorx").equals(read)  # same order too: key order when keys are dense

    def test_pymysql_does_not_parse_the_rows(self, server: MariaDBServer) -> None:
        admin_run(server, f"TRUNCATE TABLE {TABLE}",
                  rows=[(i, DAY, *[None] * (len(COLUMNS) - 2)) for i in range(1, 101)])
        parse = pymysql.connections.MySQLResult._read_row_from_packet
        with make(server, reader="pymysql", batch_size=30) as src:
            src.count(EVERYTHING)  # metadata rows (the table, the window's keys) are pymysql's to parse; the extract's are not
            with mock.patch.object(pymysql.connections.MySQLResult, "_read_row_from_packet",
                                   autospec=True, side_effect=parse) as spy:
                read = read_all(src, EVERYTHING)
        assert read.num_rows == 100 and spy.call_count == 0
        assert read.column("c_vc").null_count == 100


class TestLongValues:
    def test_lengths_on_every_prefix_boundary(self, server: MariaDBServer) -> None:
        sizes = [0, 1, 250, 251, 252, 65_535, 65_536, 65_537, 16_777_215 - 40]
        table = [(i + 1, DAY, *[None] * 15, b"\x00\xfb" * (n // 2) + b"z" * (n % 2), None, None)
                 for i, n in enumerate(sizes)]
        admin_run(server, f"TRUNCATE TABLE {TABLE}", rows=table)
        read = by_reader(server, "pymysql", batch_size=4)
        assert [len(v) for v in read.column("c_blob").to_pylist()] == sizes
        assert read.equals(by_pymysql(server))

    def test_a_row_longer_than_one_packet(self, server: MariaDBServer) -> None:
        big = bytes(range(256)) * (17 * 4096)  # 17 MiB: two packets, a 9-byte length prefix
        admin_run(
            server, f"TRUNCATE TABLE {TABLE}",
            f"INSERT INTO {TABLE} (id, ts, c_blob) VALUES (1, '2025-03-01', REPEAT(UNHEX('"
            f"{bytes(range(256)).hex()}'), {17 * 4096}))",
            f"INSERT INTO {TABLE} (id, ts, c_text) VALUES (2, '2025-03-01 00:00:01', 'after')",
        )
        read = by_reader(server, "pymysql", batch_size=10)
        assert read.column("c_blob").to_pylist() == [big, None]
        assert read.column("c_text").to_pylist() == [None, "after"]
        assert read.equals(by_pymysql(server))

    def test_null_and_empty_are_kept_apart(self, server: MariaDBServer) -> None:
        table = [(1, DAY, *[None] * 18),
                 (2, DAY, *[None] * 9, "", "", "", "", None, b"", b"", None, None)]
        admin_run(server, f"TRUNCATE TABLE {TABLE}", rows=table)
        read = by_reader(server, "pymysql")
        assert read.column("c_vc").to_pylist() == [None, ""]
        assert read.column("c_blob").to_pylist() == [None, b""]
        assert read.column("c_enum").to_pylist() == [None, ""]


@pytest.fixture(scope="module")
def big(server: MariaDBServer) -> Iterator[str]:
    """40,000 rows of 800 bytes: more than the socket buffers hold, so the server is still
    sending when the first batch arrives."""
    admin_run(server, "CREATE TABLE IF NOT EXISTS wire_big (id INT PRIMARY KEY,"
              " ts DATETIME(6) NOT NULL, v VARCHAR(900), KEY (ts))",
              "INSERT IGNORE INTO wire_big SELECT seq, '2025-03-01' + INTERVAL seq SECOND,"
              " REPEAT('v', 800) FROM seq_1_to_40000")
    yield "wire_big"
    admin_run(server, "DROP TABLE IF EXISTS wire_big")


class TestBrokenStreams:
    def _interrupt(self, server: MariaDBServer, statement: str) -> None:
        admin = server.admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s"
                               " AND INFO LIKE 'SELECT %%wire_big%%'", (server.user,))
                (thread,) = cursor.fetchone()
                cursor.execute(statement, (thread,))
        finally:
            admin.close()

    @pytest.mark.parametrize(("statement", "code"), [("KILL QUERY %s", "1317"), ("KILL %s", "1927|2013")])
    def test_an_interrupted_stream_is_transient_and_never_short(
        self, server: MariaDBServer, big: str, statement: str, code: str
    ) -> None:
        received = 0
        with make(server, table=big, batch_size=1000, reader="pymysql") as src:
            batches = src.extract(EVERYTHING)
            received += next(batches).num_rows
            self._interrupt(server, statement)
            with pytest.raises(TransientError, match=code):
                for batch in batches:
                    received += batch.num_rows
        assert received < 40_000

    def test_stopping_early_leaves_the_source_usable(self, server: MariaDBServer, big: str) -> None:
        with make(server, table=big, batch_size=1000, reader="pymysql") as src:
            batches = src.extract(EVERYTHING)
            assert next(batches).num_rows == 1000
            batches.close()
            assert src.count(EVERYTHING) == 40_000
            assert sum(b.num_rows for b in src.extract(EVERYTHING)) == 40_000
