"""Opening a DuckDB file safely from several threads and processes.

DuckDB lets one process at a time open a file for writing. drivetrain therefore holds a
connection only as long as an operation needs it, and a process that finds the file locked
waits (with jitter) up to ``lock_timeout_seconds`` before giving up with a TransientError.
Inside one process, nested uses on the same thread share one connection; other threads open
their own connection to the same database instance.

A phase holds its connection for its whole length (:meth:`ConnectionPool.session`) and opens the
file on a thread of its own meanwhile, so the phase's own start (a source connecting, its query's
first rows) does not wait for DuckDB's 20-40 ms of opening; its first statement does.

A run keeps its connection between operations (:meth:`ConnectionPool.keep_open`): opening
the file and closing it (which checkpoints) costs about 10 ms each, ten phases and their
drive-row writes opened it fifteen times. It does so politely: a process that finds the file
locked touches ``<db>.locks/wanted``, and a holder that sees the mark newer than its own
connection closes it as soon as it is idle: a watcher thread looks at the mark every 10 ms, so
a holder in the middle of a phase that does not use the file lets go at once (see
:mod:`.handover`).

Memory is bounded by default (:func:`default_settings`): DuckDB's own ``memory_limit`` is 80%
of the machine's memory, and it keeps the pages it wrote cached up to that limit, so one
large window load and its push-down held 1.4 GB. A file drivetrain opens gets a limit derived
from the memory the process may use and a ``temp_directory`` next to the file, where sorts and
joins bigger than the limit spill. A ``memory_limit`` in the config replaces the default.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drivetrain._lazy import lazy_module
from drivetrain.errors import PermanentError, TransientError
from drivetrain.sql.session import SqlHome

from .handover import GIVE_WAY_SECONDS, Hold, Watcher, ask_for, enter_gate, leave_gate, let_in

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from drivetrain.sql.names import TableRef
else:  # imported when a connection is first opened: commands that never open one do not pay for it
    duckdb = lazy_module("duckdb")

log = logging.getLogger(__name__)
_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")
#: duckdb.connect() is serialised in the process: two threads opening the same file at once
#: can get an instance whose Python table functions are not registered yet.
_CONNECT_LOCK = threading.Lock()


@contextmanager
def duckdb_errors(where: str) -> Iterator[None]:
    """Translate DuckDB exceptions into drivetrain's transient and permanent errors."""
    try:
        yield
    except (duckdb.OutOfMemoryException, duckdb.TransactionException) as exc:
        if isinstance(exc, duckdb.OutOfMemoryException) or _is_out_of_memory(str(exc)):  # a commit says so in its text
            raise out_of_memory(where, exc) from exc
        raise TransientError(f"{where}: transaction conflict, retry: {exc}") from exc
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise TransientError(f"{where}: the database file is locked by another process: {exc}") from exc
        raise PermanentError(f"{where}: I/O error: {exc}") from exc
    except duckdb.CatalogException as exc:
        raise PermanentError(f"{where}: {exc}") from exc
    except duckdb.Error as exc:  # a damaged block may only show when a statement reads it
        damaged = unusable_file(Path(where), exc) if _is_damage(str(exc)) else None
        raise (damaged or PermanentError(f"{where}: {exc}")) from exc


def _is_out_of_memory(text: str) -> bool:
    low = text.lower()
    return "out of memory" in low or "could not allocate" in low or "failed to pin" in low


def out_of_memory(where: str, exc: Exception) -> PermanentError:
    """DuckDB's memory error, with the config keys to change instead of DuckDB's SQL settings."""
    text = " ".join(str(exc).split("Possible solutions")[0].split())
    return PermanentError(
        f"{where}: DuckDB ran out of its memory_limit: {text}; raise 'memory_limit' in this DuckDB section of "
        f"the config (default: {MEMORY_PER_THREAD_MB} MB per DuckDB thread), or set 'threads': 1 there (each "
        "thread needs room for the rows it is writing)"
    )


def _is_damage(text: str) -> bool:
    low = text.lower()
    return "checksum" in low or "corrupt" in low


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, rolled back on any exception (including a failing fence)."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


