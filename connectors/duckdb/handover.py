"""Handing a DuckDB file over between processes: the gate, the wanted mark and the watcher.

DuckDB lets one process at a time open a file for writing, and opening it costs 20-40 ms. A
process that uses a file many times (a run writes its drive row about twenty times) therefore
keeps it open (:meth:`.ConnectionPool.keep_open`), and lets go as soon as another process asks:

* a process that wants the file touches ``<db>.locks/wanted`` (again every
  :data:`ASK_EVERY` seconds while it waits, so a holder that opened the file after the first
  touch still sees it);
* the holder's :class:`Watcher`, a small thread per kept pool, looks at the mark every
  :data:`POLL_SECONDS` and closes each kept connection that is idle (no statement or
  transaction in flight: nobody inside :meth:`.ConnectionPool.connect`), under the same lock
  ``connect`` takes, so a statement never starts on a connection being closed; a connection
  in use closes when its last user leaves instead;
* the next use opens the file again, waiting its turn like any other process.

The gate is a lock file (``flock``) a process takes before opening the database and gives back
after closing it: waiting on it costs a system call, not a failed DuckDB opening, so the file
changes hands as soon as its holder lets go.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: How often a watcher looks at the wanted mark (a ``stat``): a waiting process gets the file
#: within about this long when the holder is idle.
POLL_SECONDS = 0.01
#: How often a waiting process touches the wanted mark again.
ASK_EVERY = 0.02
#: How long at most a thread that let go of the file for a waiting process waits for that
#: process to take the gate before it opens the file again (see :func:`let_in`). Without it a
#: run between two statements opened the file again first, round after round.
GIVE_WAY_SECONDS = 0.05


@dataclass(eq=False)
class Hold:
    """One thread's connection to a file: how many users are inside it, how many blocks keep it."""

    conn: Any = None
    depth: int = 0
    keep: int = 0
    opened: int = 0
    """``time.time_ns()`` when the connection was opened: a wanted mark older than this is not for it."""
    gave_way: float = float("-inf")
    """``time.monotonic()`` when it last let go of the file for a process that asked."""
    opening: Any = None
    """The file being opened on a thread of its own for a session (see ``ConnectionPool.session``)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class Watcher:
    """Closes the idle kept connections of one pool soon after another process marks its file wanted."""

    def __init__(self, mark: Path, close: Callable[[Hold], None]) -> None:
        self.mark = mark
        self.close = close
        self.holds: set[Hold] = set()
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None

    def watch(self, hold: Hold) -> None:
        with self._lock:
            self.holds.add(hold)
            if self._stop is None:
                self._stop = threading.Event()
                threading.Thread(target=self._loop, args=(self._stop,), name=f"drivetrain-watch {self.mark.parent.name}",
                                 daemon=True).start()

    def unwatch(self, hold: Hold) -> None:
        with self._lock:
            self.holds.discard(hold)
            if not self.holds and self._stop is not None:
                self._stop.set()
                self._stop = None

    def wanted_since(self) -> int:
        """The mark's time (ns), or -1 when nobody ever asked."""
        try:
            return self.mark.stat().st_mtime_ns
        except OSError:
            return -1

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_SECONDS):
            asked = self.wanted_since()
            with self._lock:
                holds = [h for h in self.holds if h.conn is not None and asked >= h.opened]
            for hold in holds:
                if not hold.lock.acquire(blocking=False):
                    continue  # its thread is opening or leaving the connection; next round
                try:
                    if hold.conn is not None and hold.depth == 0 and asked >= hold.opened:
                        self.close(hold)
                finally:
                    hold.lock.release()


def ask_for(mark: Path) -> None:
    """Tell a process keeping the file open that this one waits."""
    try:
        mark.parent.mkdir(exist_ok=True)
        mark.touch()
    except OSError:
        pass  # a read-only folder: the holder lets go at the end of its run instead


#: Gate file -> [descriptor (-1: none could be made), users in this process]. The gate is a process's: its threads share
#: the DuckDB database, so one holds it for all (a thread waiting on another would deadlock).
_GATES: dict[Path, list[int]] = {}
_GATES_LOCK = threading.Lock()


def enter_gate(gate: Path, deadline: float, waiting: Callable[[], None]) -> str | None:
    """Take ``gate`` for this process (or join the thread of it that has it); poll every 2 ms,
    calling ``waiting`` (which marks the file wanted) every :data:`ASK_EVERY` seconds.

    None once taken; at ``deadline`` (monotonic), the process id its holder wrote into it
    (``""`` when unknown), the gate not taken."""
    next_ask = 0.0
    while True:
        with _GATES_LOCK:
            entry = _GATES.get(gate)
            if entry is not None:
                entry[1] += 1
                return None
            try:
                gate.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(gate, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:  # a folder drivetrain may not write to: DuckDB's own lock decides alone
                _GATES[gate] = [-1, 1]
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
            else:
                _GATES[gate] = [fd, 1]
                _sign(fd)
                return None
        now = time.monotonic()
        if now >= next_ask:
            waiting()
            next_ask = now + ASK_EVERY
        if now >= deadline:
            try:
                return gate.read_text().strip()
            except (OSError, UnicodeDecodeError):
                return ""
        time.sleep(0.002)


def _sign(fd: int) -> None:
    """Write this process's id into the gate it holds, for the message of one that waits too long."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass


def let_in(gate: Path, until: float) -> None:
    """Wait until another process holds ``gate`` or the monotonic time ``until``, whichever
    comes first: called by a thread that just let go of the file for a waiting process, which
    looks at the gate every 2 ms; the thread then queues behind it instead of winning it back."""
    while time.monotonic() < until and not _held_elsewhere(gate):
        time.sleep(0.002)


def _held_elsewhere(gate: Path) -> bool:
    with _GATES_LOCK:
        if gate in _GATES:
            return False  # another thread of this process holds it: nobody else gets it meanwhile
        try:
            fd = os.open(gate, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return True  # no gate to wait on
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # releases the lock when it was taken
        return False


def leave_gate(gate: Path) -> None:
    with _GATES_LOCK:
        entry = _GATES.get(gate)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            if entry[0] >= 0:
                os.close(entry[0])  # closing the descriptor releases the lock
            del _GATES[gate]
