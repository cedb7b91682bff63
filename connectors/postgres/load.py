"""Loading one window into PostgreSQL: Arrow batches go in by binary COPY, inside one transaction.

The load has a psycopg connection of its own, opened while the first append claims and creates
its table on the pool's connection. Batches are encoded into PostgreSQL's binary COPY format by
``pgpq`` (in Rust, part of the postgres extra) and written to one ``COPY ... FROM STDIN`` per
table and window as they arrive, so the server inserts the first rows while the next ones are
read: one COPY has a fixed cost (40 COPYs of 10k rows took twice as long as one of 400k), and
the ADBC ingest this replaced needed a second connection and a read of the type catalogue at
every start (0.1-0.25 s of a 1-day window, see benchmarks/postgres.py). The connection outlives
the window: a committed load hands it back to the warehouse and the next window's load takes it
again (one authentication a run); one the server closed meanwhile is replaced before anything is
written. Its first append opens the transaction and deletes the window from the table it loads.
Batches whose Arrow types are what the table's columns read in binary COPY go straight in; any
other batch goes into a temporary table and moves into the real one by ``INSERT ... SELECT``
with a cast per column, so a column created from another Arrow type (or by hand, e.g. jsonb)
still takes the rows, and a value that does not fit fails the load with the server's reason.
:meth:`PostgresWindowLoad.commit` ends the COPY, empties the window of tables that got no rows,
calls the fence, and commits. Nothing is visible to other sessions before, and an abort or a
crash (the server ends the session) rolls everything back.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from drivetrain.errors import MissingExtraError
from drivetrain.schema_types import arrow_kind, sql_kind, widened_type
from drivetrain.warehouse import Fence, TableRef, WindowLoad

from .background import Background
from .dialect import arrow_type_sql, literal

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.window import Window

    from .session import PostgresHome

_names = itertools.count()

def ingest_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch in Arrow types the COPY encoder writes: nested values as JSON text, unsigned and
    small types widened, dictionaries decoded, durations as their count, wide decimals as text."""
    import json

    import pyarrow as pa

    arrays, fields = [], []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        t = field.type
        if pa.types.is_dictionary(t):
            array, t = array.dictionary_decode(), t.value_type
        target = _widened(t)
        if pa.types.is_decimal256(t):  # pgpq encodes decimal128 only: the exact text, cast by the server
            array, t = array.cast(pa.string()), pa.string()
        elif pa.types.is_nested(t):
            array = pa.array([None if v is None else json.dumps(v, default=str) for v in array.to_pylist()], pa.string())
        elif target is not None and target != t:
            array = array.cast(target, safe=not pa.types.is_timestamp(t))
        arrays.append(array)
        fields.append(pa.field(field.name, array.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _widened(t: pa.DataType) -> pa.DataType | None:
    import pyarrow as pa

    pairs = [
        (pa.types.is_null, pa.string()), (pa.types.is_int8, pa.int16()), (pa.types.is_uint8, pa.int16()),
        (pa.types.is_uint16, pa.int32()), (pa.types.is_uint32, pa.int64()), (pa.types.is_uint64, pa.decimal128(20, 0)),
        (pa.types.is_float16, pa.float32()), (pa.types.is_large_string, pa.string()), (pa.types.is_large_binary, pa.binary()),
        (pa.types.is_fixed_size_binary, pa.binary()), (pa.types.is_date64, pa.date32()), (pa.types.is_time32, pa.time64("us")),
        (pa.types.is_time64, pa.time64("us")), (pa.types.is_duration, pa.int64()),
        (getattr(pa.types, "is_string_view", lambda _t: False), pa.string()),
    ]
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    return next((target for check, target in pairs if check(t)), None)


def _binary_fits(t: pa.DataType, column_type: str) -> bool:
    """Whether the ingest's binary COPY of Arrow type ``t`` is what a column of ``column_type`` reads."""
    import pyarrow as pa

    column_type = column_type.lower()
    if pa.types.is_decimal128(t):
        return column_type.startswith("numeric")
    if pa.types.is_timestamp(t):
        return column_type == ("timestamp with time zone" if t.tz else "timestamp without time zone")
    natural = {pa.int16(): ("smallint",), pa.int32(): ("integer",), pa.int64(): ("bigint",), pa.float32(): ("real",),
               pa.float64(): ("double precision",), pa.bool_(): ("boolean",), pa.string(): ("text", "character varying"),
               pa.binary(): ("bytea",), pa.date32(): ("date",)}
    return column_type in natural.get(t, ())


#: Arrow bytes of batches held for a table while another table's COPY is open (the rejects
#: while the stage's rows stream) before the open COPY ends and they go in.
HOLD_BYTES = 8 * 1024 * 1024


def copy_encoder(schema: pa.Schema) -> Any:
    """A ``pgpq`` encoder of batches of ``schema`` into binary COPY data."""
    try:
        from pgpq import ArrowToPostgresBinaryEncoder
    except ImportError:
        raise MissingExtraError("pgpq", "postgres") from None
    return ArrowToPostgresBinaryEncoder(schema)


class _Copy:
    """One ``COPY <table> (<columns>) FROM STDIN (FORMAT binary)`` open on a connection: batches
    of one schema are encoded and written as they come; :meth:`finish` ends it (the server's
    refusal of a value is raised there at the latest)."""

    def __init__(self, conn: Any, table: TableRef, target_sql: str, schema: pa.Schema, quote: Any) -> None:
        self.table, self.schema = table, schema
        self._encoder = copy_encoder(schema)
        names = ", ".join(quote(n) for n in schema.names)
        self._cursor = conn.cursor()
        self._block = self._cursor.copy(f"COPY {target_sql} ({names}) FROM STDIN (FORMAT binary)")
        self._copy = self._block.__enter__()
        self._copy.write(self._encoder.write_header())

    def write(self, batch: pa.RecordBatch) -> None:
        self._copy.write(self._encoder.write_batch(batch))

    def finish(self) -> None:
        self._copy.write(self._encoder.finish())
        self._block.__exit__(None, None, None)
        self._cursor.close()

    def fail(self) -> None:
        """End the COPY as failed (the transaction is rolled back after)."""
        with suppress(Exception):
            self._block.__exit__(RuntimeError, RuntimeError("load aborted"), None)
        with suppress(Exception):
            self._cursor.close()


class PostgresWindowLoad(WindowLoad):
    """Rows go into the real tables inside one transaction of the load's own connection."""

    def __init__(self, warehouse: PostgresHome, window: Window, key: str) -> None:
        self.wh = warehouse
        self.window = window
        self.key = key
        self._rows: dict[TableRef, int] = {}
        self._types: dict[TableRef, dict[str, str]] = {}
        self._conn: Any = None
        self._copy: _Copy | None = None
        self._held: dict[TableRef, list[pa.RecordBatch]] = {}
        self._streamed: TableRef | None = None
        # connects while the first append claims, creates and reads the table on the pool's connection
        self._opening: Background | None = Background(lambda: warehouse.load_connection(f"load window {window}"))

    def _where(self, table: TableRef) -> str:
        d = self.wh.dialect
        field = d.quote(table.query_field or "")
        return f"{field} >= {literal(self.window.start)} AND {field} < {literal(self.window.end)}{d.scope(table)}"

    def _run(self, sql: str, what: str) -> None:
        with self.wh.pool.errors(what), self._connection().cursor() as cur:
            cur.execute(sql)

    def _connection(self) -> Any:
        """The load's connection, once the COPY open on it (if any) has ended; its error raised."""
        self._end_copy()
        if self._conn is None:  # a transaction is open until commit()
            opening, self._opening = self._opening, None
            self._conn = opening.get() if opening is not None else self.wh.load_connection(f"load window {self.window}")
        return self._conn

    def _end_copy(self) -> None:
        copy, self._copy = self._copy, None
        if copy is not None:
            try:
                with self.wh.pool.errors(self.wh.where(copy.table, "load")):
                    copy.finish()
            except BaseException:
                copy.fail()
                raise

    def append(self, table: TableRef, batch: pa.RecordBatch) -> None:
        wh, d = self.wh, self.wh.dialect
        if table not in self._rows:
            wh.claim_table(table)  # committed on its own, before this load changes a row
            types = wh.ensured_columns(table, batch.schema)  # committed: the table outlives a failed load
            self._run(f"DELETE FROM {d.qualified(table)} WHERE {self._where(table)}", wh.where(table, "empty the window of"))
            self._rows[table] = 0
            self._types[table] = types
        else:
            self._add_columns(table, batch.schema)
        if not batch.num_rows:
            return
        ready = ingest_ready(batch)
        types = self._types[table]
        if all(_binary_fits(f.type, types[f.name]) for f in ready.schema):  # COPY straight into the table
            copy, streamed = self._copy, self._streamed or table
            self._streamed = streamed
            if table != streamed:  # one COPY at a time: the first table's rows stream, others' wait
                held = self._held.setdefault(table, [])
                held.append(ready)
                if sum(b.nbytes for tb in self._held.values() for b in tb) >= HOLD_BYTES:
                    self._write_held()
            else:
                if copy is None or copy.table != table or copy.schema != ready.schema:
                    conn = self._connection()  # ends the COPY of another shape
                    with wh.pool.errors(wh.where(table, "load")):
                        self._copy = _Copy(conn, table, d.qualified(table), ready.schema, d.quote)
                self._write(ready)
        else:
            scratch = d.quote(f"_drivetrain_load_{next(_names)}")
            names = ", ".join(d.quote(n) for n in ready.schema.names)
            casts = ", ".join(f"CAST({d.quote(n)} AS {types[n]})" for n in ready.schema.names)
            columns = ", ".join(f"{d.quote(f.name)} {arrow_type_sql(f)}" for f in ready.schema)
            conn = self._connection()
            with wh.pool.errors(wh.where(table, "load")):
                conn.execute(f"CREATE TEMPORARY TABLE {scratch} ({columns})")
                copy = _Copy(conn, table, scratch, ready.schema, d.quote)
                try:
                    copy.write(ready)
                    copy.finish()
                except BaseException:
                    copy.fail()
                    raise
                conn.execute(f"INSERT INTO {d.qualified(table)} ({names}) SELECT {casts} FROM {scratch}")
                conn.execute(f"DROP TABLE {scratch}")
        self._rows[table] += batch.num_rows

    def _write(self, batch: pa.RecordBatch) -> None:
        copy = self._copy
        assert copy is not None
        try:
            with self.wh.pool.errors(self.wh.where(copy.table, "load")):
                copy.write(batch)
        except BaseException:
            self._copy = None
            copy.fail()
            raise

    def _write_held(self) -> None:
        """COPY the batches that waited for another table's COPY (one COPY per table and shape)."""
        held, self._held = self._held, {}
        d = self.wh.dialect
        for table, batches in held.items():
            for batch in batches:
                if self._copy is None or self._copy.table != table or self._copy.schema != batch.schema:
                    conn = self._connection()
                    with self.wh.pool.errors(self.wh.where(table, "load")):
                        self._copy = _Copy(conn, table, d.qualified(table), batch.schema, d.quote)
                self._write(batch)
        self._end_copy()

    def _add_columns(self, table: TableRef, schema: pa.Schema) -> None:
        """Columns a later batch brings, added inside the load's transaction: this transaction
        holds the table, so DDL on another connection would wait for it."""
        d, types = self.wh.dialect, self._types[table]
        if any(f.name not in types or widened_type("postgres", sql_kind(types[f.name]), arrow_kind(f.type)) for f in schema):
            self._write_held()  # waiting rows go in with the columns they were checked against
        for field in schema:
            if field.name not in types:
                sql_type = arrow_type_sql(field)
                self._run(f"ALTER TABLE {d.qualified(table)} ADD COLUMN IF NOT EXISTS {d.quote(field.name)} {sql_type}",
                          self.wh.where(table, f"add column {field.name!r} to"))
                types[field.name] = sql_type
            elif (wider := widened_type("postgres", sql_kind(types[field.name]), arrow_kind(field.type))) is not None:
                self._run(f"ALTER TABLE {d.qualified(table)} ALTER COLUMN {d.quote(field.name)} SET DATA TYPE {wider}",
                          self.wh.where(table, f"widen column {field.name!r} of"))
                types[field.name] = wider

    def commit(self, tables: Sequence[TableRef], *, fence: Fence | None = None) -> dict[str, int]:
        wh, d = self.wh, self.wh.dialect
        self._end_copy()
        self._write_held()
        counts: dict[str, int] = {}
        for table in tables:
            if table not in self._rows:
                wh.claim_table(table)  # emptying another pipeline's window is writing it too
                if wh.table_exists(table):
                    self._run(f"DELETE FROM {d.qualified(table)} WHERE {self._where(table)}", wh.where(table, "empty the window of"))
            counts[str(table)] = self._rows.get(table, 0)
        if fence is not None:
            fence()
        if self._conn is not None:
            with wh.pool.errors(f"{wh.describe()}: commit window {self.window}"):
                self._conn.commit()
            conn, self._conn = self._conn, None
            wh.keep_load_connection(conn)
        self.abort()
        return counts

    def abort(self) -> None:
        """Roll back what was appended (unless committed) and close the connection."""
        copy, self._copy = self._copy, None
        if copy is not None:
            copy.fail()
        opening, self._opening = self._opening, None
        if opening is not None:
            opening.discard()  # its error, if any, is the caller's already or moot
        conn, self._conn = self._conn, None
        self._rows.clear()
        self._types.clear()
        self._held.clear()
        if conn is not None:
            with suppress(Exception):
                conn.rollback()
            with suppress(Exception):
                conn.close()
