"""``warehouse_backend``: every SQL warehouse backend, for store-level suites written once.

Another backend plugs in by adding its name to ``BACKENDS`` and a branch to ``_make`` (PostgreSQL:
a schema of its own per test on the session's server, see tests/connectors/postgres/warehouse.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.warehouse import Warehouse

BACKENDS = ["duckdb", "snowflake", "postgres"]
#: Backends that hold only a drive table (no stage or target): the drive-store suites run on them too.
DRIVE_ONLY = ["sqlite"]


def _make(name: str, request: pytest.FixtureRequest, tmp_path: Any) -> Warehouse:
    if name == "sqlite":
        from drivetrain.connectors.sqlite import SqliteWarehouse

        return SqliteWarehouse(SystemConfig.from_section("drive_table", {"type": "sqlite", "path": "drive.sqlite"}, base_dir=tmp_path))
    if name == "duckdb":
        return DuckDBWarehouse(SystemConfig.from_section("stage_system", {"type": "duckdb", "path": "w.duckdb", "table": "stg"},
                                                         base_dir=tmp_path))
    if name == "postgres":
        from tests.connectors.postgres.warehouse import make_warehouse as make_pg_warehouse

        return make_pg_warehouse(request.getfixturevalue("postgres"), request.getfixturevalue("monkeypatch"), table="stg")
    from tests.connectors.snowflake.conftest import ENV, make_warehouse

    monkeypatch = request.getfixturevalue("monkeypatch")
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return make_warehouse(request.getfixturevalue("fakesnow_server"), request.getfixturevalue("database"), table="stg")


@pytest.fixture
def database() -> str:
    """A Snowflake database no other test uses."""
    import uuid

    return f"T_{uuid.uuid4().hex[:12].upper()}"


def _closed_after(wh: Warehouse) -> Iterator[Warehouse]:
    try:
        yield wh
    finally:
        wh.close()


@pytest.fixture(params=BACKENDS)
def warehouse_backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Warehouse]:
    """A warehouse of each backend, empty, closed after the test."""
    yield from _closed_after(_make(request.param, request, tmp_path))


@pytest.fixture(params=BACKENDS + DRIVE_ONLY)
def drive_backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Warehouse]:
    """A warehouse of each backend that can hold a drive table, empty, closed after the test."""
    yield from _closed_after(_make(request.param, request, tmp_path))


def rows(wh: Warehouse, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Look at what was written, through the warehouse's own session."""
    with wh.sql("test look-up") as session:
        return [tuple(r) for r in session.rows(sql, params or [])]
