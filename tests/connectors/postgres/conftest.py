"""The PostgreSQL source's test data, loaded once into the session's server, and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drivetrain.connectors.postgres import PostgresSource
from drivetrain.window import Window
from tests.connectors.sql_sources import read_all as read_all  # re-exported for the tests here
from tests.connectors.sql_sources import server_source
from tests.servers.postgres import PostgresServer

T0 = datetime(2025, 1, 1, tzinfo=UTC)
EVENTS = 30_000  # one row per second from T0
READERS = ("adbc", "psycopg")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def window(start: float, end: float) -> Window:
    return Window(at(start), at(end))


DATASET = f"""
CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, kind text NOT NULL,
    payload text);
INSERT INTO events SELECT g, timestamptz '2025-01-01 00:00:00+00' + (g - 1) * interval '1 second',
    CASE WHEN g % 2 = 1 THEN 'odd' ELSE 'even' END, repeat('x', 100)
    FROM generate_series(1, {EVENTS}) g;
CREATE INDEX idx_created ON events (created_at);
CREATE TABLE bounds (id int PRIMARY KEY, ts timestamp NULL);
CREATE INDEX ON bounds (ts);
INSERT INTO bounds VALUES (1, '2025-01-01 00:00:09.999999'), (2, '2025-01-01 00:00:10'),
    (3, '2025-01-01 00:00:10.000001'), (4, '2025-01-01 00:00:19.999999'),
    (5, '2025-01-01 00:00:20'), (6, NULL), (7, 'infinity'), (8, '-infinity');
CREATE TABLE bounds_tz (id int PRIMARY KEY, ts timestamptz NOT NULL);
INSERT INTO bounds_tz VALUES (1, '2025-01-01 00:00:09.999999+00'), (2, '2025-01-01 00:00:10+00'),
    (3, '2025-01-01 00:00:10.000001+00'), (4, '2025-01-01 00:00:19.999999+00'),
    (5, '2025-01-01 00:00:20+00'), (6, '2025-01-01 01:00:10+01');
CREATE TABLE days (id int PRIMARY KEY, day date NOT NULL);
INSERT INTO days VALUES (1, '2024-12-31'), (2, '2025-01-01'), (3, '2025-01-02');
CREATE TABLE noindex (id int PRIMARY KEY, ts timestamptz NOT NULL, label text);
INSERT INTO noindex VALUES (1, '2025-01-01 00:00:01+00', 'a');
CREATE VIEW odd_events AS SELECT id, created_at, kind FROM events WHERE kind = 'odd';
CREATE TABLE "MixedCase" ("Id" int PRIMARY KEY, "CreatedAt" timestamptz NOT NULL);
INSERT INTO "MixedCase" VALUES (1, '2025-01-01 00:00:01+00');
CREATE TABLE local_times (id int PRIMARY KEY, ts timestamp NOT NULL);
"""


@pytest.fixture(scope="session")
def pg(postgres: PostgresServer) -> PostgresServer:
    """The session's server with this folder's tables loaded."""
    with postgres.admin() as conn:
        exists = conn.execute("SELECT to_regclass('public.events')").fetchone()[0]
        if exists is None:
            conn.execute(DATASET)
            conn.execute("ANALYZE")
    return postgres


def make_source(
    server: PostgresServer,
    *,
    user: str | None = None,
    password: str | None = None,
    base_dir: Path = Path("."),
    **options: Any,
) -> PostgresSource:
    return server_source(PostgresSource, server, "postgres", options, ref="test_pg", user=user,
                         password=password, base_dir=base_dir, drop_none=True)


@pytest.fixture
def source(pg: PostgresServer) -> Iterator[PostgresSource]:
    with make_source(pg) as src:
        yield src
