"""Work on a thread of its own while the caller does other work: opening a connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any


class Background:
    """A call run on a thread of its own while the caller does other work.

    Opening a connection: authenticating (SCRAM) takes a few round trips and some CPU on both
    ends, and the ADBC driver reads the server's type catalogue on a connection of its own; the
    source looks up the relation and the load claims and creates its table meanwhile.
    :meth:`get` waits for the result (or raises the call's error); :meth:`discard` waits and
    closes a connection nobody took.
    """

    def __init__(self, call: Callable[[], Any]) -> None:
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), name="drivetrain-pg-background", daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._result = call()
        except BaseException as exc:  # noqa: BLE001 - raised by get()
            self._error = exc

    def get(self) -> Any:
        """The call's result; its own error when it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        result, self._result = self._result, None
        return result

    def discard(self) -> None:
        """Wait for the call; close its result (a connection) unless :meth:`get` took it."""
        self._thread.join()
        result, self._result = self._result, None
        if result is not None:
            with suppress(Exception):
                result.close()
