"""The fast extract: connectorx streams the window as Arrow batches, no Python per row.

connectorx (``pip install 'drivetrain[mysql-fast]'``) reads the result set in Rust and hands
over Arrow record batches (``return_type="arrow_stream"``), so memory stays bounded by the
batch size as with the pymysql reader, at close to the server's own speed. It yields exactly
what the pymysql reader yields (same schema, same values, same rows in the same order): each
column travels in the form connectorx reads safely, then one vectorised Arrow cast per column
brings it to the type :mod:`~drivetrain.connectors.mysql.types` promises:

- integers, DOUBLE, character strings (CHAR, VARCHAR, TEXT, ENUM, SET, MariaDB's JSON) and
  binary strings travel as they are;
- DATETIME and DATE travel as they are too, read in ``source_timezone`` like the pymysql
  reader's; but connectorx stops (a Rust panic) on a zero or invalid date, which a lax
  ``sql_mode`` lets in. A page it stops on is read again with those columns as text (the
  query field stays as it is: the window predicate leaves zero dates out), decoded like the
  pymysql reader's text with zero and invalid dates to NULL, and so is every later page and
  window of that source (see :attr:`FastQuery.as_text`). As text the server formats each value
  and the reader parses it again: on the wide benchmark table, one DATETIME(6) column read as
  text cost the server 0.4 s of CPU per 2M rows, a fifth of its work for the extract;
- DECIMAL, FLOAT, TIME, UUID, INET and MySQL's JSON travel as text (connectorx would stop on an
  overlong decimal), decoded like the pymysql reader's text;
- TIMESTAMP travels as microseconds since the epoch, which does not depend on the session's
  time zone; BIT as an unsigned integer.

connectorx reads ahead of its consumer without limit, so a window is read in pages of at
most 100,000 rows (a multiple of ``batch_size``) and about :data:`PAGE_BYTES` of Arrow data,
each read whole and then cut into batches: memory holds a page or two whatever the window
holds (two when the caller reads ahead, as the source-to-stage transfer does, so the next page
is read while this one is loaded). The heap a page frees is reused by the next one and given
back to the system once, when the extract ends (see :func:`give_back_freed_memory`). The
first page is a quarter of the row count; its size tells how many rows the next pages may
hold, so wide rows get shorter pages. There are two ways to cut pages, both needing an index
starting with the query field followed by an integer primary key:

- **Key ranges**, when the primary key is one integer column and the window's keys are dense
  (``MAX - MIN + 1`` at most :data:`RANGE_DENSITY` times the window's rows, as with
  auto-increment keys that grow with time). One index-only probe reads the window's lowest and
  highest key and its row count (the source count's own statement, when the run counted the
  window just before: one scan of the window's index serves both); then each page is ``WHERE <window> AND key BETWEEN a AND b
  ORDER BY key``. The server reads such a page straight from the clustered primary key, in
  order, which is the fastest way it has to read rows: up to twice as fast as walking the
  query field's index and fetching each row by its key.
- **Keyset pages** otherwise: each page continues after the last row of the one before in
  the order (query field, primary key), ``ORDER BY ... LIMIT n``.

Rows come in primary-key order with key ranges, in (query field, key) order with keyset
pages: rows with equal query fields are in key order either way, which is all the stage's
"later copy wins" deduplication looks at. Pages are separate statements, so a row whose query
field changes *during* the extract, from a part of the window already read to a part not yet
read, is read twice (a single statement reads it once), and with key ranges a row inserted
into the window after the probe with a key above its highest is left for the next run's
recount to notice, as a single statement started before the insert would.

Window bounds and page keys are written into the SQL as literals (connectorx takes no
parameters); they are formatted from datetimes and integers here, never from text. A TIMESTAMP query field is compared with
``FROM_UNIXTIME(...)``, which is exact unless the server's default time zone has daylight
saving time and a window bound falls in the hour repeated when clocks go back.

What connectorx cannot do (TLS, spatial or unknown column types, no order to page on) makes
``reader: "auto"`` use pymysql instead; :func:`unsupported` says why. Timeouts: the source
connects through pymysql first (``connect_timeout``), so a server that cannot be reached or
refuses the credentials fails fast and is classified as usual; connectorx itself applies no
``read_timeout`` to a stream that stalls.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote as url_quote

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.connectors.mysql import sql
from drivetrain.connectors.mysql.config import MySQLOptions
from drivetrain.connectors.mysql.errors import PERMANENT_CODES, TRANSIENT_CODES
from drivetrain.connectors.mysql.types import (
    BINARY_TYPES,
    CHARACTER_TYPES,
    DECIMAL_TYPES,
    INTEGER_TYPES,
    UTC_MICROS,
    Column,
    arrow_schema,
    arrow_type,
    decoders,
)
from drivetrain.errors import ConnectorError, MissingExtraError, PermanentError, TransientError
from drivetrain.window import ARROW_LOCAL_RULES

#: Types read as they are on the wire.
_NATIVE = INTEGER_TYPES | {"double", "double precision", "real"} | BINARY_TYPES | CHARACTER_TYPES
#: Types read as text and decoded like the pymysql reader's values.
_TEXT = DECIMAL_TYPES | {"float", "time", "uuid", "inet4", "inet6", "json", "datetime", "date"}
_SPATIAL = frozenset(
    {
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    }
)
#: Read as they are, unless a zero or invalid date makes connectorx stop (FastQuery.as_text).
_DATES = frozenset({"datetime", "date"})
_ERROR_NUMBER = re.compile(r"ERROR (\d{4})")
_TRANSIENT_TEXT = ("io error", "os error", "connection", "timed out", "broken pipe", "reset by")


def connectorx() -> Any:
    """The connectorx module, or MissingExtraError naming the ``mysql-fast`` extra."""
    try:
        import connectorx as cx
    except ImportError:
        raise MissingExtraError("connectorx", "mysql-fast") from None
    few_malloc_arenas()
    return cx


#: glibc's mallopt parameter M_ARENA_MAX (malloc.h).
_M_ARENA_MAX = -8
#: Arenas glibc may create once connectorx is used (its default is 8 per core).
MALLOC_ARENAS = 2
_arenas_limited = False


def few_malloc_arenas() -> None:
    """Limit glibc to :data:`MALLOC_ARENAS` malloc arenas, once per process.

    connectorx reads each page on fresh Rust threads; with glibc's default of up to eight
    arenas per core, each new thread may allocate its page in another arena, and the memory a
    page frees stays in its arena, so the process's resident size creeps up page after page
    (on 2M rows of 330 bytes the extract peaked 95 MB higher). The same as setting
    ``MALLOC_ARENA_MAX=2`` before the process starts; it applies to arenas made from now on.
    A user's own ``MALLOC_ARENA_MAX`` is left as set; other C libraries are left alone.
    """
    global _arenas_limited
    if _arenas_limited or os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    _arenas_limited = True
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        pass


_libc: Any = None


def give_back_freed_memory() -> None:
    """Return the heap pages freed since the last call to the system (glibc's ``malloc_trim``).

    A page read by connectorx is freed as a whole once its batches are loaded, and glibc keeps
    the freed heap in its arenas, where the next page reuses it; the stream calls this once,
    when the extract ends. Trimming after every page kept the extract's resident size about
    10 MB lower on 2M rows of 330 bytes, but each page then faulted its memory in afresh from
    the kernel: 0.2-0.4 s of CPU per 2M such rows (two cores), on the extract's critical path.
    Other C libraries are left alone.
    """
    global _libc
    if _libc is False or not sys.platform.startswith("linux"):
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None)
        _libc.malloc_trim(0)
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        _libc = False


def installed() -> bool:
    """Whether connectorx can be imported."""
    try:
        connectorx()
    except MissingExtraError:
        return False
    return True


#: Most rows per page (rounded up to a multiple of batch_size).
PAGE_ROWS = 100_000
#: Arrow bytes a page should hold, about: wide rows get pages of fewer rows (see :func:`stream`).
#: Each page is a statement on a new connection (200 empty pages took 0.23-0.36 s); 8 MiB
#: pages read 2M rows of 330 bytes in about 100 statements instead of 200.
PAGE_BYTES = 8 * 1024 * 1024
#: Key-range pages need the window's keys this dense: MAX - MIN + 1 <= RANGE_DENSITY * rows.
RANGE_DENSITY = 4


def page_rows(batch_size: int) -> int:
    """Most rows per page: :data:`PAGE_ROWS` rounded up to a multiple of ``batch_size``."""
    return batch_size * max(1, -(-PAGE_ROWS // batch_size))


def next_page_size(most: int, batch_size: int, span: int, nbytes: int) -> int:
    """Keys (or rows) the next page may span, given the last one spanned ``span`` and held
    ``nbytes``: about :data:`PAGE_BYTES`, a multiple of ``batch_size``, at most ``most``."""
    if span <= 0 or nbytes <= 0:
        return most
    fits = PAGE_BYTES * span // nbytes
    return max(batch_size, min(most, fits - fits % batch_size))


def pageable(info: sql.TableInfo) -> bool:
    """Whether the extract's order can be continued page by page: query field, then integer
    primary-key columns (unique and never NULL)."""
    if not info.order_by or len(info.order_types) != len(info.order_by):
        return False
    primary = set(info.indexes.get("PRIMARY", ()))
    rest = zip(info.order_by[1:], info.order_types[1:], strict=True)
    return all(name.lower() in primary and kind in INTEGER_TYPES for name, kind in rest)


def range_key(info: sql.TableInfo) -> str | None:
    """The primary key, when it is one integer column and the extract's order is (query field,
    that key): the window can then be read as ranges of that key, in key order."""
    if not pageable(info) or len(info.order_by) != 2:
        return None
    primary = tuple(info.indexes.get("PRIMARY", ()))
    return info.order_by[1] if primary == (info.order_by[1].lower(),) else None


def dense(low: Any, high: Any, rows: Any) -> bool:
    """Whether keys ``low..high`` are dense enough for ``rows`` rows to be read by key range
    (at most :data:`RANGE_DENSITY` keys per row; an empty window is not)."""
    if low is None or high is None or not rows:
        return False
    return int(high) - int(low) + 1 <= RANGE_DENSITY * int(rows)


def unsupported(
    options: MySQLOptions, info: sql.TableInfo | None = None, *, bounded: bool = True
) -> str | None:
    """Why connectorx cannot read this source exactly (in bounded memory), or None when it can.

    :param bounded: also require an order to page on (``reader: "auto"`` does; an explicit
        ``reader: "connectorx"`` then reads the window with one statement instead).
    """
    if options.ssl is not None:
        return "TLS settings ('ssl') are only applied by the pymysql reader"
    if bounded and info is not None and not pageable(info):
        return (
            "no index starting with the query field followed by an integer primary key, so the "
            "window cannot be read page by page in bounded memory"
        )
    for column in info.columns if info is not None else ():
        if column.data_type in _SPATIAL:
            return f"column {column.name!r} is {column.data_type.upper()}, a spatial type"
        if column.data_type not in _NATIVE | _TEXT | {"timestamp", "bit"}:
            return f"column {column.name!r} has type {column.data_type.upper()}"
    return None


@attrs.frozen
class FastQuery:
    """The connectorx statements for one window, page by page, and how to decode them."""

    select: str
    """``SELECT ... FROM ... WHERE <window>``: output columns ``_c0``..., page keys ``_k0``..."""
    order_by: tuple[str, ...]
    """The extract's order (backquoted column names); pages continue after the last key."""
    key_literals: tuple[Callable[[Any], str], ...]
    """One per ORDER BY column: a wire key value -> its SQL literal."""
    schema: pa.Schema
    """The schema of the batches after decoding (the pymysql reader's)."""
    decoders: tuple[Callable[[pa.Array], pa.Array], ...]
    """One per output column: wire array -> output array."""
    page_rows: int | None
    """Rows per page; None reads the window with one statement."""
    source: str = ""
    """``FROM ... WHERE <window>``, for the key-range probe and pages."""
    outputs: str = ""
    """The output columns of :attr:`select`, without the page keys."""
    range_key: str | None = None
    """The primary key, when it is one integer column: pages may be key ranges."""
    as_text: FastQuery | None = None
    """The same query with the DATETIME and DATE columns other than the query field read as
    text, for a table holding zero or invalid dates; None when it has no such column (or this
    is that query)."""

    def probe_sql(self) -> str | None:
        """``MIN(key), MAX(key), COUNT(*)`` over the window, when key ranges are possible."""
        if self.range_key is None or self.page_rows is None:
            return None
        key = self.range_key
        return f"SELECT MIN({key}), MAX({key}), COUNT(*) {self.source}"

    def key_ranges(self, low: Any, high: Any, rows: Any) -> list[tuple[int, int]] | None:
        """Inclusive key ranges of at most :attr:`page_rows` keys covering ``low..high``, or
        None when the keys are too sparse for that (or the window is empty)."""
        if self.page_rows is None or not dense(low, high, rows):
            return None
        low, high, step = int(low), int(high), self.page_rows
        return [(a, min(a + step - 1, high)) for a in range(low, high + 1, step)]

    def range_sql(self, first: int, last: int) -> str:
        """The statement for the page of keys ``first..last``."""
        key = self.range_key
        return (f"SELECT {self.outputs} {self.source} AND {key} >= {first} AND {key} <= {last} "
                f"ORDER BY {key}")

    def page_sql(self, after: Sequence[Any] | None = None, limit: int | None = None) -> str:
        """The statement for the page after the row whose keys are ``after`` (first: None),
        of at most ``limit`` rows (default :attr:`page_rows`)."""
        text = self.select
        if after is not None:
            literals = [literal(v) for literal, v in zip(self.key_literals, after, strict=True)]
            terms = []
            for i, column in enumerate(self.order_by):
                equal = [f"{c} = {v}" for c, v in zip(self.order_by[:i], literals, strict=False)]
                terms.append("(" + " AND ".join([*equal, f"{column} > {literals[i]}"]) + ")")
            text += f" AND ({' OR '.join(terms)})"
        if self.order_by:
            text += f" ORDER BY {', '.join(self.order_by)}"
        if self.page_rows is not None:
            text += f" LIMIT {limit or self.page_rows}"
        return text

    def last_keys(self, page: pa.Table | pa.RecordBatch) -> tuple[Any, ...]:
        """The page keys of a wire page's last row."""
        last = page.num_rows - 1
        width = len(self.schema)
        return tuple(page.column(width + i)[last].as_py() for i in range(len(self.order_by)))


