"""Snowflake sessions: one per thread, opened lazily, tagged, with errors translated.

A :class:`Session` is pinned to the thread that first used it, so a transaction and everything
nested in it (the lease check a commit makes, for one) run on one session, while the
heartbeat thread gets a session of its own: statements of two threads never land in one
transaction. Sessions of threads that ended are reused by new threads. A session that an error
left unusable (expired, closed) is dropped, and the next statement logs in again.

Every statement binds its values as parameters (``paramstyle=qmark``) and carries its
QUERY_TAG as a statement parameter (see :mod:`.tags`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from drivetrain.errors import MissingExtraError, TransientError
from drivetrain.sql.session import SqlHome

from . import tags
from .errors import snowflake_errors
from .sql import binds

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.sql.names import TableRef

    from .config import SnowflakeOptions

log = logging.getLogger(__name__)
T = TypeVar("T")


def snowflake_connector() -> Any:
    """The ``snowflake.connector`` module, or MissingExtraError naming the extra to install."""
    try:
        import snowflake.connector
    except ImportError:
        raise MissingExtraError("snowflake-connector-python", "snowflake") from None
    return snowflake.connector


class SnowflakeHome(SqlHome, Protocol):
    """What the drive store, its leases and the window load use of their
    :class:`~.warehouse.SnowflakeWarehouse` (which builds them)."""

    @property
    def options(self) -> SnowflakeOptions:
        """The warehouse section's settings."""
        ...

    @property
    def pool(self) -> SessionPool:
        """The warehouse's sessions."""
        ...

    def qualified(self, table: TableRef) -> str:
        """The table's name for SQL, completed with the section's database and schema."""
        ...

    def where(self, table: TableRef, action: str) -> str:
        """Where an operation happens, for messages."""
        ...

    def claim_table(self, table: TableRef) -> None:
        """Claim ``table`` for ``table.owner`` before writing it."""
        ...

    def ensure_table(self, table: TableRef, schema: pa.Schema) -> None:
        """Create or widen the table for ``schema``."""
        ...

    def window_sql(self, table: TableRef, alias: str = "") -> str:
        """The window predicate on the table's query field."""
        ...


