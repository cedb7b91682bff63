"""Reading a source ahead of its consumer, in a thread of its own.

A source-to-stage transfer alternates between waiting on the source (network, the server,
decoding rows) and work of its own (validation, lineage, handing batches to the loader).
:class:`ReadAhead` runs the source's iterator in a producer thread, a few batches ahead, so
the two overlap: while the consumer validates batch *n*, the source already reads *n + 1*.
Most of that work releases the GIL (sockets, Arrow compute, DuckDB), so on a machine with
two cores the transfer takes about as long as the slower of the two instead of their sum.

The whole iterator lives in the producer thread: it is created there (a source may open its
connection when iteration starts) and closed there, so a source never sees two threads.
Errors reach the consumer unchanged (same exception object, same type, so retries classify
them as before); closing early stops the producer at its next batch and closes the iterator,
which releases the source's connection. Memory holds at most ``depth`` batches in the queue
plus the one the producer is reading and the one the consumer holds.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Generic, TypeVar

T = TypeVar("T")

#: How often a blocked producer or consumer looks whether the other side has gone.
_POLL_SECONDS = 0.1


class _End:
    """The producer's last item: the iterator is exhausted, or ``error`` ended it."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """Iterate ``open_source()`` in a thread, up to ``depth`` items ahead of the consumer.

    Use it as a context manager (or call :meth:`close`) so an early exit stops the thread::

        with ReadAhead(lambda: source.extract(window)) as batches:
            for batch in batches:
                ...
    """

    def __init__(self, open_source: Callable[[], Iterable[T]], *, depth: int = 2,
                 name: str = "drivetrain-read-ahead") -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self._open = open_source
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    # -- producer thread --------------------------------------------------------------------

    def _produce(self) -> None:
        iterator: Iterator[T] | None = None
        try:
            iterator = iter(self._open())
            for item in iterator:
                if not self._put(item):
                    return  # the consumer left: finally closes the iterator
            self._put(_End())
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_End(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with suppress(Exception):  # releasing the source must not hide the real outcome
                    close()

    def _put(self, item: T | _End) -> bool:
        """Queue ``item``, waiting for room; False when the consumer has gone."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    # -- consumer ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._ended:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._ended = True  # unreachable unless the thread was killed from outside
                    raise RuntimeError("the read-ahead thread ended without a result") from None
        if isinstance(item, _End):
            self._ended = True
            self._thread.join()
            if item.error is not None:
                raise item.error
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the producer (after the item it is reading) and wait until it has closed the source."""
        self._ended = True
        self._stop.set()
        while True:  # make room, in case the producer is waiting to put
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