def build_query(
    options: MySQLOptions, info: sql.TableInfo, start: datetime, end: datetime, *,
    dates_as_text: bool = False,
) -> FastQuery:
    """The extract for connectorx over ``[start, end)`` (timezone-aware bounds).

    :param dates_as_text: read the DATETIME and DATE columns other than the query field as
        text from the start (a source that met a zero date in an earlier window).
    """
    schema = arrow_schema(info.columns)
    query_field = info.query_field.name.lower()
    exprs, column_decoders = [], []
    dates = False  # a DATETIME or DATE column other than the query field, read natively
    for index, column in enumerate(info.columns):
        is_query_field = column.name.lower() == query_field
        as_text = dates_as_text and column.data_type in _DATES
        dates = dates or (column.data_type in _DATES and not is_query_field and not as_text)
        wire, decode = _wire_form(column, is_query_field, options, dates_as_text=as_text)
        exprs.append(f"{wire} AS `_c{index}`")
        column_decoders.append(decode)
    paged = pageable(info)
    outputs = ", ".join(exprs)
    literals: list[Callable[[Any], str]] = []
    if paged:
        for index, name in enumerate(info.order_by):
            if index == 0:
                wire, literal = _key_form(info.query_field)
            else:
                wire, literal = sql.quote(name), _integer_literal
            exprs.append(f"{wire} AS `_k{index}`")
            literals.append(literal)
    table = f"{sql.quote(options.database)}.{sql.quote(options.table)}"
    hint = f" FORCE INDEX ({sql.quote(options.force_index)})" if options.force_index else ""
    qf = sql.quote(options.query_field)
    low, high = (_bound(info.query_field, b, options.source_timezone) for b in (start, end))
    source = f"FROM {table}{hint} WHERE {qf} >= {low} AND {qf} < {high}"
    key = range_key(info)
    return FastQuery(
        select=f"SELECT {', '.join(exprs)} {source}",
        order_by=tuple(sql.quote(c) for c in info.order_by),
        key_literals=tuple(literals),
        schema=schema,
        decoders=tuple(column_decoders),
        page_rows=page_rows(options.batch_size) if paged else None,
        source=source,
        outputs=outputs,
        range_key=sql.quote(key) if key is not None else None,
        as_text=build_query(options, info, start, end, dates_as_text=True) if dates else None,
    )


