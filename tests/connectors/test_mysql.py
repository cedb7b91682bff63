"""The MySQL source against a real MariaDB server started for this session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.mysql import MySQLSource, fast
from drivetrain.connectors.mysql.config import OPTIONS_SCHEMA
from drivetrain.connectors.mysql.errors import mysql_errors
from drivetrain.errors import ConfigError, MissingExtraError, PermanentError, TransientError
from drivetrain.window import Window
from tests.connectors.sql_sources import read_all, server_source
from tests.servers import serving
from tests.servers.mariadb import PASSWORD, TLS_USER, MariaDBServer, ServerError

T0 = datetime(2025, 1, 1, tzinfo=UTC)
EVENTS = 60_000  # one row per second from T0, 500-byte payload: too big to sit in socket buffers
TIES = 2_500  # rows sharing one timestamp, more than a batch


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def window(start: float, end: float) -> Window:
    return Window(at(start), at(end))


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    with serving(MariaDBServer.start, ServerError, "the MariaDB test server") as server:
        _load_dataset(server)
        yield server


def _load_dataset(server: MariaDBServer) -> None:
    statements = [
        # the big table: one row a second, indexed on the query field
        "CREATE TABLE events (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,"
        " created_at DATETIME(6) NOT NULL, kind VARCHAR(10) NOT NULL, payload VARCHAR(600),"
        " KEY idx_created (created_at), KEY idx_kind (kind))",
        f"INSERT INTO events (created_at, kind, payload) SELECT"
        f" '2025-01-01' + INTERVAL (seq - 1) SECOND, IF(seq % 2, 'odd', 'even'), REPEAT('x', 500)"
        f" FROM seq_1_to_{EVENTS}",
        # many rows on one timestamp, ids inserted out of order
        "CREATE TABLE ties (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, KEY idx_ts (ts))",
        f"INSERT INTO ties SELECT {TIES} + 1 - seq, '2025-01-01 00:00:05' FROM seq_1_to_{TIES}",
        "INSERT INTO ties VALUES (10001, '2025-01-01 00:00:04'), (10000, '2025-01-01 00:00:06')",
        # boundaries of the half-open window [00:00:10, 00:00:20)
        "CREATE TABLE bounds (id INT PRIMARY KEY, ts DATETIME(6) NULL, KEY (ts))",
        "SET SESSION sql_mode = ''",
        "INSERT INTO bounds VALUES (1, '2025-01-01 00:00:09.999999'), (2, '2025-01-01 00:00:10'),"
        " (3, '2025-01-01 00:00:10.000001'), (4, '2025-01-01 00:00:19.999999'),"
        " (5, '2025-01-01 00:00:20'), (6, NULL), (7, '0000-00-00 00:00:00')",
        "SET SESSION sql_mode = DEFAULT",
        # a composite index: the order follows it, then the primary key
        "CREATE TABLE composite (id INT PRIMARY KEY, ts DATETIME NOT NULL, grp INT NOT NULL,"
        " KEY idx_ts_grp (ts, grp))",
        "INSERT INTO composite VALUES (1, '2025-01-01', 2), (2, '2025-01-01', 1),"
        " (3, '2025-01-01', 1), (4, '2025-01-01 00:00:01', 0)",
        "CREATE TABLE noindex (id INT PRIMARY KEY, ts DATETIME NOT NULL, label VARCHAR(10))",
        "INSERT INTO noindex VALUES (1, '2025-01-01 00:00:01', 'a')",
        "CREATE TABLE not_temporal (id INT PRIMARY KEY, ts VARCHAR(30))",
        # TIMESTAMP written by a client in +05:00: read back in UTC whatever the session zone
        "CREATE TABLE stamps (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL, KEY (ts))",
        "SET SESSION time_zone = '+05:00'",
        "INSERT INTO stamps VALUES (1, '2025-01-01 05:00:00.250000'), (2, '2025-01-01 06:00:00')",
        "SET SESSION time_zone = '+00:00'",
        # naive wall-clock times in Paris (UTC+1 in January)
        "CREATE TABLE paris (id INT PRIMARY KEY, ts DATETIME NOT NULL, KEY (ts))",
        "INSERT INTO paris VALUES (1, '2025-01-01 00:30:00'), (2, '2025-01-01 01:30:00'),"
        " (3, '2025-01-01 02:30:00')",
        # values only lax sql modes let in
        "CREATE TABLE lax_dates (id INT PRIMARY KEY, ts DATETIME NOT NULL, d DATE, dt DATETIME)",
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
        "INSERT INTO lax_dates VALUES (1, '2025-01-01 00:00:01', '0000-00-00', '0000-00-00'),"
        " (2, '2025-01-01 00:00:02', '2024-02-30', '2024-02-30 10:00:00'),"
        " (3, '2025-01-01 00:00:03', '2024-01-02', '2024-01-02 03:00:00')",
        "SET SESSION sql_mode = DEFAULT",
        _TYPES_TABLE,
        _TYPES_ROW,
        "INSERT INTO all_types (id, ts) VALUES (2, '2025-01-01 00:00:02')",
    ]
    conn = server.admin(database=server.database)
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


_TYPES_TABLE = """
CREATE TABLE all_types (
  id INT PRIMARY KEY, ts DATETIME(6) NOT NULL,
  c_tinyint TINYINT, c_smallint SMALLINT, c_int INT, c_uint INT UNSIGNED, c_bigint BIGINT,
  c_ubigint BIGINT UNSIGNED, c_year YEAR, c_bit BIT(12), c_bool BOOLEAN,
  c_decimal DECIMAL(12, 4), c_bigdecimal DECIMAL(50, 10), c_float FLOAT, c_double DOUBLE,
  c_date DATE, c_datetime DATETIME, c_timestamp TIMESTAMP(3) NULL, c_time TIME(2),
  c_char CHAR(5), c_varchar VARCHAR(50), c_text TEXT, c_enum ENUM('red', 'green'),
  c_set SET('a', 'b', 'c'), c_json JSON, c_binary BINARY(3), c_varbinary VARBINARY(10),
  c_blob BLOB, c_bit64 BIT(64), c_uuid UUID, c_inet6 INET6, KEY (ts)
) DEFAULT CHARSET = utf8mb4
"""
_TYPES_ROW = """
INSERT INTO all_types VALUES (
  1, '2025-01-01 00:00:01.123456',
  -128, -32768, -2147483648, 4294967295, -9223372036854775808,
  18446744073709551615, 2024, b'101010101010', TRUE,
  12345678.9012, 1234567890123456789012345678901234567890.0123456789, 1.5, 2.718281828459045,
  '2024-02-29', '2024-02-29 23:59:59', '2024-03-01 12:00:00.125', '-838:59:59.99',
  'ab', 'héllo 🚀 wörld', 'long 🎉 text', 'green',
  'a,c', '{"k": [1, 2, {"n": null}]}', 0x000102, 0xCAFE, 0xDEADBEEF,
  0xFFFFFFFFFFFFFFFF, '123e4567-e89b-12d3-a456-426655440000', '2001:db8::1'
)
"""


def make_source(
    server: MariaDBServer,
    *,
    user: str | None = None,
    password: str | None = None,
    base_dir: Path = Path("."),
    **options: Any,
) -> MySQLSource:
    return server_source(MySQLSource, server, "mysql", options, ref="test_mysql", user=user,
                         password=password, base_dir=base_dir)


@pytest.fixture
def source(mariadb: MariaDBServer) -> Iterator[MySQLSource]:
    with make_source(mariadb) as src:
        yield src



def statements_sent(server: MariaDBServer, run: Any) -> list[str]:
    """The statements the server received while ``run()`` ran (its general log, as a table)."""
    admin = server.admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL log_output = 'TABLE'")
            cursor.execute("TRUNCATE TABLE mysql.general_log")
            cursor.execute("SET GLOBAL general_log = 1")
        try:
            run()
        finally:
            with admin.cursor() as cursor:
                cursor.execute("SET GLOBAL general_log = 0")
        with admin.cursor() as cursor:
            cursor.execute("SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log"
                           " WHERE command_type IN ('Query', 'Execute')")
            return [row[0] for row in cursor.fetchall()]
    finally:
        admin.close()


class TestOptions:
    def test_defaults_apply_to_a_minimal_section(self, mariadb: MariaDBServer) -> None:
        options = make_source(mariadb).options
        assert (options.batch_size, options.source_timezone, options.columns) == (
            10_000,
            "UTC",
            None,
        )

    def test_mariadb_is_accepted_as_the_type(self, mariadb: MariaDBServer) -> None:
        section = {"type": "mariadb", "database": "d", "table": "t", "query_field": "ts"}
        jsonschema.validate(section, OPTIONS_SCHEMA)
        assert make_source(mariadb, type="mariadb").options.table == "events"

    def test_schema_rejects_an_unknown_key(self) -> None:
        section = {
            "type": "mysql",
            "database": "d",
            "table": "t",
            "query_field": "ts",
            "tabel": "x",
        }
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(section, OPTIONS_SCHEMA)

    def test_schema_requires_the_query_field(self) -> None:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"type": "mysql", "database": "d", "table": "t"}, OPTIONS_SCHEMA)

    def test_an_identifier_with_sql_in_it_is_a_config_error(self, mariadb: MariaDBServer) -> None:
        with pytest.raises(ConfigError, match="table"):
            make_source(mariadb, table="events; DROP TABLE events")

    def test_an_unknown_time_zone_is_a_config_error(self, mariadb: MariaDBServer) -> None:
        with pytest.raises(ConfigError, match="source_timezone"):
            make_source(mariadb, source_timezone="Mars/Olympus")

    def test_a_column_listed_twice_is_a_config_error(self, mariadb: MariaDBServer) -> None:
        with pytest.raises(ConfigError, match="columns"):
            make_source(mariadb, columns=["id", "ID"])

    def test_nothing_connects_before_first_use(self) -> None:
        config = SystemConfig.from_section(
            "source_system",
            {
                "type": "mysql",
                "host": "127.0.0.1",
                "port": 1,
                "database": "d",
                "table": "t",
                "query_field": "ts",
            },
            base_dir=Path("."),
            source_file="config.json",
        )
        assert MySQLSource(config).describe() == "mysql 127.0.0.1:1/d.t"


class TestCheck:
    def test_reports_connection_table_field_and_index(self, source: MySQLSource) -> None:
        lines = source.check()
        text = "\n".join(lines)
        assert lines[0].startswith("connected to")
        assert "table drivetrain_test.events exists" in text
        assert "query field created_at exists (DATETIME(6))" in text
        assert "idx_created" in text
        assert not any(line.startswith("warning") for line in lines)

    def test_warns_when_the_query_field_has_no_index(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="noindex", query_field="ts") as src:
            assert any(line.startswith("warning: no index") for line in src.check())

    def test_a_missing_table_is_permanent(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="nope") as src, pytest.raises(PermanentError) as info:
            src.check()
        assert f"{mariadb.host}:{mariadb.port}/drivetrain_test.nope" in str(info.value)

    def test_a_query_field_that_is_not_a_date_is_permanent(self, mariadb: MariaDBServer) -> None:
        src = make_source(mariadb, table="not_temporal", query_field="ts")
        with src, pytest.raises(PermanentError, match="VARCHAR"):
            src.check()

    def test_an_unknown_projected_column_is_permanent(self, mariadb: MariaDBServer) -> None:
        src = make_source(mariadb, columns=["id", "nope"])
        with src, pytest.raises(PermanentError, match="'nope'"):
            src.check()

    def test_a_missing_forced_index_is_permanent(self, mariadb: MariaDBServer) -> None:
        src = make_source(mariadb, force_index="idx_nope")
        with src, pytest.raises(PermanentError, match="idx_nope"):
            src.check()


class TestWindowPredicate:
    def test_count_equals_the_rows_extracted(self, source: MySQLSource) -> None:
        win = window(1000, 4600)
        assert source.count(win) == read_all(source, win).num_rows == 3600

    def test_start_is_included_and_end_excluded(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="bounds", query_field="ts") as src:
            ids = read_all(src, window(10, 20)).column("id").to_pylist()
            assert (sorted(ids), src.count(window(10, 20))) == ([2, 3, 4], 3)

    def test_null_and_zero_query_fields_are_in_no_window(self, mariadb: MariaDBServer) -> None:
        everything = Window(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
        with make_source(mariadb, table="bounds", query_field="ts") as src:
            ids = sorted(read_all(src, everything).column("id").to_pylist())
            assert (ids, src.count(everything)) == ([1, 2, 3, 4, 5], 5)

    def test_microseconds_are_preserved(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="bounds", query_field="ts") as src:
            values = read_all(src, window(10, 20)).column("ts").to_pylist()
        assert values == [at(10), at(10.000001), at(19.999999)]

    def test_an_empty_window_yields_no_batches(self, source: MySQLSource) -> None:
        assert list(source.extract(window(-100, -10))) == []


class TestBatches:
    def test_batches_never_exceed_batch_size(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, batch_size=1000, columns=["id"]) as src:
            sizes = [batch.num_rows for batch in src.extract(window(0, 25_000))]
        assert (max(sizes), sum(sizes), len(sizes)) == (1000, 25_000, 25)

    def test_rows_come_ordered_by_query_field_then_primary_key(
        self, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(fast, "RANGE_DENSITY", 0)  # keys never dense enough to read by key range
        with make_source(mariadb, table="ties", query_field="ts", batch_size=1000,
                         reader="pymysql") as src:
            ids = read_all(src, window(0, 60)).column("id").to_pylist()
        assert ids == [10001, *range(1, TIES + 1), 10000]

    def test_dense_keys_are_read_along_the_primary_key(self, mariadb: MariaDBServer) -> None:
        # 2,502 rows with keys 1..10001: dense enough; equal query fields stay in key order
        with make_source(mariadb, table="ties", query_field="ts", batch_size=1000,
                         reader="pymysql") as src:
            ids = read_all(src, window(0, 60)).column("id").to_pylist()
        assert ids == [*range(1, TIES + 1), 10000, 10001]

    def test_a_large_window_is_read_without_a_sort(self, mariadb: MariaDBServer) -> None:
        """A window holding most of the table: the server would scan and sort the whole table
        for the query field's order; along the key it reads the clustered index in order."""
        with make_source(mariadb, reader="pymysql", columns=["id"]) as src:
            statement = src.extract_statement(window(0, EVENTS))
            sent = statements_sent(mariadb, lambda: read_all(src, window(0, EVENTS)))
        extract = next(s for s in sent if s.startswith("SELECT `id`, `created_at` FROM"))
        assert extract.endswith("ORDER BY `id`") and extract != statement.sql
        conn = mariadb.admin(database=mariadb.database)
        try:
            with conn.cursor() as cursor:
                cursor.execute("EXPLAIN " + extract)
                names = [d[0] for d in cursor.description]
                plan = dict(zip(names, cursor.fetchone(), strict=True))
        finally:
            conn.close()
        assert plan["key"] == "PRIMARY" and "filesort" not in (plan["Extra"] or "")

    def test_a_forced_index_is_read_in_its_order(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="ties", query_field="ts", batch_size=1000,
                         reader="pymysql", force_index="idx_ts") as src:
            ids = read_all(src, window(0, 60)).column("id").to_pylist()
        assert ids == [10001, *range(1, TIES + 1), 10000]

    def test_order_follows_a_composite_index(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="composite", query_field="ts") as src:
            assert read_all(src, window(0, 60)).column("id").to_pylist() == [2, 3, 1, 4]

    def test_ordering_uses_the_index_without_a_sort(
        self, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(fast, "RANGE_DENSITY", 0)  # keys never dense: the query field's order
        with make_source(mariadb, reader="pymysql") as src:
            plan = explain(mariadb, src, window(0, 3600))
        assert plan["key"] == "idx_created"
        assert "filesort" not in (plan["Extra"] or "")

    def test_projection_keeps_its_order_and_adds_the_query_field(
        self, mariadb: MariaDBServer
    ) -> None:
        with make_source(mariadb, columns=["kind", "ID"]) as src:
            table = read_all(src, window(0, 3))
        assert table.column_names == ["kind", "ID", "created_at"]
        assert table.column("ID").to_pylist() == [1, 2, 3]

    def test_query_field_keeps_its_configured_spelling(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, query_field="CREATED_AT", columns=["id"]) as src:
            assert read_all(src, window(0, 2)).column_names == ["id", "CREATED_AT"]

    def test_stopping_early_leaves_the_source_usable(self, source: MySQLSource) -> None:
        batches = source.extract(window(0, 50_000))
        first = next(batches)
        batches.close()  # does not read the remaining rows
        assert (first.num_rows, source.count(window(0, 10))) == (10_000, 10)


def explain(server: MariaDBServer, src: MySQLSource, win: Window) -> dict[str, Any]:
    import pymysql.cursors

    statement = src.extract_statement(win)
    conn = server.admin(database=server.database, cursorclass=pymysql.cursors.DictCursor)
    try:
        with conn.cursor() as cursor:
            cursor.execute("EXPLAIN " + statement.sql, statement.params)
            return cursor.fetchone()
    finally:
        conn.close()


class TestForceIndex:
    def test_the_hint_is_in_count_and_extract(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, force_index="idx_created", reader="pymysql") as src:
            statements = [src.count_statement(window(0, 10)), src.extract_statement(window(0, 10))]
        for statement in statements:
            assert (
                "FROM `drivetrain_test`.`events` FORCE INDEX (`idx_created`) WHERE" in statement.sql
            )
            assert statement.params == (at(0).replace(tzinfo=None), at(10).replace(tzinfo=None))

    def test_the_server_uses_the_forced_index(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, force_index="idx_created") as src:
            assert explain(mariadb, src, window(0, 50_000))["key"] == "idx_created"
            assert src.count(window(0, 100)) == read_all(src, window(0, 100)).num_rows == 100

    def test_index_names_are_case_insensitive(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, force_index="IDX_CREATED", reader="pymysql") as src:
            assert "ORDER BY `created_at`, `id`" in src.extract_statement(window(0, 10)).sql
            assert src.count(window(0, 10)) == 10

    def test_a_forced_index_not_on_the_query_field_drops_the_order(
        self, mariadb: MariaDBServer
    ) -> None:
        with make_source(mariadb, force_index="idx_kind") as src:
            assert "ORDER BY" not in src.extract_statement(window(0, 10)).sql


@pytest.fixture(scope="module")
def types_table(mariadb: MariaDBServer) -> pa.Table:
    with make_source(mariadb, table="all_types", query_field="ts") as src:
        return read_all(src, window(0, 10))


class TestTypes:
    EXPECTED = {
        "ts": (pa.timestamp("us", tz="UTC"), datetime(2025, 1, 1, 0, 0, 1, 123456, tzinfo=UTC)),
        "c_tinyint": (pa.int64(), -128),
        "c_smallint": (pa.int64(), -32768),
        "c_int": (pa.int64(), -2147483648),
        "c_uint": (pa.int64(), 4294967295),
        "c_bigint": (pa.int64(), -9223372036854775808),
        "c_ubigint": (pa.uint64(), 18446744073709551615),
        "c_year": (pa.int64(), 2024),
        "c_bit": (pa.int64(), 0b101010101010),
        "c_bool": (pa.int64(), 1),
        "c_decimal": (pa.decimal128(12, 4), Decimal("12345678.9012")),
        "c_bigdecimal": (
            pa.decimal256(50, 10),
            Decimal("1234567890123456789012345678901234567890.0123456789"),
        ),
        "c_float": (pa.float64(), 1.5),
        "c_double": (pa.float64(), 2.718281828459045),
        "c_date": (pa.date32(), date(2024, 2, 29)),
        "c_datetime": (pa.timestamp("us", tz="UTC"), datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
        "c_timestamp": (
            pa.timestamp("us", tz="UTC"),
            datetime(2024, 3, 1, 12, 0, 0, 125000, tzinfo=UTC),
        ),
        "c_time": (pa.string(), "-838:59:59.99"),
        "c_char": (pa.string(), "ab"),
        "c_varchar": (pa.string(), "héllo 🚀 wörld"),
        "c_text": (pa.string(), "long 🎉 text"),
        "c_enum": (pa.string(), "green"),
        "c_set": (pa.string(), "a,c"),
        "c_json": (pa.string(), '{"k": [1, 2, {"n": null}]}'),
        "c_binary": (pa.binary(), b"\x00\x01\x02"),
        "c_varbinary": (pa.binary(), b"\xca\xfe"),
        "c_blob": (pa.binary(), b"\xde\xad\xbe\xef"),
        "c_bit64": (pa.uint64(), 2**64 - 1),
        "c_uuid": (pa.string(), "123e4567-e89b-12d3-a456-426655440000"),
        "c_inet6": (pa.string(), "2001:db8::1"),
    }

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_column_type_and_value(self, types_table: pa.Table, name: str) -> None:
        table = types_table
        arrow_type, value = self.EXPECTED[name]
        assert table.schema.field(name).type == arrow_type
        assert table.column(name)[0].as_py() == value

    def test_nulls_survive_in_every_column(self, types_table: pa.Table) -> None:
        row = types_table.slice(1, 1).to_pylist()[0]
        assert {k for k, v in row.items() if v is not None} == {"id", "ts"}

    def test_schema_is_known_without_reading_rows(
        self, mariadb: MariaDBServer, types_table: pa.Table
    ) -> None:
        with make_source(mariadb, table="all_types", query_field="ts") as src:
            assert src.schema() == types_table.schema

    def test_zero_and_invalid_dates_read_as_null(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="lax_dates", query_field="ts") as src:
            rows = read_all(src, window(0, 10)).to_pylist()
        assert [(r["d"], r["dt"]) for r in rows] == [
            (None, None),
            (None, None),
            (date(2024, 1, 2), datetime(2024, 1, 2, 3, tzinfo=UTC)),
        ]


class TestTimeZones:
    def test_timestamp_columns_read_in_utc(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="stamps", query_field="ts") as src:
            win = Window(datetime(2025, 1, 1, 0, tzinfo=UTC), datetime(2025, 1, 1, 1, tzinfo=UTC))
            table = read_all(src, win)
            assert src.count(win) == 1
        assert table.column("ts").to_pylist() == [datetime(2025, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)]

    def test_datetime_columns_read_in_the_source_time_zone(self, mariadb: MariaDBServer) -> None:
        # Paris is UTC+1 in January: 01:30 local is 00:30 UTC
        win = Window(datetime(2025, 1, 1, 0, tzinfo=UTC), datetime(2025, 1, 1, 1, tzinfo=UTC))
        with make_source(
            mariadb, table="paris", query_field="ts", source_timezone="Europe/Paris"
        ) as src:
            table = read_all(src, win)
            assert src.count(win) == 1
        assert table.column("id").to_pylist() == [2]
        assert table.column("ts").to_pylist() == [datetime(2025, 1, 1, 0, 30, tzinfo=UTC)]


MEMORY_CHILD = Path(__file__).with_name("sql_memory_child.py")
WIDE_ROWS = 3_600  # one row a second from T0, 16 KB each: about 58 MB in all
WIDE_PAYLOAD = 16_000
WIDE_PAGE = 150  # rows per connectorx page in the memory test: 2.4 MB
WIDE_BATCH = 50
#: glibc gives each new thread its own malloc arena (up to 8 per core) and keeps what is freed
#: there: connectorx reads each page on fresh threads, so with many arenas the process's peak
#: creeps up page after page even though each page is released. One arena makes the
#: measurement about drivetrain's paging, not about the allocator.
CHILD_ENV = {"MALLOC_ARENA_MAX": "1"}


@pytest.fixture(scope="module")
def wide_table(mariadb: MariaDBServer) -> str:
    conn = mariadb.admin(database=mariadb.database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS wide (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,"
                           " created_at DATETIME(6) NOT NULL, payload MEDIUMTEXT NOT NULL, KEY idx_created (created_at))")
            cursor.execute("TRUNCATE TABLE wide")
            cursor.execute(f"INSERT INTO wide (created_at, payload) SELECT '2025-01-01' + INTERVAL (seq - 1) SECOND,"
                           f" REPEAT(CHAR(65 + seq % 26), {WIDE_PAYLOAD}) FROM seq_1_to_{WIDE_ROWS}")
    finally:
        conn.close()
    return "wide"


def extract_growth(server: MariaDBServer, reader: str, seconds: int) -> dict[str, int]:
    """Peak resident memory the extract of window [0, seconds) adds to a fresh process (see the child)."""
    settings = {
        "section": {"host": server.host, "port": server.port, "database": server.database, "table": "wide",
                    "query_field": "created_at", "reader": reader, "batch_size": WIDE_BATCH},
        "user": server.user, "password": server.password, "window": [0, seconds], "page_rows": WIDE_PAGE,
    }
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(MEMORY_CHILD), "mysql", json.dumps(settings)], capture_output=True, text=True,
                          timeout=300, cwd=root, env={**os.environ, **CHILD_ENV})
    assert done.returncode == 0, done.stderr[-3000:]
    measured: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["rows"] == seconds, measured
    return measured


@pytest.mark.slow
class TestMemory:
    """Peak resident memory of a process extracting a window, for both readers.

    The small window is four connectorx pages long, the large one twenty-four, so the
    extract reads the large one page by page (batch by batch with pymysql) over six times the
    data. Bounded, both peak at about the same height; a reader that holds the window (or reads
    ahead without limit) grows with it, several times the small window's peak.
    """

    @pytest.mark.parametrize("reader", ["pymysql", "connectorx"])
    def test_peak_memory_does_not_grow_with_the_window(self, mariadb: MariaDBServer, wide_table: str, reader: str) -> None:
        small = extract_growth(mariadb, reader, 4 * WIDE_PAGE)
        large = extract_growth(mariadb, reader, 24 * WIDE_PAGE)
        page = WIDE_PAGE * WIDE_PAYLOAD
        assert large["growth"] < 2 * max(small["growth"], page), (small, large)
        if reader == "connectorx":
            assert large["selects"] >= 24, large  # it really was read page by page


class TestErrors:
    def test_a_connection_killed_mid_extract_is_transient(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, batch_size=1000, reader="pymysql") as src:
            batches = src.extract(window(0, EVENTS))
            received = next(batches).num_rows
            kill(mariadb, "KILL %s")
            with pytest.raises(TransientError, match="reading rows"):
                for batch in batches:
                    received += batch.num_rows
        assert received < EVENTS

    def test_a_wrong_password_is_permanent_and_not_shown(self, mariadb: MariaDBServer) -> None:
        wrong = "not-the-Right-pw-42"
        with make_source(mariadb, password=wrong) as src, pytest.raises(PermanentError) as info:
            src.count(window(0, 10))
        assert "1045" in str(info.value)
        assert wrong not in str(info.value) and wrong not in repr(info.value)
        assert mariadb.password not in str(info.value)

    def test_an_unknown_table_is_permanent(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="missing") as src, pytest.raises(PermanentError):
            src.count(window(0, 10))

    def test_an_unknown_database_is_permanent(self, mariadb: MariaDBServer) -> None:
        with (
            make_source(mariadb, database="nodb") as src,
            pytest.raises(PermanentError, match="nodb"),
        ):
            list(src.extract(window(0, 10)))

    def test_a_refused_connection_is_transient(self, mariadb: MariaDBServer) -> None:
        src = make_source(mariadb, port=closed_port(), connect_timeout=2)
        with src, pytest.raises(TransientError, match="2003"):
            src.count(window(0, 10))

    def test_missing_credentials_are_permanent(self, mariadb: MariaDBServer) -> None:
        src = MySQLSource(make_source(mariadb).config)
        with pytest.raises(PermanentError, match="credentials_ref"):
            src.count(window(0, 10))

    def test_repr_and_describe_hold_no_secret(self, source: MySQLSource) -> None:
        source.count(window(0, 1))
        assert PASSWORD not in repr(source) + source.describe() + repr(source.credentials)


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            (1205, TransientError),
            (1213, TransientError),
            (2003, TransientError),
            (2006, TransientError),
            (2013, TransientError),
            (1927, TransientError),
            (1045, PermanentError),
            (1049, PermanentError),
            (1146, PermanentError),
            (1054, PermanentError),
            (1064, PermanentError),
        ],
    )
    def test_driver_error_number_decides_the_class(self, code: int, expected: type) -> None:
        import pymysql

        with pytest.raises(expected) as info, mysql_errors("h:1/d.t", "reading rows"):
            raise pymysql.err.OperationalError(code, "server text")
        assert type(info.value) is expected
        assert str(info.value).startswith(f"MySQL h:1/d.t: reading rows failed (error {code}")

    def test_a_password_echoed_by_the_driver_is_blanked(self) -> None:
        import pymysql

        with pytest.raises(PermanentError) as info, mysql_errors("h:1/d.t", "x", secret="s3cr3t!"):
            raise pymysql.err.ProgrammingError(1064, "near 's3cr3t!'")
        assert "s3cr3t!" not in str(info.value)

    def test_our_own_errors_pass_through(self) -> None:
        with pytest.raises(TransientError, match="^as is$"), mysql_errors("h:1/d.t", "x"):
            raise TransientError("as is")

    def test_a_query_killed_mid_extract_is_transient(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, batch_size=1000, reader="pymysql") as src:
            batches = src.extract(window(0, EVENTS))
            next(batches)
            kill(mariadb, "KILL QUERY %s")
            with pytest.raises(TransientError, match="1317"):
                list(batches)

    def test_a_missing_client_library_names_the_extra(
        self, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        src = make_source(mariadb)
        monkeypatch.setitem(sys.modules, "pymysql", None)  # what an absent package looks like
        with pytest.raises(MissingExtraError, match=r"drivetrain\[mysql\]"):
            src.count(window(0, 1))


def kill(server: MariaDBServer, statement: str) -> None:
    """Run KILL (or KILL QUERY) on the drivetrain user's running query."""
    admin = server.admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s"
                " AND COMMAND = 'Query' AND INFO LIKE 'SELECT %%events%%'",
                (server.user,),
            )
            (thread,) = cursor.fetchone()
            cursor.execute(statement, (thread,))
    finally:
        admin.close()


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestTLS:
    @pytest.fixture
    def certificates(self, mariadb: MariaDBServer) -> dict[str, Path]:
        if mariadb.certificates is None:
            pytest.fail("the test server has no TLS certificates: is openssl installed?")
        return mariadb.certificates

    @pytest.fixture
    def ca(self, certificates: dict[str, Path]) -> str:
        return str(certificates["ca"])

    def test_relative_paths_are_read_from_the_config_folder(
        self, mariadb: MariaDBServer, certificates: dict[str, Path]
    ) -> None:
        folder = certificates["ca"].parent
        src = make_source(mariadb, base_dir=folder, host="localhost", ssl={"ca": "ca.pem"})
        assert src.options.ssl is not None and src.options.ssl.ca == certificates["ca"]

    def test_a_missing_ca_file_is_a_config_error(self, mariadb: MariaDBServer) -> None:
        with pytest.raises(ConfigError, match=r"ssl\.ca"):
            make_source(mariadb, ssl={"ca": "no-such-ca.pem"})

    def test_a_tls_only_user_connects_with_the_ca(self, mariadb: MariaDBServer, ca: str) -> None:
        with make_source(mariadb, host="localhost", user=TLS_USER, ssl={"ca": ca}) as src:
            assert src.count(window(0, 10)) == 10

    def test_a_host_not_named_by_the_certificate_is_refused(
        self, mariadb: MariaDBServer, ca: str
    ) -> None:
        src = make_source(mariadb, user=TLS_USER, ssl={"ca": ca})
        with src, pytest.raises(PermanentError, match="certificate"):
            src.count(window(0, 10))

    def test_verify_identity_false_accepts_another_host_name(
        self, mariadb: MariaDBServer, ca: str
    ) -> None:
        with make_source(mariadb, user=TLS_USER, ssl={"ca": ca, "verify_identity": False}) as src:
            assert src.count(window(0, 10)) == 10

    def test_a_certificate_from_another_authority_is_refused(
        self, mariadb: MariaDBServer, certificates: dict[str, Path]
    ) -> None:
        other = str(certificates["other-ca"])
        src = make_source(mariadb, host="localhost", user=TLS_USER, ssl={"ca": other})
        with src, pytest.raises(PermanentError, match="certificate"):
            src.count(window(0, 10))
