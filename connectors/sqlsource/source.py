"""The skeleton of a SQL database source: counts, the shared connection, credentials, bounds.

A subclass names its product (:attr:`SqlSource.system`), its dialect module (``load_table_info``
and ``window_params``) and how to open and test a connection; it keeps what is its own: the
checks it reports, the statements it sends, and the readers that stream an extract.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.base import Source
from drivetrain.errors import PermanentError

if TYPE_CHECKING:
    from types import ModuleType

    from drivetrain.config import SystemConfig
    from drivetrain.secrets import Credentials
    from drivetrain.unplaceable import Unplaceable
    from drivetrain.window import Window


class SqlSource(Source):
    """A table (or query) of a SQL database read by windows of its query field.

    :param config: the ``source_system`` section.
    :param credentials: ``user`` and ``password`` for the server.
    """

    #: The product named first in every message ("MySQL", "PostgreSQL").
    system: ClassVar[str] = ""
    #: The dialect module: ``load_table_info(cursor, options)``, ``window_params(...)``.
    dialect: ClassVar[ModuleType]

    options: Any

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self._conn: Any = None
        self._table: Any = None
        self._lost: Unplaceable | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.options.address}>"

    def describe(self) -> str:
        """``<type> <address>``: the source type and the data read (never credentials)."""
        return f"{self.type_name} {self.options.address}"

    def count(self, window: Window) -> int:
        """Count the rows with ``start <= query_field < end``, with extract's exact predicate.

        Also tallies the rows of no window (a query field no window holds) for
        :meth:`unplaceable`.
        """
        statement = self.count_statement(window)
        with self._shared("counting rows") as conn, conn.cursor() as cursor:
            cursor.execute(statement.sql, statement.params)
            (total,) = cursor.fetchone()
            self._lost = self._tally_unplaceable(cursor)
        return int(total)

    def fingerprint(self, window: Window) -> str | None:
        """``<rows>:<digest>``: the window's rows and a sum of hashes of each row's key and query
        field, in one statement (see :meth:`fingerprint_statement`); None without one."""
        statement = self.fingerprint_statement(window)
        if statement is None:
            return None
        with self._shared("fingerprinting the window") as conn, conn.cursor() as cursor:
            cursor.execute(statement.sql, statement.params)
            rows, digest = cursor.fetchone()
        return f"{int(rows)}:{int(digest) % 2**64:016x}"

    def fingerprint_statement(self, window: Window) -> Any | None:
        """The fingerprint statement for ``window`` (bounds as parameters), None when the
        source has none: the window's count and one number that changes when a row enters or
        leaves it."""
        return None

    def unplaceable(self) -> Unplaceable | None:
        """Rows the last :meth:`count` found with a query field no window holds."""
        return self._lost

    def close(self) -> None:
        """Close the shared connection; extracts in flight keep their own."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    # -- what a subclass provides ------------------------------------------------------------

    @abc.abstractmethod
    def count_statement(self, window: Window) -> Any:
        """The count statement for ``window`` (bounds as parameters)."""

    @abc.abstractmethod
    def _tally_unplaceable(self, cursor: Any) -> Unplaceable:
        """Count (and sample) the rows no window holds, on ``cursor``."""

    @abc.abstractmethod
    def _errors(self, action: str) -> AbstractContextManager[None]:
        """Translate driver errors raised while doing ``action``."""

    @abc.abstractmethod
    def _open_shared(self) -> Any:
        """Open the connection used for metadata and counts."""

    @abc.abstractmethod
    def _usable(self, conn: Any) -> bool:
        """Whether an idle shared connection still answers."""

    # -- shared internals --------------------------------------------------------------------

    def _bounds(self, info: Any, window: Window) -> tuple[Any, ...]:
        return self.dialect.window_params(  # type: ignore[no-any-return]
            info.query_field, window.start, window.end, self.options.source_timezone
        )

    def _user(self) -> str | None:
        return self.credentials.reveal("user") if self.credentials is not None else None

    def _password(self) -> str | None:
        return self.credentials.reveal("password") if self.credentials is not None else None

    def _required_user(self) -> str:
        user = self._user()
        if not user:
            raise PermanentError(
                f"{self.system} {self.options.address}: no user to connect as; set credentials_ref "
                "in source_system and provide its USER and PASSWORD"
            )
        return user

    def _table_info(self) -> Any:
        if self._table is None:
            with self._shared("reading the table definition") as conn, conn.cursor() as cursor:
                self._table = self.dialect.load_table_info(cursor, self.options)
        return self._table

    @contextmanager
    def _shared(self, action: str) -> Iterator[Any]:
        """The lazily opened connection for metadata and counts; dropped after any failure."""
        try:
            with self._errors(action):
                # an idle connection may have been dropped by the server meanwhile
                if self._conn is not None and not self._usable(self._conn):
                    self.close()
                if self._conn is None:
                    self._conn = self._open_shared()
                yield self._conn
        except BaseException:
            self.close()
            raise


def probe_window() -> Window:
    """A fixed one-day window, for sending the extract statement with ``LIMIT 0``."""
    from datetime import UTC, datetime

    from drivetrain.window import Window

    return Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))
