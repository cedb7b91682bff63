"""The relation's shape and the SQL the source runs.

Only identifiers that passed :data:`~drivetrain.connectors.postgres.config.IDENTIFIER` reach the
SQL text, each double-quoted; window bounds are always bound parameters. ``count`` and
``extract`` share one FROM clause and one WHERE predicate, so they select exactly the same
rows. A configured ``query`` is wrapped as a sub-select (``FROM (query) AS src``); its ``%``
signs are doubled, and every statement holding it is sent with parameters (an empty tuple when
there are none) so that psycopg turns them back into one.

The shape comes from the server itself: ``SELECT * FROM <relation> LIMIT 0`` describes every
column (name, type OID, numeric precision), for a table, a view or a query alike, and
``pg_type`` names the types. The extract has no ORDER BY: it is one statement on one snapshot,
so rows are never skipped or repeated whatever order the server sends them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from drivetrain.connectors.postgres.config import PostgresOptions
from drivetrain.connectors.postgres.types import TEMPORAL_TYPES, Column
from drivetrain.connectors.sqlsource.text import Statement as Statement  # re-exported
from drivetrain.connectors.sqlsource.text import quote_name
from drivetrain.errors import PermanentError
from drivetrain.window import wall_clock_bounds

_TYPES_SQL = "SELECT oid, typname, typcategory FROM pg_catalog.pg_type WHERE oid = ANY(%s)"
_TABLE_SQL = (
    "SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
    " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
)
_PRIMARY_KEY_SQL = (
    "SELECT a.attname FROM pg_catalog.pg_index i"
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
    " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)"
)
_INDEXED_SQL = (
    "SELECT ic.relname FROM pg_catalog.pg_index i"
    " JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid"
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
    " WHERE i.indrelid = %s::regclass AND a.attname = %s ORDER BY ic.relname"
)
_KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view",
          "f": "foreign table"}


def quote(name: str) -> str:
    """Double-quote an identifier that already passed the config's identifier check."""
    return quote_name(name, '"')


@attrs.frozen
class TableInfo:
    """What the source needs to know about its relation, read once per source."""

    columns: tuple[Column, ...]
    """Output columns, in output order; the query field is among them."""
    query_field: Column
    """The query field's column."""
    kind: str
    """"table", "view"... or "query"."""
    primary_key: tuple[str, ...] = ()
    """Primary key columns (empty for a view or a query)."""
    indexes: tuple[str, ...] = ()
    """Indexes whose first column is the query field."""


def relation_sql(options: PostgresOptions) -> str:
    """The relation read: ``"schema"."table"`` or ``(query) AS "src"``."""
    if options.query is not None:
        return f'({options.query.replace("%", "%%")}) AS "src"'
    assert options.table is not None
    return f"{quote(options.schema)}.{quote(options.table)}"


def load_table_info(cursor: Any, options: PostgresOptions) -> TableInfo:
    """Describe the relation's columns, and for a table its primary key and indexes.

    :param cursor: a client-side psycopg cursor.
    :raises PermanentError: when the table, a configured column is missing, or the query field
        is not a timestamp, timestamptz or date column.
    """
    kind = "query"
    if options.table is not None:
        cursor.execute(_TABLE_SQL, (options.schema, options.table))
        found = cursor.fetchone()
        if found is None:
            raise PermanentError(
                f"PostgreSQL {options.address}: table not found; check 'schema' and 'table' in "
                "source_system (names are case-sensitive) and that the user may see it"
            )
        kind = _KINDS.get(found[0], "relation")
    # with parameters (none) psycopg reads %% as %, as in every statement holding the relation
    cursor.execute(f"SELECT * FROM {relation_sql(options)} LIMIT 0", ())
    described = [(d.name, d.type_code, d.precision, d.scale) for d in cursor.description]
    cursor.execute(_TYPES_SQL, ([oid for _, oid, _, _ in described],))
    types = {oid: (name, category) for oid, name, category in cursor.fetchall()}
    catalog: dict[str, Column] = {}
    for name, oid, precision, scale in described:
        type_name, category = types.get(oid, ("unknown", "X"))
        catalog.setdefault(
            name, Column(name, type_name, category == "A", precision=precision, scale=scale)
        )

    def pick(name: str) -> Column:
        column = catalog.get(name) or next(
            (c for n, c in catalog.items() if n.lower() == name.lower()), None
        )
        if column is None:
            raise PermanentError(
                f"PostgreSQL {options.address}: column {name!r} does not exist (columns: "
                f"{', '.join(catalog) or 'none'}); check 'query_field' and 'columns' in source_system"
            )
        return column

    query_field = pick(options.query_field)
    if query_field.type_name not in TEMPORAL_TYPES or query_field.is_array:
        raise PermanentError(
            f"PostgreSQL {options.address}: query field {query_field.name!r} is "
            f"{query_field.type_name}, not timestamp, timestamptz or date; point query_field at "
            "the row's time column"
        )
    if options.columns is None:
        columns = list(catalog.values())
    else:
        columns = [pick(name) for name in options.columns]
        if query_field not in columns:
            columns.append(query_field)
    key: tuple[str, ...] = ()
    indexes: tuple[str, ...] = ()
    if options.table is not None:
        regclass = relation_sql(options)
        cursor.execute(_PRIMARY_KEY_SQL, (regclass,))
        key = tuple(row[0] for row in cursor.fetchall())
        cursor.execute(_INDEXED_SQL, (regclass, query_field.name))
        indexes = tuple(row[0] for row in cursor.fetchall())
    return TableInfo(tuple(columns), query_field, kind, key, indexes)


