"""Fixtures for the contrib pipelines: the test servers, and overrides that point at them.

Each contrib pipeline is loaded by its registered name with ``overrides`` that point its
hosts, endpoints, databases and archive at the servers started here; the registered
config.json is never edited. Servers start once per session and fail the tests that need
them, with the reason, when they cannot start (all from tests/conftest.py, the one place test
servers are started):

- fakesnow (the real Snowflake connector over HTTP) for stage, target and drive table;
- the Elasticsearch and ServiceNow emulators (the real client libraries over HTTP);
- a throwaway MariaDB server for the MySQL source.

Credentials reach the pipelines through the environment, under the ``credentials_ref`` names
the registered configs use, exactly as they would in production.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its configuration when first imported: the DAG tests share the Airflow tests'
# home and metadata database (importing their conftest sets the environment, once per process).
from tests.airflow.conftest import airflow_db  # noqa: F401 - a fixture, used by name
from tests.servers.fakesnow_server import FakeSnowServer

#: The warehouse credentials every contrib config names (``credentials_ref: cdw_snowflake``).
SNOWFLAKE_ENV = {"CDW_SNOWFLAKE_USER": "loader", "CDW_SNOWFLAKE_PASSWORD": "cdw-Pa55word-test"}
#: Keys of a fakesnow section that replace the registered account's connection settings.
SNOWFLAKE_KEYS = ("account", "host", "port", "protocol", "network_timeout", "login_timeout", "session_parameters")


def new_databases(server: FakeSnowServer) -> tuple[str, str]:
    """A stage and a target database of their own, created as an administrator would."""
    import snowflake.connector

    base = f"T_{uuid.uuid4().hex[:10].upper()}"
    names = (f"{base}_CADS", f"{base}_CDW")
    options = server.options(names[0])
    kwargs = {k: options[k] for k in ("account", "host", "port", "protocol", "network_timeout")}
    with snowflake.connector.connect(user="admin", password="admin", **kwargs) as conn:
        for name in names:
            conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {name}")
    return names


def snowflake_overrides(server: FakeSnowServer, stage_db: str, target_db: str) -> dict[str, Any]:
    """Dotted overrides pointing stage and target (and so the drive table) at ``server``."""
    out: dict[str, Any] = {}
    for role, database in (("stage_system", stage_db), ("target_system", target_db)):
        options = server.options(database)
        out.update({f"{role}.{key}": options[key] for key in SNOWFLAKE_KEYS})
        out[f"{role}.database"] = database
    return out


def sf_rows(server: FakeSnowServer, database: str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run SQL on the server with a connection of the test's own (to look at what was written)."""
    import snowflake.connector

    options = server.options(database)
    kwargs = {k: options[k] for k in ("account", "host", "port", "protocol", "database", "network_timeout")}
    with snowflake.connector.connect(user="reader", password="reader", paramstyle="qmark", **kwargs) as conn:
        return list(conn.cursor().execute(sql, params).fetchall())


@pytest.fixture(scope="module")
def warehouse_env() -> Iterator[dict[str, str]]:
    """The warehouse credentials in the environment for a whole module (runs share them)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in SNOWFLAKE_ENV.items():
            patch.setenv(key, value)
        yield SNOWFLAKE_ENV


def archive_override(folder: Path) -> dict[str, Any]:
    """Stage cleaning archives to a local folder instead of the registered S3 bucket."""
    return {"phases.stage_cleaning.archive_location": str(folder)}
