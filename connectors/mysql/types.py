"""MySQL / MariaDB column types to Arrow, and text values to Arrow arrays.

The extract connection is opened without pymysql's value decoders and without its text
decoding: every value arrives as the bytes the server sent (its text form, in utf8mb4). A
fetched chunk of rows becomes one Arrow struct array of binary columns in a single call, and
each column is then turned into its Arrow type with vectorised casts (binary to UTF-8 string,
string to int64, decimal, timestamp, date...): per-row Python is left to pymysql alone.

The mapping (from ``information_schema.COLUMNS``):

============================================  ============================================
MySQL / MariaDB                               Arrow
============================================  ============================================
TINYINT .. BIGINT, YEAR                       int64 (BIGINT UNSIGNED: uint64)
BIT(n)                                        int64 (BIT(64): uint64)
DECIMAL(p, s) / NUMERIC                       decimal128(p, s) (p > 38: decimal256)
FLOAT, DOUBLE                                 float64
DATETIME(n)                                   timestamp[us, UTC], read in source_timezone
TIMESTAMP(n)                                  timestamp[us, UTC] (session time zone +00:00)
DATE                                          date32
TIME                                          string ("-838:59:59" .. "838:59:59")
CHAR, VARCHAR, TEXT, ENUM, SET, JSON, UUID,   string (utf8mb4)
INET4, INET6
BINARY, VARBINARY, BLOB, spatial types        binary
anything else                                 string (binary when it has no character set)
============================================  ============================================

Zero or invalid dates (``0000-00-00``, ``2024-02-30``), which MySQL stores under lax SQL modes,
become NULL. Every type keeps NULLs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.connectors.sqlsource.text import VALUE_ERRORS, unreadable_value
from drivetrain.window import ARROW_LOCAL_RULES

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"})
DECIMAL_TYPES = frozenset({"decimal", "numeric", "dec", "fixed"})
FLOAT_TYPES = frozenset({"float", "double", "real", "double precision"})
DATETIME_TYPES = frozenset({"datetime", "timestamp"})
#: Character strings: text in the connection's character set (utf8mb4).
CHARACTER_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})
#: Types a query field may have.
TEMPORAL_TYPES = DATETIME_TYPES | {"date"}
BINARY_TYPES = frozenset(
    {
        "binary",
        "varbinary",
        "tinyblob",
        "blob",
        "mediumblob",
        "longblob",
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

#: A column decoder: the values of one column in a fetched chunk (an Arrow binary array of the
#: server's text, an Arrow string array from the fast reader, or a list of ``str``) -> one
#: Arrow array.
Decoder = Callable[[Any], pa.Array]

UTC_MICROS = pa.timestamp("us", tz="UTC")


@attrs.frozen
class Column:
    """One column as ``information_schema.COLUMNS`` describes it."""

    name: str
    """Name in the output (the configured spelling for the query field and projections)."""
    data_type: str
    """``DATA_TYPE``, lower-case: "datetime", "varchar", "bigint"..."""
    column_type: str = ""
    """``COLUMN_TYPE``, lower-case: carries "unsigned" and enum members."""
    precision: int | None = None
    """``NUMERIC_PRECISION`` (digits of a DECIMAL)."""
    scale: int | None = None
    """``NUMERIC_SCALE`` (digits after the point)."""
    charset: str | None = None
    """``CHARACTER_SET_NAME``; None for numbers, dates and binary strings."""

    @property
    def unsigned(self) -> bool:
        """Whether the integer type is UNSIGNED."""
        return "unsigned" in self.column_type

    @property
    def is_temporal(self) -> bool:
        """Whether the column can serve as a query field."""
        return self.data_type in TEMPORAL_TYPES


def arrow_type(column: Column) -> pa.DataType:
    """The Arrow type a column is emitted as (see the module table)."""
    kind = column.data_type
    if kind in INTEGER_TYPES:
        return pa.uint64() if kind == "bigint" and column.unsigned else pa.int64()
    if kind == "bit":
        return pa.uint64() if (column.precision or 1) == 64 else pa.int64()
    if kind in DECIMAL_TYPES:
        precision = column.precision or 10
        scale = column.scale or 0
        if precision <= 38:
            return pa.decimal128(precision, scale)
        return pa.decimal256(precision, scale)
    if kind in FLOAT_TYPES:
        return pa.float64()
    if kind in DATETIME_TYPES:
        return UTC_MICROS
    if kind == "date":
        return pa.date32()
    if kind in BINARY_TYPES:
        return pa.binary()
    if kind in CHARACTER_TYPES | {"json", "time", "uuid", "inet4", "inet6"}:
        return pa.string()
    return pa.string() if column.charset is not None else pa.binary()


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The schema of the record batches :func:`decoders` produce."""
    return pa.schema([pa.field(c.name, arrow_type(c)) for c in columns])


