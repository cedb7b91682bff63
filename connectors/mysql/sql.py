"""The table's shape (from information_schema) and the SQL the source runs.

Only identifiers that passed :data:`~drivetrain.connectors.mysql.config.IDENTIFIER` reach the SQL
text, each in backquotes; window bounds are always bound parameters. ``count`` and ``extract``
share one FROM clause and one WHERE predicate, so they select exactly the same rows.

Order of extracted rows: when an index whose first column is the query field can serve it
(the forced index, else the narrowest such index), rows come sorted on that index's columns
followed by the primary key, which InnoDB keeps in every secondary index: a stable, unique
order. Without such an index, no ORDER BY is added (it would make the server sort the whole
window before sending the first row): rows then come in the order the server reads them.

When that order is (query field, primary key), the primary key is one integer column and the
window's keys are dense (see :func:`~drivetrain.connectors.mysql.fast.dense`), the window is
read along the primary key instead, between its lowest and highest key
(:func:`key_range_select_sql`; both come from :func:`key_range_probe_sql`, which also counts
the window): the server reads the clustered index in order, where the query field's order
costs a look-up of each row by its key, or, when the window is a large part of the table, a
scan and a sort of the whole table. Rows with equal query fields are in key order either way,
which is all the stage's "later copy wins" looks at. A forced index is read in its own order.
The extract is a single statement in every case, so rows are never skipped or repeated
whatever the order; a row inserted into the window after the count with a key above the
window's highest is left for the next run's recount, as a statement started before the insert
would leave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from drivetrain.connectors.mysql.config import MySQLOptions
from drivetrain.connectors.mysql.types import TEMPORAL_TYPES, Column
from drivetrain.connectors.sqlsource.text import Statement as Statement  # re-exported
from drivetrain.connectors.sqlsource.text import quote_name
from drivetrain.errors import PermanentError
from drivetrain.window import wall_clock_bounds

_COLUMNS_SQL = (
    "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE,"
    " CHARACTER_SET_NAME FROM information_schema.COLUMNS"
    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION"
)
_TABLE_SQL = (
    "SELECT ENGINE, TABLE_TYPE FROM information_schema.TABLES"
    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
)
_INDEX_SQL = (
    "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART, COLLATION FROM information_schema.STATISTICS"
    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX"
)


def quote(name: str) -> str:
    """Backquote an identifier that already passed the config's identifier check."""
    return quote_name(name, '`')


@attrs.frozen
class TableInfo:
    """What the source needs to know about its table, read once per source."""

    columns: tuple[Column, ...]
    """Output columns, in output order; the query field is among them."""
    query_field: Column
    """The query field's column."""
    engine: str | None
    """Storage engine ("InnoDB"...), None for a view."""
    indexes: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    """Index name -> its columns in order (lower-case)."""
    order_by: tuple[str, ...] = ()
    """ORDER BY columns for the extract; empty when no index can serve an order."""
    order_types: tuple[str, ...] = ()
    """``DATA_TYPE`` of each ORDER BY column (they need not be among the output columns)."""

    def indexes_on_query_field(self) -> list[str]:
        """Names of the indexes whose first column is the query field."""
        qf = self.query_field.name.lower()
        return [name for name, cols in self.indexes.items() if cols and cols[0] == qf]


def load_table_info(cursor: Any, options: MySQLOptions) -> TableInfo:
    """Read the table's columns and indexes from information_schema.

    :param cursor: a buffered pymysql cursor (default decoders).
    :raises PermanentError: when the table, a configured column or the forced index is missing,
        or the query field is not a date/time column.
    """
    where = (options.database, options.table)
    cursor.execute(_TABLE_SQL, where)
    table_row = cursor.fetchone()
    if table_row is None:
        raise PermanentError(
            f"MySQL {options.address}: table not found, or the user cannot see it; check "
            "'database' and 'table' in source_system and that the user has SELECT on it"
        )
    cursor.execute(_COLUMNS_SQL, where)
    catalog = {
        row[0].lower(): Column(
            name=row[0],
            data_type=str(row[1]).lower(),
            column_type=str(row[2]).lower(),
            precision=row[3],
            scale=row[4],
            charset=row[5],
        )
        for row in cursor.fetchall()
    }
    cursor.execute(_INDEX_SQL, where)
    indexes: dict[str, list[str]] = {}
    unorderable: set[str] = set()  # a prefix or descending column: the index gives no order
    for name, column, sub_part, collation in cursor.fetchall():
        indexes.setdefault(name, []).append(column.lower())
        if sub_part is not None or collation != "A":
            unorderable.add(name)

    def pick(name: str) -> Column:
        column = catalog.get(name.lower())
        if column is None:
            raise PermanentError(
                f"MySQL {options.address}: column {name!r} does not exist; check "
                "'query_field' and 'columns' in source_system"
            )
        return attrs.evolve(column, name=name)

    query_field = pick(options.query_field)
    if query_field.data_type not in TEMPORAL_TYPES:
        raise PermanentError(
            f"MySQL {options.address}: query field {options.query_field!r} is "
            f"{query_field.column_type.upper()}, not DATETIME, TIMESTAMP or DATE; "
            "point query_field at the row's time column"
        )
    if options.columns is None:
        columns = [
            query_field if c.name.lower() == query_field.name.lower() else c
            for c in catalog.values()
        ]
    else:
        columns = [pick(name) for name in options.columns]
        if all(c.name.lower() != query_field.name.lower() for c in columns):
            columns.append(query_field)
    frozen = {name: tuple(cols) for name, cols in indexes.items()}
    known = {name.lower() for name in frozen}  # index names are case-insensitive
    if options.force_index is not None and options.force_index.lower() not in known:
        raise PermanentError(
            f"MySQL {options.address}: force_index {options.force_index!r} is not an index of "
            f"the table (indexes: {', '.join(sorted(frozen)) or 'none'}); fix or remove it"
        )
    info = TableInfo(
        columns=tuple(columns), query_field=query_field, engine=table_row[0], indexes=frozen
    )
    order_by = _order_by(info, options, set(frozen) - unorderable)
    order_types = tuple(catalog[name.lower()].data_type for name in order_by)
    return attrs.evolve(info, order_by=order_by, order_types=order_types)


