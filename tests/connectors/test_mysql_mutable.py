"""``drivetrain new --source mysql`` against the real MariaDB: an updated row is in the target once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.cli._templates import SAMPLE_DAY
from drivetrain.cli.scaffold import scaffold
from tests.servers.mariadb import MariaDBServer

START = datetime.fromisoformat(SAMPLE_DAY).replace(tzinfo=UTC)


def run(folder: Path, hour: int) -> None:
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.window_starting(START + timedelta(hours=hour)))
    assert record.pipeline_status is RunStatus.SUCCESS, record.phases[record.phase_failed or "audit"].error_message


def test_a_mysql_row_updated_into_a_later_window_is_in_the_target_once(
    tmp_path: Path, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = f"orders_{uuid.uuid4().hex[:8]}"
    with mariadb.admin() as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, status VARCHAR(20), updated_at DATETIME(6) NOT NULL)")
        cursor.execute(f"INSERT INTO {table} VALUES (1, 'new', '{SAMPLE_DAY} 00:05:00'), (2, 'new', '{SAMPLE_DAY} 00:10:00'),"
                       f" (3, 'paid', '{SAMPLE_DAY} 01:15:00')")
    folder = tmp_path / "shop"
    scaffold(folder, "shop", "mysql")
    config = json.loads((folder / "config.json").read_text())
    config["source_system"].update(host=mariadb.host, port=mariadb.port, database=mariadb.database, table=table)
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("SHOP_MYSQL_USER", mariadb.user)
    monkeypatch.setenv("SHOP_MYSQL_PASSWORD", mariadb.password)

    run(folder, 0)
    with mariadb.admin() as conn, conn.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET status = 'closed', updated_at = '{SAMPLE_DAY} 02:30:00' WHERE id = 1")
    run(folder, 1)
    run(folder, 2)

    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT id, status FROM shop ORDER BY id").fetchall()
    assert rows == [(1, "CLOSED"), (2, "NEW"), (3, "PAID")]
