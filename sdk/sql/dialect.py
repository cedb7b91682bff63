"""The SQL text that differs between warehouses, behind one class with ANSI-leaning defaults.

The shared layer (windows, push-down, drive store, report queries) writes every statement through
a :class:`SqlDialect`; a backend subclasses it and overrides only what its engine spells
differently. Names drivetrain owns (drive, lease, meta and claims tables and their columns) are
written unquoted in shared SQL, so each engine folds them its own way; :meth:`SqlDialect.owned`
quotes them in DDL the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.ownership import scope_sql
from drivetrain.sql.names import quote_name

if TYPE_CHECKING:
    from drivetrain.sql.names import TableRef
    from drivetrain.window import Window


class SqlDialect:
    """Quoting, names, types, values and statement shapes of one SQL engine."""

    #: Placeholder for a bound parameter.
    param = "?"
    #: Logical column type -> SQL type. ``json`` holds a document, ``array`` a list of strings.
    types: ClassVar[dict[str, str]] = {
        "text": "VARCHAR", "integer": "INTEGER", "bigint": "BIGINT", "boolean": "BOOLEAN",
        "timestamp": "TIMESTAMP WITH TIME ZONE", "date": "DATE", "json": "VARCHAR", "array": "VARCHAR",
    }
    #: Schema used when a table names none.
    default_schema: str | None = None
    #: Database used when a table names none (engines with databases).
    default_database: str | None = None
    #: (set, reset) statements around a push-down or publish whose inserts need not keep the
    #: select's order (rows are never read back by their place in a table), or None.
    unordered_inserts: tuple[str, str] | None = None
    #: Whether the publish gate keeps pending row numbers instead of rows for a replaced window
    #: (:mod:`drivetrain.sql.pending_rows`): publish then copies the window once, from the stage.
    pending_row_numbers = False

    # -- names ----------------------------------------------------------------------------

    @staticmethod
    def quote(name: str) -> str:
        """A column name from data, quoted exactly (``@timestamp``, ``a.b``)."""
        return quote_name(name)

    def owned(self, name: str) -> str:
        """A name drivetrain owns or config gives (validated), quoted as the engine stores it unquoted."""
        return self.quote(name)

    def stored_name(self, name: str) -> str:
        """How the engine stores an unquoted name (lower case by default), e.g. in claims rows."""
        return name.lower()

    def qualified(self, table: TableRef) -> str:
        """The table's quoted, qualified name, filling the default database and schema."""
        parts = [table.database or self.default_database, table.schema or self.default_schema, table.name]
        return ".".join(self.owned(p) for p in parts if p)

    def scope(self, table: TableRef, alias: str = "") -> str:
        """`` AND <only the owner's rows>`` for a shared table, else ``""``."""
        return scope_sql(table, f"{alias}{self.quote(table.owner_column)}")

    def window_sql(self, table: TableRef, alias: str = "") -> str:
        """Half-open window predicate on the table's query field; binds (start, end)."""
        from drivetrain.errors import PermanentError

        if not table.query_field:
            raise PermanentError(f"table {table} has no query field to place rows in windows")
        field = f"{alias}{self.quote(table.query_field)}"
        return f"{field} >= ? AND {field} < ?{self.scope(table, alias)}"

    # -- values ---------------------------------------------------------------------------

    def column_sql(self, name: str, kind: str, not_null: bool = False, *, default: str | None = None) -> str:
        """One column of DDL for a logical type (``default``: an SQL expression both dialects read)."""
        return f"{self.owned(name)} {self.types[kind]}{f' DEFAULT {default}' if default else ''}{' NOT NULL' if not_null else ''}"

    def typed_null(self, kind: str) -> str:
        return f"CAST(NULL AS {self.types[kind]})"

    def json_value(self, value: Any) -> tuple[str, list[Any]]:
        """SQL and parameters writing a JSON document (None: NULL)."""
        return "?", [None if value is None else json.dumps(value, default=str)]

    def array_value(self, items: Sequence[Any] | None) -> tuple[str, list[Any]]:
        """SQL and parameters writing a list of strings."""
        return "?", [None if items is None else list(items)]

    @staticmethod
    def decode(kind: str, value: Any) -> Any:
        """A JSON or ARRAY value as read back (drivers return text for some engines)."""
        if kind in ("json", "array") and isinstance(value, str):
            return json.loads(value)
        return value

    # -- statements -----------------------------------------------------------------------

    #: A pseudo-column naming each row of a table for the length of a statement (DuckDB's
    #: ``rowid``, PostgreSQL's ``ctid``), or None where the engine has none (Snowflake).
    row_identity: str | None = None

    def one_row_per_key(self, keys: Sequence[str], order: Sequence[str], stage: TableRef, window: Window, *,
                        keys_first: bool = True) -> str:
        """The clause keeping the first row per key by ``order`` (already ``... DESC`` terms; NULLs
        rank last), appended to a select of ``window`` of ``stage``.

        With a :attr:`row_identity`, keys first: the kept rows are picked by ranking only the
        keys, the order columns and the row identity of the window, then the select reads the
        rows that carry a kept identity. Ranking whole rows sorts every column of the window,
        which spills to disk as soon as the window is larger than the memory limit (2 million
        rows of 330 bytes: 3x slower than keys first). Without one, or with ``keys_first`` false
        (a stage column of the identity's name hides it), ``QUALIFY`` on the rows.
        """
        parts = ", ".join(self.quote(k) for k in keys)
        ranking = (f"ROW_NUMBER() OVER (PARTITION BY {parts} "
                   f"ORDER BY {', '.join(f'{term} NULLS LAST' for term in order)}) = 1")
        if self.row_identity is None or not keys_first:
            return f" QUALIFY {ranking}"
        rid = self.row_identity
        return (f" AND {rid} IN (SELECT {rid} FROM {self.qualified(stage)} "
                f"WHERE {self.window_literal_sql(stage, window)} QUALIFY {ranking})")

    def window_literal_sql(self, table: TableRef, window: Window) -> str:
        """:meth:`window_sql` with the bounds written out, for a clause appended to a statement
        whose parameters are already fixed (the bounds are timestamps we format, never user text)."""
        field = self.quote(table.query_field or "")
        start, end = (self.timestamp_literal(b) for b in (window.start, window.end))
        return f"{field} >= {start} AND {field} < {end}{self.scope(table)}"

    @staticmethod
    def timestamp_literal(value: datetime) -> str:
        """An instant as a literal of the engine's zoned timestamp type, exact to the microsecond."""
        return f"TIMESTAMP WITH TIME ZONE '{value.isoformat(sep=' ', timespec='microseconds')}'"

    def merge_sql(self, target: str, select: str, on: str, version: str, columns: Sequence[str],
                  keys: Sequence[str]) -> list[str]:
        """Statements upserting ``select`` (alias ``s``) into ``target`` (alias ``t``) on ``on``,
        never over a newer ``version``; each binds the select's parameters once.

        Default: DELETE the older versions, then INSERT the records the target now lacks (what a
        MERGE updating every column does, row for row, and possible inside an explicit
        transaction everywhere).
        """
        names = ", ".join(self.quote(c) for c in columns)
        return [
            f"DELETE FROM {target} AS t USING ({select}) AS s WHERE {on} AND t.{version} <= s.{version}",
            f"INSERT INTO {target} ({names}) SELECT * FROM ({select}) AS s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {on})",
        ]

    # -- report queries -------------------------------------------------------------------

    @staticmethod
    def dotted(path: Sequence[str]) -> str:
        """``a.b.c`` for a JSON path, after checking each key is a plain name (no SQL in a path)."""
        for part in path:
            if not part.replace("_", "").isalnum():
                raise ValueError(f"JSON key {part!r} must be letters, digits and underscores")
        return ".".join(path)

    def json_text(self, column: str, *path: str) -> str:
        """SQL text of a JSON value at ``path`` inside ``column`` (NULL when absent)."""
        raise NotImplementedError

    def json_number(self, column: str, *path: str) -> str:
        """SQL double of a JSON value at ``path`` inside ``column``."""
        raise NotImplementedError

    def seconds_between(self, start: str, end: str) -> str:
        """SQL number of seconds from timestamp expression ``start`` to ``end``."""
        raise NotImplementedError

    def array_contains(self, column: str, value_sql: str) -> str:
        """SQL boolean: the ARRAY column holds the text value."""
        raise NotImplementedError
