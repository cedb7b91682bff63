"""``drivetrain run --dry-run`` with the drive table in PostgreSQL.

The plan says which window runs next and which phases a resumed attempt carries over: both come
from the drive table, so a dry run reads it and needs the credentials like any run. Without
them it stops at once with an error naming the environment variables to set (and no password);
with them it prints the plan and writes nothing, not even the drive table's own tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.sdk.factory import make_pipeline_dir
from tests.servers.postgres import PostgresServer

from .test_warehouse_pipeline import pg_rows, sections
from .warehouse import env, new_schema

SCRIPT = Path(sys.executable).with_name("drivetrain")


def dry_run(folder: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PG_WH_")}
    return subprocess.run([str(SCRIPT), "run", str(folder), "--dry-run", "--window-start", "2025-11-15T00:00:00Z"],
                          env={**clean, "NO_COLOR": "1", **environ}, capture_output=True, text=True, timeout=300, check=False)


def test_without_credentials_the_dry_run_names_the_variables_to_set(tmp_path: Path, postgres: PostgresServer) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", None, **sections(postgres, new_schema(postgres)))
    done = dry_run(folder, {})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "PG_WH_USER" in done.stderr and "PG_WH_PASSWORD" in done.stderr and "'pg_wh'" in done.stderr, done.stderr


def test_with_credentials_the_dry_run_prints_the_plan_and_creates_nothing(tmp_path: Path, postgres: PostgresServer) -> None:
    schema = new_schema(postgres)
    folder = make_pipeline_dir(tmp_path / "lab", None, **sections(postgres, schema))
    done = dry_run(folder, env(postgres))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "source_to_stage_transfer" in done.stdout, done.stdout
    assert postgres.password not in done.stdout + done.stderr
    tables = pg_rows(postgres, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
    assert tables == [], f"a dry run created {tables}"
