"""Peak resident memory of a process that writes wide rows into DuckDB through the pool.

Usage: python duckdb_memory_child.py FOLDER SETTINGS_JSON (``null``: drivetrain's defaults).
Prints one JSON line: ``{"rows", "kept", "memory_limit", "baseline_mb", "peak_mb"}``.

The rows (about 350 MB: an id, two timestamps, a uuid text, a 100-character text) are made by
DuckDB itself, in row groups, as a window load writes them; then they are deduplicated into a
second table keys first, as the push-down does (the kept ``rowid`` ranked by ``QUALIFY
row_number()`` over the keys, then the rows carrying one). ``baseline_mb`` is the
resident memory after imports and the first connection; then the kernel's peak mark (VmHWM) is
reset through /proc/self/clear_refs, and ``peak_mb`` is that mark at the end. (Not ru_maxrss:
Linux carries it over exec from the parent, so a child of a large pytest process would start
from the parent's size.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Run as a script, this folder would be first on sys.path, and its test packages (snowflake,
# postgres...) would shadow the installed modules of those names: the repository root takes its place.
sys.path[0] = str(Path(__file__).resolve().parents[2])

from drivetrain.connectors.duckdb.connection import ConnectionPool  # noqa: E402

ROWS = 1_600_000


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_mb() -> float:
    return status_mb("VmHWM")


def main() -> None:
    folder, settings = Path(sys.argv[1]), json.loads(sys.argv[2])
    pool = ConnectionPool(folder / "warehouse.duckdb", settings=settings)
    with pool.connect() as conn:
        limit = conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        baseline = status_mb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # the peak mark starts again from here
        conn.execute("SET preserve_insertion_order = false")  # as a window load does
        conn.execute(
            f"CREATE TABLE stage AS SELECT i % {ROWS // 2} AS id, TIMESTAMP '2025-01-01' + to_microseconds(i) AS created_at,"
            " TIMESTAMP '2025-01-02' + to_microseconds(i) AS updated_at, md5(i::VARCHAR) || '-uuid' AS uuid,"
            " repeat(chr(65 + (i % 26)::INTEGER), 100) || i::VARCHAR AS notes, i AS row_no"
            f" FROM range({ROWS}) AS t(i)"
        )
        conn.execute("CREATE TABLE target AS SELECT * FROM stage LIMIT 0")
        conn.execute(
            "INSERT INTO target SELECT * FROM stage WHERE rowid IN (SELECT rowid FROM stage"
            " QUALIFY row_number() OVER (PARTITION BY id ORDER BY row_no DESC NULLS LAST) = 1)"
        )
        rows = conn.execute("SELECT count(*) FROM stage").fetchone()[0]
        kept = conn.execute("SELECT count(*) FROM target").fetchone()[0]
    print(json.dumps({"rows": rows, "kept": kept, "memory_limit": pool.settings["memory_limit"], "shown": limit,
                      "baseline_mb": round(baseline, 1), "peak_mb": round(peak_mb(), 1)}))


if __name__ == "__main__":
    main()
