"""SQLite sessions for the shared SQL layer: stdlib ``sqlite3``, WAL, durable commits.

Every connection is opened with:

* ``journal_mode=WAL``: readers never wait for the writer, and the writer never waits for them;
* ``synchronous=FULL``: a commit is on disk (the WAL is synced) before it returns, so a drive
  row survives a power cut, as DuckDB's does;
* ``busy_timeout`` from ``lock_timeout_seconds``: a writer waits that long for another one;
* autocommit (``isolation_level=None``): a statement outside :meth:`SqliteSession.transaction`
  is its own transaction, which for a write takes the write lock when it starts.

A transaction is ``BEGIN IMMEDIATE``: it takes the write lock at its start, so two writers that
both read first never deadlock on the upgrade to a write (the second waits instead).

Values are bound as SQLite stores them (:func:`to_sqlite`): an instant as fixed-width ISO-8601
text in UTC, to the microsecond, so text order is time order and a value reads back exactly.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drivetrain.errors import PermanentError, TransientError
from drivetrain.sql.session import SqlHome

if TYPE_CHECKING:
    import pyarrow as pa

#: strftime of a stored instant: always 32 characters, so text comparison is time comparison.
INSTANT = "%Y-%m-%d %H:%M:%S.%f+00:00"


def instant_text(value: datetime) -> str:
    """An instant as stored: UTC, microseconds, fixed width (a naive value is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(INSTANT)


def to_sqlite(value: Any) -> Any:
    """A parameter as SQLite stores it (instants and dates as text, documents as JSON)."""
    if isinstance(value, datetime):
        return instant_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return value


#: Words of SQLite's errors for a file that is damaged or not a database at all.
DAMAGED = ("malformed", "not a database", "disk image")


def about(path: Path, what: str) -> str:
    """``what`` prefixed with the file's path, unless it already names the file (the drive store's
    location does: ``sqlite:PATH: TABLE``), so an error names the path once."""
    return what if str(path) in what else f"{path}: {what}"


@contextmanager
def sqlite_errors(what: str) -> Iterator[None]:
    """sqlite3 errors raised in the block become TransientError (a lock held too long) or
    PermanentError, naming ``what``."""
    try:
        yield
    except sqlite3.Error as exc:
        text = str(exc)
        if any(words in text for words in DAMAGED):
            raise PermanentError(
                f"{what}: the SQLite drive file is damaged ({text}); restore it from a backup, or move it aside so that "
                "drivetrain starts a new file (its runs then no longer count: windows run again); see 'A damaged DuckDB "
                "file' in docs/runbook.md") from exc
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            raise TransientError(f"{what}: {text} (another process kept the drive file's write lock for longer than "
                                 "the lock timeout; raise drive_table.lock_timeout_seconds)") from exc
        raise PermanentError(f"{what}: {text}") from exc


class SqliteHome(SqlHome, Protocol):
    """What the drive store uses of its :class:`~.warehouse.SqliteWarehouse` (which builds it)."""

    @property
    def path(self) -> Path:
        """The SQLite file."""
        ...

    @property
    def pool(self) -> Connections:
        """Its connections."""
        ...


class Connections:
    """Connections to one SQLite file: one per use, or one per thread for a held block."""

    def __init__(self, path: Path, lock_timeout: float) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self._local = threading.local()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.lock_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
            self._ensure_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_wal(self, conn: sqlite3.Connection) -> None:
        """Put the file in WAL mode (kept by the file: set once, by its first user).

        Two processes opening a new file at once may both see it in rollback mode; the second's
        switch then meets the first's connection in WAL mode and SQLite refuses it at once
        ("database is locked", without waiting for the busy timeout). The mode the other process
        set is the one wanted: read it again, and retry within the lock timeout otherwise.
        """
        deadline = time.monotonic() + self.lock_timeout
        while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def connect(self, what: str) -> Iterator[sqlite3.Connection]:
        """This thread's held connection, or one for the block."""
        held = getattr(self._local, "held", None)
        if held is not None:
            if held[0] is None:
                with sqlite_errors(about(self.path, what)):
                    held[0] = self._open()
            yield held[0]
            return
        with sqlite_errors(about(self.path, what)):
            conn = self._open()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep one connection for this thread during the block (opened at its first use, so
        holding never creates the file); nested holds share it."""
        if getattr(self._local, "held", None) is not None:
            yield
            return
        held: list[sqlite3.Connection | None] = [None]
        self._local.held = held
        try:
            yield
        finally:
            self._local.held = None
            if held[0] is not None:
                held[0].close()


class SqliteSession:
    """:class:`drivetrain.sql.session.SqlSession` over one sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection, what: str) -> None:
        self.conn = conn
        self.what = what
        self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> int:
        with sqlite_errors(self.what):
            cursor = self.conn.execute(sql, [to_sqlite(p) for p in params])
        return cursor.rowcount if cursor.description is None else -1

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """``sql`` once per row of parameters (a bulk insert), prepared once."""
        with sqlite_errors(self.what):
            self.conn.executemany(sql, ([to_sqlite(p) for p in row] for row in rows))

    def rows(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with sqlite_errors(self.what):
            return self.conn.execute(sql, [to_sqlite(p) for p in params]).fetchall()

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with sqlite_errors(self.what):
            cursor = self.conn.execute(sql, [to_sqlite(p) for p in params])
            names = [d[0].lower() for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def arrow(self, sql: str, params: Sequence[Any], batch_size: int) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        with sqlite_errors(self.what):
            cursor = self.conn.execute(sql, [to_sqlite(p) for p in params])
            names = [d[0] for d in cursor.description]
            while batch := cursor.fetchmany(batch_size):
                yield pa.RecordBatch.from_pylist([dict(zip(names, row, strict=True)) for row in batch])

    @contextmanager
    def transaction(self) -> Iterator[SqliteSession]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (ROLLBACK when the block raises); nested blocks join it."""
        if self._depth or self.conn.in_transaction:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        with sqlite_errors(self.what):
            self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self.conn.rollback()
            raise
        self._depth = 0
        try:
            with sqlite_errors(self.what):
                self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.rollback()
            raise
