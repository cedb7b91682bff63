"""Column types as the schema contract judges them: which values fit a column, which change widens it.

A SQL type (as a warehouse's ``table_columns`` spells it) and an Arrow type both reduce to a
:class:`Kind`, a family and a rank (bits for integers and floats). Three answers follow:

- :func:`fits`: values of the new kind load into the old column unchanged (an ``INTEGER`` value
  into a ``BIGINT`` or ``DOUBLE`` column, a ``DATE`` into a ``TIMESTAMP`` column).
- :func:`widened_type`: the type the column must become to hold the new values, when this
  warehouse can change it in place without losing a value (:data:`WIDENINGS`), else None.
- anything else is incompatible: only the values that convert one by one fit.

Types the contract does not know (JSON, VARIANT, lists, binary...) are left to the warehouse.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs

from drivetrain._lazy import lazy_module

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.warehouse import TableRef, Warehouse
else:  # `drivetrain show` reads the contract's notes without pyarrow
    pa = lazy_module("pyarrow")


@attrs.frozen
class Kind:
    """A type reduced to what the contract compares: family (int, float, decimal, string, bool,
    date, timestamp, null, other) and rank (bits of an int or float, precision of a decimal)."""

    family: str
    rank: int = 0


_INT_BITS = {"TINYINT": 8, "INT1": 8, "SMALLINT": 16, "INT2": 16, "INTEGER": 32, "INT": 32, "INT4": 32,
             "BIGINT": 64, "INT8": 64, "LONG": 64, "HUGEINT": 128}
_NUMBER = re.compile(r"^(NUMBER|NUMERIC|DECIMAL)\s*(\(\s*(\d+)\s*(,\s*(\d+)\s*)?\))?$")


def sql_kind(sql_type: str) -> Kind:
    """The kind of a column type as DuckDB, PostgreSQL or Snowflake report it."""
    t = " ".join(sql_type.upper().split())
    if t in _INT_BITS:
        return Kind("int", _INT_BITS[t])
    if t in ("BOOLEAN", "BOOL"):
        return Kind("bool")
    if t in ("REAL", "FLOAT4"):
        return Kind("float", 32)
    if t in ("DOUBLE", "DOUBLE PRECISION", "FLOAT", "FLOAT8"):
        return Kind("float", 64)
    if t == "DATE":
        return Kind("date")
    if t.startswith("TIMESTAMP"):
        return Kind("timestamp")
    if t in ("TEXT", "STRING") or t.startswith(("VARCHAR", "CHARACTER VARYING")):
        return Kind("string")
    number = _NUMBER.match(t)
    if number:
        precision, scale = int(number.group(3) or 38), int(number.group(5) or 0)
        if scale == 0:
            return Kind("int", 64 if precision <= 18 else 128)
        return Kind("decimal", precision)
    return Kind("other")


def arrow_kind(t: pa.DataType) -> Kind:
    """The kind of an Arrow type (unsigned integers rank as the signed type that holds them)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return Kind("null")
    if pa.types.is_boolean(t):
        return Kind("bool")
    if pa.types.is_integer(t):
        return Kind("int", t.bit_width * (2 if pa.types.is_unsigned_integer(t) else 1))
    if pa.types.is_floating(t):
        return Kind("float", 64 if t.bit_width == 64 else 32)
    if pa.types.is_decimal(t):
        return Kind("decimal", t.precision)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return Kind("string")
    if pa.types.is_date(t):
        return Kind("date")
    if pa.types.is_timestamp(t):
        return Kind("timestamp")
    return Kind("other")


def fits(old: Kind, new: Kind) -> bool:
    """Values of kind ``new`` load into a column of kind ``old`` as it is."""
    if new.family in ("null", "other") or old.family == "other":
        return True
    if old.family == new.family:
        return old.family not in ("int", "float") or new.rank <= old.rank
    return (old.family, new.family) in {("float", "int"), ("decimal", "int"), ("timestamp", "date")}


#: Per warehouse type: (old family, new family) -> the type the column is changed to.
#: Snowflake has none: its integers are all NUMBER(38,0), FLOAT is 64-bit and VARCHAR is
#: unbounded when made from Arrow, and it cannot turn a NUMBER into a FLOAT or a DATE into a
#: TIMESTAMP in place.
WIDENINGS: dict[str, dict[tuple[str, str], str]] = {
    "duckdb": {("int", "int"): "BIGINT", ("int", "float"): "DOUBLE", ("float", "float"): "DOUBLE",
               ("date", "timestamp"): "TIMESTAMP WITH TIME ZONE"},
    "postgres": {("int", "int"): "BIGINT", ("int", "float"): "DOUBLE PRECISION", ("float", "float"): "DOUBLE PRECISION",
                 ("date", "timestamp"): "TIMESTAMPTZ"},
}


def widened_type(backend: str, old: Kind, new: Kind) -> str | None:
    """The type a column of kind ``old`` becomes to hold ``new`` values on ``backend``; None if it cannot."""
    if fits(old, new):
        return None
    if old.family == "int" and new.family == "int" and new.rank > 64:
        return None
    return WIDENINGS.get(backend, {}).get((old.family, new.family))


def arrow_type_for(old: Kind) -> pa.DataType | None:
    """The Arrow type values are converted to before loading into a column of kind ``old``."""
    if old.family == "int":
        return pa.int64() if old.rank >= 64 else {8: pa.int8(), 16: pa.int16(), 32: pa.int32()}[old.rank]
    return {"float": pa.float64(), "string": pa.string(), "bool": pa.bool_(), "date": pa.date32(),
            "timestamp": pa.timestamp("us", tz="UTC")}.get(old.family)


def widen_columns(wh: Warehouse, table: TableRef, existing: dict[str, str], wanted: dict[str, str]) -> list[dict[str, str]]:
    """Change the columns of ``table`` whose type (``existing``) must widen to hold ``wanted`` types.

    Both map column -> SQL type of ``wh``. Changes only what :func:`widened_type` allows on this
    warehouse; returns the changes made, as the drive row records them.
    """
    d, changes = wh.dialect, []
    for name, new_sql in wanted.items():
        old_sql = existing.get(name)
        if old_sql is None:
            continue
        to = widened_type(wh.type_name, sql_kind(old_sql), sql_kind(new_sql))
        if to is None:
            continue
        with wh.sql(wh.where(table, f"widen column {name!r} of")) as s:
            s.execute(f"ALTER TABLE {d.qualified(table)} ALTER COLUMN {d.quote(name)} SET DATA TYPE {to}")
        changes.append(column_change(table, name, "widened", old_sql, to))
    return changes


def column_change(table: TableRef | str, column: str, change: str, old: str | None, new: str | None) -> dict[str, str]:
    """One schema change as the drive row records it."""
    out = {"table": str(table), "column": column, "change": change}
    if old is not None:
        out["old_type"] = old
    if new is not None:
        out["new_type"] = new
    return out


def changes_between(table: TableRef | str, before: dict[str, str], after: dict[str, str]) -> list[dict[str, str]]:
    """The columns added to ``table`` and the types changed, from its columns before and after."""
    if not before:
        return []  # created: its first columns are no change
    out = []
    for name, new in after.items():
        old = before.get(name)
        if old is None:
            out.append(column_change(table, name, "added", None, new))
        elif old != new:
            out.append(column_change(table, name, "widened", old, new))
    return out
