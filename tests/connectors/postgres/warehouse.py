"""PostgreSQL warehouses for tests: each gets a schema of its own on the session's server.

The schema belongs to the server's ``drivetrain`` role, which connects through ``credentials_ref``
(``PG_WH_USER`` / ``PG_WH_PASSWORD`` in the environment, as in production), so subprocesses of a
test (crash and race scenarios) inherit the credentials and reach the same tables.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.postgres import PostgresWarehouse
from drivetrain.warehouse import TableRef
from drivetrain.window import Window
from tests.servers.postgres import PostgresServer

CREDENTIALS_REF = "pg_wh"


def new_schema(server: PostgresServer) -> str:
    """An empty schema owned by the test role, which no other test uses."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with server.admin() as conn:
        conn.execute(f"CREATE SCHEMA {name} AUTHORIZATION {server.user}")
    return name


def env(server: PostgresServer) -> dict[str, str]:
    """The environment holding the test role's credentials under :data:`CREDENTIALS_REF`."""
    return {f"{CREDENTIALS_REF.upper()}_USER": server.user, f"{CREDENTIALS_REF.upper()}_PASSWORD": server.password}


def section(server: PostgresServer, schema: str, **extra: Any) -> dict[str, Any]:
    """A warehouse section for ``server``'s database and ``schema``."""
    return {"type": "postgres", "host": server.host, "port": server.port, "database": server.database,
            "schema": schema, "credentials_ref": CREDENTIALS_REF, **extra}


def make_warehouse(server: PostgresServer, monkeypatch: pytest.MonkeyPatch, *, schema: str | None = None,
                   role: str = "stage_system", base_dir: Path = Path("."), **extra: Any) -> PostgresWarehouse:
    for key, value in env(server).items():
        monkeypatch.setenv(key, value)
    config = SystemConfig.from_section(role, section(server, schema or new_schema(server), **extra), base_dir=base_dir)
    config.validate_against(PostgresWarehouse.options_schema)
    return PostgresWarehouse(config, config.credentials())


def load(wh: PostgresWarehouse, table: TableRef, window: Window, *batches: Any) -> dict[str, int]:
    """Load ``batches`` (Arrow record batches) as ``table``'s ``window`` in one window load; its counts."""
    with wh.window_load(window, "k") as job:
        for batch in batches:
            job.append(table, batch)
        return job.commit([table])
