"""PostgreSQL types arrive as the documented Arrow types, the same through both readers, and
timestamp (without time zone) values are read in source_timezone across clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from drivetrain.window import Window, local_instant
from tests.servers.postgres import PostgresServer

from .conftest import READERS, make_source, read_all

TYPES_TABLE = """
CREATE TABLE IF NOT EXISTS typed (
    id int PRIMARY KEY, ts timestamptz NOT NULL,
    small smallint, big bigint, real_ real, dbl double precision,
    money_ numeric(12, 2), wide numeric(50, 10), loose numeric, flag boolean,
    name_ varchar(20), fixed char(3), body text, doc json, docb jsonb, uid uuid, raw bytea,
    naive timestamp, day date, clock time, span interval, ints int[], words text[], addr inet
);
TRUNCATE typed;
INSERT INTO typed VALUES (1, '2025-01-01 00:00:01+00', -32768, 9223372036854775807, 1.5, 2.25,
    1234567890.12, 12345678901234567890123456789012345678.0123456789, 'NaN', true,
    'héllo 🚀 wörld', 'ab', 'long text', '{"k": [1, 2, {"n": null}]}', '{"b": 1, "a": "x"}',
    '123e4567-e89b-12d3-a456-426655440000', '\\x000102ff', '2025-06-01 12:30:00.000001',
    '2025-06-01', '23:59:59.999999', '1 day 02:00:00', '{1,NULL,3}', '{"a","b c"}', '10.0.0.1'),
    (2, '2025-01-01 00:00:02+00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""

EXPECTED: dict[str, tuple[pa.DataType, Any]] = {
    "small": (pa.int16(), -32768),
    "big": (pa.int64(), 9223372036854775807),
    "real_": (pa.float32(), 1.5),
    "dbl": (pa.float64(), 2.25),
    "money_": (pa.decimal128(12, 2), Decimal("1234567890.12")),
    "wide": (pa.decimal256(50, 10), Decimal("12345678901234567890123456789012345678.0123456789")),
    "loose": (pa.string(), "NaN"),
    "flag": (pa.bool_(), True),
    "name_": (pa.string(), "héllo 🚀 wörld"),
    "fixed": (pa.string(), "ab "),
    "body": (pa.string(), "long text"),
    "doc": (pa.string(), '{"k": [1, 2, {"n": null}]}'),
    "docb": (pa.string(), '{"a": "x", "b": 1}'),
    "uid": (pa.string(), "123e4567-e89b-12d3-a456-426655440000"),
    "raw": (pa.binary(), b"\x00\x01\x02\xff"),
    "naive": (pa.timestamp("us", tz="UTC"), datetime(2025, 6, 1, 12, 30, 0, 1, tzinfo=UTC)),
    "day": (pa.date32(), date(2025, 6, 1)),
    "clock": (pa.time64("us"), time(23, 59, 59, 999999)),
    "span": (pa.string(), "1 day 02:00:00"),
    "ints": (pa.string(), "[1,null,3]"),
    "words": (pa.string(), '["a","b c"]'),
    "addr": (pa.string(), "10.0.0.1/32"),  # inet cast to text keeps its mask
}


@pytest.fixture(scope="module")
def typed(pg: PostgresServer) -> dict[str, pa.Table]:
    with pg.admin() as conn:
        conn.execute(TYPES_TABLE)
    tables = {}
    for reader in READERS:
        with make_source(pg, reader=reader, table="typed", query_field="ts") as src:
            tables[reader] = read_all(src, Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)))
    return tables


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_column_type_and_value(typed: dict[str, pa.Table], reader: str, name: str) -> None:
    table = typed[reader].sort_by("id")
    arrow_type, value = EXPECTED[name]
    assert table.schema.field(name).type == arrow_type
    assert table.column(name).to_pylist() == [value, None]


def test_both_readers_yield_equal_tables(typed: dict[str, pa.Table]) -> None:
    assert typed["adbc"].sort_by("id").equals(typed["psycopg"].sort_by("id"))


def test_schema_is_known_without_reading_rows(pg: PostgresServer, typed: dict[str, pa.Table]) -> None:
    with make_source(pg, table="typed", query_field="ts") as src:
        assert src.schema() == typed["adbc"].schema


def _berlin_rows() -> list[datetime]:
    """Every 10 minutes across both 2025 clock changes in Berlin, as wall-clock readings."""
    rows = []
    for day in (datetime(2025, 3, 30), datetime(2025, 10, 26)):
        rows += [day + timedelta(minutes=10 * i) for i in range(6 * 6)]
    return rows


@pytest.fixture(scope="module")
def local_times(pg: PostgresServer) -> list[datetime]:
    rows = _berlin_rows()
    with pg.admin() as conn:
        conn.execute("TRUNCATE local_times")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO local_times VALUES (%s, %s)", list(enumerate(rows)))
    return rows


@pytest.mark.parametrize("reader", READERS)
def test_naive_timestamps_are_read_in_the_source_time_zone_each_row_in_one_window(
    pg: PostgresServer, local_times: list[datetime], reader: str
) -> None:
    zone = "Europe/Berlin"
    seen: dict[int, datetime] = {}
    with make_source(pg, reader=reader, table="local_times", query_field="ts", source_timezone=zone) as src:
        for day in (datetime(2025, 3, 29, 22, tzinfo=UTC), datetime(2025, 10, 25, 22, tzinfo=UTC)):
            for hour in range(8):  # hourly UTC windows over the night of the change
                win = Window(day + timedelta(hours=hour), day + timedelta(hours=hour + 1))
                table = read_all(src, win)
                assert src.count(win) == table.num_rows
                for ident, value in zip(table.column("id").to_pylist(), table.column("ts").to_pylist(), strict=True):
                    assert ident not in seen, "a row was read by two windows"
                    assert win.start <= value < win.end
                    seen[ident] = value
    assert sorted(seen) == list(range(len(local_times)))
    for ident, value in seen.items():
        assert value == local_instant(local_times[ident], zone)
    skipped = local_times.index(datetime(2025, 3, 30, 2, 30))  # no such Berlin time: the jump
    assert seen[skipped] == datetime(2025, 3, 30, 3, 0, tzinfo=ZoneInfo(zone))
