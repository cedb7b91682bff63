"""PostgreSQL sessions for the shared SQL layer: one psycopg connection per thread, errors translated.

A :class:`ConnectionPool` pins a connection to the thread that first used it, as the Snowflake
pool does: a transaction and everything nested in it (the lease check a commit makes) run on one
connection, while the heartbeat thread gets a connection of its own. Connections of threads that
ended are reused; one that broke is dropped and the next statement connects again. Connections
are in autocommit mode; :meth:`PgSession.transaction` opens an explicit one.

The shared layer writes ``?`` placeholders; :func:`to_pyformat` turns them into psycopg's
``%s`` (outside quoted text and names) and doubles every ``%``, so a ``LIKE`` pattern survives.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from drivetrain.connectors.sqlsource.text import driver_errors
from drivetrain.errors import MissingExtraError, TransientError
from drivetrain.sql.session import SqlHome

from . import errors as pg_errors
from .types import _NATIVE, UTC_MICROS

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.sql.names import TableRef

    from .warehouse_config import PostgresWarehouseOptions

log = logging.getLogger(__name__)
T = TypeVar("T")


def psycopg_module() -> Any:
    """The ``psycopg`` module, or MissingExtraError naming the extra to install."""
    try:
        import psycopg
    except ImportError:
        raise MissingExtraError("psycopg", "postgres") from None
    return psycopg


def to_pyformat(sql: str) -> str:
    """``?`` -> ``%s`` outside quotes, every ``%`` doubled (psycopg reads ``%`` as a placeholder)."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote is not None:
            out.append(ch)
            if ch == quote:
                quote = None  # a doubled quote closes and reopens: same result
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


class PostgresHome(SqlHome, Protocol):
    """What the drive store and the window load use of their :class:`~.warehouse.PostgresWarehouse`
    (which builds them)."""

    @property
    def pool(self) -> ConnectionPool:
        """The warehouse's connections (one per thread)."""
        ...

    def where(self, table: TableRef, action: str) -> str:
        """Where an operation happens, for messages."""
        ...

    def claim_table(self, table: TableRef) -> None:
        """Claim ``table`` for ``table.owner`` before writing it."""
        ...

    def ensured_columns(self, table: TableRef, schema: pa.Schema) -> dict[str, str]:
        """Create or widen the table for ``schema``; its columns."""
        ...

    def load_connection(self, what: str) -> Any:
        """A connection for a window load (not in autocommit)."""
        ...

    def keep_load_connection(self, conn: Any) -> None:
        """Keep a load's connection for the next window's load."""
        ...


