"""What the shared SQL layer needs from a backend's connection: a small session protocol."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC: the one clock of the SQL layer and its backends."""
    return datetime.now(UTC)


class SqlSession(Protocol):
    """One connection (or session) of a warehouse, used by one thread at a time.

    Parameters are bound with ``?``. ``hints`` describe the statement (pipeline, run, phase) for
    backends that tag their queries; others ignore them. Errors are the backend's translated
    errors (TransientError, PermanentError), naming the ``what`` the session was opened for.
    """

    def execute(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> int:
        """Run one statement; the number of rows it changed (-1 when it is not DML)."""
        ...

    def rows(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and fetch every row."""
        ...

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query; rows as dicts keyed by lower-case column names."""
        ...

    def arrow(self, sql: str, params: Sequence[Any], batch_size: int) -> Iterator[pa.RecordBatch]:
        """Run a query and stream its result in record batches of at most ``batch_size`` rows."""
        ...

    def transaction(self) -> AbstractContextManager[Any]:
        """BEGIN ... COMMIT around the block; ROLLBACK when it raises (a failed fence included)."""
        ...
