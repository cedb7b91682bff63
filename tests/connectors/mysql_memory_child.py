"""Measures how much a MySQL extract raises the peak resident memory of this process.

Usage: python mysql_memory_child.py SETTINGS_JSON; prints one JSON line
``{"rows": n, "growth": bytes, "selects": n}``.

tracemalloc sees only Python's allocator, not the Arrow buffers pyarrow allocates nor what
connectorx's Rust code holds, so the test measures the process instead: after a warm-up
extract (imports, connection, table metadata) the kernel's peak-RSS mark (VmHWM) is reset
through /proc/self/clear_refs, the window is extracted batch by batch, and the new peak less
the resident size at the reset is the growth the extract caused. ``selects`` is how many
SELECT statements the session sent for the window (Com_select), i.e. how many pages it read.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from drivetrain.config import SystemConfig  # noqa: E402
from drivetrain.connectors.mysql import MySQLSource, fast  # noqa: E402
from drivetrain.secrets import resolve_credentials  # noqa: E402
from drivetrain.window import Window  # noqa: E402

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    settings = json.loads(sys.argv[1])
    fast.PAGE_ROWS = settings["page_rows"]  # pages scaled down to the test table, as test_mysql_fast does
    section = {"type": "mysql", "credentials_ref": "mem", **settings["section"]}
    config = SystemConfig.from_section("source_system", section, source_file="config.json")
    credentials = resolve_credentials("mem", environ={"MEM_USER": settings["user"], "MEM_PASSWORD": settings["password"]})
    start, end = (T0 + timedelta(seconds=s) for s in settings["window"])
    with MySQLSource(config, credentials) as source:
        assert source.extract_reader() == settings["section"]["reader"], source.extract_reader()
        for batch in source.extract(Window(T0, T0 + timedelta(seconds=3))):
            del batch
        counter = source_selects(settings)
        before = counter()
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # the peak-RSS mark restarts from the current RSS
        resident = status_kib("VmRSS")
        rows = 0
        for batch in source.extract(Window(start, end)):
            rows += batch.num_rows
            del batch
        peak = status_kib("VmHWM")
        selects = counter() - before
    print(json.dumps({"rows": rows, "growth": (peak - resident) * 1024, "selects": selects}))


def source_selects(settings: dict[str, Any]) -> Callable[[], int]:
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
