"""The drive table, its leases and its schema version, in DuckDB.

VARIANT columns are DuckDB ``JSON``; ARRAY columns are ``VARCHAR[]``. Every statement runs under
a process-wide lock (the heartbeat thread and the runner share the store) and inside the
connection pool's file lock (other processes wait their turn).

The lease of a window is an OS file lock (``flock``) on ``<db>.locks/<pipeline>__<window>.lock``,
held for the whole run, plus a row in ``drivetrain_leases`` carrying the holder and the fencing
token. The kernel drops the file lock when the holder dies, even by SIGKILL, so a crashed
run's window is free at once; a paused one keeps it. Lock files are never deleted: removing a
file another process has open would let two processes lock two different files.

The drive table has its own file (the warehouse's ``drive_path``, default ``drive.duckdb``
beside the warehouse file; lock files in ``<drive file>.locks``). A phase keeps the warehouse
file for its whole length; a run keeps the drive file open between its drive writes but hands it
over within milliseconds to any process that asks for it, even in the middle of a phase (see
:mod:`.handover`): readers wait at most for one drive-row write, never for a phase. A warehouse file that still holds
a drive table from the one-file layout is read in place until the first write, which copies its
rows, leases and meta into the drive file once (in one transaction of the drive file, so two
processes never both copy) and leaves a ``moved_to`` row in the old file's ``drivetrain_meta``.
The old rows stay where they were; nothing reads them again.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain._lazy import lazy_module
from drivetrain.drive import Lease
from drivetrain.record import RunRecord
from drivetrain.sql.drive import DRIVE_COLUMNS, SqlDriveStore, check_fence, chunks, next_token
from drivetrain.sql.session import SqlSession
from drivetrain.sql.session import utc_now as _now
from drivetrain.sql.window_locks import WindowLocks

from .connection import duckdb_errors, transaction
from .sql import DuckDBDialect, DuckDBSession, qualified, quote

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.warehouse import TableRef

    from .connection import DuckDBHome
else:
    pa = lazy_module("pyarrow")

_LOCK = threading.RLock()
log = logging.getLogger(__name__)
#: (file, table) of drive tables this process has seen: a drive table never goes away, and
#: ``status`` of a fleet asks once per pipeline.
_FOUND: set[tuple[Path, str]] = set()
__all__ = ["DuckDBDialect", "DuckDBDriveStore"]  # the dialect moved to .sql


class DuckDBDriveStore(SqlDriveStore):
    """Drive table ``<schema>.pipeline_execution_drive`` plus ``drivetrain_leases`` and ``drivetrain_meta``."""

    lease_columns: ClassVar[list[tuple[str, str, bool]]] = [
        ("pipeline_name", "text", True), ("window_start", "timestamp", True), ("window_end", "timestamp", True),
        ("holder", "text", True), ("token", "bigint", True), ("acquired_at", "timestamp", True), ("expires_at", "timestamp", True),
    ]
    meta_columns: ClassVar[tuple[str, str]] = ("key", "value")
    create_on_read: ClassVar[bool] = False  # reading never creates the file or the tables
    lock: ClassVar[Any] = _LOCK

    def __init__(self, warehouse: DuckDBHome, table: TableRef) -> None:
        self.home = warehouse.drive_home()
        super().__init__(self.home, table)
        self.warehouse = warehouse
        """The warehouse the config names: where a one-file layout kept the drive table."""
        self.wh: DuckDBHome = self.home
        self.leases = self.leases_ref
        self.location = f"{self.home.path}: {table}"
        self.locks = WindowLocks(self.wh.path)
        self._found = False

    def _use(self, wh: DuckDBHome) -> None:
        self.wh, self.location = wh, f"{wh.path}: {self.table}"
        self.locks.folder = WindowLocks(wh.path).folder  # the drive file's, or the old layout's

    def _holds_drive_table(self, wh: DuckDBHome) -> bool:
        key = (wh.path, str(self.table))
        if not wh.path.exists():
            return False
        if key in _FOUND:
            return True
        with wh.connect():  # one opening for both questions
            found = wh.table_exists(self.table) and wh.table_exists(self.leases)
        if found:
            _FOUND.add(key)
        return found

    def exists(self) -> bool:
        """True when the drive table is there; never creates the file or the table. Before the
        first write of this version, a one-file layout's drive table is read where it is."""
        if self._ready or self._found:
            return True
        self._use(self.home)
        if self._holds_drive_table(self.home):
            self._found = True  # a drive table does not go away: no need to look again
            return True
        if self.home is not self.warehouse and self._holds_drive_table(self.warehouse):
            self._use(self.warehouse)
            return True
        return False

    def ensure(self) -> None:
        if self._ready:
            return
        self._use(self.home)
        if self.home is self.warehouse or (self.home.path.exists() and self.home.table_exists(self.table)):
            super().ensure()
            self._index()
            return
        self.home.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="drivetrain-move-", dir=self.home.path.parent) as folder:
            exported = self._export_old_rows(Path(folder))
            try:
                with _LOCK, self.home.connect() as conn, duckdb_errors(self.location), transaction(conn):
                    if self.home.table_exists(self.table):  # one process creates and fills it; the others find it
                        exported = {}
                    super().ensure()
                    for ref, path in exported.items():
                        self._import(conn, ref, path)
                    if exported:
                        self.rebuild_summaries(DuckDBSession(conn))
            except BaseException:
                self._ready = False
                raise
            self._index()
            if not exported:
                return
        with _LOCK, self.warehouse.connect() as conn, duckdb_errors(f"{self.warehouse.path}: {self.meta}"):
            conn.execute(f"INSERT INTO {qualified(self.meta)} VALUES ('moved_to', ?)", [str(self.home.path)])
        log.warning("%s: moved the drive table %s into %s (this happens once; the old rows stay in place, unread)",
                    self.warehouse.path, self.table, self.home.path)

    def index_names(self) -> dict[str, str]:
        """The drive table's indexes, name -> column (quoted)."""
        return {quote(f"{self.table.name}__{column}"): column for column in ("pipeline_name", "pipeline_id")}

    def _index(self) -> None:
        """Indexes for the reads of a fleet: one pipeline's runs (status, history, next window)
        and one run by id (show, every update). Created once; DuckDB keeps them up to date."""
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            for index, column in self.index_names().items():
                conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {self.table_sql} ({column})")

    def _before_adding_columns(self, s: SqlSession) -> None:
        """DuckDB refuses ALTER TABLE on a table with indexes ("entries that depend on it"):
        drop them; :meth:`ensure` creates them again after the layout is current."""
        schema = f"{quote(self.table.schema)}." if self.table.schema else ""
        for index in self.index_names():
            s.execute(f"DROP INDEX IF EXISTS {schema}{index}")

    def _export_old_rows(self, folder: Path) -> dict[TableRef, Path]:
        """Parquet copies of a one-file layout's drive, lease and meta tables (none if it has none)."""
        if not self._holds_drive_table(self.warehouse):
            return {}
        out = {}
        with _LOCK, self.warehouse.connect() as conn, duckdb_errors(f"{self.warehouse.path}: {self.table}"):
            for ref in (self.table, self.leases, self.meta):
                if self.warehouse.table_exists(ref):
                    out[ref] = folder / f"{ref.name}.parquet"
                    conn.execute(f"COPY (SELECT * FROM {qualified(ref)}) TO {_literal(out[ref])} (FORMAT parquet)")
        return out

    def _import(self, conn: Any, ref: TableRef, path: Path) -> None:
        source = f"read_parquet({_literal(path)})"
        if ref == self.meta:  # this version's schema_version row is there already
            conn.execute(f"INSERT INTO {qualified(ref)} BY NAME SELECT * FROM {source} "
                         f"WHERE key NOT IN (SELECT key FROM {qualified(ref)})")
        else:
            conn.execute(f"INSERT INTO {qualified(ref)} BY NAME SELECT * FROM {source}")

    def insert(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        with _LOCK, self.wh.connect():  # the fence check and the write: one opening of the drive file
            super().insert(record, fence=fence)

    def update(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        with _LOCK, self.wh.connect():
            super().update(record, fence=fence)

    def reading(self) -> AbstractContextManager[object]:
        """Keep the drive file open for a block of reads, politely: a writer waiting for it
        marks it wanted, and the connection closes after the read under way (see ConnectionPool)."""
        return self.wh.pool.keep_open()

    def insert_many(self, records: Iterable[RunRecord], *, chunk: int = 50_000) -> int:
        """Insert finished rows in bulk, ``chunk`` at a time as one Arrow scan (see the base class)."""
        self.ensure()
        done = 0
        for part in chunks(records, chunk):
            rows = [self._row(r) for r in part]
            for row in rows:
                for name, kind, _ in DRIVE_COLUMNS:
                    if kind == "json" and row[name] is not None:
                        row[name] = json.dumps(row[name], default=str)
            table = pa.Table.from_pylist(rows)
            with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location), self.sql() as s, s.transaction():
                conn.register("_drivetrain_drive_rows", table)
                try:
                    conn.execute(f"INSERT INTO {self.table_sql} BY NAME SELECT * FROM _drivetrain_drive_rows")
                finally:
                    conn.unregister("_drivetrain_drive_rows")
                self.refresh_summaries(s, part)
            done += len(rows)
        return done

    def fence_sql(self, lease: Lease | None) -> tuple[str, list[Any]]:
        if lease is None:
            return "", []
        return (
            f" AND EXISTS (SELECT 1 FROM {qualified(self.leases)} WHERE pipeline_name = ? AND window_start = ? AND token = ?)",
            [lease.pipeline_name, lease.window_start, lease.token],
        )

    # -- leases ---------------------------------------------------------------------------

    def _lease_row(self, conn: Any, pipeline_name: str, window_start: datetime) -> Lease | None:
        row = conn.execute(
            f"SELECT pipeline_name, window_start, window_end, holder, token, expires_at FROM {qualified(self.leases)} "
            "WHERE pipeline_name = ? AND window_start = ?",
            [pipeline_name, window_start],
        ).fetchone()
        if row is None:
            return None
        return Lease(row[0], row[1].astimezone(UTC), row[2].astimezone(UTC), row[3], int(row[4]), row[5].astimezone(UTC))

    def _check_fence(self, conn: Any, lease: Lease) -> None:
        check_fence(lease, self._lease_row(conn, lease.pipeline_name, lease.window_start))

    def acquire_lease(self, pipeline_name: str, window_start: datetime, window_end: datetime, holder: str, seconds: float) -> Lease:
        self.locks.take(pipeline_name, window_start, holder)  # first: a loser never waits on the file
        now = _now()
        try:
            self.ensure()
            with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location), transaction(conn):
                token = next_token(self._lease_row(conn, pipeline_name, window_start), holder, now)
                conn.execute(f"DELETE FROM {qualified(self.leases)} WHERE pipeline_name = ? AND window_start = ?", [pipeline_name, window_start])
                lease = Lease(pipeline_name, window_start, window_end, holder, token, now + timedelta(seconds=seconds))
                conn.execute(
                    f"INSERT INTO {qualified(self.leases)} VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [pipeline_name, window_start, window_end, holder, token, now, lease.expires_at],
                )
        except BaseException:
            self.locks.let_go(pipeline_name, window_start)
            raise
        return lease

    def is_held(self, pipeline_name: str, window_start: datetime) -> bool:
        """True while some process (this one included) runs the window."""
        return self.locks.is_held(pipeline_name, window_start)

    def dead_reason(self, record: RunRecord) -> str | None:
        """A run driven by one process holds its window's file lock until it ends: once the lock
        is free, that process is gone (the kernel dropped the lock when it died). A run driven
        step by step (Airflow) holds no file lock between steps; its lease row tells instead."""
        start = record.query_window_start_timestamp
        if record.lease_holder is None or self.is_held(record.pipeline_name, start):
            return None
        if record.lease_holder.startswith("step:"):
            return super().dead_reason(record)
        return (f"no process holds the window's lock any more: its process ({record.lease_holder}) "
                "was killed or crashed")

    def renew_lease(self, lease: Lease, seconds: float) -> Lease:
        expires = _now() + timedelta(seconds=seconds)
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            changed = conn.execute(
                f"UPDATE {qualified(self.leases)} SET expires_at = ? WHERE pipeline_name = ? AND window_start = ? AND token = ?",
                [expires, lease.pipeline_name, lease.window_start, lease.token],
            ).fetchone()[0]
            if changed != 1:
                self._check_fence(conn, lease)
        return Lease(lease.pipeline_name, lease.window_start, lease.window_end, lease.holder, lease.token, expires)

    def verify_lease(self, lease: Lease) -> None:
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            self._check_fence(conn, lease)

    def close(self) -> None:
        """Let go of any window still locked by this process (the drive rows stay as they are)."""
        self.locks.close()

    def release_lease(self, lease: Lease, *, keep_row: bool = False) -> None:
        try:
            if keep_row:
                return
            with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
                # expire rather than delete: the row keeps the token, so the next holder's is larger
                conn.execute(
                    f"UPDATE {qualified(self.leases)} SET expires_at = ? WHERE pipeline_name = ? AND window_start = ? AND token = ?",
                    [_now(), lease.pipeline_name, lease.window_start, lease.token],
                )
        finally:
            self.locks.let_go(lease.pipeline_name, lease.window_start)  # the lock file stays (see module doc)

    def current_lease(self, pipeline_name: str, window_start: datetime) -> Lease | None:
        if not self.exists():
            return None
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            return self._lease_row(conn, pipeline_name, window_start)


def _literal(path: Path) -> str:
    """A file name as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"