#: Default memory_limit per DuckDB worker thread, in MiB. What a thread cannot do without is
#: the row group it is filling (122,880 rows): about 45 MB for rows of 330 bytes, below which a
#: push-down fails with "Out of Memory" instead of spilling. The push-down ranks keys only (see
#: drivetrain.sql.dialect), so a thread needs no more than that; 128 MB a thread (the limit
#: while it ranked whole rows) took a whole run of 2 million such rows to 480 MB resident
#: against 390 MB with 64. A window load streams into its table whatever the limit (it does not
#: keep insertion order); what the limit changes is how much of the file DuckDB keeps cached
#: and how soon a sort or join spills to disk.
MEMORY_PER_THREAD_MB = 64
#: The default never takes more than this share of the memory the process may use.
MEMORY_SHARE = 4
#: WAL size past which a commit checkpoints (DuckDB's default: 16 MiB). A window load's rows
#: short of a row group (122,880 rows) were written twice: into the WAL at the commit, then
#: into the file by the checkpoint when the run closed it. A commit whose WAL would pass this
#: writes them into the file at once instead (DuckDB skips the WAL for such a commit): as
#: durable, the WAL write saved (100k narrow rows: commit and close 75-86 ms -> 53-75 ms),
#: nothing left for the close to do. Larger windows were written to the file during the insert
#: already and are unchanged.
CHECKPOINT_THRESHOLD = "1MB"


@functools.cache
def usable_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit if lower.

    Read once per process: ``status`` of a fleet builds a warehouse per pipeline, and the
    cgroup files cost about a millisecond each time."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):  # pragma: no cover - every Linux and macOS answers
        return None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
        break
    return total


def default_memory_limit_mb(threads: int | None = None) -> int:
    """:data:`MEMORY_PER_THREAD_MB` per DuckDB thread (``threads``, default one per core), at
    most a :data:`MEMORY_SHARE` of :func:`usable_memory`, at least one thread's worth."""
    wanted = MEMORY_PER_THREAD_MB * max(1, threads or os.cpu_count() or 1)
    total = usable_memory()
    share = wanted if total is None else total // (MEMORY_SHARE * 1024 * 1024)
    return max(MEMORY_PER_THREAD_MB, min(wanted, share))


def keep_blocks(conn: duckdb.DuckDBPyConnection, size: str) -> None:
    """Let DuckDB keep up to ``size`` of the memory its blocks were in, for the next blocks.

    Without it, each block DuckDB allocates is new memory to the kernel: its allocator gives
    freed blocks back, and the next block faults its pages in again, zeroed. A window load
    under a memory_limit allocates and frees blocks all the way through (it writes row groups
    and lets them go), so the pages of the same few megabytes were faulted in again and again:
    on 2M rows of 330 bytes from MySQL, 350,000 page faults in the transfer, about two thirds
    of them on the one thread that inserts (the transfer's critical path: see
    :class:`~.load.InsertThreads`), and 190,000 with the blocks kept. The memory is kept by
    the database instance (never given back while it is open), and only what was used: it is
    set to drivetrain's default ``memory_limit``, which DuckDB may fill with blocks anyway; a
    limit set in the config leaves it alone (a large one would be kept for good).

    Set on every connection, since the setting is the database's: it cannot be lowered, so a
    smaller size (another pool with fewer threads opening the same file) is ignored, as it is
    by a DuckDB without the setting (before 1.3)."""
    with suppress(duckdb.Error):
        conn.execute("SET block_allocator_memory = ?", [size])


def default_settings(path: Path, threads: int | None = None) -> dict[str, Any]:
    """The settings a DuckDB file gets unless the config says otherwise: a ``memory_limit`` of
    :func:`default_memory_limit_mb` and a ``temp_directory`` next to the file (``<file>.tmp``,
    in the pipeline's folder when the file is), where what does not fit spills."""
    return {"memory_limit": f"{default_memory_limit_mb(threads)}MB",
            "temp_directory": str(path.with_name(path.name + ".tmp"))}


