"""The drive table in PostgreSQL: the shared SQL drive store, with leases held as advisory locks.

Columns have the spec's types: text, integer, timestamptz, date, ``jsonb`` for each phase's state
and the config snapshot, ``text[]`` for the ``phases_*`` lists. Every value is bound with a cast to
its column's type (an untyped parameter in ``INSERT ... SELECT`` would be read as text).

The lease of a window is a session-level advisory lock (``pg_try_advisory_lock`` on a 64-bit hash
of the pipeline name and window start), taken on a connection the store keeps open for the
whole run, plus a row in ``drivetrain_leases`` carrying the holder and the fencing token. The
server drops the lock when that session ends, which it does when the holder's process dies,
even by SIGKILL (its socket closes), so a crashed run's window is free at once while a paused
one keeps it: stale handling sees a dead holder the way it sees DuckDB's free file lock. The
lock also serialises acquirers of one window, so the token read and written under it only grows.
A run driven step by step (holder ``step:...``, e.g. Airflow) holds no lock between its steps;
its lease row tells, until it expires.

A lock can also vanish while its holder lives: a server restart drops every advisory lock, and
a terminated session (``pg_terminate_backend``, a network cut) drops its own. So a free lock
alone does not make a holder dead while its lease row is unexpired and either the lock was taken
before the server last started (``acquired_at`` < ``pg_postmaster_start_time()``), or the holder
is a process on this host that still exists. Such a window is neither taken over nor closed as
failed until the row expires; the live holder takes its lock again at its next heartbeat
(setting ``acquired_at``), and from then on its lock tells again.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.drive import Lease, holder_is_dead
from drivetrain.errors import LeaseError, PermanentError, TransientError
from drivetrain.sql import drive_indexes
from drivetrain.sql.drive import KIND, SqlDriveStore, check_fence
from drivetrain.sql.names import TableRef
from drivetrain.sql.session import utc_now as _now

if TYPE_CHECKING:
    from drivetrain.record import RunRecord

    from .session import PostgresHome

log = logging.getLogger(__name__)
_KEY = "pipeline_name = ? AND window_start = ?"


def lock_key(pipeline_name: str, window_start: datetime) -> str:
    """The text hashed (on the server, ``hashtextextended``) into the window's advisory lock key."""
    return f"drivetrain:{pipeline_name}:{window_start.astimezone(UTC).isoformat()}"


def index_name(name: str) -> str:
    """``name`` within PostgreSQL's 63 bytes: a longer one keeps its start and ends with a hash
    of the whole (the server would cut it, and two long names could end up the same)."""
    if len(name.encode()) <= 63:
        return name
    return f"{name[:54]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


