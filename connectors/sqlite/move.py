"""Moving a drive table into a SQLite file, once: rows, leases and where they came from.

When a SQLite drive table is created where a DuckDB drive table already holds runs (a folder
whose ``drive.duckdb`` or one-file ``warehouse.duckdb`` was written before), its rows and lease
rows are copied in the same ``BEGIN IMMEDIATE`` transaction that creates the tables:

* crash-safe: a process killed mid-copy leaves no table (SQLite rolls the transaction back),
  so the next use finds none and copies again from the start;
* once: a process that finds the tables created never copies (two processes starting together
  take the write lock in turn; the second finds the first one's tables);
* nothing lost: the old file is only read. A ``moved_from`` meta row names it.

Rows are read in chunks ordered by ``pipeline_id`` (memory bounded by the chunk, whatever the
history), every column the old table has, encoded by this store's row codec.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from drivetrain.sql.drive import DRIVE_COLUMNS

if TYPE_CHECKING:
    from drivetrain.sql.drive import SqlDriveStore
    from drivetrain.sql.session import SqlSession


log = logging.getLogger(__name__)
#: Rows read from the old drive table per query.
CHUNK = 5_000
LEASE_COLUMNS = ("pipeline_name", "window_start", "window_end", "holder", "token", "acquired_at", "expires_at")


def move_rows(store: SqlDriveStore, previous: SqlDriveStore, s: SqlSession) -> int:
    """Copy ``previous``'s drive rows and leases into ``store`` through ``s`` (inside its open
    transaction); returns the number of drive rows copied."""
    have = {name.lower() for name in previous.wh.table_columns(previous.table)}
    names = [name for name, _, _ in DRIVE_COLUMNS if name in have]
    insert = f"INSERT INTO {store.table_sql} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    moved, after = 0, None
    while True:
        where = "" if after is None else "WHERE pipeline_id > ? "
        chunk = previous.query(f"SELECT {', '.join(names)} FROM {previous.table_sql} {where}ORDER BY pipeline_id LIMIT {CHUNK}",
                               [] if after is None else [after])
        for row in chunk:
            s.execute(insert, [value for name in names for value in _encoded(store, name, row[name])])
        moved += len(chunk)
        if len(chunk) < CHUNK:
            break
        after = chunk[-1]["pipeline_id"]
    leases = previous.query(f"SELECT {', '.join(LEASE_COLUMNS)} FROM {previous.dialect.qualified(previous.leases_ref)}")
    target = store.dialect.qualified(store.leases_ref)
    for lease in leases:
        s.execute(f"INSERT INTO {target} ({', '.join(LEASE_COLUMNS)}) VALUES ({', '.join('?' for _ in LEASE_COLUMNS)})",
                  [lease[c] for c in LEASE_COLUMNS])
    meta, (key, value) = store.dialect.qualified(store.meta), store.meta_columns
    s.execute(f"INSERT INTO {meta} ({key}, {value}) VALUES ('moved_from', ?)", [previous.location])
    log.warning("%s: moved %d drive rows and %d leases here from %s (this happens once; the old file is left as it was, unread)",
                store.location, moved, len(leases), previous.location)
    return moved


def _encoded(store: SqlDriveStore, name: str, value: Any) -> list[Any]:
    return store._value(name, value)[1]  # noqa: SLF001 - the store's own row codec
