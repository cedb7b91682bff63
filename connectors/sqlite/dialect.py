"""SQLite's dialect for the drive table and the report queries over it.

SQLite has no timestamp, date, JSON or array types. The drive table stores:

* instants as fixed-width ISO-8601 text in UTC (``2025-11-15 10:00:00.000000+00:00``, see
  :func:`.session.instant_text`): text order is time order, ``MIN``/``MAX``/``=`` work on the
  text, and the row codec reads them back exactly (:meth:`SqliteDialect.decode`);
* dates as ``YYYY-MM-DD`` text;
* a phase's state and the config snapshot as JSON text, the ``phases_*`` lists as JSON arrays,
  read in reports with SQLite's JSON functions (``json_extract``, ``json_type``, ``json_each``).

Every column is declared ``TEXT`` or ``INTEGER`` (never ``TIMESTAMP``, whose NUMERIC affinity
would turn ``'2025-11-15 ...'`` into the number 2025).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.sql.dialect import SqlDialect
from drivetrain.sql.names import quote_name

from .session import instant_text

if TYPE_CHECKING:
    from drivetrain.sql.names import TableRef

#: The time of an insert, in the stored form of an instant (``%f`` is seconds with milliseconds).
NOW_SQL = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000+00:00')"
_CAST = re.compile(r"^CAST\((.*) AS TIMESTAMP\)$", re.IGNORECASE | re.DOTALL)


class SqliteDialect(SqlDialect):
    """SQLite: one database per file (no schemas), JSON text, instants as ISO text."""

    types: ClassVar[dict[str, str]] = {
        "text": "TEXT", "integer": "INTEGER", "bigint": "INTEGER", "boolean": "INTEGER",
        "timestamp": "TEXT", "date": "TEXT", "json": "TEXT", "array": "TEXT",
    }
    row_identity = "rowid"

    def qualified(self, table: TableRef) -> str:
        """The table's quoted name (a SQLite file is one database: schema and database are ignored)."""
        return self.owned(table.name)

    def column_sql(self, name: str, kind: str, not_null: bool = False, *, default: str | None = None) -> str:
        if default == "CURRENT_TIMESTAMP":  # SQLite's own is second-precision text of another shape
            default = NOW_SQL
        return super().column_sql(name, kind, not_null, default=default)

    def typed_null(self, kind: str) -> str:
        return "NULL"

    def json_value(self, value: Any) -> tuple[str, list[Any]]:
        return "?", [None if value is None else json.dumps(value, default=str)]

    def array_value(self, items: Any) -> tuple[str, list[Any]]:
        return "?", [None if items is None else json.dumps([str(i) for i in items])]

    @staticmethod
    def decode(kind: str, value: Any) -> Any:
        """A stored value as the row codec wants it: instants and dates parsed, JSON loaded."""
        if isinstance(value, str):
            if kind == "timestamp":
                parsed = datetime.fromisoformat(value)
                return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
            if kind == "date":
                return date.fromisoformat(value)
        if kind == "boolean" and isinstance(value, int):
            return bool(value)
        return SqlDialect.decode(kind, value)

    @staticmethod
    def timestamp_literal(value: datetime) -> str:
        return f"'{instant_text(value)}'"

    # -- report queries -------------------------------------------------------------------

    def json_text(self, column: str, *path: str) -> str:
        """Text of the value at ``path``; JSON true/false as ``'true'``/``'false'`` (as DuckDB's
        ``json_extract_string``), not SQLite's 1/0."""
        col, where = _parsable(column), _json_path(path)
        return (f"(CASE json_type({col}, '{where}') WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                f"WHEN 'null' THEN NULL ELSE CAST(json_extract({col}, '{where}') AS TEXT) END)")

    def json_number(self, column: str, *path: str) -> str:
        col, where = _parsable(column), _json_path(path)
        return (f"(CASE WHEN json_type({col}, '{where}') IN ('integer', 'real') "
                f"THEN CAST(json_extract({col}, '{where}') AS REAL) END)")

    def json_fields(self, column: str, paths: Any) -> str:
        """Several fields of a JSON column from one parse: ``json_extract`` with several paths
        gives a JSON array of their values, read with :meth:`json_item`. Reading the report's
        fields one by one parsed each phase document once per field (a week of a 500-pipeline
        fleet: 72 s for the phase statistics)."""
        listed = [f"'{_json_path(tuple(path))}'" for path in paths]
        listed += listed[:1] if len(listed) == 1 else []  # one path gives the value itself, not an array of one
        return f"json_extract({_parsable(column)}, {', '.join(listed)})"

    #: After the subquery that parses (see Queries._select): SQLite would otherwise flatten it
    #: and parse the column again for every field read (a subquery with a LIMIT is kept whole).
    json_fields_fence = " LIMIT -1"
    #: The report's phase rows come from one pass over the drive table, not one per phase: a
    #: scan of the wide rows costs more here than the rows each phase keeps.
    phases_in_one_pass = True
    #: The report's period is read through the (pipeline_name, pipeline_start_timestamp) index,
    #: every pipeline named (SQLite uses no index on its second column alone): a week of a month's
    #: drive rows is then a quarter of the file's pages, not all of them.
    period_by_pipeline = True

    def json_item(self, fields: str, index: int, *, number: bool = False) -> str:
        """Field ``index`` (from 0) of a :meth:`json_fields` array, read as :meth:`json_number`
        or :meth:`json_text` read it from the column (the array is a few bytes to parse again).
        """
        where = f"$[{int(index)}]"
        if number:
            return f"(CASE WHEN json_type({fields}, '{where}') IN ('integer', 'real') THEN CAST(json_extract({fields}, '{where}') AS REAL) END)"
        return (f"(CASE json_type({fields}, '{where}') WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                f"WHEN 'null' THEN NULL ELSE CAST(json_extract({fields}, '{where}') AS TEXT) END)")

    def seconds_between(self, start: str, end: str) -> str:
        """Seconds from ``start`` to ``end``, both ISO text (a ``CAST(x AS TIMESTAMP)`` around
        one is dropped: in SQLite it would make a number of it)."""
        (whole_end, frac_end), (whole_start, frac_start) = _parts(_uncast(end)), _parts(_uncast(start))
        # whole seconds from julianday (kept in milliseconds: exact once rounded), the fractions
        # from the text: exact to the microsecond, and about 30 times cheaper than strftime('%s')
        return f"({frac_end} + ROUND((julianday({whole_end}) - julianday({whole_start})) * 86400.0) - {frac_start})"

    def array_contains(self, column: str, value_sql: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each({_parsable(column)}) WHERE json_each.value = ({value_sql}))"


def _parsable(column: str) -> str:
    """``column`` where it holds JSON, else NULL. SQLite keeps any text in a JSON column, and a
    row damaged by another tool (``Infinity``, a cut document) would make every JSON function
    reading it fail the whole statement -- a report, or the phase summary's trigger and so the
    write itself; such a value reads as absent, as the row codec reads it. (A valid document
    is parsed once: SQLite keeps the parse for the functions after ``json_valid``.)"""
    col = quote_name(column)
    return f"(CASE WHEN json_valid({col}) THEN {col} END)"


def _json_path(path: tuple[str, ...]) -> str:
    return "$." + SqlDialect.dotted(path)


def _parts(text: str) -> tuple[str, str]:
    """ISO text as (its whole seconds with the zone suffix kept, its fraction of a second as a number)."""
    rest = f"substr({text}, 20)"
    suffix = f"ltrim({rest}, '.0123456789')"
    return (f"(substr({text}, 1, 19) || {suffix})",
            f"CAST('0' || substr({rest}, 1, length({rest}) - length({suffix})) AS REAL)")


def _uncast(expr: str) -> str:
    found = _CAST.match(expr.strip())
    return found.group(1) if found else expr
