"""PostgreSQL's dialect for the shared SQL layer, and column types for Arrow schemas.

Casing policy: object names from config (schema, table) and the names drivetrain owns are
validated identifiers stored the way PostgreSQL stores them unquoted, lower-case, then quoted:
``"table": "Lab_Results"`` is the table ``lab_results`` that ``select * from Lab_Results`` finds.
Column names from data keep their exact spelling and are always quoted.

PostgreSQL has no ``QUALIFY``: one row per key is kept by a ``ctid IN (SELECT DISTINCT ON ...)``
clause over the stage window. Its bounds are written as literals (timestamps we format, never
user text), because the clause is appended to a statement whose parameters are already fixed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.errors import PermanentError
from drivetrain.sql.dialect import SqlDialect
from drivetrain.sql.names import check_identifier, quote_name

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.sql.names import TableRef
    from drivetrain.window import Window


def literal(value: datetime) -> str:
    """A window bound as a timestamptz literal, exact to the microsecond."""
    return f"TIMESTAMPTZ '{value.isoformat(sep=' ', timespec='microseconds')}'"


class PostgresDialect(SqlDialect):
    """PostgreSQL: lower-case owned names, jsonb and text[] values, DISTINCT ON for dedup, MERGE."""

    types: ClassVar[dict[str, str]] = {
        **SqlDialect.types, "text": "TEXT", "timestamp": "TIMESTAMPTZ", "json": "JSONB", "array": "TEXT[]",
    }

    def __init__(self, schema: str = "public", *, merge: bool = True) -> None:
        self.default_schema = schema
        self.merge = merge
        """Whether the server has MERGE (PostgreSQL 15 and later)."""

    def owned(self, name: str) -> str:
        return quote_name(check_identifier(name).lower())

    def stored_name(self, name: str) -> str:
        return name.lower()

    def typed_null(self, kind: str) -> str:
        return f"NULL::{self.types[kind]}"

    def json_value(self, value: Any) -> tuple[str, list[Any]]:
        return "CAST(? AS JSONB)", [None if value is None else json.dumps(value, default=str)]

    def array_value(self, items: Sequence[Any] | None) -> tuple[str, list[Any]]:
        return "CAST(? AS TEXT[])", [None if items is None else [str(i) for i in items]]

    @staticmethod
    def decode(kind: str, value: Any) -> Any:
        if kind == "array" and isinstance(value, list):
            return value
        return SqlDialect.decode(kind, value)

    # -- statements -----------------------------------------------------------------------

    row_identity = "ctid"
    timestamp_literal = staticmethod(literal)

    def one_row_per_key(self, keys: Sequence[str], order: Sequence[str], stage: TableRef, window: Window, *,
                        keys_first: bool = True) -> str:
        """No QUALIFY in PostgreSQL: the first row per key by its ``ctid`` (a system column no
        table column can hide, so always keys first), from ``window`` of ``stage``."""
        parts = ", ".join(self.quote(k) for k in keys)
        ordered = ", ".join(f"{term} NULLS LAST" for term in order)
        return (f" AND ctid IN (SELECT DISTINCT ON ({parts}) ctid FROM {self.qualified(stage)} "
                f"WHERE {self.window_literal_sql(stage, window)} ORDER BY {parts}, {ordered})")

    def merge_sql(self, target: str, select: str, on: str, version: str, columns: Sequence[str],
                  keys: Sequence[str]) -> list[str]:
        """One MERGE (PostgreSQL 15+), never over a newer version; older servers DELETE + INSERT."""
        if not self.merge:
            return super().merge_sql(target, select, on, version, columns, keys)
        sets = ", ".join(f"{self.quote(c)} = s.{self.quote(c)}" for c in columns if c not in keys)
        names = ", ".join(self.quote(c) for c in columns)
        values = ", ".join(f"s.{self.quote(c)}" for c in columns)
        return [
            f"MERGE INTO {target} AS t USING ({select}) AS s ON {on} "
            f"WHEN MATCHED AND s.{version} >= t.{version} THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
        ]

    # -- report queries -------------------------------------------------------------------

    def json_text(self, column: str, *path: str) -> str:
        return f"({self.quote(column)} #>> '{{{_path(path)}}}')"

    def json_number(self, column: str, *path: str) -> str:
        text = self.json_text(column, *path)
        return f"(CASE WHEN {text} ~ '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$' THEN ({text})::double precision END)"

    def seconds_between(self, start: str, end: str) -> str:
        return f"CAST(EXTRACT(EPOCH FROM ({end}) - ({start})) AS DOUBLE PRECISION)"

    def array_contains(self, column: str, value_sql: str) -> str:
        return f"({value_sql}) = ANY({self.quote(column)})"


def _path(path: Sequence[str]) -> str:
    return ",".join(SqlDialect.dotted(path).split("."))


def arrow_type_sql(field: pa.Field) -> str:
    """The PostgreSQL column type for an Arrow field (nested types become jsonb)."""
    import pyarrow as pa

    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    checks: list[tuple[Any, str]] = [
        (pa.types.is_boolean, "BOOLEAN"), (pa.types.is_int8, "SMALLINT"), (pa.types.is_int16, "SMALLINT"),
        (pa.types.is_uint8, "SMALLINT"), (pa.types.is_int32, "INTEGER"), (pa.types.is_uint16, "INTEGER"),
        (pa.types.is_int64, "BIGINT"), (pa.types.is_uint32, "BIGINT"), (pa.types.is_uint64, "NUMERIC(20,0)"),
        (pa.types.is_float16, "REAL"), (pa.types.is_float32, "REAL"), (pa.types.is_float64, "DOUBLE PRECISION"),
        (pa.types.is_date, "DATE"), (pa.types.is_time, "TIME"), (pa.types.is_duration, "INTERVAL"),
        (pa.types.is_binary, "BYTEA"), (pa.types.is_large_binary, "BYTEA"), (pa.types.is_fixed_size_binary, "BYTEA"),
        (pa.types.is_string, "TEXT"), (pa.types.is_large_string, "TEXT"), (pa.types.is_null, "TEXT"),
        (getattr(pa.types, "is_string_view", lambda _t: False), "TEXT"), (pa.types.is_nested, "JSONB"),
    ]
    if pa.types.is_decimal(t):
        return f"NUMERIC({t.precision},{t.scale})" if t.precision <= 1000 else "NUMERIC"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    for check, sql_type in checks:
        if check(t):
            return sql_type
    raise PermanentError(f"column {field.name!r}: Arrow type {t} has no PostgreSQL equivalent; cast it in transform()")