def _key_form(column: Column) -> tuple[str, Callable[[Any], str]]:
    """How the query field travels as a page key, and how its value goes back into SQL."""
    name = sql.quote(column.name)
    if column.data_type == "timestamp":
        return f"CAST(UNIX_TIMESTAMP({name}) * 1000000 AS SIGNED)", _epoch_literal
    return name, _temporal_literal


def _integer_literal(value: Any) -> str:
    return str(int(value))


def _temporal_literal(value: Any) -> str:
    if isinstance(value, datetime):
        return "'" + value.strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
    if isinstance(value, date):
        return "'" + value.isoformat() + "'"
    raise PermanentError(f"unexpected page key {value!r} from connectorx")


def _epoch_literal(micros: Any) -> str:
    seconds, fraction = divmod(int(micros), 1_000_000)
    return f"FROM_UNIXTIME({seconds}.{fraction:06d})"


def _bound(column: Column, bound: datetime, source_timezone: str) -> str:
    if column.data_type == "timestamp":
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return _epoch_literal(round((bound - epoch).total_seconds() * 1_000_000))
    naive = sql.window_params(column, bound, bound, source_timezone)[0]
    return _temporal_literal(naive)


def _wire_form(
    column: Column, is_query_field: bool, options: MySQLOptions, *, dates_as_text: bool = False
) -> tuple[str, Callable[[pa.Array], pa.Array]]:
    name = sql.quote(column.name)
    target = arrow_type(column)
    kind = column.data_type
    if kind == "timestamp":
        return (
            f"NULLIF(CAST(UNIX_TIMESTAMP({name}) * 1000000 AS SIGNED), 0)",
            lambda values: values.cast(pa.int64()).cast(UTC_MICROS),
        )
    if kind == "bit":
        return f"CAST({name} AS UNSIGNED)", lambda values: values.cast(target)
    if kind in _DATES and (is_query_field or not dates_as_text):
        return name, _native_temporal(column, options.source_timezone)
    if kind in _TEXT:
        (text_decoder,) = decoders([column], options.source_timezone)
        return f"CAST({name} AS CHAR)", _from_text(text_decoder)
    return name, lambda values: values.cast(target)


