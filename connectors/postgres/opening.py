"""Opening a PostgreSQL connection on a thread of its own while the caller does other work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any


class Opening:
    """A connection opened on a thread of its own while the caller does other work.

    Authenticating (SCRAM) and the ADBC driver's read of the type catalogue take a few round
    trips and some CPU on both ends; the source looks up the relation and the load claims and
    creates its table meanwhile. :meth:`get` waits for the connection (or raises the error the
    connect raised); :meth:`discard` closes one nobody took.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._conn: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(connect,), name="drivetrain-pg-connect", daemon=True)
        self._thread.start()

    def _run(self, connect: Callable[[], Any]) -> None:
        try:
            self._conn = connect()
        except BaseException as exc:  # noqa: BLE001 - raised by get()
            self._error = exc

    def get(self) -> Any:
        """The connection; the connect's own error when it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        conn, self._conn = self._conn, None
        return conn

    def discard(self) -> None:
        """Close the connection unless :meth:`get` took it."""
        self._thread.join()
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()