class PostgresDriveStore(SqlDriveStore):
    """``<schema>.pipeline_execution_drive`` plus ``drivetrain_leases`` and ``drivetrain_meta``."""

    #: Reading never creates the tables: a dry run, ``status`` or a report on a new schema changes nothing.
    create_on_read: ClassVar[bool] = False
    lease_columns: ClassVar[list[tuple[str, str, bool]]] = [
        ("pipeline_name", "text", True), ("window_start", "timestamp", True), ("window_end", "timestamp", True),
        ("holder", "text", True), ("token", "bigint", True), ("acquired_at", "timestamp", True), ("expires_at", "timestamp", True),
    ]

    def __init__(self, warehouse: PostgresHome, table: TableRef) -> None:
        super().__init__(warehouse, table)
        self.wh: PostgresHome = warehouse
        self._held: dict[tuple[str, datetime], Any] = {}
        """Window -> the connection holding its advisory lock."""
        self._held_lock = threading.Lock()

    def ensure(self) -> None:
        """The tables (as every SQL store makes them), then the indexes each drive write and read
        seeks by (:mod:`drivetrain.sql.drive_indexes`). Only the missing ones are created, found
        by a catalogue read: ``CREATE INDEX IF NOT EXISTS`` would lock the table against writes
        even when the index is there. A drive table made by an older drivetrain gets them at its
        first use here (a scan of each table, once; writers wait for it, readers do not). One the
        store cannot make (a table the role may write but not own) is named in a warning with
        its statement for the owner to run: without it the store is slower, not wrong."""
        if self._ready:
            return
        super().ensure()
        refs = drive_indexes.tables(self.table, self.leases_ref)
        wanted = (*drive_indexes.INDEXES, drive_indexes.RUN_PHASES)
        names = [index_name(drive_indexes.name_of(index, refs)) for index in wanted]
        places = [self.dialect.qualified(TableRef(name=name, schema=self.table.schema, database=self.table.database))
                  for name in names]
        with self.sql() as s:
            found = s.rows(f"SELECT {', '.join('to_regclass(?) IS NOT NULL' for _ in places)}", places)[0]
        missing = tuple(index for index, there in zip(wanted, found, strict=True) if not there)
        failed: list[str] = []
        first_error = ""
        for index, statement in zip(missing, drive_indexes.create_sql(missing, refs, self.dialect.qualified,
                                                                      lambda name: self.dialect.owned(index_name(name))),
                                    strict=True):
            log.info("%s: creating the index %s of %s (%s)", self.location, index.suffix, index.table, index.why)
            try:
                with self.sql() as s:
                    s.execute(statement)
            except (PermanentError, TransientError) as exc:
                with self.sql() as s:  # another process may have made it at the same moment
                    there = s.rows("SELECT to_regclass(?) IS NOT NULL", [places[wanted.index(index)]])[0][0]
                if not there:
                    failed.append(statement)
                    first_error = first_error or str(exc).splitlines()[0]
        if failed:
            log.warning("%s; the drive table's writes and reads scan whole tables that grow with every run until "
                        "the tables' owner runs: %s", first_error, "; ".join(failed))

    def exists(self) -> bool:
        """True when the drive table and its lease table are there (brought to this version's layout
        then, as a write would); never creates them."""
        if self._ready:
            return True
        d = self.dialect
        with self.sql() as s:
            found = s.rows("SELECT to_regclass(?) IS NOT NULL AND to_regclass(?) IS NOT NULL",
                           [d.qualified(self.table), d.qualified(self.leases_ref)])[0][0]
        if found:
            self.ensure()
        return bool(found)

    def _value(self, name: str, value: Any) -> tuple[str, list[Any]]:
        kind = KIND[name]
        if kind in ("json", "array"):
            return super()._value(name, value)
        return f"CAST(? AS {self.dialect.types[kind]})", [value]

    def fence_sql(self, lease: Lease | None) -> tuple[str, list[Any]]:
        if lease is None:
            return "", []
        return (f" AND EXISTS (SELECT 1 FROM {self.dialect.qualified(self.leases_ref)} WHERE {_KEY} AND token = ? AND holder = ?)",
                [lease.pipeline_name, lease.window_start, lease.token, lease.holder])

    # -- leases ---------------------------------------------------------------------------

    def _lease_row(self, pipeline_name: str, window_start: datetime) -> Lease | None:
        with self.sql() as s:
            found = s.rows(f"SELECT pipeline_name, window_start, window_end, holder, token, expires_at "
                           f"FROM {self.dialect.qualified(self.leases_ref)} WHERE {_KEY} ORDER BY token DESC LIMIT 1",
                           [pipeline_name, window_start])
        if not found:
            return None
        name, start, end, holder, token, expires = found[0]
        return Lease(name, start.astimezone(UTC), end.astimezone(UTC), holder, int(token), expires.astimezone(UTC))

    def _try_lock(self, conn: Any, pipeline_name: str, window_start: datetime) -> bool:
        with self.wh.pool.errors(f"{self.location}: take the lock of a window"):
            row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [lock_key(pipeline_name, window_start)]).fetchone()
        return bool(row[0])

    def acquire_lease(self, pipeline_name: str, window_start: datetime, window_end: datetime, holder: str, seconds: float) -> Lease:
        self.ensure()
        conn = self.wh.pool.connect(f"{self.location}: lease")
        try:
            if not self._try_lock(conn, pipeline_name, window_start):  # first: a loser never waits
                current = self._lease_row(pipeline_name, window_start)
                who = current.holder if current is not None else "another session"
                raise LeaseError(f"{pipeline_name}: the window {window_start.isoformat()} is being run by {who}; "
                                 "not starting a second run", holder=who)
            lease = self._write_lease(conn, pipeline_name, window_start, window_end, holder, seconds)
        except BaseException:
            with suppress(Exception):
                conn.close()
            raise
        with self._held_lock:
            old = self._held.pop((pipeline_name, window_start), None)
            self._held[(pipeline_name, window_start)] = conn
        _let_go(old)
        return lease

    def _write_lease(self, conn: Any, pipeline_name: str, window_start: datetime, window_end: datetime,
                     holder: str, seconds: float) -> Lease:
        """Under the window's lock: decide the token and write the row (one transaction)."""
        now = _now()
        leases = self.dialect.qualified(self.leases_ref)
        with self.wh.pool.errors(f"{self.location}: write the lease"), conn.transaction():
            found = conn.execute(f"SELECT holder, token, expires_at, acquired_at < pg_postmaster_start_time() FROM {leases} "
                                 "WHERE pipeline_name = %s AND window_start = %s ORDER BY token DESC LIMIT 1",
                                 [pipeline_name, window_start]).fetchone()
            if found is not None:
                current_holder, current_token, expires, before_restart = found
                if current_holder != holder and current_holder.startswith("step:") and expires > now:
                    raise LeaseError(
                        f"{pipeline_name}: the window {window_start.isoformat()} belongs to a run driven step by step "
                        f"({current_holder}, e.g. an Airflow DAG run) until {expires.isoformat()}; not starting a second run",
                        holder=current_holder,
                    )
                lost = _lock_lost_by_live_holder(current_holder, expires, before_restart, now)
                if current_holder != holder and lost is not None:
                    raise LeaseError(f"{pipeline_name}: the window {window_start.isoformat()} is being run by {current_holder}, "
                                     f"whose lock {lost}; it keeps the window until its lease expires at "
                                     f"{expires.isoformat()} (or it takes its lock again); not starting a second run",
                                     holder=current_holder)
                token = int(current_token) if current_holder == holder else int(current_token) + 1
            else:
                token = 1
            lease = Lease(pipeline_name, window_start, window_end, holder, token, now + timedelta(seconds=seconds))
            conn.execute(f"DELETE FROM {leases} WHERE pipeline_name = %s AND window_start = %s", [pipeline_name, window_start])
            conn.execute(f"INSERT INTO {leases} (pipeline_name, window_start, window_end, holder, token, acquired_at, expires_at) "
                         "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                         [pipeline_name, window_start, window_end, holder, token, now, lease.expires_at])
        return lease

    def renew_lease(self, lease: Lease, seconds: float) -> Lease:
        expires = _now() + timedelta(seconds=seconds)
        with self.sql() as s:
            changed = self._set_lease_expiry(s, lease, expires)
        if changed != 1:
            self.verify_lease(lease)
        self._keep_locked(lease)
        return Lease(lease.pipeline_name, lease.window_start, lease.window_end, lease.holder, lease.token, expires)

    def _keep_locked(self, lease: Lease) -> None:
        """Take the window's lock again when its session is gone (server restart, terminated session).

        On success the lease row's ``acquired_at`` says when, so the lock tells again; when another
        session holds it for a moment (a contender checking), the next heartbeat tries again.
        """
        key = (lease.pipeline_name, lease.window_start)
        with self._held_lock:
            conn = self._held.get(key)
        if conn is None:
            return
        try:
            conn.execute("SELECT 1")
            return
        except Exception:  # noqa: BLE001 - its session is gone: the lock went with it
            _let_go(conn)
        fresh = self.wh.pool.connect(f"{self.location}: lease")
        try:
            if not self._try_lock(fresh, lease.pipeline_name, lease.window_start):
                fresh.close()
                return
            fresh.execute(f"UPDATE {self.dialect.qualified(self.leases_ref)} SET acquired_at = %s "
                          "WHERE pipeline_name = %s AND window_start = %s AND token = %s AND holder = %s",
                          [_now(), lease.pipeline_name, lease.window_start, lease.token, lease.holder])
        except BaseException:
            _let_go(fresh)
            raise
        with self._held_lock:
            if self._held.get(key) is conn:  # not released meanwhile
                self._held[key] = fresh
                fresh = None
        _let_go(fresh)

    def verify_lease(self, lease: Lease) -> None:
        """The fencing check, on this thread's connection (so inside its open transaction)."""
        check_fence(lease, self._lease_row(lease.pipeline_name, lease.window_start))

    def release_lease(self, lease: Lease, *, keep_row: bool = False) -> None:
        try:
            if not keep_row:
                with self.sql() as s:
                    self._set_lease_expiry(s, lease, _now())
        finally:
            with self._held_lock:
                conn = self._held.pop((lease.pipeline_name, lease.window_start), None)
            _let_go(conn)

    def current_lease(self, pipeline_name: str, window_start: datetime) -> Lease | None:
        return self._lease_row(pipeline_name, window_start) if self.exists() else None

    def is_held(self, pipeline_name: str, window_start: datetime) -> bool:
        """True while some session (this process's included) holds the window's advisory lock."""
        with self._held_lock:
            if (pipeline_name, window_start) in self._held:
                return True
        key = lock_key(pipeline_name, window_start)
        with self.sql() as s:
            free = s.rows("SELECT pg_try_advisory_lock(hashtextextended(?, 0))", [key])[0][0]
            if free:
                s.execute("SELECT pg_advisory_unlock(hashtextextended(?, 0))", [key])
        return not free or self.lock_lost(pipeline_name, window_start) is not None

    def lock_lost(self, pipeline_name: str, window_start: datetime) -> str | None:
        """How the window's lock went while its holder may live (see the module), or None."""
        if not self.exists():
            return None
        with self.sql() as s:
            found = s.rows(f"SELECT holder, expires_at, acquired_at < pg_postmaster_start_time() FROM "
                           f"{self.dialect.qualified(self.leases_ref)} WHERE {_KEY} ORDER BY token DESC LIMIT 1",
                           [pipeline_name, window_start])
        if not found:
            return None
        holder, expires, before_restart = found[0]
        return _lock_lost_by_live_holder(holder, expires, before_restart, _now())

    def dead_reason(self, record: RunRecord) -> str | None:
        """A run driven by one process holds its window's advisory lock until it ends: once the lock
        is free, its session is over (the server ends it when the process dies). A run driven step
        by step holds no lock between steps; its lease row tells instead."""
        if record.lease_holder is None or self.is_held(record.pipeline_name, record.query_window_start_timestamp):
            return None
        if record.lease_holder.startswith("step:"):
            return super().dead_reason(record)
        return (f"no session holds the window's lock any more: its process ({record.lease_holder}) "
                "was killed, crashed or lost its connection")

    def close(self) -> None:
        """Let go of every window still locked by this store (the drive rows stay as they are)."""
        with self._held_lock:
            conns = list(self._held.values())
            self._held.clear()
        for conn in conns:
            _let_go(conn)


def _lock_lost_by_live_holder(holder: str, expires: datetime, before_restart: bool, now: datetime) -> str | None:
    """Why a free lock does not mean a dead holder (see the module), or None when it does."""
    if holder.startswith("step:") or expires <= now:
        return None
    if before_restart:
        return "went with a server restart"
    if holder.split(":", 1)[0] == socket.gethostname() and not holder_is_dead(holder):
        return "went with its session while its process lives on this host"
    return None


def _let_go(conn: Any) -> None:
    """Unlock at once (the server ends a closed session a moment later), then close."""
    if conn is None:
        return
    with suppress(Exception):
        conn.execute("SELECT pg_advisory_unlock_all()")
    with suppress(Exception):
        conn.close()