def _order_by(info: TableInfo, options: MySQLOptions, orderable: set[str]) -> tuple[str, ...]:
    candidates = [name for name in info.indexes_on_query_field() if name in orderable]
    if options.force_index is not None:
        forced = options.force_index.lower()
        candidates = [name for name in candidates if name.lower() == forced]
    if not candidates:
        return ()
    index = min(candidates, key=lambda name: (len(info.indexes[name]), name != "PRIMARY", name))
    order = list(info.indexes[index])
    if (info.engine or "").lower() == "innodb":
        order += [c for c in info.indexes.get("PRIMARY", ()) if c not in order]
    qf = info.query_field.name
    return (qf, *order[1:])


def window_params(column: Column, start: datetime, end: datetime, source_timezone: str) -> tuple:
    """The window bounds as the naive values the server compares with the query field.

    TIMESTAMP columns are compared in the session zone, +00:00; DATETIME and DATE columns hold
    wall-clock values of ``source_timezone``, translated by
    :func:`drivetrain.window.wall_clock_bounds`: the repeated hour when clocks go back belongs to
    the window of its earlier pass (the later pass's window selects none of it), the way
    :func:`~drivetrain.connectors.mysql.types.decoders` read those values back.
    """
    zone = "UTC" if column.data_type == "timestamp" else source_timezone
    return wall_clock_bounds(start, end, zone)


def from_where(options: MySQLOptions) -> str:
    """The FROM clause and window predicate shared by count and extract."""
    table = f"{quote(options.database)}.{quote(options.table)}"
    hint = f" FORCE INDEX ({quote(options.force_index)})" if options.force_index else ""
    qf = quote(options.query_field)
    return f"FROM {table}{hint} WHERE {qf} >= %s AND {qf} < %s"


#: Below every real date: a zero date (``0000-00-00``, stored under lax SQL modes) compares less.
_FIRST_DATE = "1000-01-01"


def unplaceable_sql(options: MySQLOptions) -> str:
    """Rows of no window: NULL and zero-date query fields, counted apart (two columns)."""
    table = f"{quote(options.database)}.{quote(options.table)}"
    qf = quote(options.query_field)
    return (f"SELECT COALESCE(SUM({qf} IS NULL), 0), COALESCE(SUM({qf} IS NOT NULL), 0) FROM {table}"
            f" WHERE {qf} IS NULL OR {qf} < '{_FIRST_DATE}'")


def unplaceable_sample_sql(options: MySQLOptions, key: Sequence[str], limit: int) -> str:
    """Up to ``limit`` rows of no window: their ``key`` columns and query field."""
    table = f"{quote(options.database)}.{quote(options.table)}"
    qf = quote(options.query_field)
    listed = ", ".join(quote(c) for c in (*key, options.query_field))
    return f"SELECT {listed} FROM {table} WHERE {qf} IS NULL OR {qf} < '{_FIRST_DATE}' LIMIT {int(limit)}"


def count_sql(options: MySQLOptions) -> str:
    """``SELECT COUNT(*)`` over the window."""
    return f"SELECT COUNT(*) {from_where(options)}"


def fingerprint_sql(options: MySQLOptions, identity: Sequence[str]) -> str:
    """The window's count and the sum of ``CRC32`` over each row's ``identity`` columns and
    query field (the primary key's columns: the query field's index holds them, so it stays an
    index-only scan)."""
    listed = ", ".join(quote(c) for c in (*identity, options.query_field))
    return f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS(0x1f, {listed}))), 0) {from_where(options)}"


def select_sql(options: MySQLOptions, columns: Sequence[Column], order_by: Sequence[str]) -> str:
    """The streaming extract over the window."""
    listed = ", ".join(quote(c.name) for c in columns)
    order = f" ORDER BY {', '.join(quote(c) for c in order_by)}" if order_by else ""
    return f"SELECT {listed} {from_where(options)}{order}"


def key_range_probe_sql(options: MySQLOptions, key: str) -> str:
    """``MIN(key), MAX(key), COUNT(*)`` over the window: one scan of the query field's index
    (which holds the primary key) both counts the window and bounds its keys."""
    k = quote(key)
    return f"SELECT MIN({k}), MAX({k}), COUNT(*) {from_where(options)}"


def key_range_select_sql(options: MySQLOptions, columns: Sequence[Column], key: str) -> str:
    """The streaming extract over the window, read along the primary key ``key`` between two
    bound keys (the window's lowest and highest), in key order."""
    listed = ", ".join(quote(c.name) for c in columns)
    k = quote(key)
    return f"SELECT {listed} {from_where(options)} AND {k} >= %s AND {k} <= %s ORDER BY {k}"
