"""Read a PostgreSQL table, view or query one half-open time window at a time, as Arrow.

Config (``source_system``)::

    {"type": "postgres", "host": "pg-prod.company.com", "port": 5432,
     "database": "shop", "schema": "public", "table": "orders",
     "query_field": "created_at", "batch_size": 10000, "credentials_ref": "pg_prod"}

``credentials_ref`` supplies ``user`` and ``password``. Instead of ``table``, ``query`` may hold a
SELECT; the window predicate is put around it. The full list of keys is in
:data:`~drivetrain.connectors.postgres.config.OPTIONS_SCHEMA`.

A row belongs to the window ``[start, end)`` when ``start <= query_field < end``. Rows whose
query field is NULL or ``infinity`` / ``-infinity`` belong to no window: ``count`` and
``extract`` leave them out by the same predicate, and ``count`` tallies them (with a few primary
keys) in :meth:`PostgresSource.unplaceable`, for the drive table.

A ``timestamptz`` query field is compared with the window's instants. ``timestamp`` (without
time zone) and ``date`` values are wall-clock readings in ``source_timezone``: the bounds are
translated by :func:`drivetrain.window.wall_clock_bounds` and values read back by the same rule,
as for MySQL's DATETIME. The hour repeated when clocks go back is read as its earlier pass and
belongs to that window; a reading in the skipped hour is the instant the clocks jumped. So every
row is loaded exactly once and count, extract and validation agree.

The extract is one statement read in batches (see :mod:`~drivetrain.connectors.postgres.readers`):
by ADBC's binary COPY when ``adbc-driver-postgresql`` is installed, else by a psycopg named
cursor. Counts, checks and metadata go through psycopg. A stream that breaks off raises
:class:`~drivetrain.errors.TransientError`, never a shorter result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, suppress
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from drivetrain.connectors.postgres import readers, sql
from drivetrain.connectors.postgres.background import Background
from drivetrain.connectors.postgres.config import OPTIONS_SCHEMA, PostgresOptions, parse_options
from drivetrain.connectors.postgres.errors import postgres_errors
from drivetrain.connectors.postgres.types import arrow_schema
from drivetrain.connectors.sqlsource.source import SqlSource, probe_window
from drivetrain.errors import MissingExtraError, PermanentError
from drivetrain.unplaceable import SAMPLE_SIZE, Unplaceable

if TYPE_CHECKING:
    from types import ModuleType

    from drivetrain.config import SystemConfig
    from drivetrain.secrets import Credentials
    from drivetrain.window import Window

log = logging.getLogger(__name__)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise MissingExtraError("psycopg", "postgres") from None
    return psycopg


class PostgresSource(SqlSource):
    """A PostgreSQL relation read by windows of its query field (``type: "postgres"``).

    :param config: the ``source_system`` section.
    :param credentials: ``user`` and ``password`` for the server.
    """

    type_name: ClassVar[str] = "postgres"
    #: Other ``type`` values that select this source.
    aliases: ClassVar[tuple[str, ...]] = ("postgresql",)
    options_schema = OPTIONS_SCHEMA
    system: ClassVar[str] = "PostgreSQL"
    dialect: ClassVar[ModuleType] = sql

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self.options: PostgresOptions = parse_options(config)
        self._adbc: Any = None
        self._opening: Background | None = None
        self._table: sql.TableInfo | None = None

    # -- public operations -------------------------------------------------------------------

    def check(self) -> list[str]:
        """Connect, then check the relation, the query field, its index and the extract query.

        :returns: what was verified; a line starting with "warning:" flags a slow setup.
        :raises PermanentError: on a missing table or column, bad credentials...
        :raises TransientError: when the server cannot be reached.
        """
        opts = self.options
        self._table = None
        with self._shared("connecting") as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        done = [f"connected to PostgreSQL {version} at {opts.host}:{opts.port} as {self._user()!r}"]
        info = self._table_info()
        done.append(f"{info.kind} {opts.relation} exists ({len(info.columns)} columns read)")
        done.append(f"query field {info.query_field.name} exists ({info.query_field.type_name})")
        if info.indexes:
            done.append(f"query field is indexed ({', '.join(info.indexes)})")
        elif opts.table is not None:
            done.append(
                f"warning: no index starts with {info.query_field.name}: every window scans the "
                f"whole table; consider CREATE INDEX ON {opts.relation} ({info.query_field.name})"
            )
        with self._shared("checking the extract query") as conn:
            statement = self.extract_statement(probe_window())
            conn.execute(statement.sql + " LIMIT 0", statement.params)
        done.append("extract query accepted by the server")
        done.append(f"extract reader: {self.extract_reader()}")
        return done

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        """Stream the window's rows as record batches of at most ``batch_size`` rows.

        The relation is looked up when this is called; the query starts on the first ``next()``.
        Stopping early (closing the iterator) closes the connection without reading the rest.
        """
        reader = self._open_reader()  # connects while the relation is looked up
        info = self._table_info()
        statement = self.extract_statement(window)
        opts = self.options
        log.debug("extract from %s: %s %s", opts.address, statement.sql, statement.params)
        if reader == "adbc":
            text = statement.sql % tuple(readers.literal(v) for v in statement.params)
            return self._wrap(self._adbc_stream(text, info))
        conn = self._connect(autocommit=False)
        return self._wrap(readers.cursor_stream(
            conn, statement.sql, statement.params, info.columns, arrow_schema(info.columns),
            opts.batch_size, opts.source_timezone, self._errors,
        ))

    def extract_reader(self) -> str:
        """The reader :meth:`extract` uses: ``"adbc"`` or ``"psycopg"``.

        :raises MissingExtraError: when ``reader`` is "adbc" and it is not installed.
        """
        choice = self.options.reader
        if choice == "adbc" and not readers.adbc_installed():
            raise MissingExtraError("adbc-driver-postgresql", "postgres")
        if choice == "auto":
            return "adbc" if readers.adbc_installed() else "psycopg"
        return choice

    def schema(self) -> pa.Schema:
        """The Arrow schema of the extracted batches (also for an empty window)."""
        return arrow_schema(self._table_info().columns)

    def count_statement(self, window: Window) -> sql.Statement:
        """The count statement for ``window``, as it will be sent (bounds as parameters)."""
        info = self._table_info()
        return sql.Statement(sql.count_sql(self.options, info), self._bounds(info, window))

    def fingerprint_statement(self, window: Window) -> sql.Statement:
        """The window's count and a sum of hashes over each row's primary key and query field."""
        info = self._table_info()
        return sql.Statement(sql.fingerprint_sql(self.options, info), self._bounds(info, window))

    def extract_statement(self, window: Window) -> sql.Statement:
        """The extract statement for ``window`` (bounds as parameters)."""
        info = self._table_info()
        numeric_text = self.extract_reader() != "psycopg"
        return sql.Statement(sql.select_sql(self.options, info, numeric_text=numeric_text), self._bounds(info, window))

    def close(self) -> None:
        """Close the shared connections; extracts in flight keep their own."""
        super().close()
        adbc, self._adbc = self._adbc, None
        if adbc is not None:
            with suppress(Exception):
                adbc.close()
        opening, self._opening = self._opening, None
        if opening is not None:
            opening.discard()

    # -- internals ---------------------------------------------------------------------------

    def _open_reader(self) -> str:
        """The extract's reader; with adbc, its connection starts opening unless one is kept or
        already opening."""
        reader = self.extract_reader()
        if reader == "adbc" and self._adbc is None and self._opening is None:
            url = readers.adbc_url(self._connect_kwargs())
            self._opening = Background(lambda: readers.adbc_connect(url, self._errors))
        return reader

    def _adbc_stream(self, text: str, info: sql.TableInfo) -> Iterator[pa.RecordBatch]:
        opts = self.options
        cached, self._adbc = self._adbc, None
        opening, self._opening = self._opening, None
        if opening is not None and cached is None:
            conn = opening.get()
        else:
            if opening is not None:
                opening.discard()
            conn = readers.adbc_connect(readers.adbc_url(self._connect_kwargs()), self._errors, reuse=cached)

        def release(conn: Any, complete: bool) -> None:
            if complete and self._adbc is None:
                self._adbc = conn  # kept for the next window
            else:
                with suppress(Exception):
                    conn.close()

        yield from readers.adbc_stream(
            conn, text, info.columns, opts.batch_size, opts.source_timezone, self._errors, release
        )

    def _wrap(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except PermanentError as exc:
            if str(exc).startswith("PostgreSQL "):
                raise
            raise PermanentError(f"PostgreSQL {self.options.address}: {exc}") from exc
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
            raise PermanentError(
                f"PostgreSQL {self.options.address}: a value cannot be read as its Arrow type "
                f"({exc}); leave the column out with 'columns' or report the value"
            ) from exc

    def _tally_unplaceable(self, cursor: Any) -> Unplaceable:
        opts, info = self.options, self._table_info()
        lost = Unplaceable()
        cursor.execute(sql.unplaceable_sql(opts, info), ())  # () so that %% reads as %
        nulls, infinite = (int(n) for n in cursor.fetchone())
        if not nulls + infinite:
            return lost
        cursor.execute(sql.unplaceable_sample_sql(opts, info, info.primary_key, SAMPLE_SIZE), ())
        qf = info.query_field.name
        null_reason, inf_reason = f"{qf}: NULL", f"{qf}: infinite (no window)"
        for row in cursor.fetchall():
            ident = ", ".join(f"{k}={v}" for k, v in zip(info.primary_key, row, strict=False))
            reason = null_reason if row[-1] is None else inf_reason
            lost.add(reason, f"{opts.relation} {ident or 'a row'}", row[-1])
        lost.tally(null_reason, nulls - lost.reasons[null_reason])
        lost.tally(inf_reason, infinite - lost.reasons[inf_reason])
        return lost

    def _errors(self, action: str) -> AbstractContextManager[None]:
        password = self._password()
        quoted = (readers.url_quote(password, safe=""),) if password else ()
        return postgres_errors(self.options.address, action, secret=password, secrets=quoted)

    def _connect_kwargs(self) -> dict[str, Any]:
        opts = self.options
        user = self._required_user()
        kwargs: dict[str, Any] = {
            "host": opts.host,
            "port": opts.port,
            "user": user,
            "dbname": opts.database,
            "connect_timeout": opts.connect_timeout,
            "application_name": "drivetrain",
            "options": f"-c TimeZone=UTC -c statement_timeout={opts.statement_timeout * 1000}",
        }
        password = self._password()
        if password:
            kwargs["password"] = password
        ssl = opts.ssl
        if ssl is None:
            kwargs["sslmode"] = "disable"
        else:
            kwargs["sslmode"] = "verify-full" if ssl.verify_identity else "verify-ca"
            kwargs["sslrootcert"] = str(ssl.ca) if ssl.ca else "system"
            if ssl.cert is not None:
                kwargs["sslcert"] = str(ssl.cert)
            if ssl.key is not None:
                kwargs["sslkey"] = str(ssl.key)
        return kwargs

    def _open_shared(self) -> Any:
        return self._connect(autocommit=True)

    def _usable(self, conn: Any) -> bool:
        try:
            conn.execute("SELECT 1")
        except Exception:
            return False
        return True

    def _connect(self, *, autocommit: bool) -> Any:
        psycopg = _psycopg()
        kwargs = self._connect_kwargs()
        with self._errors("connecting"):
            return psycopg.connect(**kwargs, autocommit=autocommit)