class DuckDBHome(SqlHome, Protocol):
    """What the drive store and the window load use of their :class:`~.warehouse.DuckDBWarehouse`
    (which builds them)."""

    _known_schemas: set[str]
    """Schemas made in this process (a rolled-back load forgets them)."""

    @property
    def path(self) -> Path:
        """The DuckDB file."""
        ...

    @property
    def pool(self) -> ConnectionPool:
        """The file's connections."""
        ...

    def connect(self) -> AbstractContextManager[Any]:
        """This thread's connection to the file for the block."""
        ...

    def drive_home(self) -> DuckDBHome:
        """Where the drive table is kept: the drive file beside the warehouse."""
        ...

    def claim_table(self, table: TableRef) -> None:
        """Claim ``table`` for ``table.owner`` before writing it."""
        ...

    def ensure_table(self, table: TableRef, schema: pa.Schema) -> None:
        """Create or widen the table for ``schema``."""
        ...


class ConnectionPool:
    """Per-thread, re-entrant connections to one DuckDB file."""

    def __init__(self, path: Path, *, lock_timeout: float = 120.0, settings: dict[str, Any] | None = None,
                 retry: tuple[float, float] = (0.02, 0.5), init: tuple[str, ...] = (), gate: Path | None = None) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self.retry = retry
        """First and longest pause between two tries to open a locked file (seconds)."""
        self.init = init
        """Statements run on each new connection after the settings."""
        self.gate = gate or path.with_name(path.name + ".locks") / "open.gate"
        """A lock file drivetrain processes take before opening the database and give back after
        closing it: waiting on it costs a system call, not a failed DuckDB opening, so the file
        changes hands at once. Every pool has one: without it a waiting process polled DuckDB
        with pauses growing to half a second, and a holder that let go at an idle moment and
        opened the file again 50 ms later (a run between two statements) got it back first,
        round after round, until the waiter's lock timeout."""
        threads = (settings or {}).get("threads")
        self.settings = {"TimeZone": "UTC", "checkpoint_threshold": CHECKPOINT_THRESHOLD,
                         **default_settings(path, threads), **(settings or {})}
        self.default_memory_limit = "memory_limit" not in (settings or {})
        """Whether ``memory_limit`` is drivetrain's default (:func:`default_memory_limit_mb`), not
        the config's: only the default follows the threads a statement runs on."""
        self.kept_blocks = str(self.settings["memory_limit"]) if self.default_memory_limit else None
        """How much memory of freed blocks DuckDB keeps for new ones (see :func:`keep_blocks`)."""
        self.wanted_mark = path.with_name(path.name + ".locks") / "wanted"
        """Touched by a process waiting for the file; see :meth:`keep_open`."""
        self._local = threading.local()
        self._watcher = Watcher(self.wanted_mark, self._give_way)

    def _hold(self) -> Hold:
        hold = getattr(self._local, "hold", None)
        if hold is None:
            hold = self._local.hold = Hold()
        return hold

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The thread's connection, opened on first use and closed when its last user leaves
        (unless :meth:`keep_open` keeps it).

        Users may leave in any order (a generator reading the table can finish while a
        window load that started after it still holds the connection).
        """
        hold = self._hold()
        with hold.lock:  # the watcher never closes the connection between this check and depth += 1
            if hold.conn is None and hold.opening is not None:
                self._settle(hold)  # the session's opening: wait for it
            if hold.conn is None:
                hold.conn = self._open(hold)
                hold.opened = time.time_ns()
            conn = hold.conn
            hold.depth += 1
        try:
            yield conn
        finally:
            with hold.lock:
                hold.depth -= 1
                if hold.depth == 0 and hold.conn is conn and hold.keep and self._wanted(hold):
                    self._give_way(hold)
                elif hold.depth == 0 and hold.conn is conn and not hold.keep:
                    self._let_go(hold)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Hold this thread's connection for a block of work (a phase), as :meth:`connect` does,
        but open the file on a thread of its own: the block starts at once and its first
        statement waits for the opening (an open connection is simply held).

        Errors come as they would without it: the first statement opens the file again itself
        when the opening failed, so it gets the usual error (a locked file's TransientError, a
        damaged file's PermanentError) where it would have got it anyway. A file that stayed
        locked past the lock timeout is not held for the block, as :meth:`Pipeline.session
        <drivetrain.Pipeline.session>` does for any warehouse: each statement opens it then.
        A block that never used the connection waits for the opening and closes it; one that
        ends while the opening still waits for another process stops it there.
        """
        hold = self._hold()
        with hold.lock:
            hold.depth += 1
            mine = None
            if hold.conn is None and hold.opening is None:
                mine = hold.opening = _Opening(self, hold)
        try:
            yield
        finally:
            with hold.lock:
                if mine is not None and hold.opening is mine:  # never used: wait for it, or stop its wait
                    self._settle(hold, abandon=True)
                if mine is None or mine.held:
                    hold.depth -= 1
                    if hold.depth == 0 and hold.conn is not None and hold.keep and self._wanted(hold):
                        self._give_way(hold)
                    elif hold.depth == 0 and hold.conn is not None and not hold.keep:
                        self._let_go(hold)

    def _settle(self, hold: Hold, *, abandon: bool = False) -> None:
        """Take the connection a session's opening made (the caller holds ``hold.lock``); when it
        failed, the session no longer holds the file (its statements open it themselves)."""
        opening = hold.opening
        if opening is None:
            return
        if abandon:
            opening.abandoned.set()
        opening.thread.join()  # taken off the hold only after: an interrupted wait leaves it to the session's end
        hold.opening = None
        if opening.conn is not None:
            hold.conn, hold.opened = opening.conn, opening.opened
            return
        opening.held = False
        hold.depth -= 1
        if isinstance(opening.error, TransientError):
            log.warning("not holding a connection open for this phase: %s", opening.error)

    @contextmanager
    def keep_open(self) -> Iterator[None]:
        """Keep this thread's connection open between uses for the block (a whole run), unless
        another process asks for the file meanwhile: then it closes as soon as it is idle (at
        once, or when the statement or transaction under way ends), even in the middle of a
        long phase that does not use it, and the following use opens the file again, waiting
        its turn like any other process (see :mod:`.handover`)."""
        hold = self._hold()
        with hold.lock:
            hold.keep += 1
        self._watcher.watch(hold)
        try:
            yield
        finally:
            with hold.lock:
                hold.keep -= 1
                if not hold.keep:
                    self._watcher.unwatch(hold)
                    if hold.conn is not None and not hold.depth:
                        self._let_go(hold)

    def _let_go(self, hold: Hold) -> None:
        """Close the thread's connection (the caller holds ``hold.lock``; nobody uses it)."""
        conn, hold.conn = hold.conn, None
        try:
            conn.close()
        finally:
            leave_gate(self.gate)

    def _give_way(self, hold: Hold) -> None:
        """Close a kept connection another process asked for (the caller holds ``hold.lock``),
        and let that process in before this thread opens the file again (:meth:`_open`)."""
        hold.gave_way = time.monotonic()
        self._let_go(hold)

    def _wanted(self, hold: Hold) -> bool:
        """Whether another process asked for the file since this thread opened it."""
        return self._watcher.wanted_since() >= hold.opened

    def _ask_for_the_file(self) -> None:
        """Tell a process keeping the file open (see :meth:`keep_open`) that this one waits."""
        ask_for(self.wanted_mark)

    @contextmanager
    def lend(self, conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
        """Make ``conn`` the thread's connection inside the block (it is not closed after).

        A window load runs its statements, including those of helpers that call
        :meth:`connect`, in its own transaction this way.
        """
        hold = self._hold()
        with hold.lock:
            saved = hold.conn, hold.depth
            hold.conn, hold.depth = conn, 1
        try:
            yield conn
        finally:
            with hold.lock:
                hold.conn, hold.depth = saved

    def _open(self, hold: Hold, abandoned: threading.Event | None = None) -> duckdb.DuckDBPyConnection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermanentError(
                f"{self.path}: cannot create the folder {self.path.parent} for the DuckDB file: "
                f"{exc.strerror or exc}; fix the 'path' option that names this file in the config"
            ) from exc
        if time.monotonic() < hold.gave_way + GIVE_WAY_SECONDS:  # the process that asked is about to take the gate
            let_in(self.gate, hold.gave_way + GIVE_WAY_SECONDS)
        deadline = time.monotonic() + self.lock_timeout

        def waiting() -> None:
            if abandoned is not None and abandoned.is_set():
                raise _Abandoned
            self._ask_for_the_file()

        holder = enter_gate(self.gate, deadline, waiting)
        if holder is not None:
            raise self._locked_too_long(holder)
        try:
            return self._connect(deadline, waiting)
        except BaseException:
            leave_gate(self.gate)
            raise

    def _connect(self, deadline: float, waiting: Callable[[], None]) -> duckdb.DuckDBPyConnection:
        delay, longest = self.retry
        while True:
            try:
                with _CONNECT_LOCK:
                    conn = duckdb.connect(str(self.path))
                    for key, value in self.settings.items():
                        conn.execute(f"SET {key} = ?", [value])
                    if self.kept_blocks is not None:
                        keep_blocks(conn, self.kept_blocks)
                    for statement in self.init:
                        conn.execute(statement)
                break
            except duckdb.IOException as exc:
                text = str(exc)
                if not _is_lock_conflict(text):
                    raise unusable_file(self.path, exc) from exc
                waiting()
                if time.monotonic() >= deadline:
                    holder = _LOCK_HOLDER.search(text)
                    raise self._locked_too_long(holder.group(1) if holder else "") from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 1.5, longest)
            except duckdb.Error as exc:  # damaged file, checksum mismatch, out of memory...
                raise unusable_file(self.path, exc) from exc
        return conn

    def _locked_too_long(self, pid: str) -> TransientError:
        who = f" (held by PID {pid})" if pid.isdigit() else ""
        return TransientError(
            f"{self.path}: the DuckDB file stayed locked by another process{who} for "
            f"{self.lock_timeout:.0f}s; raise stage_system.lock_timeout_seconds or run "
            "pipelines that share the file one after another"
        )


