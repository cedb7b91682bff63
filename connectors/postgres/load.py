"""Loading one window into PostgreSQL: Arrow batches go in by binary COPY, inside one transaction.

The load has an ADBC connection of its own (``adbc-driver-postgresql``, part of the postgres
extra): its bulk ingest streams Arrow as binary COPY in C, about 2.5 times faster than psycopg's
COPY ``write_row`` on 200k rows (see benchmarks/postgres.py). The connection outlives the window:
a committed load hands it back to the warehouse and the next window's load takes it again (one
authentication a run); one the server closed meanwhile is replaced by a new one before anything
is written. Its first append opens the transaction and deletes the window from the table it
loads. Batches whose Arrow types are what the table's columns read in binary COPY are gathered
up to :data:`INGEST_BYTES` and go straight in with one COPY (each COPY has a fixed cost: 40 COPYs
of 10k rows took twice as long as one of 400k), run on a thread while the next batches are read
and checked; the next use of the connection waits for it and raises its error. Any other batch is ingested at once into a
temporary table and moved into the real one by ``INSERT ... SELECT`` with a cast per column, so
a column created from another Arrow type (or by hand, e.g. jsonb) still takes the rows, and a
value that does not fit fails the load with the server's reason. :meth:`PostgresWindowLoad.commit`
writes what is gathered, empties the window of tables that got no rows, calls the fence, and
commits. Nothing is visible to other sessions before, and an abort or a crash (the server ends
the session) rolls everything back.
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

    from .warehouse import PostgresWarehouse

_names = itertools.count()

#: Arrow bytes of straight batches gathered for one table before they go in by one COPY, on a
#: thread of its own while the next ones are read (one COPY at a time on the connection).
INGEST_BYTES = 8 * 1024 * 1024


def ingest_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch in Arrow types the ADBC ingest writes: nested values as JSON text, unsigned and
    small types widened, dictionaries decoded, durations as their count."""
    import json

    import pyarrow as pa

    arrays, fields = [], []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        t = field.type
        if pa.types.is_dictionary(t):
            array, t = array.dictionary_decode(), t.value_type
        target = _widened(t)
        if pa.types.is_nested(t):
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
    if pa.types.is_decimal(t):
        return column_type.startswith("numeric")
    if pa.types.is_timestamp(t):
        return column_type == ("timestamp with time zone" if t.tz else "timestamp without time zone")
    natural = {pa.int16(): ("smallint",), pa.int32(): ("integer",), pa.int64(): ("bigint",), pa.float32(): ("real",),
               pa.float64(): ("double precision",), pa.bool_(): ("boolean",), pa.string(): ("text", "character varying"),
               pa.binary(): ("bytea",), pa.date32(): ("date",)}
    return column_type in natural.get(t, ())


def adbc_dbapi() -> Any:
    try:
        import adbc_driver_postgresql.dbapi
    except ImportError:
        raise MissingExtraError("adbc-driver-postgresql", "postgres") from None
    return adbc_driver_postgresql.dbapi


class PostgresWindowLoad(WindowLoad):
    """Rows go into the real tables inside one transaction of the load's own connection."""

    def __init__(self, warehouse: PostgresWarehouse, window: Window, key: str) -> None:
        self.wh = warehouse
        self.window = window
        self.key = key
        self._rows: dict[TableRef, int] = {}
        self._types: dict[TableRef, dict[str, str]] = {}
        self._gathered: dict[TableRef, list[pa.RecordBatch]] = {}
        self._conn: Any = None
        self._copying: Background | None = None
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
        """The load's connection, once the COPY under way on it (if any) has ended; its error raised."""
        copying, self._copying = self._copying, None
        if copying is not None:
            copying.get()
        if self._conn is None:  # a transaction is open until commit()
            opening, self._opening = self._opening, None
            self._conn = opening.get() if opening is not None else self.wh.load_connection(f"load window {self.window}")
        return self._conn

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
        if self._gathered.get(table) and self._gathered[table][0].schema != ready.schema:
            self._ingest(table)  # one COPY streams batches of one schema
        if all(_binary_fits(f.type, types[f.name]) for f in ready.schema):  # COPY straight into the table
            gathered = self._gathered.setdefault(table, [])
            gathered.append(ready)
            if sum(b.nbytes for b in gathered) >= INGEST_BYTES:
                self._ingest(table)
        else:
            self._ingest(table)
            scratch = f"_drivetrain_load_{next(_names)}"
            names = ", ".join(d.quote(n) for n in ready.schema.names)
            casts = ", ".join(f"CAST({d.quote(n)} AS {types[n]})" for n in ready.schema.names)
            with wh.pool.errors(wh.where(table, "load")), self._connection().cursor() as cur:
                cur.adbc_ingest(scratch, ready, mode="create", temporary=True)
                cur.execute(f"INSERT INTO {d.qualified(table)} ({names}) SELECT {casts} FROM {d.quote(scratch)}")
                cur.execute(f"DROP TABLE {d.quote(scratch)}")
        self._rows[table] += batch.num_rows

    def _ingest(self, table: TableRef) -> None:
        """Start the COPY of the batches gathered for ``table``, as one stream, on a thread."""
        import pyarrow as pa

        batches, self._gathered[table] = self._gathered.get(table, []), []
        if not batches:
            return
        conn, (schema, name), what = self._connection(), self.wh._parts(table), self.wh.where(table, "load")

        def copy() -> None:
            with self.wh.pool.errors(what), conn.cursor() as cur:
                cur.adbc_ingest(name, pa.RecordBatchReader.from_batches(batches[0].schema, batches), mode="append",
                                db_schema_name=schema)

        self._copying = Background(copy)

    def _add_columns(self, table: TableRef, schema: pa.Schema) -> None:
        """Columns a later batch brings, added inside the load's transaction: this transaction
        holds the table, so DDL on another connection would wait for it."""
        d, types = self.wh.dialect, self._types[table]
        if any(f.name not in types or widened_type("postgres", sql_kind(types[f.name]), arrow_kind(f.type)) for f in schema):
            self._ingest(table)  # the gathered rows go in with the columns they were checked against
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
        for table in list(self._gathered):
            self._ingest(table)
        if self._conn is not None:
            self._connection()  # the last COPY ended (or raised)
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
        for background in (self._copying, self._opening):
            if background is not None:
                background.discard()  # its error, if any, is the caller's already or moot
        self._copying = self._opening = None
        conn, self._conn = self._conn, None
        self._rows.clear()
        self._types.clear()
        self._gathered.clear()
        if conn is not None:
            with suppress(Exception):
                conn.rollback()
            with suppress(Exception):
                conn.close()
