"""Builds pipeline folders for tests: synthetic rows, a files source and a DuckDB warehouse.

The rows are known in advance, so tests can compute the exact target a run must produce:
every valid row of the window once, the latest copy of each duplicated key.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

DAY = datetime(2025, 11, 15, tzinfo=UTC)

BASE_CONFIG: dict[str, Any] = {
    "pipeline_metadata": {"pipeline_name": "lab", "owner_name": "Test Owner", "owner_email": "owner@example.com"},
    "dag_schedule": {"frequency": "hourly", "timezone": "UTC", "start_date": "2025-11-15"},
    "query_window": {"type": "hourly", "duration": "1h"},
    "source_system": {"type": "files", "path": "data/records.jsonl", "query_field": "reported_at", "batch_size": 50},
    "stage_system": {
        "type": "duckdb", "path": "warehouse.duckdb", "table": "stg_tests",
        "columns": [
            {"name": "test_id", "type": "string", "required": True, "max_length": 16},
            {"name": "age", "type": "integer", "min": 0, "max": 130},
            {"name": "result", "type": "string"},
            {"name": "reported_at", "type": "timestamp", "required": True},
        ],
    },
    "target_system": {"type": "duckdb", "path": "warehouse.duckdb", "table": "tests", "dedup_keys": ["test_id"]},
    "phases": {
        "audit": {"count_tolerances": {"source_to_stage_tolerance_percent": 5.0, "stage_to_target_tolerance_percent": 5.0}},
        "stage_cleaning": {"archive_location": "archive", "delete_after_days": 1},
    },
    "retry": {"max_retries": 2, "backoff_strategy": "exponential", "backoff_seconds": 0.01},
}


def make_rows(n: int = 600, *, hours: int = 3, seed: int = 7, invalid_every: int = 40, duplicates: int = 5,
              start: datetime = DAY, prefix: str = "T") -> list[dict[str, Any]]:
    """Rows spread over ``hours`` hours from ``start``; some invalid (age 'n/a'), some duplicated keys."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ts = start + timedelta(seconds=rng.randrange(hours * 3600))
        row = {"test_id": f"{prefix}{i:06d}", "age": rng.randrange(0, 100), "result": rng.choice(["positive", "negative"]),
               "reported_at": ts.isoformat().replace("+00:00", "Z")}
        if invalid_every and i % invalid_every == 0:
            row["age"] = "n/a"
        rows.append(row)
    for j in range(duplicates):
        dup = copy.deepcopy(rows[j * 7 + 1])
        dup["result"] = "corrected"
        rows.append(dup)
    return rows


def is_valid(row: dict[str, Any]) -> bool:
    return isinstance(row.get("age"), int) and 0 <= row["age"] <= 130 and bool(row.get("test_id"))


def ts_of(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["reported_at"].replace("Z", "+00:00"))


def expected_target(rows: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    """test_id -> the row the target must hold for the window (the last valid copy wins)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if is_valid(row) and start <= ts_of(row) < end:
            out[row["test_id"]] = row
    return out


def make_pipeline_dir(root: Path, rows: list[dict[str, Any]] | None = None, **changes: Any) -> Path:
    """Write config.json and data/records.jsonl under root; ``changes`` are dotted config paths."""
    config = copy.deepcopy(BASE_CONFIG)
    for dotted, value in changes.items():
        node = config
        parts = dotted.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    rows = make_rows() if rows is None else rows
    (root / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "config.json").write_text(json.dumps(config, indent=2))
    return root


def query(root: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Read the pipeline's warehouse file with its drive table beside it, in DuckDB's SQL: the
    drive file (``drive.sqlite``, the default, or a pinned ``drive.duckdb``) is read as it is and
    its tables are visible by name, with DuckDB's types (see :func:`attach_drive`)."""
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as conn:
        attach_drive(conn, root)
        return conn.execute(sql, params or []).fetchall()


#: How DuckDB reads back a column of the SQLite drive file, by logical type (the rest as stored).
_TYPED = {"timestamp": "CAST({0} AS TIMESTAMPTZ)", "date": "CAST({0} AS DATE)", "json": "CAST({0} AS JSON)",
          "array": "CAST(CAST({0} AS JSON) AS VARCHAR[])"}


def attach_drive(conn: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Make the drive table, its leases and meta rows of the folder ``root`` readable by name in
    ``conn``: ``drive.duckdb`` is attached read-only; ``drive.sqlite`` (which DuckDB cannot
    attach offline) is read with :mod:`sqlite3` and copied into temporary tables typed as the
    DuckDB drive store types them (instants TIMESTAMPTZ, JSON, VARCHAR[] lists)."""
    if (root / "drive.duckdb").exists() and not (root / "drive.sqlite").exists():
        conn.execute(f"ATTACH '{root / 'drive.duckdb'}' AS drive (READ_ONLY)")
        conn.execute("SET search_path = 'warehouse.main,drive.main'")
        return
    for table, names, rows in sqlite_drive_tables(root / "drive.sqlite"):
        kind = kinds(table)
        raw = pa.table({name: pa.array([row[i] for row in rows], pa.int64() if kind.get(name) in ("integer", "bigint") else None)
                        for i, name in enumerate(names)})
        conn.register("_drive_raw", raw)
        columns = ", ".join(f"{_TYPED[kind[n]].format(n) if kind.get(n) in _TYPED else n} AS {n}" for n in names)
        conn.execute(f"CREATE TEMP TABLE {table} AS SELECT {columns} FROM _drive_raw")
        conn.unregister("_drive_raw")


def kinds(table: str) -> dict[str, str]:
    """Column -> logical type of the drivetrain tables in a SQLite drive file."""
    from drivetrain.connectors.sqlite.drive import SqliteDriveStore
    from drivetrain.sql.drive import KIND

    if table == "drivetrain_leases":
        return {name: kind for name, kind, _ in SqliteDriveStore.lease_columns}
    return dict(KIND) if table == "pipeline_execution_drive" else {}


def sqlite_drive_tables(path: Path) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
    """(table, column names, rows) of every table in the SQLite drive file (none if it is missing),
    read in one read-only transaction."""
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        conn.execute("BEGIN")  # one snapshot for every table
        found = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall():
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            found.append((table, [d[0] for d in cursor.description], cursor.fetchall()))
        return found


def target_rows(root: Path, start: datetime, end: datetime) -> list[tuple[str, str]]:
    return query(root, "SELECT test_id, result FROM tests WHERE reported_at >= ? AND reported_at < ? ORDER BY test_id", [start, end])


def drive_execute(root: Path, sql: str, params: list[Any] | None = None) -> None:
    """Change the folder's drive table by hand (damage a row, as another tool might): in its
    default ``drive.sqlite`` with :mod:`sqlite3` (JSON and list values as JSON text), else in a
    pinned ``drive.duckdb``."""
    if (root / "drive.sqlite").exists():
        with contextlib.closing(sqlite3.connect(root / "drive.sqlite", timeout=60)) as conn, conn:
            conn.execute(sql, [json.dumps(p) if isinstance(p, list) else p for p in params or []])
        return
    with duckdb.connect(str(root / "drive.duckdb")) as conn:
        conn.execute(sql, params or [])
