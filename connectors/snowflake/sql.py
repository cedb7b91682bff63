"""Identifiers, types and values in Snowflake SQL.

Casing policy (real Snowflake compares quoted identifiers case-sensitively; unquoted ones are
stored upper-case):

- **Object names from config** (database, schema, table, stage) are validated plain identifiers
  and resolved the way Snowflake resolves them unquoted: upper-cased. They are then quoted, so a
  reserved word still works. ``"table": "lab_results"`` is the table ``LAB_RESULTS``, which
  ``select * from lab_results`` finds.
- **Names drivetrain owns** (the drive, lease and meta tables and their columns) are upper-case
  too, so operators can query the drive table without quotes.
- **Column names that come from data** (source fields, renames, lineage columns) are kept
  exactly as given and always quoted: ``"test_id"``, ``"@timestamp"``. The core builds
  push-down expressions with the same quoting, and reads columns back by their exact names.

Values are always bound as parameters (``?``); timestamps go as ``TIMESTAMP_TZ`` bindings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.errors import PermanentError
from drivetrain.sql.dialect import SqlDialect
from drivetrain.sql.names import check_identifier, quote_name

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.sql.names import TableRef

#: A column name from data, quoted exactly (the core's own quoting).
col = quote_name


def obj(name: str, what: str = "identifier") -> str:
    """An object name from config or owned by drivetrain: validated, upper-cased, quoted."""
    return '"' + check_identifier(name, what).upper() + '"'


def folded(name: str) -> str:
    """How Snowflake stores an unquoted object name (for information_schema lookups)."""
    return check_identifier(name).upper()


def qualified(table: TableRef, database: str, schema: str) -> str:
    """``"DB"."SCHEMA"."TABLE"``, filling the defaults of the warehouse."""
    return ".".join((obj(table.database or database, "database"), obj(table.schema or schema, "schema"), obj(table.name, "table")))


def bind(value: Any) -> Any:
    """A parameter as the driver should bind it: aware datetimes as TIMESTAMP_TZ in UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return ("TIMESTAMP_TZ", value.astimezone(UTC))
    return value


def binds(params: Sequence[Any] | None) -> list[Any] | None:
    return None if params is None else [bind(v) for v in params]


def arrow_type_sql(field: pa.Field) -> str:
    """The Snowflake column type for an Arrow field (nested types become VARIANT)."""
    import pyarrow as pa

    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "NUMBER(38,0)"
    if pa.types.is_floating(t):
        return "FLOAT"
    if pa.types.is_decimal(t):
        if t.precision <= 38:
            return f"NUMBER({t.precision},{t.scale})"
        return "VARCHAR"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return "VARCHAR"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "BINARY"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_TZ" if t.tz else "TIMESTAMP_NTZ"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_duration(t):
        return "NUMBER(38,0)"
    if pa.types.is_nested(t):
        return "VARIANT"
    if getattr(pa.types, "is_string_view", lambda _t: False)(t):
        return "VARCHAR"
    raise PermanentError(f"column {field.name!r}: Arrow type {t} has no Snowflake equivalent; cast it in transform()")


def column_type_sql(data_type: str, precision: int | None, scale: int | None) -> str:
    """A column type as information_schema reports it, written back as DDL."""
    kind = data_type.upper()
    if kind == "NUMBER" and precision is not None:
        return f"NUMBER({precision},{scale or 0})"
    if kind == "TEXT":
        return "VARCHAR"
    return kind


def check_case_collisions(names: Sequence[str], where: str) -> None:
    """Refuse columns whose names differ only by case: loads match columns case-insensitively."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.upper(), name)
        if other != name:
            raise PermanentError(
                f"{where}: columns {other!r} and {name!r} differ only by case; Parquet loads match "
                "columns case-insensitively, so rename one of them (target_system.rename or transform())"
            )


class SnowflakeDialect(SqlDialect):
    """Snowflake: upper-case owned names, VARIANT and ARRAY values, VARIANT paths with ``:``.

    Merges keep the default DELETE + INSERT: the emulator the tests run on cannot run a MERGE
    inside an explicit transaction, and the push-down's lease check must sit before its COMMIT.
    """

    types: ClassVar[dict[str, str]] = {
        **SqlDialect.types, "integer": "INTEGER", "bigint": "INTEGER", "timestamp": "TIMESTAMP_TZ",
        "json": "VARIANT", "array": "ARRAY",
    }

    def __init__(self, database: str = "", schema: str = "") -> None:
        self.default_database = database
        self.default_schema = schema

    def owned(self, name: str) -> str:
        return obj(name)

    def stored_name(self, name: str) -> str:
        return folded(name)

    def qualified(self, table: TableRef) -> str:
        return qualified(table, self.default_database or "", self.default_schema or "")

    def typed_null(self, kind: str) -> str:
        return f"NULL::{self.types[kind]}"

    def json_value(self, value: Any) -> tuple[str, list[Any]]:
        # functions are refused in VALUES: the store writes INSERT ... SELECT
        return "PARSE_JSON(?)", [None if value is None else json.dumps(value, default=str)]

    def array_value(self, items: Sequence[Any] | None) -> tuple[str, list[Any]]:
        values = list(items or [])
        return f"ARRAY_CONSTRUCT({', '.join('?' for _ in values)})", values

    def json_text(self, column: str, *path: str) -> str:
        return f"{column}:{SqlDialect.dotted(path)}::string"

    def json_number(self, column: str, *path: str) -> str:
        return f"TRY_TO_DOUBLE({column}:{SqlDialect.dotted(path)}::string)"

    def seconds_between(self, start: str, end: str) -> str:
        return f"(DATEDIFF('microsecond', {start}, {end}) / 1000000.0)"

    def array_contains(self, column: str, value_sql: str) -> str:
        return f"ARRAY_CONTAINS({value_sql}::variant, {column})"
