"""The two ways the extract reads a window, both one statement on one snapshot.

- **adbc** (``adbc-driver-postgresql``): the server streams the window as binary COPY and the
  driver builds Arrow batches in C; no Python object per value. About three times faster than
  the cursor. The window bounds are written into the statement as literals (microsecond
  timestamps we format ourselves, never user text), because a statement with bound parameters
  is not streamed by the driver but read whole into memory.
- **psycopg**: a server-side (named) cursor fetched ``batch_size`` rows at a time in binary.

Both select the same expressions (:func:`~drivetrain.connectors.postgres.sql.select_sql`), so
they return the same rows with the same values, except that adbc asks for ``numeric`` columns as
the server's exact text (the driver's own binary-numeric conversion was most of its read time)
and casts it back; :func:`normalize` gives both the same Arrow types. Each yields batches of at most ``batch_size`` rows; memory is bounded by one batch
(plus the driver's buffer of :data:`ADBC_BATCH_BYTES` for adbc) whatever the window holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, suppress
from datetime import datetime
from typing import Any
from urllib.parse import quote as url_quote

import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.connectors.postgres.types import UTC_MICROS, Column, to_batch
from drivetrain.errors import MissingExtraError
from drivetrain.window import ARROW_LOCAL_RULES

Errors = Callable[[str], AbstractContextManager[None]]

#: Bytes of COPY data the ADBC driver gathers into one Arrow batch before handing it over
#: (its default is 16 MiB): with the batch being sliced and typed, about three such buffers are
#: alive at once, so this bounds the extract's memory whatever the window holds.
ADBC_BATCH_BYTES = 4 * 1024 * 1024
#: The driver's own type table instead of the server's catalogue: by default the driver opens a
#: connection of its own only to read ``pg_type`` and ``pg_attribute`` (three queries, 40-60 ms
#: on an idle machine and 0.25 s under load, before the first row). Every column the extract
#: sends in binary is of a built-in type (``_NATIVE`` in :mod:`~drivetrain.connectors.postgres.types`);
#: the others, extension and user types included, are cast to text in the SELECT, so the
#: catalogue would tell the driver nothing it needs.
ADBC_DATABASE_OPTIONS = {"adbc.postgresql.type_resolver_mode": "builtin"}


def adbc_installed() -> bool:
    """Whether the adbc reader can be used."""
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
    except ImportError:
        return False
    return True


def literal(value: datetime) -> str:
    """A window bound as an SQL literal, exact to the microsecond."""
    if value.tzinfo is not None:
        return f"'{value.isoformat(timespec='microseconds')}'"
    return f"'{value.isoformat(sep=' ', timespec='microseconds')}'"


def adbc_url(kwargs: dict[str, Any]) -> str:
    """A libpq URL from psycopg connection arguments (user and password URL-quoted)."""
    user = url_quote(str(kwargs.pop("user")), safe="")
    password = kwargs.pop("password", None)
    auth = user + (":" + url_quote(str(password), safe="") if password else "")
    host, port, dbname = kwargs.pop("host"), kwargs.pop("port"), kwargs.pop("dbname")
    query = "&".join(f"{k}={url_quote(str(v), safe='')}" for k, v in kwargs.items())
    return f"postgresql://{auth}@{host}:{port}/{url_quote(dbname, safe='')}?{query}"


def adbc_connect(url: str, errors: Errors, reuse: Any = None) -> Any:
    """An ADBC connection: ``reuse`` when it still answers, else a new one.

    The driver still connects once more to read the server's version before the connection
    the extract uses (see :data:`ADBC_DATABASE_OPTIONS`), so the source keeps the connection of a
    completed extract for the next window.
    """
    if reuse is not None:
        try:
            with reuse.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            return reuse
        except Exception:  # dropped by the server meanwhile: open a new one
            with suppress(Exception):
                reuse.close()
    try:
        import adbc_driver_postgresql.dbapi as adbc
    except ImportError:
        raise MissingExtraError("adbc-driver-postgresql", "postgres") from None
    with errors("connecting"):
        return adbc.connect(url, db_kwargs=dict(ADBC_DATABASE_OPTIONS))


def adbc_stream(
    conn: Any, statement: str, columns: Sequence[Column], batch_size: int, zone: str,
    errors: Errors, release: Callable[[Any, bool], None],
) -> Iterator[pa.RecordBatch]:
    """Stream ``statement`` through ADBC (binary COPY), as batches of ``batch_size`` rows.

    ``release(conn, complete)`` gets the connection back at the end; ``complete`` says the
    stream was read to its end (else the connection is mid-COPY and must be closed).
    """
    complete = False
    try:
        with errors("starting the extract"):
            cursor = conn.cursor()
            cursor.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(ADBC_BATCH_BYTES)}
            )
            cursor.execute(statement)
            reader = cursor.fetch_record_batch()
        try:
            while True:
                with errors("reading rows"):
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                batch = normalize(batch, columns, zone)
                for offset in range(0, batch.num_rows, batch_size):
                    yield batch.slice(offset, batch_size)
            complete = True
        finally:
            with suppress(Exception):
                reader.close()
            with suppress(Exception):
                cursor.close()
    finally:
        release(conn, complete)


def cursor_stream(
    conn: Any, statement: str, params: tuple[Any, ...], columns: Sequence[Column],
    schema: pa.Schema, batch_size: int, zone: str, errors: Errors,
) -> Iterator[pa.RecordBatch]:
    """Stream ``statement`` through a psycopg server-side cursor, ``batch_size`` rows a fetch."""
    try:
        with errors("starting the extract"):
            cursor = conn.cursor("drivetrain_extract", binary=True)
            cursor.itersize = batch_size
            cursor.execute(statement, params)
        while True:
            with errors("reading rows"):
                rows = cursor.fetchmany(batch_size)
            if not rows:
                break
            batch = to_batch(rows, columns, schema, zone)
            del rows
            yield batch
    finally:
        with suppress(Exception):
            conn.close()


def normalize(batch: pa.RecordBatch, columns: Sequence[Column], zone: str) -> pa.RecordBatch:
    """Give an ADBC batch the types of :func:`~drivetrain.connectors.postgres.types.arrow_schema`.

    Naive timestamps become instants by the rules of :mod:`drivetrain.window`; numeric columns,
    selected as text, become decimals; field metadata of the driver is dropped.
    """
    arrays, fields = [], []
    for column, array in zip(columns, batch.columns, strict=True):
        target = column.arrow_type
        if isinstance(array.type, pa.ExtensionType):
            array = array.storage
        if column.type_name == "timestamp" and not column.is_array:
            if zone != "UTC":
                array = pc.assume_timezone(array, zone, **ARROW_LOCAL_RULES)
            array = array.cast(UTC_MICROS)
        elif array.type != target:
            array = array.cast(target)
        arrays.append(array)
        fields.append(pa.field(column.name, target))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
