"""Peak resident memory of a process that writes wide rows into DuckDB through the pool.

Usage: python duckdb_memory_child.py FOLDER SETTINGS_JSON (``null``: drivetrain's defaults).
Prints one JSON line: ``{"rows", "kept", "memory_limit", "baseline_mb", "peak_mb"}``.

The rows (about 350 MB: an id, two timestamps, a uuid text, a 100-character text) are made by
DuckDB itself, in row groups, as a window load writes them; then they are deduplicated into a
second table with ``QUALIFY row_number()``, as the push-down does. ``baseline_mb`` is the peak
after imports and the first connection; ``peak_mb`` the peak at the end (ru_maxrss).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from drivetrain.connectors.duckdb.connection import ConnectionPool  # noqa: E402

ROWS = 1_600_000


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    folder, settings = Path(sys.argv[1]), json.loads(sys.argv[2])
    pool = ConnectionPool(folder / "warehouse.duckdb", settings=settings)
    with pool.connect() as conn:
        limit = conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        baseline = peak_mb()
        conn.execute("SET preserve_insertion_order = false")  # as a window load does
        conn.execute(
            f"CREATE TABLE stage AS SELECT i % {ROWS // 2} AS id, TIMESTAMP '2025-01-01' + to_microseconds(i) AS created_at,"
            " TIMESTAMP '2025-01-02' + to_microseconds(i) AS updated_at, md5(i::VARCHAR) || '-uuid' AS uuid,"
            " repeat(chr(65 + (i % 26)::INTEGER), 100) || i::VARCHAR AS notes, i AS row_no"
            f" FROM range({ROWS}) AS t(i)"
        )
        conn.execute("CREATE TABLE target AS SELECT * FROM stage LIMIT 0")
        conn.execute(
            "INSERT INTO target SELECT * FROM stage QUALIFY row_number() OVER (PARTITION BY id ORDER BY row_no DESC) = 1"
        )
        rows = conn.execute("SELECT count(*) FROM stage").fetchone()[0]
        kept = conn.execute("SELECT count(*) FROM target").fetchone()[0]
    print(json.dumps({"rows": rows, "kept": kept, "memory_limit": pool.settings["memory_limit"], "shown": limit,
                      "baseline_mb": round(baseline, 1), "peak_mb": round(peak_mb(), 1)}))


if __name__ == "__main__":
    main()
