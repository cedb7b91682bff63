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

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drivetrain.errors import PermanentError
from drivetrain.warehouse import check_identifier, quote_name

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.warehouse import TableRef

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
