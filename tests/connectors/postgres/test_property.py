"""Property: for any rows and any tiling of time into windows, the windows' extracts together
hold every placeable row of the tiled span exactly once, each in the window of its instant, and
each window's count equals its extract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.window import Window, local_instant
from tests.servers.postgres import PostgresServer

from .conftest import READERS, make_source, read_all

BASE = datetime(2025, 3, 29, 12)  # Berlin's clocks go forward at 2025-03-30 01:00 UTC
SPAN = timedelta(days=2)
MICROS = int(SPAN / timedelta(microseconds=1))

readings = st.one_of(
    st.none(),
    st.integers(0, MICROS).map(lambda us: BASE + timedelta(microseconds=us)),
    st.integers(0, 48).map(lambda h: BASE + timedelta(hours=h)),  # on the hour: on window edges
)


@pytest.fixture(scope="module")
def prop_tables(pg: PostgresServer) -> PostgresServer:
    with pg.admin() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS prop_naive (id int PRIMARY KEY, ts timestamp)")
        conn.execute("CREATE TABLE IF NOT EXISTS prop_tz (id int PRIMARY KEY, ts timestamptz)")
    return pg


def instant(value: datetime, kind: str, zone: str) -> datetime:
    return local_instant(value, zone) if kind == "naive" else value.replace(tzinfo=UTC)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("kind", "zone"), [("naive", "Europe/Berlin"), ("naive", "UTC"), ("tz", "UTC")])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(readings, max_size=40),
    cuts=st.lists(st.integers(1, MICROS - 1), max_size=6, unique=True),
    hourly=st.booleans(),
    batch_size=st.integers(1, 7),
)
def test_windows_tile_the_table_each_row_once(
    prop_tables: PostgresServer, reader: str, kind: str, zone: str, rows: list[datetime | None],
    cuts: list[int], hourly: bool, batch_size: int,
) -> None:
    table = f"prop_{kind}"
    with prop_tables.admin() as conn:
        conn.execute(f"TRUNCATE {table}")
        with conn.cursor() as cursor:
            values = [(i, v if v is None or kind == "naive" else v.replace(tzinfo=UTC)) for i, v in enumerate(rows)]
            cursor.executemany(f"INSERT INTO {table} VALUES (%s, %s)", values)
    start = BASE.replace(tzinfo=UTC) - timedelta(hours=3)
    if hourly:
        edges = [start + timedelta(hours=h) for h in range(0, 57, 4)]  # edges on whole hours
    else:
        edges = [start, *sorted(BASE.replace(tzinfo=UTC) + timedelta(microseconds=c) for c in cuts),
                 start + SPAN + timedelta(hours=6)]
    found: dict[int, int] = {}
    with make_source(prop_tables, reader=reader, table=table, query_field="ts", source_timezone=zone,
                     batch_size=batch_size) as src:
        for number, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False)):
            extracted = read_all(src, Window(lo, hi))
            assert src.count(Window(lo, hi)) == extracted.num_rows
            for ident in extracted.column("id").to_pylist():
                assert ident not in found, "a row came in two windows"
                found[ident] = number
    expected = {}
    for i, value in enumerate(rows):
        if value is None:
            continue
        at = instant(value, kind, zone)
        for number, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False)):
            if lo <= at < hi:
                expected[i] = number
    assert found == expected
