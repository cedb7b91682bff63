"""What the shared SQL layer needs from a backend's connection: a small session protocol."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from drivetrain.sql.dialect import SqlDialect
    from drivetrain.sql.names import TableRef


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


class SqlHome(Protocol):
    """What the shared SQL code asks of the warehouse that holds its tables.

    Every :class:`~drivetrain.warehouse.Warehouse` is one. A backend's drive store and window
    load declare what more they use of their own warehouse as a protocol extending this one,
    next to the backend's connections, so they never import the warehouse class that builds them.
    """

    @property
    def dialect(self) -> SqlDialect:
        """How the warehouse spells its SQL."""
        ...

    def describe(self) -> str:
        """The warehouse for messages (``duckdb:/path/x.duckdb``)."""
        ...

    def sql(self, what: str, *, retry: bool = False) -> AbstractContextManager[SqlSession]:
        """A session for a few statements; errors name ``what``."""
        ...

    def session(self) -> AbstractContextManager[object]:
        """Hold one connection for the block."""
        ...

    def keep_open(self) -> AbstractContextManager[object]:
        """Keep the warehouse open across sessions for the block."""
        ...

    def ensure_schema(self, table: TableRef) -> None:
        """Create the table's schema when missing."""
        ...

    def table_exists(self, table: TableRef) -> bool:
        """Whether the table is there."""
        ...

    def table_columns(self, table: TableRef) -> dict[str, str]:
        """The table's columns (lower-case name -> type); empty when it is missing."""
        ...

    def local_files(self) -> list[Path]:
        """The files on this machine's disk holding the tables (none for a server)."""
        ...
