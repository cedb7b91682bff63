"""DuckDB's dialect and session for the shared SQL layer (:mod:`drivetrain.sql`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.sql.dialect import SqlDialect
from drivetrain.sql.names import quote_name

from .connection import transaction

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from drivetrain.sql.names import TableRef

quote = quote_name


def qualified(table: TableRef) -> str:
    """``"schema"."table"`` (DuckDB has one database per file: a table's database is ignored)."""
    return ".".join(quote(p) for p in (table.schema or "main", table.name))


class DuckDBDialect(SqlDialect):
    """DuckDB: JSON and ``VARCHAR[]`` columns, MERGE for upserts, json_extract for reports."""

    types: ClassVar[dict[str, str]] = {
        **SqlDialect.types, "timestamp": "TIMESTAMPTZ", "json": "JSON", "array": "VARCHAR[]",
    }
    default_schema = "main"
    row_identity = "rowid"
    #: DuckDB then writes an INSERT ... SELECT from all its threads without buffering rows to keep order.
    pending_row_numbers = True
    unordered_inserts = ("SET SESSION preserve_insertion_order = false", "RESET SESSION preserve_insertion_order")

    def qualified(self, table: TableRef) -> str:
        return qualified(table)

    def merge_sql(self, target: str, select: str, on: str, version: str, columns: Sequence[str],
                  keys: Sequence[str]) -> list[str]:
        """One MERGE naming its columns (``UPDATE SET *`` is far slower on DuckDB)."""
        sets = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in columns if c not in keys)
        names = ", ".join(quote(c) for c in columns)
        values = ", ".join(f"s.{quote(c)}" for c in columns)
        return [
            f"MERGE INTO {target} AS t USING ({select}) AS s ON {on} "
            f"WHEN MATCHED AND s.{version} >= t.{version} THEN UPDATE SET {sets} "  # never over a newer version
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
        ]

    def json_text(self, column: str, *path: str) -> str:
        return f"json_extract_string({quote(column)}, '{_json_path(path)}')"

    def json_number(self, column: str, *path: str) -> str:
        return f"TRY_CAST(json_extract({quote(column)}, '{_json_path(path)}') AS DOUBLE)"

    def json_fields(self, column: str, paths: Sequence[Sequence[str]]) -> str:
        """Several fields of a JSON column from one parse: a list of their JSON values (NULL
        where absent), read with :meth:`json_item`. DuckDB parses the JSON text again for every
        ``json_extract`` of a field: the report's ten phases times five fields read 374k rows
        fifty times over (and its counts ran out of the default memory_limit)."""
        listed = ", ".join(f"'{_json_path(tuple(path))}'" for path in paths)
        return f"json_extract({quote(column)}, [{listed}])"

    def json_item(self, fields: str, index: int, *, number: bool = False) -> str:
        """Field ``index`` (from 0) of a :meth:`json_fields` list, read exactly as
        :meth:`json_number` or :meth:`json_text` read it from the column (a scalar's text is
        parsed again, a few bytes)."""
        item = f"{fields}[{int(index) + 1}]"
        return f"TRY_CAST({item} AS DOUBLE)" if number else f"json_extract_string({item}, '$')"

    def seconds_between(self, start: str, end: str) -> str:
        return f"(epoch({end}) - epoch({start}))"

    def array_contains(self, column: str, value_sql: str) -> str:
        return f"list_contains({quote(column)}, {value_sql})"


def _json_path(path: tuple[str, ...]) -> str:
    return "$." + SqlDialect.dotted(path)


class DuckDBSession:
    """:class:`drivetrain.sql.session.SqlSession` over one DuckDB connection."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> int:
        cursor = self.conn.execute(sql, list(params))
        if not cursor.description or cursor.description[0][0] != "Count":
            return -1
        row = cursor.fetchone()
        return int(row[0]) if row else 0

    def rows(self, sql: str, params: Sequence[Any] = (), *, hints: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, list(params)).fetchall()

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, list(params))
            names = [d[0].lower() for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def arrow(self, sql: str, params: Sequence[Any], batch_size: int) -> Iterator[pa.RecordBatch]:
        with self.conn.cursor() as cur:
            # a cursor of its own, so the caller may write (e.g. to the target) while reading
            yield from cur.sql(sql, params=list(params)).to_arrow_reader(batch_size)

    def transaction(self) -> AbstractContextManager[Any]:
        return transaction(self.conn)
