"""The drive table in SQLite: the shared SQL drive store, written in short WAL transactions.

Why SQLite for the drive table: it is read by every ``status``, report and next-window question
and written by every run about a dozen times per window, in writes of a few milliseconds. In
WAL mode readers never wait for the writer, and a writer holds the file only for its own
transaction; a DuckDB file is opened by one process at a time and has to be handed over for
each write (about 300 ms a write with eight writers; see benchmarks/fleet_concurrency_writers.py).

The lease of a window is an OS file lock (``flock``, :mod:`drivetrain.sql.window_locks`) held for the whole run, plus
a row in ``drivetrain_leases`` carrying the holder and the fencing token, as on DuckDB: the
kernel drops the lock when the holder dies, even by SIGKILL, so a crashed run's window is free
at once; a paused one keeps it. A run driven step by step (holder ``step:...``, Airflow) holds
no lock between its steps; its lease row tells, until it expires. The token is read and
written in one ``BEGIN IMMEDIATE`` transaction, so two acquirers never hand out the same one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

from drivetrain.drive import Lease, _utc
from drivetrain.sql import drive_indexes, drive_phases, drive_windows
from drivetrain.sql.drive import DRIVE_COLUMNS, KIND, SqlDriveStore, check_fence, chunks, next_token
from drivetrain.sql.session import SqlSession, utc_now
from drivetrain.sql.window_locks import WindowLocks

from . import drive_islands
from .move import move_rows

if TYPE_CHECKING:
    from drivetrain.record import RunRecord
    from drivetrain.sql.names import TableRef

    from .session import SqliteHome, SqliteSession

_KEY = "pipeline_name = ? AND window_start = ?"
#: An instant as the drive table stores it (see .session.INSTANT).
STORED_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")


class SqliteDriveStore(SqlDriveStore):
    """``pipeline_execution_drive`` plus ``drivetrain_leases`` and ``drivetrain_meta`` in one SQLite file."""

    lease_columns: ClassVar[list[tuple[str, str, bool]]] = [
        ("pipeline_name", "text", True), ("window_start", "timestamp", True), ("window_end", "timestamp", True),
        ("holder", "text", True), ("token", "bigint", True), ("acquired_at", "timestamp", True), ("expires_at", "timestamp", True),
    ]
    create_on_read: ClassVar[bool] = False  # reading never creates the file or the tables
    summary_by_trigger: ClassVar[bool] = True  # any write keeps the window summary, one by hand too
    #: A pipeline's newest or oldest value is one seek of an index (see drivetrain.monitoring.fleet.seeks):
    #: SQLite's GROUP BY reads every entry of every pipeline instead.
    seeks_per_pipeline: ClassVar[bool] = True
    layout: ClassVar[int] = 5  # the island marks of the window summary (see drive_islands)

    def __init__(self, warehouse: SqliteHome, table: TableRef, *, previous: SqlDriveStore | None = None,
                 locks: WindowLocks | None = None) -> None:
        super().__init__(warehouse, table)
        self.wh: SqliteHome = warehouse
        self.leases = self.leases_ref
        self.location = f"{warehouse.path}: {table.name}"
        self.locks = locks or WindowLocks(warehouse.path)
        self.previous = previous
        """Where this drive table was kept before (a DuckDB drive file): its rows and leases are
        moved here once, when this file's tables are created (see :mod:`.move`)."""
        self._found = False
        self._flagged = False

    @contextmanager
    def _write(self) -> Iterator[SqlSession]:
        """One connection in one ``BEGIN IMMEDIATE`` transaction for the block."""
        with self.wh.pool.hold(), self.sql() as s, s.transaction():
            yield s

    def exists(self) -> bool:
        """True when the drive table is there; never creates the file or the tables, except to
        move a previous drive table here (once, on the first use of any kind)."""
        if self._ready or self._found:
            return True
        if self.wh.path.exists():
            self._found = self.wh.table_exists(self.table) and self.wh.table_exists(self.leases)
        if not self._found and self.previous is not None and self.previous.exists():
            self.ensure()  # its rows are read here from now on: move them first
            self._found = True
        return self._found

    def ensure(self) -> None:
        """Create (or migrate) the tables and their indexes in one transaction: two processes
        starting on a new file never both create, and a crash leaves all or nothing."""
        if self._ready:
            return
        try:
            with self._write() as s:
                fresh = not self.wh.table_exists(self.table)  # decided under the write lock: one process moves
                super().ensure()
                for statement in drive_indexes.create_sql(drive_indexes.INDEXES, drive_indexes.tables(self.table, self.leases),
                                                          self.dialect.qualified, self.dialect.owned):
                    s.execute(statement)
                phase_triggers = drive_phases.trigger_sql(self.dialect, self.table, self.dialect.qualified(self.meta),
                                                          self.meta_columns[0])
                added = drive_islands.upgrade(s, self.dialect, self.windows_ref, self.wh.table_columns(self.windows_ref))
                for stale in drive_islands.stale_triggers(s, self.table):  # a layout-4 file's: without the flags
                    s.execute(f"DROP TRIGGER {self.dialect.owned(stale)}")
                summary = self.dialect.qualified(self.windows_ref)
                window_triggers = drive_windows.trigger_sql(self.dialect, self.table, lambda row: drive_islands.around(summary, row))
                for trigger in [*window_triggers, *phase_triggers]:
                    s.execute(trigger)
                if added:
                    drive_islands.flag_all(s, self.dialect, self.windows_ref)
                if fresh and self.previous is not None and self.previous.exists():
                    move_rows(self, self.previous, s)  # in this transaction: a crash leaves no table, the next use moves again
        except BaseException:
            self._ready = False
            raise

    def rebuild_summaries(self, s: SqlSession) -> None:
        """The summaries again (see the base class), and the window summary's island edges."""
        super().rebuild_summaries(s)
        drive_islands.upgrade(s, self.dialect, self.windows_ref, self.wh.table_columns(self.windows_ref))
        drive_islands.flag_all(s, self.dialect, self.windows_ref)

    def island_indexes(self) -> tuple[str, str] | None:
        """The partial indexes of the island starts and ends, to read the edges through (``INDEXED
        BY``: on a 31 GB year the planner took the success index and read every window, 9 s); None
        while the window summary has no island edges (an older file not yet written by this
        version, layout 4: the islands are then found by anti-joins)."""
        names = [f"{self.windows_ref.name}__{kind}" for kind in drive_islands.EDGE_INDEXES]
        if not self._flagged and self.summarized() and all(
                c in self.wh.table_columns(self.windows_ref) for c in drive_islands.COLUMNS):
            with self.sql() as s:
                found = s.rows(f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ({', '.join('?' for _ in names)})",
                               names)
            self._flagged = found[0][0] == len(names)
        if not self._flagged:
            return None
        starts, ends = (self.dialect.owned(name) for name in names)
        return starts, ends

    def _open_candidates(self, pipeline_name: str, since: datetime) -> tuple[str, list[Any]]:
        """Only the windows the window summary says no run completed (its partial index holds
        just those): a run's next window no longer groups every run since the beginning."""
        if not self.summarized():
            return "", []
        return (f" AND query_window_start_timestamp IN (SELECT window_start FROM {self.windows_sql} "
                "WHERE pipeline_name = ? AND completed = 0 AND window_start >= ?)", [pipeline_name, since])

    def first_incomplete(self, pipeline_name: str, since: datetime) -> datetime:
        """:meth:`DriveStore.first_incomplete` from the island edges (layout 5): the end of the
        first island ending from ``since`` on, when a completed window starts at ``since``."""
        indexes = self.island_indexes()
        if indexes is None:
            return super().first_incomplete(pipeline_name, since)
        w, (_, ends) = self.windows_sql, indexes
        rows = self.query(f"SELECT (SELECT COUNT(*) FROM {w} WHERE pipeline_name = ? AND window_start = ? AND completed > 0) "
                          f"AS covered, (SELECT MIN(window_end) FROM {w} INDEXED BY {ends} WHERE pipeline_name = ? "
                          "AND island_end = 1 AND window_start >= ?) AS first_gap", [pipeline_name, since, pipeline_name, since])
        if not rows or not rows[0]["covered"] or rows[0]["first_gap"] is None:
            return since
        return _utc(rows[0]["first_gap"])

    def insert(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        with self._write():  # the fence check and the write: one transaction
            super().insert(record, fence=fence)

    def update(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        with self._write():
            super().update(record, fence=fence)

    #: Page cache of a bulk insert's connection, in KiB (SQLite's default is 2 MiB): each row
    #: goes into the drive table's indexes and both summaries' at places spread over the whole
    #: file (one per pipeline), which a small cache reads back from the OS for every row.
    bulk_cache_kib: ClassVar[int] = 256 * 1024

    def insert_many(self, records: Iterable[RunRecord], *, chunk: int = 5_000) -> int:
        """Insert finished rows in bulk (see the base class), ``chunk`` rows per transaction."""
        self.ensure()
        names = [name for name, _, _ in DRIVE_COLUMNS]
        sql = f"INSERT INTO {self.table_sql} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
        phase_names = [name for name, _, _ in drive_phases.PHASE_COLUMNS]
        phases_sql = (f"INSERT INTO {self.dialect.qualified(self.phases_ref)} ({', '.join(phase_names)}) "
                      f"VALUES ({', '.join('?' for _ in phase_names)})")
        meta, (key, value) = self.dialect.qualified(self.meta), self.meta_columns
        done = 0
        with self.wh.pool.hold(), self.sql() as s:
            before = s.rows("PRAGMA cache_size")[0][0]
            s.execute(f"PRAGMA cache_size = {-int(self.bulk_cache_kib)}")
            try:
                for part in chunks(records, chunk):
                    params = []
                    for record in part:
                        row = self._row(record)
                        params.append([value for name in names for value in self._value(name, row[name])[1]])
                    with self._write() as w:  # one transaction: no other connection ever sees the bulk row
                        w.execute(f"INSERT INTO {meta} ({key}, {value}) VALUES (?, 'phase rows written by the insert')",
                                  [drive_phases.BULK_KEY])
                        cast("SqliteSession", w).execute_many(sql, params)  # one statement prepared once
                        # the phase rows from the records themselves (parsing them back costs 0.1 ms a run)
                        cast("SqliteSession", w).execute_many(phases_sql, drive_phases.rows_of(part))
                        w.execute(f"DELETE FROM {meta} WHERE {key} = ?", [drive_phases.BULK_KEY])
                    done += len(part)
            finally:
                s.execute(f"PRAGMA cache_size = {int(before)}")  # the connection goes back to the pool as it was
        return done

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """A report query (see the base class); an instant under an alias of its own
        (``MAX(pipeline_end_timestamp) AS last_ok``) is read back as one too, as on the other
        engines, which return their timestamp type."""
        rows = super().query(sql, params)
        for row in rows:
            for name, value in row.items():
                if name not in KIND and isinstance(value, str) and STORED_INSTANT.match(value):
                    row[name] = self.dialect.decode("timestamp", value)
        return rows

    def reading(self) -> AbstractContextManager[object]:
        """One connection for a block of reads (a command); it never blocks a writer (WAL)."""
        return self.wh.pool.hold()

    def fence_sql(self, lease: Lease | None) -> tuple[str, list[Any]]:
        if lease is None:
            return "", []
        return (f" AND EXISTS (SELECT 1 FROM {self.dialect.qualified(self.leases)} WHERE {_KEY} AND token = ? AND holder = ?)",
                [lease.pipeline_name, lease.window_start, lease.token, lease.holder])

    # -- leases ---------------------------------------------------------------------------

    def _lease_row(self, s: SqlSession, pipeline_name: str, window_start: datetime) -> Lease | None:
        found = s.rows(f"SELECT pipeline_name, window_start, window_end, holder, token, expires_at "
                       f"FROM {self.dialect.qualified(self.leases)} WHERE {_KEY} ORDER BY token DESC LIMIT 1",
                       [pipeline_name, window_start])
        if not found:
            return None
        name, start, end, holder, token, expires = found[0]
        at = self.dialect.decode
        return Lease(name, at("timestamp", start), at("timestamp", end), holder, int(token), at("timestamp", expires))

    def acquire_lease(self, pipeline_name: str, window_start: datetime, window_end: datetime, holder: str, seconds: float) -> Lease:
        self.locks.take(pipeline_name, window_start, holder)  # first: a loser never waits on the file
        try:
            self.ensure()
            now = utc_now()
            leases = self.dialect.qualified(self.leases)
            with self._write() as s:
                token = next_token(self._lease_row(s, pipeline_name, window_start), holder, now)
                lease = Lease(pipeline_name, window_start, window_end, holder, token, now + timedelta(seconds=seconds))
                s.execute(f"DELETE FROM {leases} WHERE {_KEY}", [pipeline_name, window_start])
                s.execute(f"INSERT INTO {leases} (pipeline_name, window_start, window_end, holder, token, acquired_at, expires_at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", [pipeline_name, window_start, window_end, holder, token, now, lease.expires_at])
        except BaseException:
            self.locks.let_go(pipeline_name, window_start)
            raise
        return lease

    def renew_lease(self, lease: Lease, seconds: float) -> Lease:
        expires = utc_now() + timedelta(seconds=seconds)
        with self._write() as s:
            if self._set_lease_expiry(s, lease, expires) != 1:
                self._check(s, lease)
        return Lease(lease.pipeline_name, lease.window_start, lease.window_end, lease.holder, lease.token, expires)

    def _check(self, s: SqlSession, lease: Lease) -> None:
        check_fence(lease, self._lease_row(s, lease.pipeline_name, lease.window_start))

    def verify_lease(self, lease: Lease) -> None:
        """The fencing check, on this thread's connection (so inside its open transaction)."""
        with self.sql() as s:
            self._check(s, lease)

    def release_lease(self, lease: Lease, *, keep_row: bool = False) -> None:
        try:
            if not keep_row:
                with self.sql() as s:
                    self._set_lease_expiry(s, lease, utc_now())
        finally:
            self.locks.let_go(lease.pipeline_name, lease.window_start)

    def current_lease(self, pipeline_name: str, window_start: datetime) -> Lease | None:
        if not self.exists():
            return None
        with self.sql() as s:
            return self._lease_row(s, pipeline_name, window_start)

    def is_held(self, pipeline_name: str, window_start: datetime) -> bool:
        """True while some process (this one included) runs the window."""
        return self.locks.is_held(pipeline_name, window_start)

    def dead_reason(self, record: RunRecord) -> str | None:
        """A run driven by one process holds its window's file lock until it ends: once the lock
        is free, that process is gone. A run driven step by step holds none between its steps;
        its lease row tells instead."""
        if record.lease_holder is None or self.is_held(record.pipeline_name, record.query_window_start_timestamp):
            return None
        if record.lease_holder.startswith("step:"):
            return super().dead_reason(record)
        return (f"no process holds the window's lock any more: its process ({record.lease_holder}) "
                "was killed or crashed")

    def session(self) -> AbstractContextManager[object]:
        return self.wh.pool.hold()

    def keep_open(self) -> AbstractContextManager[object]:
        return self.wh.pool.hold()

    def close(self) -> None:
        """Let go of every window still locked by this store (the drive rows stay as they are)."""
        self.locks.close()

