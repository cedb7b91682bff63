"""The contract sits between every source and the stage: a MariaDB table that gains a column and
widens a type, Elasticsearch documents that gain a field."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.emulators.elasticsearch import EsEmulator
from tests.servers.mariadb import MariaDBServer

from .scenario import Lab, details, hour, records
from .test_policies import KEY, balanced, with_note

MYSQL_REF = "schema_mysql"


def mariadb_sql(server: MariaDBServer, *statements: tuple[str, Any]) -> None:
    admin = server.admin(database=server.database)
    try:
        with admin.cursor() as cursor:
            for sql, params in statements:
                if params and isinstance(params[0], tuple):
                    cursor.executemany(sql, params)
                else:
                    cursor.execute(sql, params or None)
        admin.commit()
    finally:
        admin.close()


def rows_of(i: int) -> list[tuple[Any, ...]]:
    """(test_id, age, reported_at, note) of hour ``i``'s records, as records() makes them (naive UTC time)."""
    return [(f"T{i:02d}{k:03d}", k, hour(i).replace(tzinfo=None) + timedelta(minutes=k), with_note(k)) for k in range(10)]


def test_a_mariadb_table_that_gains_a_column_and_a_wider_type(tmp_path: Path, mariadb: MariaDBServer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    table = f"lab_{uuid.uuid4().hex[:10]}"
    insert = f"INSERT INTO {table} (test_id, age, reported_at) VALUES (%s, %s, %s)"
    mariadb_sql(mariadb, (f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, test_id VARCHAR(32), age INT,"
                          " reported_at DATETIME(6) NOT NULL, KEY (reported_at))", ()),
                (insert, tuple(r[:3] for r in rows_of(0))))
    monkeypatch.setenv(f"{MYSQL_REF.upper()}_USER", mariadb.user)
    monkeypatch.setenv(f"{MYSQL_REF.upper()}_PASSWORD", mariadb.password)
    lab = Lab(tmp_path / "lab", contract={"columns": "freeze"})
    lab.config["source_system"] = {"type": "mysql", "host": mariadb.host, "port": mariadb.port, "database": mariadb.database,
                                   "table": table, "query_field": "reported_at", "credentials_ref": MYSQL_REF, "batch_size": 4}
    lab.save()
    balanced(lab.run(0))

    mariadb_sql(mariadb, (f"ALTER TABLE {table} ADD COLUMN note VARCHAR(20), MODIFY age DOUBLE", ()),
                (f"INSERT INTO {table} (test_id, age, reported_at, note) VALUES (%s, %s, %s, %s)",
                 tuple((t, a + 0.5, ts, n) for t, a, ts, n in rows_of(1))))
    frozen = lab.run(1)

    message = frozen.phases["source_to_stage_transfer"].error_message or ""
    assert frozen.phase_failed == "source_to_stage_transfer" and "'note'" in message and f"{KEY}.columns" in message

    lab.set_contract("evolve")
    record = lab.run(1)

    balanced(record)
    assert lab.columns("target")["age"] == "DOUBLE" and "note" in lab.columns("target")
    assert [(r["age"], r["note"]) for r in lab.rows(1)] == [(k + 0.5, with_note(k)) for k in range(10)]
    changes = {(c["column"], c["change"]) for c in details(record, "publish")["schema_changes"]}
    assert changes == {("note", "added"), ("age", "widened")}


def test_elasticsearch_documents_that_gain_a_field_under_discard_value(tmp_path: Path, es: EsEmulator) -> None:
    index = f"lab_{uuid.uuid4().hex[:10]}"
    mapping = {"properties": {"reported_at": {"type": "date"}, "test_id": {"type": "keyword"}}}
    es.add_documents(index, [{"_id": r["test_id"], **r} for r in records(0)], mapping=mapping)
    lab = Lab(tmp_path / "lab", contract={"columns": "discard_value"})
    lab.config["source_system"] = {"type": "elasticsearch", "endpoint": es.url, "index": index, "query_field": "reported_at",
                                   "batch_size": 4}
    lab.save()
    balanced(lab.run(0))
    es.add_documents(index, [{"_id": r["test_id"], **{k: v for k, v in r.items() if v is not None}}
                             for r in records(1, note=with_note)])

    record = lab.run(1)

    balanced(record)
    assert "note" not in lab.columns("target") and len(lab.rows(1)) == 10
    assert sum(details(record, "source_to_stage_transfer")["schema_discards"]["values"].values()) == 4