class ConnectionPool:
    """The connections of one warehouse: one per live thread, plus idle ones for new threads."""

    def __init__(self, options: PostgresWarehouseOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._by_thread: dict[int, tuple[weakref.ref[threading.Thread], Any]] = {}
        self._idle: list[Any] = []

    def errors(self, what: str) -> AbstractContextManager[None]:
        """Driver errors raised in the block become TransientError / PermanentError naming ``what``."""
        from urllib.parse import quote

        password = self.options.password.reveal() if self.options.password is not None else None
        quoted = quote(password, safe="") if password else None  # as written in an ADBC URL
        return driver_errors("PostgreSQL", what, is_driver_error=pg_errors._is_driver_error, classify=classify,
                             text=pg_errors._server_text, secrets=(password, quoted))

    def connect(self, what: str = "connect") -> Any:
        """A new autocommit connection of this warehouse's own (the caller closes it)."""
        psycopg = psycopg_module()
        with self.errors(f"{what}: connect"):
            return psycopg.connect(**self.options.connect_kwargs(), autocommit=True)

    def connection(self) -> Any:
        """This thread's connection, connecting if it has none (or its last one broke)."""
        thread = threading.current_thread()
        key = id(thread)
        with self._lock:
            entry = self._by_thread.get(key)
            if entry is not None and entry[0]() is thread and not entry[1].closed and not entry[1].broken:
                return entry[1]
            if entry is not None:
                self._by_thread.pop(key)
                if entry[0]() is not thread:
                    self._idle.append(entry[1])
                else:
                    with suppress(Exception):
                        entry[1].close()
            self._reap()
            conn = None
            while self._idle and conn is None:
                candidate = self._idle.pop()
                if candidate.closed or candidate.broken:
                    continue
                conn = candidate
        if conn is None:
            conn = self.connect()
        with self._lock:
            self._by_thread[key] = (weakref.ref(thread), conn)
        return conn

    def _reap(self) -> None:
        """Hand the connections of ended threads to the idle list (lock held)."""
        for key, (ref, conn) in list(self._by_thread.items()):
            thread = ref()
            if thread is None or not thread.is_alive():
                del self._by_thread[key]
                self._idle.append(conn)

    def retrying(self, action: Callable[[Any], T], *, attempts: int = 5, delay: float = 0.1) -> T:
        """Run ``action`` with this thread's connection, again on a TransientError (idempotent actions only)."""
        for attempt in range(1, attempts + 1):
            try:
                return action(self.connection())
            except TransientError as exc:
                conn = self.connection()
                if attempt == attempts or conn.info.transaction_status != 0:  # never inside a transaction
                    raise
                pause = delay * (2 ** (attempt - 1)) * (0.5 + random.random())
                log.debug("transient PostgreSQL error, retry %d of %d in %.2fs: %s", attempt, attempts - 1, pause, exc)
                time.sleep(pause)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every connection (best effort)."""
        with self._lock:
            conns = [c for _, c in self._by_thread.values()] + self._idle
            self._by_thread.clear()
            self._idle.clear()
        for conn in conns:
            with suppress(Exception):
                conn.close()


class PgSession:
    """:class:`drivetrain.sql.session.SqlSession` over this thread's connection of a pool."""

    def __init__(self, pool: ConnectionPool, what: str, *, retry: bool = False) -> None:
        self.pool = pool
        self.what = what
        self.retry = retry

    def __enter__(self) -> PgSession:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to give back: the connection stays with its thread (see ConnectionPool)."""

    def _run(self, action: Callable[[Any], T]) -> T:
        def guarded(conn: Any) -> T:
            with self.pool.errors(self.what):
                return action(conn)

        return self.pool.retrying(guarded) if self.retry else guarded(self.pool.connection())

    def execute(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> int:
        def run(conn: Any) -> int:
            with conn.cursor() as cur:
                try:
                    cur.execute(to_pyformat(sql), list(params))
                except Exception as exc:
                    if not _lost_creation_race(conn, sql, exc):
                        raise
                    cur.execute(to_pyformat(sql), list(params))  # the object exists now: a no-op
                return -1 if cur.rowcount is None else int(cur.rowcount)

        return self._run(run)

    def rows(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        def run(conn: Any) -> list[tuple[Any, ...]]:
            with conn.cursor() as cur:
                cur.execute(to_pyformat(sql), list(params))
                return list(cur.fetchall()) if cur.description else []

        return self._run(run)

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def run(conn: Any) -> list[dict[str, Any]]:
            with conn.cursor() as cur:
                cur.execute(to_pyformat(sql), list(params))
                names = [d.name.lower() for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        return self._run(run)

    def arrow(self, sql: str, params: Sequence[Any], batch_size: int) -> Iterator[pa.RecordBatch]:
        """A server-side cursor on a connection of its own, so the caller may write while reading."""
        conn = self.pool.connect(self.what)
        try:
            with self.pool.errors(self.what), conn.transaction():
                cur = conn.cursor("drivetrain_read")
                cur.itersize = batch_size
                cur.execute(to_pyformat(sql), list(params))
                names = [d.name for d in cur.description]
                types = [_arrow_type(conn, d.type_code) for d in cur.description]
                while rows := cur.fetchmany(batch_size):
                    yield _batch(rows, names, types)
        finally:
            with suppress(Exception):
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[PgSession]:
        """BEGIN ... COMMIT on this thread's connection; ROLLBACK when the block raises."""
        conn = self.pool.connection()
        with self.pool.errors(f"{self.what}: begin"):
            tx = conn.transaction()
            tx.__enter__()
        try:
            yield self
        except BaseException as exc:
            with suppress(Exception):
                tx.__exit__(type(exc), exc, exc.__traceback__)
            raise
        with self.pool.errors(f"{self.what}: commit"):
            tx.__exit__(None, None, None)


#: SQLSTATEs of a ``CREATE ... IF NOT EXISTS`` (or ``ADD COLUMN IF NOT EXISTS``) that ran at the
#: same moment as another session's: both passed the check, the other one committed first.
_CREATION_RACE = {"23505", "42P07", "42P06", "42701", "42710"}


def _lost_creation_race(conn: Any, sql: str, exc: BaseException) -> bool:
    """Whether ``exc`` only says another session created the object first (outside a transaction)."""
    return (getattr(exc, "sqlstate", None) in _CREATION_RACE and "IF NOT EXISTS" in sql.upper()
            and conn.info.transaction_status == 0)


#: Hints for a warehouse where the source's would send the reader to ``source_system``.
WAREHOUSE_HINTS = {
    "42501": "the user lacks a privilege for this; grant it USAGE and CREATE on the schema (CREATE on the database "
             "when the schema is to be created) and SELECT, INSERT, UPDATE, DELETE on the tables it writes",
    "42P01": "a table is missing; check 'schema' and 'table' in the section",
    "3D000": "the database does not exist; check 'database' in the section",
    "42703": "a column does not exist in the table; check the section's columns and the table",
}


def classify(exc: BaseException) -> tuple[bool, str | None, str]:
    """The source's classification, with hints that name a warehouse section's keys."""
    transient, state, hint = pg_errors.classify(exc)
    return transient, state, WAREHOUSE_HINTS.get(state or "", hint)


def _arrow_type(conn: Any, oid: int) -> pa.DataType | None:
    """The Arrow type a column of this type is read as (None: inferred from the values)."""
    info = conn.adapters.types.get(oid)
    if info is None or info.array_oid == oid:  # arrays are registered under their element's name
        return None
    name = info.name
    if name == "timestamptz":
        return UTC_MICROS
    if name == "numeric":
        return None
    return _NATIVE.get(name)


def _batch(rows: Sequence[tuple[Any, ...]], names: Sequence[str], types: Sequence[pa.DataType | None]) -> pa.RecordBatch:
    import pyarrow as pa

    arrays = []
    for values, arrow_type in zip(zip(*rows, strict=True), types, strict=True):
        if arrow_type is None and any(isinstance(v, dict | list) for v in values):
            values = tuple(None if v is None else json.dumps(v, default=str) for v in values)  # jsonb, arrays: JSON text
        elif arrow_type is None and any(v is not None and not isinstance(v, int | float | str | bytes) for v in values):
            from decimal import Decimal

            if not all(v is None or isinstance(v, Decimal) for v in values):
                values = tuple(None if v is None else str(v) for v in values)  # interval, inet...: their text
        arrays.append(pa.array(values, type=arrow_type))
    return pa.RecordBatch.from_arrays(arrays, names=list(names))
