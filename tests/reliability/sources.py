"""Pipeline folders whose source is a real MySQL server or an HTTP emulator.

Each ``*_pipeline`` function loads the factory's rows (tests/sdk/factory.make_rows) into the
server under a name of its own, then writes a pipeline folder (DuckDB stage and target, as the
factory makes them) whose ``source_system`` reads them. Credentials go through the environment
under ``credentials_ref``, as in production; the caller passes a ``monkeypatch`` to set them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.emulators.elasticsearch import EsEmulator
from tests.emulators.servicenow import SnEmulator
from tests.sdk.factory import make_pipeline_dir, ts_of
from tests.servers.mariadb import MariaDBServer

MYSQL_REF = "rel_mysql"
SN_REF = "rel_sn"


def utc(row: dict[str, Any]) -> datetime:
    return ts_of(row).astimezone(UTC)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def mysql_pipeline(root: Path, server: MariaDBServer, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
                   padding: int = 0, port: int | None = None, **changes: Any) -> Path:
    """``rows`` in a new MariaDB table (DATETIME(6) query field, indexed), read by the mysql source.

    ``padding`` characters in an extra column make the rows wide (the stage does not declare it);
    ``port`` sends the source through another port on 127.0.0.1 (a proxy in front of the server).
    """
    table = _name("lab")
    admin = server.admin(database=server.database)
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, test_id VARCHAR(32), age VARCHAR(16),"
                " result VARCHAR(32), reported_at DATETIME(6) NOT NULL, padding TEXT, KEY (reported_at))"
            )
            cursor.executemany(
                f"INSERT INTO {table} (test_id, age, result, reported_at, padding) VALUES (%s, %s, %s, %s, %s)",
                [(r["test_id"], str(r["age"]), r["result"], utc(r).replace(tzinfo=None), "p" * padding) for r in rows],
            )
        admin.commit()
    finally:
        admin.close()
    monkeypatch.setenv(f"{MYSQL_REF.upper()}_USER", server.user)
    monkeypatch.setenv(f"{MYSQL_REF.upper()}_PASSWORD", server.password)
    source = {"type": "mysql", "host": server.host, "port": port or server.port, "database": server.database, "table": table,
              "query_field": "reported_at", "credentials_ref": MYSQL_REF, "batch_size": 50, "connect_timeout": 5}
    return make_pipeline_dir(root, [], source_system=source, **changes)


def es_pipeline(root: Path, es: EsEmulator, rows: list[dict[str, Any]], **changes: Any) -> Path:
    """``rows`` as documents of a new index, read by the elasticsearch source."""
    index = _name("lab")
    es.add_documents(index, [{"_id": r["test_id"] + f"-{i}", **r} for i, r in enumerate(rows)],
                     mapping={"properties": {"reported_at": {"type": "date"}, "test_id": {"type": "keyword"}}})
    source = {"type": "elasticsearch", "endpoint": es.url, "index": index, "query_field": "reported_at", "batch_size": 50}
    return make_pipeline_dir(root, [], source_system=source, **changes)


def sn_time(row: dict[str, Any]) -> str:
    """ServiceNow's stored form of a date-time: UTC, to the second."""
    return utc(row).strftime("%Y-%m-%d %H:%M:%S")


def sn_pipeline(root: Path, sn: SnEmulator, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
                **changes: Any) -> Path:
    """``rows`` as records of a new table, read by the servicenow source (whole seconds)."""
    table = _name("u_lab")
    sn.add_records(table, [{**r, "age": str(r["age"]), "reported_at": sn_time(r)} for r in rows])
    monkeypatch.setenv(f"{SN_REF.upper()}_USER", sn.user)
    monkeypatch.setenv(f"{SN_REF.upper()}_PASSWORD", sn.password)
    source = {"type": "servicenow", "host": sn.host, "use_ssl": False, "table": table, "query_field": "reported_at",
              "datetime_fields": ["reported_at"], "credentials_ref": SN_REF, "batch_size": 50, "backoff": 0.01}
    return make_pipeline_dir(root, [], source_system=source, **changes)


def whole_seconds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as ServiceNow keeps them (fractions of a second dropped)."""
    out = []
    for row in rows:
        ts = utc(row).replace(microsecond=0)
        out.append({**row, "reported_at": ts.isoformat().replace("+00:00", "Z")})
    return out