class _Abandoned(Exception):
    """A session ended while its opening still waited for the file: the opening stops."""


class _Opening:
    """A session's connection, opened on a thread of its own (see :meth:`ConnectionPool.session`)."""

    def __init__(self, pool: ConnectionPool, hold: Hold) -> None:
        self.conn: duckdb.DuckDBPyConnection | None = None
        self.error: BaseException | None = None
        self.opened = 0
        self.held = True
        """False once the opening failed: the session gave its hold back."""
        self.abandoned = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(pool, hold), name="drivetrain-duckdb-open", daemon=True)
        self.thread.start()

    def _run(self, pool: ConnectionPool, hold: Hold) -> None:
        try:
            self.conn = pool._open(hold, self.abandoned)
            self.opened = time.time_ns()
        except BaseException as exc:  # noqa: BLE001 - the first statement opens the file itself and gets it
            self.error = exc


def _is_lock_conflict(text: str) -> bool:
    low = text.lower()
    return "lock" in low and "permission" not in low


#: (words in DuckDB's message, what is wrong with the file, what to do about it); first match wins.
_FILE_PROBLEMS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("checksum", "corrupt"), "is damaged (its checksums do not match what is stored)",
     "restore it from a backup, or move it aside so that drivetrain starts a new file; see "
     "'A damaged DuckDB file' in docs/runbook.md"),
    (("storage version", "version number"), "was written by a DuckDB version this one cannot read",
     "open it with the DuckDB version that wrote it and EXPORT DATABASE, then IMPORT DATABASE with this "
     "one; or install the duckdb version that wrote it; see 'A damaged DuckDB file' in docs/runbook.md"),
    (("not a valid duckdb database", "could not read enough bytes"), "is not a DuckDB database (or was cut short)",
     "point the config's 'path' at a DuckDB file, or move this file aside so that drivetrain starts a new one"),
    (("is a directory",), "is a directory, not a file",
     "point the config's 'path' at a file name, e.g. <folder>/warehouse.duckdb"),
    (("permission denied", "read-only file system", "operation not permitted"), "cannot be opened for writing",
     "give the user running drivetrain read and write access to the file and its folder"),
)


def unusable_file(path: Path, exc: Exception) -> PermanentError:
    """A PermanentError for a DuckDB file that cannot be opened: names the file, the cause and the fix."""
    text = " ".join(str(exc).split())
    low = text.lower()
    for words, what, fix in _FILE_PROBLEMS:
        if any(word in low for word in words):
            return PermanentError(f"{path}: the DuckDB file {what}: {text}; {fix}")
    return PermanentError(f"{path}: cannot open the DuckDB file: {text}; check the file and the config's 'path' option")
