"""Peak resident memory of a process extracting a window does not grow with the window."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drivetrain.connectors.postgres.readers import ADBC_BATCH_BYTES
from tests.servers.postgres import PostgresServer

from .conftest import READERS

CHILD = Path(__file__).parent.parent / "sql_memory_child.py"
WIDE_ROWS = 60_000
WIDE_PAYLOAD = 2_000  # bytes a row: the large window is 120 MB of payload
WIDE_BATCH = 1_000


@pytest.fixture(scope="module")
def wide_table(pg: PostgresServer) -> str:
    with pg.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS wide")
        conn.execute("CREATE TABLE wide (id bigint PRIMARY KEY, created_at timestamp NOT NULL, payload text NOT NULL)")
        # random text, so that neither TOAST compression nor the wire makes the rows small
        conn.execute(
            "INSERT INTO wide SELECT g, timestamp '2025-01-01' + (g - 1) * interval '1 second',"
            f" substr(repeat(md5(g::text), {WIDE_PAYLOAD // 32 + 1}), 1, {WIDE_PAYLOAD})"
            f" FROM generate_series(1, {WIDE_ROWS}) g"
        )
        conn.execute("CREATE INDEX ON wide (created_at)")
    return "wide"


def extract_growth(server: PostgresServer, reader: str, seconds: int) -> dict[str, int]:
    settings = {
        "section": {"host": server.host, "port": server.port, "database": server.database, "table": "wide",
                    "query_field": "created_at", "reader": reader, "batch_size": WIDE_BATCH},
        "user": server.user, "password": server.password, "window": [0, seconds],
    }
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, str(CHILD), "postgres", json.dumps(settings)], capture_output=True, text=True,
                          timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    measured: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["rows"] == seconds, measured
    return measured


@pytest.mark.slow
@pytest.mark.parametrize("reader", READERS)
def test_peak_memory_does_not_grow_with_the_window(pg: PostgresServer, wide_table: str, reader: str) -> None:
    """A window ten times larger peaks at about the same height: the extract holds batches,
    not the window (the large window's payload alone is 120 MB)."""
    small = extract_growth(pg, reader, WIDE_ROWS // 10)
    large = extract_growth(pg, reader, WIDE_ROWS)
    slack = max(small["growth"], 4 * ADBC_BATCH_BYTES, 4 * WIDE_BATCH * WIDE_PAYLOAD)
    assert large["growth"] < 2 * slack, (small, large)
    assert large["growth"] < WIDE_ROWS * WIDE_PAYLOAD // 4, (small, large)