def window_params(column: Column, start: datetime, end: datetime, source_timezone: str) -> tuple:
    """The window bounds as the values the server compares with the query field.

    A timestamptz column is compared with the instants themselves; timestamp and date columns
    hold wall-clock values of ``source_timezone``, translated by
    :func:`drivetrain.window.wall_clock_bounds` (naive values, bound as ``timestamp``).
    """
    if column.type_name == "timestamptz":
        return start.astimezone(UTC), end.astimezone(UTC)
    return wall_clock_bounds(start, end, source_timezone)


def _predicate(info: TableInfo) -> str:
    qf = quote(info.query_field.name)
    cast = "timestamptz" if info.query_field.type_name == "timestamptz" else "timestamp"
    return f"{qf} >= %s::{cast} AND {qf} < %s::{cast}"


def from_where(options: PostgresOptions, info: TableInfo) -> str:
    """The FROM clause and window predicate shared by count and extract."""
    return f"FROM {relation_sql(options)} WHERE {_predicate(info)}"


def count_sql(options: PostgresOptions, info: TableInfo) -> str:
    """``SELECT count(*)`` over the window."""
    return f"SELECT count(*) {from_where(options, info)}"


def fingerprint_sql(options: PostgresOptions, info: TableInfo) -> str:
    """The window's count and the sum of ``hashtextextended`` over each row's primary key and
    query field (every column for a relation without a primary key)."""
    identity = info.primary_key or tuple(c.name for c in info.columns)
    listed = ", ".join(quote(c) for c in (*identity, info.query_field.name))
    return (f"SELECT count(*), coalesce(sum(hashtextextended(concat_ws(chr(31), {listed}), 0)), 0)"
            f" {from_where(options, info)}")


def select_sql(options: PostgresOptions, info: TableInfo, *, numeric_text: bool = False) -> str:
    """The streaming extract over the window (``numeric_text``: see :meth:`Column.select_expression`)."""
    listed = ", ".join(c.select_expression(quote(c.name), numeric_text=numeric_text) for c in info.columns)
    return f"SELECT {listed} {from_where(options, info)}"


def unplaceable_sql(options: PostgresOptions, info: TableInfo) -> str:
    """Rows of no window: NULL and infinite query fields, counted apart (two columns)."""
    qf = quote(info.query_field.name)
    return (
        f"SELECT count(*) FILTER (WHERE {qf} IS NULL), count(*) FILTER (WHERE {qf} IS NOT NULL)"
        f" FROM {relation_sql(options)} WHERE {qf} IS NULL OR NOT isfinite({qf})"
    )


def unplaceable_sample_sql(
    options: PostgresOptions, info: TableInfo, key: Sequence[str], limit: int
) -> str:
    """Up to ``limit`` rows of no window: their ``key`` columns and query field (as text)."""
    qf = quote(info.query_field.name)
    listed = ", ".join(f"{quote(c)}::text" for c in (*key, info.query_field.name))
    return (
        f"SELECT {listed} FROM {relation_sql(options)} WHERE {qf} IS NULL OR NOT isfinite({qf})"
        f" LIMIT {int(limit)}"
    )
