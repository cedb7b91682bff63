"""Loading one window into DuckDB: Arrow batches stream into the real tables inside one transaction."""

from __future__ import annotations

import itertools
import queue
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, suppress
from typing import TYPE_CHECKING, Any

from drivetrain._lazy import lazy_module
from drivetrain.warehouse import Fence, TableRef, WindowLoad

from .connection import default_memory_limit_mb, duckdb_errors
from .sql import qualified

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from drivetrain.window import Window

    from .connection import DuckDBHome
else:
    duckdb = lazy_module("duckdb")
    pa = lazy_module("pyarrow")

_batch_names = itertools.count()


class _Feed:
    """One ``INSERT ... SELECT`` reading an Arrow stream, run by a thread on the load's connection.

    DuckDB writes a large single insert to the file row group by row group as it goes, so
    memory stays bounded; many small inserts in one transaction are all kept in memory
    until the commit. The queue between the caller and the statement holds two batches.
    """

    def __init__(self, conn: Any, table: str, schema: pa.Schema) -> None:
        self.schema = schema
        self.error: BaseException | None = None
        self._queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._run, args=(conn, table), name="drivetrain-duckdb-load", daemon=True)
        self._thread.start()

    def _batches(self) -> Iterator[pa.RecordBatch]:
        while (batch := self._queue.get()) is not None:
            yield batch

    def _run(self, conn: Any, table: str) -> None:
        name = f"_drivetrain_stream_{next(_batch_names)}"
        try:
            conn.register(name, pa.RecordBatchReader.from_batches(self.schema, self._batches()))
            try:
                conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {name}")
            except BaseException:
                # the failed statement aborted the transaction, which now refuses the unregister
                # too: keep the statement's own error (a conversion error, say), not that one
                with suppress(Exception):
                    conn.unregister(name)
                raise
            conn.unregister(name)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by put() / close()
            self.error = exc

    def _put(self, item: pa.RecordBatch | None) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def put(self, batch: pa.RecordBatch) -> None:
        self._put(batch)
        if self.error is not None or not self._thread.is_alive():
            self.close()

    def close(self) -> None:
        """End the statement (it commits nothing: the load's transaction does); re-raise its error."""
        self._put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


#: Memory a window's insert needs per DuckDB thread before it gets a second one, in MiB: each
#: thread fills and compresses row groups of its own. Whole runs of 2M rows of 330 bytes from
#: MySQL on two cores, one insert thread against two (paired): at 64 MB a thread two spent more
#: CPU than one and were no faster; at 128 MB a thread 7.05 -> 6.92 s for 46 MB more; at 300 MB
#: a thread 6.89 -> 6.31 s; at 500 MB a thread 7.78 -> 6.57 s.
MEMORY_PER_INSERT_THREAD_MB = 256
#: Rows a window must be expected to bring per DuckDB thread before its insert gets more than
#: one: below it, the partial row groups the threads merge after the last row cost more than the
#: threads gain (400k narrow rows from PostgreSQL: 0.15-0.4 s from the last row to the file
#: closed on several threads, 0.06-0.08 s on one).
ROWS_PER_INSERT_THREAD = 500_000