def _from_text(text_decoder: Callable[[Sequence[Any]], pa.Array]) -> Callable[[pa.Array], pa.Array]:
    """The pymysql reader's text decoder, fed an Arrow string array (no Python per value)."""
    return lambda values: text_decoder(values.cast(pa.string()))


def _native_temporal(column: Column, zone: str) -> Callable[[pa.Array], pa.Array]:
    (text_decoder,) = decoders([column], zone)
    target = arrow_type(column)

    def decode(values: pa.Array) -> pa.Array:
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return text_decoder(values)
        if pa.types.is_date(values.type):
            return values.cast(target)
        naive = values.cast(pa.timestamp("us"))
        if zone == "UTC":
            return naive.cast(UTC_MICROS)
        local = pc.assume_timezone(naive, zone, **ARROW_LOCAL_RULES)
        return local.cast(UTC_MICROS)

    return decode


def connection_url(options: MySQLOptions, user: str, password: str | None) -> str:
    """``mysql://user:password@host:port/database?prefer_socket=false``, each part
    percent-encoded.

    ``prefer_socket=false``: connectorx's MySQL driver otherwise asks a server on the loopback
    address for its Unix socket (two more statements) and opens a second connection through it,
    which fails when the user is granted only ``'user'@'127.0.0.1'`` (an "Access denied" in
    the server's log and an aborted connect) and is dropped either way: one connection and two
    statements for nothing on every page of the extract.
    """
    secret = f":{url_quote(password, safe='')}" if password else ""
    return (
        f"mysql://{url_quote(user, safe='')}{secret}@{options.host}:{options.port}/"
        f"{url_quote(options.database, safe='')}?prefer_socket=false"
    )


