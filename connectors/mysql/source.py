"""Read a MySQL / MariaDB table one half-open time window at a time, as Arrow record batches.

Config (``source_system``)::

    {"type": "mysql", "host": "mysql-prod.company.com", "port": 3306,
     "database": "source_db", "table": "genetic_tests", "query_field": "created_timestamp",
     "batch_size": 10000, "credentials_ref": "mysql_prod"}

``credentials_ref`` supplies ``user`` and ``password``. The full list of keys is in
:data:`~drivetrain.connectors.mysql.config.OPTIONS_SCHEMA`.

Two readers produce the same batches: with the ``mysql-fast`` extra installed, connectorx
streams Arrow batches straight from Rust (:mod:`~drivetrain.connectors.mysql.fast`); without
it, or when ``reader: "pymysql"`` is set, pymysql reads the rows as described below. Counts,
checks and metadata always go through pymysql.

A row belongs to the window ``[start, end)`` when ``start <= query_field < end``. Rows whose
query field is NULL or a zero date belong to no window: ``count`` and ``extract`` both leave
them out, by the same predicate, and ``count`` tallies them (with a few primary keys) in
:meth:`MySQLSource.unplaceable`, for the drive table. The extract is one server-side streaming query (pymysql
``SSCursor``) read ``batch_size`` rows at a time, so memory stays bounded whatever the window
holds; a stream that breaks off raises :class:`~drivetrain.errors.TransientError`, never a
shorter result. Row order is described in :mod:`drivetrain.connectors.mysql.sql`.

DATETIME and DATE values are wall-clock times in ``source_timezone``; the window bounds are
translated to that clock by :func:`drivetrain.window.wall_clock_bounds` for the query and the
values read back to UTC by the same rule. In a zone with daylight saving time, the hour
repeated when clocks go back is ambiguous: every value in it is read as the earlier instant
and is selected by the window holding that instant only; the window of the later pass selects
none of them and passes empty. A time skipped when clocks go forward (which a DATETIME can still
hold) is read as the instant the clocks jumped. So every row is loaded exactly once and count,
extract and validation agree; only the repeated hour's true order is lost. Store UTC, or use a
TIMESTAMP column, to keep it.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Iterator
from contextlib import AbstractContextManager, suppress
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from drivetrain.connectors.mysql import fast, sql, wire
from drivetrain.connectors.mysql.config import OPTIONS_SCHEMA, MySQLOptions, parse_options
from drivetrain.connectors.mysql.errors import mysql_errors
from drivetrain.connectors.mysql.types import arrow_schema, decode_batch, decoders, to_batch
from drivetrain.connectors.sqlsource.source import SqlSource, probe_window
from drivetrain.errors import MissingExtraError, PermanentError
from drivetrain.unplaceable import SAMPLE_SIZE, Unplaceable

if TYPE_CHECKING:
    from types import ModuleType

    from drivetrain.config import SystemConfig
    from drivetrain.secrets import Credentials
    from drivetrain.window import Window

log = logging.getLogger(__name__)


def _pymysql() -> Any:
    try:
        import pymysql
        import pymysql.constants
        import pymysql.cursors
    except ImportError:
        raise MissingExtraError("pymysql", "mysql") from None
    return pymysql


class MySQLSource(SqlSource):
    """A MySQL or MariaDB table read by windows of its query field (``type: "mysql"``).

    :param config: the ``source_system`` section.
    :param credentials: ``user`` and ``password`` for the server.
    """

    type_name: ClassVar[str] = "mysql"
    #: Other ``type`` values that select this source.
    aliases: ClassVar[tuple[str, ...]] = ("mariadb",)
    options_schema = OPTIONS_SCHEMA
    system: ClassVar[str] = "MySQL"
    dialect: ClassVar[ModuleType] = sql

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self.options: MySQLOptions = parse_options(config)
        self._table: sql.TableInfo | None = None
        self._tls: ssl.SSLContext | None = None
        self._probed: tuple[tuple[str, tuple[Any, ...]], tuple[Any, ...]] | None = None
        self._dates_as_text = False  # connectorx met a zero or invalid date: see fast.FastQuery.as_text

    # -- public operations -------------------------------------------------------------------

    def check(self) -> list[str]:
        """Connect, then check the table, the query field, its index and the extract query.

        :returns: what was verified; a line starting with "warning:" flags a slow setup.
        :raises PermanentError: on a missing table, column or index, bad credentials...
        :raises TransientError: when the server cannot be reached.
        """
        opts = self.options
        self._table = None  # check what the table looks like now, not what we saw before
        with self._shared("connecting") as conn, conn.cursor() as cursor:
            server = conn.get_server_info().removeprefix("5.5.5-")  # MariaDB's old-client prefix
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            row = cursor.fetchone()
        done = [f"connected to {server} at {opts.host}:{opts.port} as {self._user()!r} "
                f"({_tls_line(opts, row[1] if row else '')})"]
        info = self._table_info()
        kind = info.engine or "view"
        done.append(
            f"table {opts.database}.{opts.table} exists ({kind}, {len(info.columns)} columns read)"
        )
        done.append(
            f"query field {opts.query_field} exists ({info.query_field.column_type.upper()})"
        )
        indexed = info.indexes_on_query_field()
        if indexed:
            done.append(f"query field is indexed ({', '.join(indexed)})")
        else:
            done.append(
                f"warning: no index starts with {opts.query_field}: every window scans the whole "
                f"table; consider CREATE INDEX idx_{opts.query_field} ON {opts.table} "
                f"({opts.query_field})"
            )
        if opts.force_index:
            done.append(f"forced index {opts.force_index} exists")
        done.append(self._reader_line(info))
        forms = self._extract_forms(probe_window(), info)
        with self._shared("checking the extract query") as conn, conn.cursor() as cursor:
            for _, statement in forms:  # each form the extract may send, without reading a row
                cursor.execute(f"SELECT * FROM ({statement.sql}) AS drivetrain_check LIMIT 0",
                               statement.params or None)
        done.append(f"extract query accepted by the server ({'; '.join(what for what, _ in forms)})")
        return done

    def _extract_forms(self, window: Window, info: sql.TableInfo) -> list[tuple[str, sql.Statement]]:
        """(what, statement) for each form of statement the extract may send for ``window``;
        the keys of key-range pages are placeholders (0)."""
        opts = self.options
        if self.extract_reader() == "connectorx":
            query = fast.build_query(opts, info, window.start, window.end)
            keyset = sql.Statement(fast.first_page_sql(query, opts.batch_size, None))
            if query.page_rows is None:
                return [("connectorx, one statement", keyset)]
            if query.range_key is None:
                return [("connectorx, pages in the order of the query field and the key", keyset)]
            return [(f"connectorx, pages of {query.range_key} ranges", sql.Statement(query.range_sql(0, 0))),
                    ("or pages in the order of the query field and the key when the keys are sparse", keyset)]
        ordered = self._pymysql_statement(window, info, None)
        key = fast.range_key(info)
        if key is None or opts.force_index:
            return [("pymysql, one statement", ordered)]
        return [(f"pymysql, one statement along {sql.quote(key)}", self._pymysql_statement(window, info, (0, 0, 1))),
                ("or in the order of the query field and the key when the keys are sparse", ordered)]

    def _tally_unplaceable(self, cursor: Any) -> Unplaceable:
        opts = self.options
        lost = Unplaceable()
        cursor.execute(sql.unplaceable_sql(opts))
        nulls, zeros = (int(n) for n in cursor.fetchone())
        if not nulls + zeros:
            return lost
        info = self._table_info()
        key = info.indexes.get("PRIMARY") or ()
        cursor.execute(sql.unplaceable_sample_sql(opts, key, SAMPLE_SIZE))
        where = f"{opts.database}.{opts.table}"
        for row in cursor.fetchall():
            ident = ", ".join(f"{name}={value!r}" for name, value in zip(key, row, strict=False)) or "a row"
            reason = f"{opts.query_field}: NULL" if row[-1] is None else f"{opts.query_field}: zero or invalid date"
            lost.add(reason, f"{where} {ident}")
        lost.tally(f"{opts.query_field}: NULL", nulls - lost.reasons[f"{opts.query_field}: NULL"])
        zero = f"{opts.query_field}: zero or invalid date"
        lost.tally(zero, zeros - lost.reasons[zero])
        return lost

    def count(self, window: Window) -> int:
        """Count the window's rows; when the extract reads the window by key range, the same
        index-only scan also reads the window's lowest and highest key, which the next extract
        of this window then reads by instead of scanning the window's index a second time."""
        probe = self._key_probe(window)
        self._probed = None
        if probe is None:
            return super().count(window)
        with self._shared("counting rows") as conn, conn.cursor() as cursor:
            cursor.execute(probe.sql, probe.params or None)
            found = tuple(cursor.fetchone())
            self._lost = self._tally_unplaceable(cursor)
        self._probed = ((probe.sql, probe.params), found)
        return int(found[2])

    def _key_probe(self, window: Window) -> sql.Statement | None:
        """``MIN(key), MAX(key), COUNT(*)`` over the window, with the predicate of the extract
        that reads it by key range (the primary key is one integer column), else None."""
        try:
            reader = self.extract_reader()
        except (MissingExtraError, PermanentError):
            return None  # the extract says why
        info = self._table_info()
        if reader == "connectorx":  # window bounds as literals, as its pages send them
            text = fast.build_query(self.options, info, window.start, window.end).probe_sql()
            return None if text is None else sql.Statement(text)
        key = fast.range_key(info)
        if key is None or self.options.force_index:  # a forced index is read as asked
            return None
        return sql.Statement(sql.key_range_probe_sql(self.options, key), self._bounds(info, window))

    def _key_range(self, probe: sql.Statement, conn: Any, *, keep: bool = False) -> tuple[Any, ...]:
        """The probe's row: from the count of this window just before (once, unless ``keep``),
        else read now."""
        probed = self._probed
        if not keep:
            self._probed = None  # a count's probe serves one extract
        if probed is not None and probed[0] == (probe.sql, probe.params):
            return probed[1]
        with conn.cursor() as cursor:
            cursor.execute(probe.sql, probe.params or None)
            return tuple(cursor.fetchone())

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        """Stream the window's rows as record batches of at most ``batch_size`` rows.

        The table is looked up when this is called; the query starts on the first ``next()``.
        Stopping early (closing the iterator) closes the connection without reading the rest.
        """
        info = self._table_info()
        if self.extract_reader() == "connectorx":
            return self._fast_stream(window, info)
        return self._keyed_stream(window, info)

    def extract_reader(self) -> str:
        """The reader :meth:`extract` uses: ``"connectorx"`` or ``"pymysql"``.

        :raises MissingExtraError: when ``reader`` is "connectorx" and it is not installed.
        :raises PermanentError: when ``reader`` is "connectorx" and it cannot read the table.
        """
        choice = self.options.reader
        if choice == "pymysql":
            return "pymysql"
        if choice == "connectorx":
            fast.connectorx()
            why = fast.unsupported(self.options, self._table_info(), bounded=False)
            if why is not None:
                raise PermanentError(
                    f"MySQL {self.options.address}: the connectorx reader cannot read this "
                    f"table ({why}); set reader to \"pymysql\" or \"auto\""
                )
            return "connectorx"
        if not fast.installed() or fast.unsupported(self.options) is not None:
            return "pymysql"
        return "pymysql" if fast.unsupported(self.options, self._table_info()) else "connectorx"

    def schema(self) -> pa.Schema:
        """The Arrow schema of the extracted batches (also for an empty window)."""
        return arrow_schema(self._table_info().columns)

    def count_statement(self, window: Window) -> sql.Statement:
        """The COUNT statement for ``window``, as it will be sent (bounds as parameters)."""
        info = self._table_info()
        return sql.Statement(sql.count_sql(self.options), self._bounds(info, window))

    def fingerprint_statement(self, window: Window) -> sql.Statement:
        """The window's count and a sum of ``CRC32`` over each row's primary key and query field
        (every column for a table without a primary key, or a view)."""
        info = self._table_info()
        identity = info.indexes.get("PRIMARY") or tuple(c.name for c in info.columns)
        return sql.Statement(sql.fingerprint_sql(self.options, identity), self._bounds(info, window))

    def extract_statement(self, window: Window) -> sql.Statement:
        """The statement the extract sends for ``window`` (the first page's, with connectorx),
        by the reader in use:

        - pymysql: one statement, between the window's lowest and highest primary key in key
          order when the keys are dense, else in (query field, key) order; bounds as
          parameters;
        - connectorx: the first page, bounds and keys written into the text (connectorx takes
          no parameters): a range of the primary key when the keys are dense, else the rows
          first in (query field, key) order; one statement when there is no such order.

        Which one depends on the window's lowest and highest key: this reads them (one scan of
        the query field's index) unless a count of this window just did, which the extract
        that follows still uses.
        """
        info = self._table_info()
        bounds = None
        probe = self._key_probe(window)
        if probe is not None:
            with self._shared("planning the extract") as conn:
                bounds = self._key_range(probe, conn, keep=True)
        if self.extract_reader() == "connectorx":
            query = fast.build_query(self.options, info, window.start, window.end,
                                     dates_as_text=self._dates_as_text)
            ranges = query.key_ranges(*bounds) if bounds is not None else None
            return sql.Statement(fast.first_page_sql(query, self.options.batch_size, ranges))
        return self._pymysql_statement(window, info, bounds)

    def _pymysql_statement(self, window: Window, info: sql.TableInfo, bounds: tuple[Any, ...] | None) -> sql.Statement:
        """The pymysql extract: along the primary key when ``bounds`` (the window's lowest and
        highest key, its row count) are dense, else in (query field, key) order."""
        statement = sql.Statement(sql.select_sql(self.options, info.columns, info.order_by), self._bounds(info, window))
        key = fast.range_key(info)
        if bounds is None or key is None or self.options.force_index or not fast.dense(*bounds):
            return statement
        low, high, _ = bounds
        text = sql.key_range_select_sql(self.options, info.columns, key)
        return sql.Statement(text, (*statement.params, int(low), int(high)))

    # -- internals ---------------------------------------------------------------------------

    def _reader_line(self, info: sql.TableInfo) -> str:
        reader = self.extract_reader()
        if reader == "connectorx" and not fast.pageable(info):
            return (
                "warning: extract reader: connectorx with one statement (no index on the query "
                "field followed by an integer primary key to page on): memory grows with the "
                "window when the load is slower than the read"
            )
        if reader == "connectorx":
            return "extract reader: connectorx (Arrow batches from Rust, read page by page)"
        if self.options.reader == "pymysql":
            return "extract reader: pymysql (reader: pymysql)"
        why = fast.unsupported(self.options, info) if fast.installed() else None
        if why is None:
            why = "connectorx is not installed: pip install 'drivetrain[mysql-fast]' to read faster"
        return f"extract reader: pymysql ({why})"

    def _fast_stream(self, window: Window, info: sql.TableInfo) -> Iterator[pa.RecordBatch]:
        opts = self.options
        query = fast.build_query(opts, info, window.start, window.end, dates_as_text=self._dates_as_text)
        ranges = None
        probe = query.probe_sql()
        # through pymysql first: fast, classified failures for bad credentials or a lost server
        with self._shared("planning the extract") as conn:
            if probe is not None:
                ranges = query.key_ranges(*self._key_range(sql.Statement(probe), conn))
        if ranges:
            log.debug("extract from %s with connectorx, %d key-range pages: %s", opts.address,
                      len(ranges), query.range_sql(*ranges[0]))
        else:
            log.debug("extract from %s with connectorx: %s", opts.address, query.page_sql())
        password = self._password()
        secrets = (password, fast.url_quote(password, safe="")) if password else ()
        url = fast.connection_url(opts, self._user() or "", password)

        def errors(action: str) -> AbstractContextManager[None]:
            return fast.connectorx_errors(opts.address, action, secrets=secrets)

        def invalid_dates() -> None:
            self._dates_as_text = True
            log.warning(
                "%s.%s holds zero or invalid dates, which connectorx cannot read (the Rust panic "
                "it printed is that): its DATETIME and DATE columns are read as text from now on, "
                "with those values as NULL", opts.database, opts.table)

        try:
            yield from fast.stream(url, query, opts.batch_size, errors, ranges, invalid_dates)
        except PermanentError as exc:
            if str(exc).startswith("MySQL "):
                raise
            raise PermanentError(f"MySQL {opts.address}: {exc}") from exc

    def _keyed_stream(self, window: Window, info: sql.TableInfo) -> Iterator[pa.RecordBatch]:
        """The pymysql extract: along the primary key between the window's lowest and highest
        key when the keys are dense (the server reads the clustered index in order, where the
        order of the query field's index needs a row look-up per row, or a scan and a sort of
        the whole table when the window is a large part of it), else in the query field's
        order. Rows with equal query fields come in key order either way."""
        bounds = None
        probe = self._key_probe(window)
        if probe is not None:
            with self._shared("planning the extract") as conn:
                bounds = self._key_range(probe, conn)
        yield from self._stream(self._pymysql_statement(window, info, bounds), info)

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return mysql_errors(self.options.address, action, secret=self._password())

    def _open_shared(self) -> Any:
        return self._connect(decode=True)

    def _usable(self, conn: Any) -> bool:
        try:
            conn.ping(reconnect=False)
        except Exception:
            return False
        return bool(conn.open)

    def _connect(self, *, decode: bool) -> Any:
        """Open a connection; ``decode=False`` leaves values as the bytes the server sent, for
        the Arrow decoders (no Python conversion, not even to ``str``, per value)."""
        pymysql = _pymysql()
        opts = self.options
        user = self._required_user()
        conv = pymysql.converters.conversions
        if not decode:
            conv = {k: v for k, v in conv.items() if not isinstance(k, int)}
        kwargs: dict[str, Any] = {
            "host": opts.host,
            "port": opts.port,
            "user": user,
            "password": self._password() or "",
            "database": opts.database,
            "charset": "utf8mb4",
            "connect_timeout": opts.connect_timeout,
            "read_timeout": opts.read_timeout,
            "write_timeout": opts.read_timeout,
            "autocommit": True,
            "conv": conv,
            "use_unicode": decode,
        }
        preferred = opts.ssl is None and not opts.ssl_disabled
        if opts.ssl is not None:
            kwargs["ssl"] = self._ssl_context()
        elif opts.ssl_disabled:
            kwargs["ssl_disabled"] = True
        else:
            kwargs["ssl"] = preferred_tls()
            kwargs["defer_connect"] = True
        with self._errors("connecting"):
            conn = pymysql.connect(**kwargs)
            if preferred:
                # pymysql's own default (TLS when the server offers it, unverified) with the
                # context built once per process instead of once per connection (~20 ms of CPU
                # to load the system's CA bundle, which an unverified context never reads)
                conn._ssl_required = False
                conn.client_flag &= ~pymysql.constants.CLIENT.SSL
                conn.connect()
            try:
                with conn.cursor() as cursor:
                    cursor.execute(  # one round trip for both
                        "SET SESSION time_zone = '+00:00', SESSION net_write_timeout = %s",
                        (opts.net_write_timeout,),
                    )
            except BaseException:
                conn.close()
                raise
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = self._verified_context()
        return self._tls

    def _verified_context(self) -> ssl.SSLContext:
        settings = self.options.ssl
        assert settings is not None
        try:
            context = ssl.create_default_context(cafile=str(settings.ca) if settings.ca else None)
            context.check_hostname = settings.verify_identity
            # MySQL's self-made certificates lack extensions Python 3.13's strict mode wants
            context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
            if settings.cert is not None:
                context.load_cert_chain(
                    str(settings.cert), str(settings.key) if settings.key else None
                )
        except (OSError, ssl.SSLError) as exc:
            raise PermanentError(
                f"MySQL {self.options.address}: cannot load the TLS files in 'ssl' ({exc}); "
                "check ssl.ca, ssl.cert and ssl.key"
            ) from exc
        return context

    def _stream(self, statement: sql.Statement, info: sql.TableInfo) -> Iterator[pa.RecordBatch]:
        pymysql = _pymysql()
        schema = arrow_schema(info.columns)
        column_decoders = decoders(info.columns, self.options.source_timezone)
        batch_size = self.options.batch_size
        log.debug("extract from %s: %s %s", self.options.address, statement.sql, statement.params)
        conn = self._connect(decode=False)
        cursor = None
        complete = False
        try:
            with self._errors("starting the extract"):
                cursor = conn.cursor(pymysql.cursors.SSCursor)
                cursor.execute(statement.sql, statement.params)
            reader = wire.RowReader(conn, cursor) if wire.supported(conn, cursor) else None
            while True:
                with self._errors("reading rows"):
                    rows = reader.fetch(batch_size) if reader is not None else cursor.fetchmany(batch_size)
                if not rows:
                    break
                try:
                    if reader is not None:
                        batch = decode_batch(rows, schema, column_decoders)
                    else:
                        batch = to_batch(rows, schema, column_decoders)
                except PermanentError as exc:
                    raise PermanentError(f"MySQL {self.options.address}: {exc}") from exc
                del rows
                yield batch
            complete = True
        finally:
            _release(conn, cursor, complete)


def _tls_line(opts: MySQLOptions, cipher: str) -> str:
    if not cipher:
        return "plain, no TLS" + ("" if opts.ssl_disabled else ": the server offers none")
    if opts.ssl is None:
        return f"TLS {cipher}, server certificate not verified: set ssl to verify it"
    return f"TLS {cipher}, server certificate verified"


@functools.cache
def preferred_tls() -> ssl.SSLContext:
    """The TLS context of connections with no ``ssl`` setting, built once per process: encrypts
    without verifying the server (as pymysql does by default), so it loads no CA bundle."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _release(conn: Any, cursor: Any, complete: bool) -> None:
    """Close an extract connection; when the stream did not end, skip draining the rest."""
    if not complete and cursor is not None:
        # pymysql would otherwise read (and discard) every remaining row of the result set
        result = getattr(cursor, "_result", None)
        if result is not None:
            result.unbuffered_active = False
    with suppress(Exception):
        if complete and cursor is not None:
            cursor.close()
    with suppress(Exception):
        conn.close()