_SIZE = re.compile(r"^\s*([0-9.]+)\s*([KMGT]?i?B|bytes)\s*$", re.IGNORECASE)
_UNITS = {"bytes": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def megabytes(shown: str) -> float | None:
    """A memory size as DuckDB shows it (``953.6 MiB``, ``1.0 GiB``) in MiB; None if unreadable."""
    found = _SIZE.match(shown)
    if found is None or found.group(2).lower() not in _UNITS:
        return None
    return float(found.group(1)) * _UNITS[found.group(2).lower()] / 1024**2


def insert_threads(threads: int, memory_limit_mb: float | None, expected_rows: int | None) -> int:
    """The DuckDB threads a window's insert runs on, out of the database's ``threads``.

    One, unless the window is expected to be large (``expected_rows``, the source count, at
    least :data:`ROWS_PER_INSERT_THREAD` per thread) and the ``memory_limit`` set in the config
    (``memory_limit_mb``; None for drivetrain's default limit, which is sized for one insert
    thread) holds :data:`MEMORY_PER_INSERT_THREAD_MB` per thread."""
    if threads <= 1 or memory_limit_mb is None or not expected_rows:
        return 1
    return max(1, min(threads, int(memory_limit_mb // MEMORY_PER_INSERT_THREAD_MB), expected_rows // ROWS_PER_INSERT_THREAD))


class InsertThreads:
    """DuckDB on fewer threads while a window streams in, its ``threads`` given back before the commit.

    A stream inserted by several threads is split between them: each fills and compresses row
    groups of its own, and the partial ones are merged when the insert ends, on the critical
    path after the last row, and sometimes rewritten again by the next checkpoint. A window
    arrives no faster than its source sends it, and one thread keeps pace with a PostgreSQL
    extract (about 2M narrow rows a second) while writing each row group once. On 400k rows
    arriving over 0.3 s: 0.06-0.08 s from the last row to the file closed instead of 0.15-0.4,
    and 20-30% less CPU. The commit, which writes the last partial row group into the file, has
    every thread again. ``threads`` is the database's (not a session's) setting, read by a
    statement when it starts; nothing else of the phase runs DuckDB meanwhile. How many threads
    the insert keeps is :func:`insert_threads`'s choice: more than one only for a large window
    with the memory for them.

    With ``memory_limit`` (drivetrain's default limit, which is per thread: see
    :func:`~.connection.default_memory_limit_mb`), the insert on one thread gets one thread's
    worth of memory too, and the commit the whole limit back. One thread fills one row group at a
    time, and whatever DuckDB cached beyond that was the file it had just written: on 2M rows of
    330 bytes from MySQL (two cores) the transfer's peak resident size fell from 375 to 311 MB
    with no measurable cost in time, room that pays for the MySQL reader's larger pages and
    reused heap (``connectors/mysql/fast.py``).
    """

    def __init__(self, conn: Any, threads: int, *, memory_limit: tuple[str, str] | None = None) -> None:
        """:param threads: the threads the insert runs on (the database's are read here).
        :param memory_limit: (one thread's limit, the database's limit to give back), or None to
            leave the limit alone (one set in the config)."""
        database = int(conn.execute("SELECT current_setting('threads')").fetchall()[0][0])
        self.threads = max(1, min(int(threads), database))
        """The threads the insert runs on."""
        self._changed: list[LoadSetting] = []
        if self.threads < database:
            self._changed.append(LoadSetting(conn, "threads", str(self.threads), str(database)))
            if memory_limit is not None and self.threads == 1:
                self._changed.append(LoadSetting(conn, "memory_limit", *memory_limit))

    def end(self) -> None:
        """Give the database its threads (and memory) back (once)."""
        for setting in self._changed:
            setting.end()


class LoadSetting:
    """One of the database's settings (not a session's) changed while a window loads, given back
    by :meth:`end`: once, and never raising (a failed connection: the next opening sets it)."""

    def __init__(self, conn: Any, name: str, value: str, before: str) -> None:
        conn.execute(f"SET {name} = '{value}'")
        self._conn, self._name = conn, name
        self._before: str | None = before

    def end(self) -> None:
        before, self._before = self._before, None
        if before is not None:
            with suppress(Exception):
                self._conn.execute(f"SET {self._name} = '{before}'")


#: DuckDB's compression methods for text: ``dict_fsst`` in the storage of DuckDB 1.4 and later,
#: ``dictionary`` and ``fsst`` in earlier files.
TEXT_COMPRESSION = ("dictionary", "fsst", "dict_fsst")


def uncompressed_text(conn: Any) -> LoadSetting | None:
    """DuckDB writes text columns uncompressed while a stage window streams in (None: this DuckDB
    does not know the setting or the methods, and writes the stage compressed, as before).

    Choosing and applying a text compression (a dictionary and FSST symbol tables, tried on every
    column segment) is about 40% of a window's insert: for 2M rows of 330 bytes inserted on one
    thread, 2.9-3.1 s of CPU compressed against 1.7-1.8 s with text uncompressed, the insert
    being what a source-to-stage transfer waits for. The stage is written once, read by the
    push-down (faster from uncompressed text), archived, and deleted by stage cleaning; the
    target, which keeps the rows, is compressed when publish or the push-down copies them. The
    price is disk: that window's stage took 480 MB instead of 100 MB.

    Only for an insert on one thread (always under drivetrain's default memory limit): on
    several (a large window given the memory, see :func:`insert_threads`) the threads share the
    compression, and with text uncompressed the same window's whole run was no faster (6.06 s
    either way at ``memory_limit: 1GB``) while DuckDB cached 350 MB more of its larger blocks.
    The methods already disabled stay disabled, and the setting is given back as it was.
    """
    with suppress(duckdb.Error):
        before = str(conn.execute("SELECT current_setting('disabled_compression_methods')").fetchall()[0][0] or "")
        methods = [m.strip() for m in before.split(",") if m.strip()]
        named = {m.lower() for m in methods}  # DuckDB shows them upper-cased
        wanted = [*methods, *(m for m in TEXT_COMPRESSION if m not in named)]
        return LoadSetting(conn, "disabled_compression_methods", ",".join(wanted), before)
    return None


class DuckDBWindowLoad(WindowLoad):
    """Rows go straight into the real tables, inside one transaction that commit() ends.

    The first append creates its table if needed, then opens the transaction on a connection
    of the load's own and deletes the window from the table it loads (a table first seen
    later is created inside the transaction: a table made outside it after it began would be
    invisible to it). Consecutive batches for one table stream into a single INSERT (see
    :class:`_Feed`); a batch for another table, or with another schema, ends it and starts the
    next. Nothing is visible to other connections before commit(), and abort() or a crash
    rolls everything back, so no load table is needed.
    """

    def __init__(self, warehouse: DuckDBHome, window: Window, key: str) -> None:
        self.warehouse = warehouse
        self.window = window
        self.key = "".join(c if c.isalnum() else "_" for c in key)
        self._rows: dict[TableRef, int] = {}
        self._columns: dict[TableRef, set[str]] = {}
        self._held = ExitStack()
        self._conn: Any = None
        self._feed: tuple[TableRef, _Feed] | None = None
        self._narrowed: InsertThreads | None = None
        self._expected: int | None = None
        self._staging = False

    def expect(self, rows: int) -> None:
        self._expected = rows

    def staging(self) -> None:
        self._staging = True

    def _transaction(self) -> Any:
        if self._conn is None:
            # keep the file open for the whole load: closing its last connection checkpoints
            base = self._held.enter_context(self.warehouse.connect())
            conn = base.cursor()
            self._held.callback(conn.close)
            # rows are ordered by their columns (_drivetrain_row), never by where they sit in the
            # table: without keeping insertion order, DuckDB does not buffer the stream under a
            # memory_limit to put it back in order (1.6x faster for 2M rows at 128MB with several
            # threads; see InsertThreads for how many the insert has). This session only.
            conn.execute("SET SESSION preserve_insertion_order = false")
            self._narrowed = self._insert_threads(conn)
            self._held.callback(self._narrowed.end)
            # until the load ends: the commit writes the last row group
            if self._staging and self._narrowed.threads == 1 and (text := uncompressed_text(conn)) is not None:
                self._held.callback(text.end)
            conn.execute("BEGIN TRANSACTION")
            self._conn = conn
        return self._conn

    def _insert_threads(self, conn: Any) -> InsertThreads:
        """The threads (and, under drivetrain's default limit, the memory) the insert runs on."""
        pool = self.warehouse.pool
        if pool.default_memory_limit:
            return InsertThreads(conn, 1, memory_limit=(f"{default_memory_limit_mb(1)}MB", str(pool.settings["memory_limit"])))
        threads, limit = conn.execute("SELECT current_setting('threads'), current_setting('memory_limit')").fetchall()[0]
        return InsertThreads(conn, insert_threads(int(threads), megabytes(str(limit)), self._expected))

    def _end_feed(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed[1].close()

    def append(self, table: TableRef, batch: pa.RecordBatch) -> None:
        wh = self.warehouse
        if table not in self._rows:
            wh.claim_table(table)  # committed on its own, before this load changes a row
        with duckdb_errors(f"{wh.describe()}: load {table}"):
            if self._feed is not None:
                feeding, feed = self._feed
                if feeding == table and feed.schema.equals(batch.schema):
                    feed.put(batch)
                    self._rows[table] += batch.num_rows
                    return
                self._end_feed()
            if self._conn is None:
                wh.ensure_table(table, batch.schema)  # committed: the table outlives a failed load
            conn = self._transaction()
            with wh.pool.lend(conn):
                if table not in self._rows:
                    wh.ensure_table(table, batch.schema)
                    conn.execute(f"DELETE FROM {qualified(table)} WHERE {wh.dialect.window_sql(table)}", [self.window.start, self.window.end])
                    self._rows[table] = 0
                    self._columns[table] = set(wh.table_columns(table))
                else:  # a new schema: columns added, or values wider than their column
                    wh.ensure_table(table, batch.schema)
                    self._columns[table] = set(wh.table_columns(table))
            self._feed = (table, _Feed(conn, qualified(table), batch.schema))
            self._feed[1].put(batch)
            self._rows[table] += batch.num_rows

    def commit(self, tables: Sequence[TableRef], *, fence: Fence | None = None) -> dict[str, int]:
        wh = self.warehouse
        counts: dict[str, int] = {}
        for table in tables:
            if table not in self._rows:
                wh.claim_table(table)  # emptying another pipeline's window is writing it too
        with duckdb_errors(f"{wh.describe()}: commit window {self.window}"):
            self._end_feed()
            with wh.pool.lend(self._transaction()) as conn:
                for table in tables:
                    if table not in self._rows and wh.table_exists(table):
                        conn.execute(f"DELETE FROM {qualified(table)} WHERE {wh.dialect.window_sql(table)}", [self.window.start, self.window.end])
                    counts[str(table)] = self._rows.get(table, 0)
            if fence is not None:
                fence()  # on the thread's own connection: it sees the lease as it is now
            if self._narrowed is not None:
                self._narrowed.end()  # the commit writes the last row group: with every thread
            self._conn.execute("COMMIT")
            self._conn = None
        self.abort()
        return counts

    def abort(self) -> None:
        """Roll back what was appended (unless committed) and let go of the connections."""
        with self._held:
            with suppress(Exception):  # its error, if any, is the caller's already
                self._end_feed()
            conn, self._conn = self._conn, None
            self._rows.clear()
            if conn is not None:
                self.warehouse._known_schemas.clear()  # a schema made in the load is gone too
                with suppress(Exception):  # a closed connection has rolled back already
                    conn.execute("ROLLBACK")