def decode_batch(query: FastQuery, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Bring one wire batch to the output schema, column by column.

    :raises PermanentError: naming the column when a value does not fit its Arrow type.
    """
    arrays = []
    wire = batch.columns[: len(query.schema)]  # the page keys that follow are not output
    for field, decode, values in zip(query.schema, query.decoders, wire, strict=True):
        try:
            arrays.append(decode(values))
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
            raise PermanentError(
                f"column {field.name!r} holds a value that cannot be read as {field.type}: "
                f"{exc}; leave the column out with 'columns' or report the value"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=query.schema)


def stream(
    url: str,
    query: FastQuery,
    batch_size: int,
    errors: Callable[[str], Any],
    ranges: Sequence[tuple[int, int]] | None = None,
    on_invalid_dates: Callable[[], Any] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Run the query through connectorx, page after page, and yield decoded batches.

    Each page is read whole into one Arrow table (connectorx's ``arrow`` return type, which
    lets other Python threads run while Rust reads; its ``arrow_stream`` keeps the GIL while it
    waits for the server), then cut into batches of at most ``batch_size`` rows. A caller
    that wants the next page read while it processes this one reads the stream from a thread
    of its own (the source-to-stage transfer does: :class:`drivetrain.readahead.ReadAhead`).

    A page connectorx stops on for a zero or invalid date is read again as
    :attr:`FastQuery.as_text`, and so are the pages after it; ``on_invalid_dates`` is called
    then, once.

    :param errors: ``action -> context manager`` translating connectorx failures.
    :param ranges: key ranges to read as pages (see :meth:`FastQuery.key_ranges`); None
        reads keyset pages.
    """
    cx = connectorx()
    most = query.page_rows or 0
    size = first_page_rows(query, batch_size)
    pending = deque(ranges or ())

    def next_range() -> tuple[int, int]:
        first, last = pending.popleft()
        if last - first + 1 > size:  # shorter pages than planned: the rest waits its turn
            pending.appendleft((first + size, last))
            last = first + size - 1
        return first, last

    def read(action: str, statement: Callable[..., str], *args: Any) -> pa.Table:
        """The page of ``statement(query, *args)``; again as text on a zero date."""
        nonlocal query
        with errors(action):
            try:
                return cx.read_sql(url, statement(query, *args), return_type="arrow")
            except BaseException as exc:  # pyo3's PanicException is a BaseException
                if query.as_text is None or not invalid_date(exc):
                    raise
            query = query.as_text
            if on_invalid_dates is not None:
                on_invalid_dates()
            return cx.read_sql(url, statement(query, *args), return_type="arrow")

    span = next_range() if ranges else None
    after: tuple[Any, ...] | None = None
    action = "starting the extract"
    try:
        while True:
            if span is not None:
                page = read(action, FastQuery.range_sql, *span)
            else:
                page = read(action, FastQuery.page_sql, after, size or None)
            action = "reading the next page"
            more = False
            if span is not None:
                size = next_page_size(most, batch_size, span[1] - span[0] + 1, page.nbytes)
                span = next_range() if pending else None
                more = span is not None
            elif query.page_rows is not None and page.num_rows >= size:
                size = next_page_size(most, batch_size, page.num_rows, page.nbytes)
                after, more = query.last_keys(page), True
            for batch in page.to_batches(max_chunksize=batch_size):
                if batch.num_rows:
                    yield decode_batch(query, batch)
            page = batch = None  # the page is loaded: free it before the next one is read
            if not more:
                return
    finally:
        give_back_freed_memory()  # once: each page reused the heap the one before it freed


def first_page_rows(query: FastQuery, batch_size: int) -> int:
    """Rows (or keys) of the first page: a quarter of :attr:`FastQuery.page_rows`, whole
    batches; it measures the rows, and the next pages are sized by what it held."""
    most = query.page_rows or 0
    return max(batch_size, most // 4 - most // 4 % batch_size)


def first_page_sql(query: FastQuery, batch_size: int, ranges: Sequence[tuple[int, int]] | None) -> str:
    """The statement :func:`stream` sends first, with the same ``ranges``."""
    size = first_page_rows(query, batch_size)
    if ranges:
        first, last = ranges[0]
        return query.range_sql(first, min(last, first + size - 1))
    return query.page_sql(limit=size)


def invalid_date(exc: BaseException) -> bool:
    """Whether connectorx stopped on a DATETIME or DATE value it cannot convert (a zero or
    invalid date: ``Couldn't convert the value `Date("'0000-00-00'")` ...``)."""
    text = str(exc)
    return "Couldn't convert the value `Date(" in text and "chrono::naive::" in text


@contextmanager
def connectorx_errors(address: str, action: str, *, secrets: Sequence[str] = ()) -> Iterator[None]:
    """Turn connectorx failures (RuntimeError, Rust panics) into drivetrain errors.

    The server's error number, when the text carries one, decides as for pymysql; otherwise
    lost connections and I/O failures are transient and the rest permanent.
    """
    try:
        yield
    except ConnectorError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # pyo3's PanicException is a BaseException
        text = str(exc) or type(exc).__name__
        for secret in secrets:
            if secret:
                text = text.replace(secret, "<SECRET>")
        transient, code, hint = classify_text(text)
        number = f" {code}" if code is not None else ""
        message = f"MySQL {address}: {action} failed (connectorx error{number}: {text}); {hint}"
        raise (TransientError if transient else PermanentError)(message) from exc


def classify_text(text: str) -> tuple[bool, int | None, str]:
    """Decide transient or permanent from a connectorx message; returns (transient, code, hint)."""
    found = _ERROR_NUMBER.search(text)
    code = int(found.group(1)) if found else None
    if code in TRANSIENT_CODES:
        return True, code, TRANSIENT_CODES[code]
    if code in PERMANENT_CODES:
        return False, code, PERMANENT_CODES[code]
    lowered = text.lower()
    if code is None and any(word in lowered for word in _TRANSIENT_TEXT):
        return True, None, "the connection failed or was lost; retry"
    if "could not retrieve" in lowered or "couldn't convert" in lowered:
        return (
            False,
            code,
            "connectorx cannot read a value of this table; set reader: \"pymysql\" in "
            "source_system",
        )
    return False, code, "fix the cause reported by the server before retrying"
