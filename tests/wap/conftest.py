"""Helpers of the publish-gate tests: what the target shows, and a changed source."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.sdk.factory import DAY, query

HOUR = timedelta(hours=1)


def snapshot(folder: Path, table: str = "tests") -> dict[str, Any]:
    """The first window's (test_id, result) pairs and a checksum of every row of the target."""
    tables = {r[0] for r in query(folder, "SELECT table_name FROM information_schema.tables")}
    if table not in tables:
        return {"window": [], "checksum": None, "rows": 0}
    window = query(folder, f"SELECT test_id, result FROM {table} WHERE reported_at >= ? AND reported_at < ? ORDER BY test_id",
                   [DAY, DAY + HOUR])
    every = query(folder, f"SELECT * FROM {table} ORDER BY ALL")
    return {"window": window, "checksum": hashlib.sha256(repr(every).encode()).hexdigest(), "rows": len(every)}


def changed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same records, every result different: a reload that must not show before its audit passes."""
    return [{**r, "result": f"{r['result']}-v2"} for r in rows]
