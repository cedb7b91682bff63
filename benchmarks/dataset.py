"""The benchmark's data sets: deterministic tables in a throwaway MariaDB server.

The table spreads ``rows`` rows evenly over ``days`` days from :data:`START` (2,000,000 over
10 days by default, so a one-day window holds 200,000 rows). Every value is a function of the
row number, computed by the server from its ``seq_1_to_N`` sequence table: the same
arguments always give the same table, byte for byte, with no Python in the loop.

Two shapes. The narrow one (the default, :data:`NARROW`), chosen to look like a lab-results
feed, about 140 bytes a row::

    id           BIGINT PRIMARY KEY          row number
    created_at   DATETIME(6) NOT NULL        the query field, indexed, microseconds used
    patient_code VARCHAR(24) NOT NULL        'P' + 7 digits
    status       VARCHAR(16) NOT NULL        one of four words
    score        DOUBLE                      NULL on every 11th row
    notes        TEXT                        NULL on every 3rd row, else 10 to 130 characters
    attrs        JSON                        a small object: {"lab": n, "flag": bool, "v": n}

The wide one (:data:`WIDE`, about 330 bytes a row: 2M rows are about 650 MB of data), an
order feed with the column shape of issue 22::

    id           BIGINT PRIMARY KEY          row number
    created_at   DATETIME(6) NOT NULL        the query field, indexed
    updated_at   DATETIME(6) NOT NULL        created_at plus up to a day
    uuid         VARCHAR(36) NOT NULL        a UUID-shaped text made from MD5(row number)
    channel      VARCHAR(12) NOT NULL        one of five words
    status       VARCHAR(16) NOT NULL        one of four words
    country      VARCHAR(2) NOT NULL         one of eight codes
    amount       DOUBLE                      NULL on every 7th row
    notes        TEXT                        NULL on 35% of rows, else 3 to 25 words
    attrs        JSON                        an object of about 95 bytes
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # so ``tests.servers`` imports when run as a script
    sys.path.insert(0, str(REPO))

from tests.servers.mariadb import MariaDBServer  # noqa: E402

#: The first instant of the data set (UTC; the server runs in +00:00).
START = datetime(2025, 1, 1, tzinfo=UTC)
TABLE = "bench_events"
WIDE_TABLE = "bench_orders"
#: Rows inserted per statement: bounds the server's undo log while building.
CHUNK = 250_000

_CREATE = """
CREATE TABLE {table} (
  id BIGINT NOT NULL PRIMARY KEY,
  created_at DATETIME(6) NOT NULL,
  patient_code VARCHAR(24) NOT NULL,
  status VARCHAR(16) NOT NULL,
  score DOUBLE NULL,
  notes TEXT NULL,
  attrs JSON NULL,
  KEY idx_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4
"""

# {step_us}: microseconds between rows; {first} / {last}: the row numbers of this chunk
_INSERT = """
INSERT INTO {table}
SELECT seq,
       TIMESTAMP'2025-01-01 00:00:00' + INTERVAL ((seq - 1) * {step_us}) MICROSECOND,
       CONCAT('P', LPAD((seq * 7919) % 10000019, 7, '0')),
       ELT(1 + seq % 4, 'pending', 'positive', 'negative', 'void'),
       IF(seq % 11 = 0, NULL, ((seq * 37) % 100000) / 128.0),
       IF(seq % 3 = 0, NULL, REPEAT(CONCAT('note ', seq % 1000, ' '), 1 + seq % 13)),
       JSON_OBJECT('lab', seq % 17, 'flag', seq % 2 = 0, 'v', seq % 1000)
FROM seq_{first}_to_{last}
"""

_CREATE_WIDE = """
CREATE TABLE {table} (
  id BIGINT NOT NULL PRIMARY KEY,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  uuid VARCHAR(36) NOT NULL,
  channel VARCHAR(12) NOT NULL,
  status VARCHAR(16) NOT NULL,
  country VARCHAR(2) NOT NULL,
  amount DOUBLE NULL,
  notes TEXT NULL,
  attrs JSON NULL,
  KEY idx_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4
"""

#: Fifty words; a row's notes are 3 to 25 of them from a place that depends on the row.
_WORDS = (
    "the sample arrived late and was stored cold until the courier came back with the second box "
    "which held the missing tubes so the lab ran every panel twice and sent the results to the ward "
    "before noon while the night shift wrote up what went wrong with the first delivery today"
)

_INSERT_WIDE = """
INSERT INTO {table}
SELECT seq,
       TIMESTAMP'2025-01-01 00:00:00' + INTERVAL ((seq - 1) * {step_us}) MICROSECOND,
       TIMESTAMP'2025-01-01 00:00:00' + INTERVAL ((seq - 1) * {step_us} + (seq * 7919) % 86400000000) MICROSECOND,
       CONCAT_WS('-', SUBSTR(MD5(seq), 1, 8), SUBSTR(MD5(seq), 9, 4), SUBSTR(MD5(seq), 13, 4),
                 SUBSTR(MD5(seq), 17, 4), SUBSTR(MD5(seq), 21, 12)),
       ELT(1 + seq % 5, 'web', 'mobile', 'store', 'phone', 'partner'),
       ELT(1 + seq % 4, 'pending', 'paid', 'shipped', 'cancelled'),
       ELT(1 + seq % 8, 'DE', 'FR', 'NL', 'BE', 'AT', 'CH', 'IT', 'ES'),
       IF(seq % 7 = 0, NULL, ((seq * 37) % 1000000) / 100.0),
       IF((seq * 13) % 100 < 35, NULL,
          SUBSTRING_INDEX(SUBSTRING_INDEX('{words}', ' ', -(50 - seq % 25)), ' ', 3 + (seq * 31) % 23)),
       JSON_OBJECT('lab', seq % 17, 'flag', seq % 2 = 0, 'unit', ELT(1 + seq % 3, 'mg', 'ml', 'pcs'),
                   'ref', CONCAT('R', LPAD(seq % 1000000, 6, '0')), 'codes', JSON_ARRAY(seq % 97, seq % 89),
                   'w', seq % 1000)
FROM seq_{first}_to_{last}
"""


@attrs.frozen
class Shape:
    """One table layout: its name, columns and SQL."""

    name: str
    table: str
    columns: tuple[str, ...]
    create: str
    insert: str


NARROW = Shape("narrow", TABLE, ("id", "created_at", "patient_code", "status", "score", "notes", "attrs"),
               _CREATE, _INSERT)
WIDE = Shape("wide", WIDE_TABLE, ("id", "created_at", "updated_at", "uuid", "channel", "status", "country",
                                  "amount", "notes", "attrs"),
             _CREATE_WIDE, _INSERT_WIDE.replace("{words}", _WORDS))
SHAPES = {shape.name: shape for shape in (NARROW, WIDE)}


@attrs.frozen
class DataSet:
    """Where the data set lives and how it is laid out."""

    server: MariaDBServer
    """The running server (user ``drivetrain`` may SELECT, the admin user may do anything)."""
    rows: int
    """Rows in the table."""
    days: int
    """Days the rows are spread over."""
    shape: Shape = NARROW
    """The table's layout."""
    query_field: str = "created_at"
    """The indexed DATETIME(6) column windows are cut on."""

    @property
    def table(self) -> str:
        """Table name, in ``server.database``."""
        return self.shape.table

    def window(self, days: int) -> tuple[datetime, datetime]:
        """The half-open window covering the first ``days`` days of the data."""
        return START, START + timedelta(days=days)

    def rows_in(self, days: int) -> int:
        """Rows the window of the first ``days`` days holds."""
        return min(self.rows, self.rows * days // self.days)

    def to_json(self) -> dict[str, Any]:
        """Connection settings for child processes (the benchmark user's password included:
        it is a throwaway server's, known to the test suite)."""
        return {
            "host": self.server.host,
            "port": self.server.port,
            "database": self.server.database,
            "user": self.server.user,
            "password": self.server.password,
            "socket": str(self.server.folder / "mysqld.sock"),
            "table": self.table,
            "shape": self.shape.name,
            "columns": list(self.shape.columns),
            "query_field": self.query_field,
            "rows": self.rows,
            "days": self.days,
        }


def start_server(base: Path | None = None, *, buffer_pool_mb: int = 1024) -> MariaDBServer:
    """Start the throwaway test server without TLS, with a buffer pool that holds the table.

    The test fixture's 64 MB pool would make every read go to disk (well, the page cache);
    a production server keeps its hot table in memory, so the benchmark does too.
    """
    # plain TCP for every client: the test server speaks TLS when it can make certificates,
    # and the mariadb client and pymysql then use it while connectorx does not
    server = MariaDBServer.start(base, tls=False)
    conn = server.admin()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SET GLOBAL innodb_buffer_pool_size = {buffer_pool_mb * 1024 * 1024}")
    finally:
        conn.close()
    return server


def build(server: MariaDBServer, rows: int = 2_000_000, days: int = 10, *, log: Any = None,
          shape: Shape = NARROW) -> DataSet:
    """(Re)create the ``shape``'s table with ``rows`` rows over ``days`` days; returns the data set.

    Takes about 30 s for the default size on 2 cores (a minute for the wide shape).
    """
    if rows < 1 or days < 1:
        raise ValueError("rows and days must be positive")
    step_us = days * 86_400 * 1_000_000 // rows
    if step_us * rows != days * 86_400 * 1_000_000:
        raise ValueError(f"{rows} rows do not divide {days} days into whole microseconds")
    began = time.monotonic()
    conn = server.admin(database=server.database)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {shape.table}")
            cursor.execute(shape.create.format(table=shape.table))
            for first in range(1, rows + 1, CHUNK):
                last = min(rows, first + CHUNK - 1)
                cursor.execute(shape.insert.format(table=shape.table, step_us=step_us, first=first, last=last))
            cursor.execute(f"ANALYZE TABLE {shape.table}")
            cursor.fetchall()
            cursor.execute(f"SELECT COUNT(*) FROM {shape.table}")
            (count,) = cursor.fetchone()
    finally:
        conn.close()
    if count != rows:
        raise RuntimeError(f"built {count} rows, expected {rows}")
    if log is not None:
        log(f"{shape.name} data set: {rows:,} rows over {days} days built in {time.monotonic() - began:.1f}s")
    return DataSet(server=server, rows=rows, days=days, shape=shape)


def warm(data: DataSet) -> None:
    """Read the whole table once, so every measured path starts from a warm buffer pool."""
    conn = data.server.admin(database=data.server.database)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*), SUM(LENGTH(notes)), SUM(LENGTH(attrs)) FROM {data.table}"
                f" FORCE INDEX (idx_created) WHERE {data.query_field} >= '2000-01-01'"
            )
            cursor.fetchall()
    finally:
        conn.close()
