"""``drivetrain new NAME --source postgres`` writes a config that runs against a real server once
its placeholders are filled in, and a test that passes on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers.postgres import PostgresServer

SCRIPT = Path(sys.executable).with_name("drivetrain")


def drivetrain(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "HOME": str(cwd), "NO_COLOR": "1", **(env or {})}
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_scaffold_runs_a_window_from_a_real_server(tmp_path: Path, postgres: PostgresServer) -> None:
    with postgres.admin() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS feed_orders (id int PRIMARY KEY, status text,"
                     " amount numeric(10, 2), updated_at timestamptz NOT NULL)")
        conn.execute("TRUNCATE feed_orders")
        conn.execute("INSERT INTO feed_orders SELECT g, 'paid', g * 1.5,"
                     " timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 90) g")
    done = drivetrain(tmp_path, "new", "feed", "--source", "postgres")
    assert done.returncode == 0, done.stderr
    config_file = tmp_path / "feed" / "config.json"
    config = json.loads(config_file.read_text())
    source = config["source_system"]
    assert (source["type"], source["credentials_ref"], source["port"]) == ("postgres", "feed_pg", 5432)
    planned = drivetrain(tmp_path, "run", "./feed", "--dry-run")  # valid as written, reaches no server
    assert planned.returncode == 0, planned.stdout + planned.stderr

    source.update(host=postgres.host, port=postgres.port, database=postgres.database, table="feed_orders")
    config_file.write_text(json.dumps(config))
    env = {"FEED_PG_USER": postgres.user, "FEED_PG_PASSWORD": postgres.password}
    checked = drivetrain(tmp_path, "validate", "./feed", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = drivetrain(tmp_path, "run", "./feed", "--window-start", "2025-01-01T00:00:00Z", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    import duckdb

    with duckdb.connect(str(tmp_path / "feed" / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*), min(status) FROM feed").fetchone() == (59, "PAID")


def test_the_scaffold_test_passes_on_memory_rows(tmp_path: Path) -> None:
    assert drivetrain(tmp_path, "new", "lims", "--source", "postgres").returncode == 0
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "lims")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout  # test_pipeline.py (2) and test_dag.py


def test_a_postgres_target_scaffold_validates_runs_into_the_server_and_its_test_passes_offline(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    from .warehouse import new_schema

    done = drivetrain(tmp_path, "new", "shop", "--target", "postgres")
    assert done.returncode == 0, done.stderr
    assert "set the credentials it names" in done.stdout
    config_file = tmp_path / "shop" / "config.json"
    config = json.loads(config_file.read_text())
    for name in ("stage_system", "target_system"):
        assert (config[name]["type"], config[name]["credentials_ref"]) == ("postgres", "shop_dwh")
    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "shop")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert tested.returncode == 0 and "3 passed" in tested.stdout, tested.stdout + tested.stderr  # on DuckDB, no server

    schema = new_schema(postgres)
    for name in ("stage_system", "target_system"):
        config[name].update(host=postgres.host, port=postgres.port, database=postgres.database, schema=schema)
    config_file.write_text(json.dumps(config))
    env = {"SHOP_DWH_USER": postgres.user, "SHOP_DWH_PASSWORD": postgres.password}
    checked = drivetrain(tmp_path, "validate", "./shop", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = drivetrain(tmp_path, "run", "./shop", "--window-start", "2025-01-01T00:00:00Z", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert not (tmp_path / "shop" / "warehouse.duckdb").exists()
    with postgres.admin() as conn:
        statuses = {r[0] for r in conn.execute(f"SELECT DISTINCT status FROM {schema}.shop").fetchall()}
        runs = conn.execute(f"SELECT pipeline_status FROM {schema}.pipeline_execution_drive").fetchall()
    assert statuses and all(s == s.upper() for s in statuses)
    assert runs == [("SUCCESS",)]
