"""Measures how much a SQL source's extract raises the peak resident memory of this process.

Usage: python sql_memory_child.py SOURCE SETTINGS_JSON, SOURCE being "mysql" or "postgres";
prints one JSON line ``{"rows": n, "growth": bytes}``, for MySQL with ``"selects": n`` too.

tracemalloc sees only Python's allocator, not the Arrow buffers pyarrow allocates nor what a
driver's C or Rust code holds, so the tests measure the process instead: after a warm-up
extract (imports, connection, table metadata) the kernel's peak-RSS mark (VmHWM) is reset
through /proc/self/clear_refs, the window is extracted batch by batch, and the new peak less
the resident size at the reset is the growth the extract caused. For MySQL, ``selects`` is how
many SELECT statements the server received during the window (Com_select), i.e. how many pages
connectorx read; ``page_rows`` in the settings scales those pages down to the test table.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, this folder would be first on sys.path, and its test packages (snowflake,
# postgres...) would shadow the installed modules of those names: the repository root takes its place.
sys.path[0] = str(Path(__file__).resolve().parents[2])

from drivetrain.config import SystemConfig  # noqa: E402
from drivetrain.secrets import resolve_credentials  # noqa: E402
from drivetrain.window import Window  # noqa: E402

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def source_class(kind: str, settings: dict[str, Any]) -> type:
    if kind == "mysql":
        from drivetrain.connectors.mysql import MySQLSource, fast

        fast.PAGE_ROWS = settings["page_rows"]  # pages scaled down to the test table, as test_mysql_fast does
        return MySQLSource
    if kind == "postgres":
        from drivetrain.connectors.postgres import PostgresSource

        return PostgresSource
    raise SystemExit(f"unknown source {kind!r}: give mysql or postgres")


def main() -> None:
    kind, settings = sys.argv[1], json.loads(sys.argv[2])
    source_type = source_class(kind, settings)
    section = {"type": kind, "credentials_ref": "mem", **settings["section"]}
    config = SystemConfig.from_section("source_system", section, source_file="config.json")
    credentials = resolve_credentials("mem", environ={"MEM_USER": settings["user"], "MEM_PASSWORD": settings["password"]})
    start, end = (T0 + timedelta(seconds=s) for s in settings["window"])
    with source_type(config, credentials) as source:
        assert source.extract_reader() == settings["section"]["reader"], source.extract_reader()
        for batch in source.extract(Window(T0, T0 + timedelta(seconds=3))):
            del batch
        counter = mysql_selects(settings) if kind == "mysql" else None
        before = counter() if counter else 0
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # the peak-RSS mark restarts from the current RSS
        resident = status_kib("VmRSS")
        rows = 0
        for batch in source.extract(Window(start, end)):
            rows += batch.num_rows
            del batch
        peak = status_kib("VmHWM")
        measured = {"rows": rows, "growth": (peak - resident) * 1024}
        if counter:
            measured["selects"] = counter() - before
    print(json.dumps(measured))


def mysql_selects(settings: dict[str, Any]) -> Callable[[], int]:
    """A function returning the server's global SELECT count, read on a connection of its own."""
    import pymysql

    conn = pymysql.connect(host=settings["section"]["host"], port=settings["section"]["port"], user=settings["user"],
                           password=settings["password"], database=settings["section"]["database"], autocommit=True)

    def count() -> int:
        with conn.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Com_select'")
            return int(cursor.fetchone()[1])

    return count


if __name__ == "__main__":
    main()