class Session:
    """One logged-in Snowflake session, used by one thread at a time."""

    def __init__(self, pool: SessionPool, conn: Any) -> None:
        self.pool = pool
        self.conn = conn
        self.broken = False
        self.stages: set[str] = set()
        """Temporary stages created in this session (they live as long as it does)."""

    @property
    def session_id(self) -> str | None:
        """Snowflake's id of this session, for SYSTEM$ABORT_SESSION (None if not reported)."""
        value = getattr(self.conn, "session_id", None)
        return None if value is None else str(value)

    def _broke(self) -> None:
        self.broken = True

    def execute(self, sql: str, params: Sequence[Any] | None = None, *, what: str, hints: dict[str, Any] | None = None) -> Any:
        """Run one statement; returns the cursor (rowcount, fetch...)."""
        tags.install()
        cursor = self.conn.cursor()
        with snowflake_errors(what, on_broken=self._broke):
            cursor.execute(sql, binds(params), _statement_params={"QUERY_TAG": tags.query_tag(self.pool.options.query_tag_prefix, hints)})
        return cursor

    def rows(self, sql: str, params: Sequence[Any] | None = None, *, what: str, hints: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and fetch every row."""
        cursor = self.execute(sql, params, what=what, hints=hints)
        with snowflake_errors(what, on_broken=self._broke):
            return list(cursor.fetchall())

    def arrow(self, sql: str, params: Sequence[Any] | None, batch_size: int, *, what: str) -> Iterator[pa.RecordBatch]:
        """Run a query and stream its result as record batches of at most ``batch_size`` rows."""
        cursor = self.execute(sql, params, what=what)
        with snowflake_errors(what, on_broken=self._broke):
            for table in cursor.fetch_arrow_batches():
                if table is not None and table.num_rows:
                    yield from table.to_batches(max_chunksize=batch_size)

    @contextmanager
    def transaction(self, what: str) -> Iterator[Session]:
        """BEGIN ... COMMIT; ROLLBACK when the block raises (anything, including LeaseError).

        Never run DDL inside: Snowflake commits the open transaction before any DDL.
        """
        self.execute("BEGIN TRANSACTION", what=f"{what}: begin")
        try:
            yield self
        except BaseException:
            with suppress(Exception):
                self.conn.cursor().execute("ROLLBACK")
            raise
        try:
            self.execute("COMMIT", what=f"{what}: commit")
        except BaseException:
            with suppress(Exception):
                self.conn.cursor().execute("ROLLBACK")
            raise

    def close(self) -> None:
        with suppress(Exception):
            self.conn.close()


class SessionPool:
    """The sessions of one warehouse: one per live thread, plus idle ones for new threads."""

    def __init__(self, options: SnowflakeOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._by_thread: dict[int, tuple[weakref.ref[threading.Thread], Session]] = {}
        self._idle: list[Session] = []

    def session(self) -> Session:
        """This thread's session, logging in if it has none (or its last one broke)."""
        thread = threading.current_thread()
        key = id(thread)
        with self._lock:
            entry = self._by_thread.get(key)
            if entry is not None and entry[0]() is thread and not entry[1].broken:
                return entry[1]
            if entry is not None:
                self._by_thread.pop(key)
                if entry[1].broken:
                    entry[1].close()
            self._reap()
            session = self._idle.pop() if self._idle else None
        if session is None:
            session = Session(self, self._login())
        with self._lock:
            self._by_thread[key] = (weakref.ref(thread), session)
        return session

    def _reap(self) -> None:
        """Hand the sessions of ended threads to the idle list (lock held)."""
        for key, (ref, session) in list(self._by_thread.items()):
            thread = ref()
            if thread is None or not thread.is_alive():
                del self._by_thread[key]
                if session.broken:
                    session.close()
                else:
                    self._idle.append(session)

    def _login(self) -> Any:
        connector = snowflake_connector()
        opts = self.options
        params = {
            "QUERY_TAG": tags.query_tag(opts.query_tag_prefix),
            "LOCK_TIMEOUT": opts.lock_timeout_seconds,
            "TIMEZONE": "UTC",
        }
        with snowflake_errors(f"log in to {opts.describe()}"):
            return connector.connect(**opts.connect_kwargs(params))

    def retrying(self, action: Callable[[Session], T], *, attempts: int = 5, delay: float = 0.1) -> T:
        """Run ``action`` with this thread's session, again on a TransientError (new session if broken).

        Only for idempotent actions: a single statement, or a transaction that rolled back.
        """
        for attempt in range(1, attempts + 1):
            try:
                return action(self.session())
            except TransientError as exc:
                if attempt == attempts:
                    raise
                pause = delay * (2 ** (attempt - 1)) * (0.5 + random.random())
                log.debug("transient Snowflake error, retry %d of %d in %.2fs: %s", attempt, attempts - 1, pause, exc)
                time.sleep(pause)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Log out every session (best effort)."""
        with self._lock:
            sessions = [s for _, s in self._by_thread.values()] + self._idle
            self._by_thread.clear()
            self._idle.clear()
        for session in sessions:
            session.close()


class SqlSession:
    """:class:`drivetrain.sql.session.SqlSession` over this thread's session of a pool.

    With ``retry`` every statement is retried on a transient error (idempotent statements only).
    """

    def __init__(self, pool: SessionPool, what: str, *, retry: bool = False) -> None:
        self.pool = pool
        self.what = what
        self.retry = retry

    def __enter__(self) -> SqlSession:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to give back: the session stays with its thread (see SessionPool)."""

    def _run(self, action: Callable[[Session], T]) -> T:
        return self.pool.retrying(action) if self.retry else action(self.pool.session())

    def execute(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> int:
        def run(s: Session) -> int:
            count = s.execute(sql, list(params), what=self.what, hints=hints).rowcount
            return -1 if count is None else int(count)

        return self._run(run)

    def rows(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._run(lambda s: s.rows(sql, list(params), what=self.what, hints=hints))

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def run(s: Session) -> list[dict[str, Any]]:
            cursor = s.execute(sql, list(params), what=self.what)
            names = [d[0].lower() for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        return self._run(run)

    def arrow(self, sql: str, params: Sequence[Any], batch_size: int) -> Iterator[pa.RecordBatch]:
        return self.pool.session().arrow(sql, list(params), batch_size, what=self.what)

    def transaction(self) -> AbstractContextManager[Any]:
        return self.pool.session().transaction(self.what)
