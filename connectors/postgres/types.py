"""PostgreSQL column types to Arrow, and fetched rows to Arrow record batches.

Every column is read either as psycopg's binary value (numbers, booleans, text, bytes, dates
and times) or, for the types below marked *text*, cast to text on the server in the SELECT
itself, so the client never parses JSON or builds Python objects it would then print again.

====================================  ===============================================
PostgreSQL                            Arrow
====================================  ===============================================
smallint, integer, bigint             int16, int32, int64
real, double precision                float32, float64
numeric(p, s)                         decimal128(p, s) (p > 38: decimal256)
numeric (no precision)                string (text: exact, 'NaN' kept)
boolean                               bool
text, varchar, char, name, citext     string
json, jsonb                           string (text: the JSON document)
uuid                                  string (text)
bytea                                 binary
timestamp                             timestamp[us, UTC], read in source_timezone
timestamptz                           timestamp[us, UTC]
date                                  date32
time                                  time64[us]
arrays (any element type)             string (text: a JSON array, array_to_json)
anything else (interval, inet...)     string (text: PostgreSQL's own text form)
====================================  ===============================================

Every type keeps NULLs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.connectors.sqlsource.text import VALUE_ERRORS, unreadable_value
from drivetrain.window import ARROW_LOCAL_RULES

UTC_MICROS = pa.timestamp("us", tz="UTC")

#: Types a query field may have.
TEMPORAL_TYPES = frozenset({"timestamp", "timestamptz", "date"})

#: Types read in binary; all are PostgreSQL's own (the ADBC reader knows only those without
#: reading the server's catalogue). Extension types such as citext are read as text.
_NATIVE: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "bytea": pa.binary(),
    "timestamp": UTC_MICROS,
    "timestamptz": UTC_MICROS,
    "date": pa.date32(),
    "time": pa.time64("us"),
}


@attrs.frozen
class Column:
    """One output column: its name, PostgreSQL type and how it is selected."""

    name: str
    """Column name as the server spells it."""
    type_name: str
    """``pg_type.typname`` ("int4", "timestamptz", "_text" for text[]...)."""
    is_array: bool = False
    """Whether the type is an array type."""
    precision: int | None = None
    """Declared precision of a numeric column, else None."""
    scale: int | None = None
    """Declared scale of a numeric column, else None."""

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type the column is delivered as."""
        if self.is_array:
            return pa.string()
        if self.type_name == "numeric":
            if self.precision:
                make = pa.decimal128 if self.precision <= 38 else pa.decimal256
                return make(self.precision, self.scale or 0)
            return pa.string()
        return _NATIVE.get(self.type_name, pa.string())

    @property
    def as_text(self) -> bool:
        """Whether the SELECT casts the column to text on the server."""
        if self.is_array:
            return True
        if self.type_name == "numeric":
            return not self.precision
        return self.type_name not in _NATIVE

    def select_expression(self, quoted: str, *, numeric_text: bool = False) -> str:
        """The SELECT list entry reading this column (``quoted`` is its quoted name).

        ``numeric_text``: numeric columns too are sent as their exact text, which the client
        casts to the decimal type (ADBC turns binary numeric into text itself, three times slower
        than the server does).
        """
        if self.is_array:
            return f"array_to_json({quoted})::text AS {quoted}"
        if self.as_text or (numeric_text and self.type_name == "numeric"):
            return f"{quoted}::text AS {quoted}"
        return quoted


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The schema of the extracted batches."""
    return pa.schema([pa.field(c.name, c.arrow_type) for c in columns])


def to_batch(
    rows: Sequence[tuple[Any, ...]], columns: Sequence[Column], schema: pa.Schema, zone: str
) -> pa.RecordBatch:
    """Build one record batch from fetched rows, column by column.

    Naive ``timestamp`` values are wall-clock readings in ``zone``, turned into instants by the
    rules of :mod:`drivetrain.window` (repeated hour: the earlier instant; skipped time: the
    instant the clocks jumped).

    :raises PermanentError: naming the column when a value does not fit its Arrow type.
    """
    arrays = []
    values_by_column = zip(*rows, strict=True) if rows else ([] for _ in columns)
    for column, field, values in zip(columns, schema, values_by_column, strict=True):
        try:
            arrays.append(_array(column, field.type, values, zone))
        except VALUE_ERRORS as exc:
            raise unreadable_value(f"{column.name!r} ({column.type_name})", field.type, exc) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _array(column: Column, arrow_type: pa.DataType, values: Any, zone: str) -> pa.Array:
    if column.type_name == "timestamp" and not column.is_array:
        naive = pa.array(values, type=pa.timestamp("us"))
        if zone == "UTC":
            return naive.cast(UTC_MICROS)
        return pc.assume_timezone(naive, zone, **ARROW_LOCAL_RULES).cast(UTC_MICROS)
    return pa.array(values, type=arrow_type)
