"""Fixtures: one fakesnow server per test session, a database of its own per test.

The real snowflake-connector-python talks HTTP to the server; credentials come from the
environment (``SF_TEST_USER`` / ``SF_TEST_PASSWORD``) through ``credentials_ref``, as in
production. Subprocesses (crash and race scenarios) inherit the environment and reach the same
server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.snowflake import SnowflakeWarehouse
from tests.servers.fakesnow_server import FakeSnowServer

CREDENTIALS_REF = "sf_test"
ENV = {"SF_TEST_USER": "fake", "SF_TEST_PASSWORD": "snow-Pa55word"}


@pytest.fixture
def sf_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return ENV


@pytest.fixture
def database() -> str:
    """A database no other test uses (fakesnow creates it at the first login)."""
    return f"T_{uuid.uuid4().hex[:12].upper()}"


def section(server: FakeSnowServer, database: str, **extra: Any) -> dict[str, Any]:
    """A Snowflake config section for ``server``, credentials through the environment."""
    return {**server.options(database), "credentials_ref": CREDENTIALS_REF, **extra}


def make_warehouse(server: FakeSnowServer, database: str, role: str = "stage_system", **extra: Any) -> SnowflakeWarehouse:
    config = SystemConfig.from_section(role, section(server, database, **extra))
    config.validate_against(SnowflakeWarehouse.options_schema)
    return SnowflakeWarehouse(config, config.credentials())


@pytest.fixture
def warehouse(fakesnow_server: FakeSnowServer, database: str, sf_env: dict[str, str]) -> Iterator[SnowflakeWarehouse]:
    wh = make_warehouse(fakesnow_server, database, table="t")
    try:
        yield wh
    finally:
        wh.close()


def sf_rows(server: FakeSnowServer, database: str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run SQL on the server with a connection of the test's own (to look at what was written)."""
    import snowflake.connector

    kwargs = {k: v for k, v in server.options(database).items() if k in ("account", "host", "port", "protocol", "database", "schema", "network_timeout")}
    with snowflake.connector.connect(user="fake", password="snow", paramstyle="qmark", **kwargs) as conn:
        return list(conn.cursor().execute(sql, params).fetchall())