def decoders(columns: Sequence[Column], source_timezone: str) -> list[Decoder]:
    """One decoder per column, for values read as text (see the module docstring)."""
    return [_decoder(c, source_timezone) for c in columns]


def _decoder(column: Column, source_timezone: str) -> Decoder:
    target = arrow_type(column)
    kind = column.data_type
    if kind == "bit":
        return lambda values: _bits(values, target)
    if kind == "datetime":
        return _timestamps(source_timezone)
    if kind == "timestamp":
        return _timestamps("UTC")
    if kind == "date":
        return _dates
    if pa.types.is_binary(target):
        return lambda values: values if isinstance(values, pa.Array) else pa.array(values, type=target)
    if pa.types.is_string(target):
        return _text
    return lambda values: _text(values).cast(target)


def _text(values: Any) -> pa.Array:
    """The values as an Arrow string array (binary is checked to be UTF-8 on the way)."""
    if isinstance(values, pa.Array):
        return values if pa.types.is_string(values.type) else values.cast(pa.string())
    return pa.array(values, type=pa.string())


def _bits(values: Any, target: pa.DataType) -> pa.Array:
    raw = values.to_pylist() if isinstance(values, pa.Array) else values
    return pa.array([None if v is None else int.from_bytes(v, "big") for v in raw], type=target)


def _parse_or_none(parse: Callable[[str], Any], text: str | None) -> Any:
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError:
        return None  # zero or invalid date stored under a lax sql_mode


def _dates(values: Any) -> pa.Array:
    text = _text(values)
    try:
        return text.cast(pa.date32())
    except pa.ArrowInvalid:
        return pa.array(
            [_parse_or_none(date.fromisoformat, v) for v in text.to_pylist()], type=pa.date32()
        )


def _timestamps(zone: str) -> Decoder:
    def decode(values: Any) -> pa.Array:
        text = _text(values)
        try:
            naive = text.cast(pa.timestamp("us"))
        except pa.ArrowInvalid:
            naive = pa.array(
                [_parse_or_none(datetime.fromisoformat, v) for v in text.to_pylist()],
                type=pa.timestamp("us"),
            )
        if zone == "UTC":
            return naive.cast(UTC_MICROS)
        local = pc.assume_timezone(naive, zone, **ARROW_LOCAL_RULES)
        return local.cast(UTC_MICROS)

    return decode


def to_batch(
    rows: Sequence[tuple[Any, ...]], schema: pa.Schema, column_decoders: Sequence[Decoder]
) -> pa.RecordBatch:
    """Build one record batch from fetched rows, column by column.

    :raises PermanentError: naming the column when a value does not fit its Arrow type.
    """
    wire = pa.array(rows, type=pa.struct([pa.field(f"_c{i}", pa.binary()) for i in range(len(schema))]))
    return decode_batch(wire.flatten(), schema, column_decoders)


def decode_batch(
    columns: Sequence[pa.Array], schema: pa.Schema, column_decoders: Sequence[Decoder]
) -> pa.RecordBatch:
    """Build one record batch from the server's text of each column (Arrow binary arrays).

    :raises PermanentError: naming the column when a value does not fit its Arrow type.
    """
    arrays = []
    for field, decode, values in zip(schema, column_decoders, columns, strict=True):
        try:
            arrays.append(decode(values))
        except VALUE_ERRORS as exc:
            raise unreadable_value(repr(field.name), field.type, exc) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
