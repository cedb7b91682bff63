"""Window locks held by a run's process: one ``flock`` per (pipeline, window).

A run takes ``<drive file>.locks/<pipeline>__<window>.lock`` before it writes its lease row and
keeps it until it ends. The kernel drops the lock when the process dies, even by SIGKILL, so a
crashed run's window is free at once while a paused one keeps it: that is how the store tells a
dead holder from a slow one. Lock files are never deleted: removing a file another process has
open would let two processes lock two different files.
"""

from __future__ import annotations

import fcntl
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from drivetrain.errors import LeaseError


class WindowLocks:
    """The window locks beside one drive file, and the ones this process holds."""

    def __init__(self, drive_file: Path) -> None:
        self.folder = drive_file.with_name(drive_file.name + ".locks")
        self._held: dict[tuple[str, datetime], int] = {}
        self._lock = threading.Lock()

    def path(self, pipeline_name: str, window_start: datetime) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in pipeline_name)
        return self.folder / f"{safe}__{window_start.astimezone(UTC):%Y%m%dT%H%M%S}Z.lock"

    def take(self, pipeline_name: str, window_start: datetime, holder: str) -> None:
        """Lock the window for this process, or LeaseError naming who holds it (never waits)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(pipeline_name, window_start)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            current = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise LeaseError(f"{pipeline_name}: the window {window_start.isoformat()} is being run by {current}; "
                             "not starting a second run", holder=current) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        with self._lock:
            old = self._held.pop((pipeline_name, window_start), None)
            self._held[(pipeline_name, window_start)] = fd
        if old is not None:
            os.close(old)

    def let_go(self, pipeline_name: str, window_start: datetime) -> None:
        with self._lock:
            fd = self._held.pop((pipeline_name, window_start), None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock; the file stays

    def is_held(self, pipeline_name: str, window_start: datetime) -> bool:
        """True while some process (this one included) holds the window's lock."""
        with self._lock:
            if (pipeline_name, window_start) in self._held:
                return True
        path = self.path(pipeline_name, window_start)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also lets go of the lock just taken to look
        return False

    def close(self) -> None:
        with self._lock:
            fds = list(self._held.values())
            self._held.clear()
        for fd in fds:
            os.close(fd)
