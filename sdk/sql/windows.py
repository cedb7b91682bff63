"""A warehouse's window, date and ownership operations, written once over its session and dialect.

:class:`SqlWarehouseOps` is mixed into :class:`drivetrain.warehouse.Warehouse`; everything here is
a default a backend may override when its engine does better (Snowflake looks tables up in
INFORMATION_SCHEMA; DuckDB creates schemas without asking).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import TYPE_CHECKING, Any

from drivetrain.errors import PermanentError
from drivetrain.ownership import OWNERS_TABLE, Claim
from drivetrain.sql.names import TARGET_DATE, TableRef
from drivetrain.sql.pushdown import run_push_down
from drivetrain.sql.session import utc_now

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.sql.dialect import SqlDialect
    from drivetrain.sql.names import Fence, PushDown, PushDownStats
    from drivetrain.sql.session import SqlSession
    from drivetrain.window import Window


class SqlWarehouseOps:
    """Defaults of :class:`~drivetrain.warehouse.Warehouse` on top of ``sql()`` and ``dialect``."""

    dialect: SqlDialect

    if TYPE_CHECKING:
        def sql(self, what: str, *, retry: bool = False) -> AbstractContextManager[SqlSession]: ...
        def describe(self) -> str: ...
        def table_columns(self, table: TableRef) -> dict[str, str]: ...
        def claim_table(self, table: TableRef) -> None: ...

    def where(self, table: TableRef, action: str) -> str:
        """Where an operation happens, for messages: ``duckdb:/x.duckdb: count main.t``."""
        return f"{self.describe()}: {action} {table}"

    def table_exists(self, table: TableRef) -> bool:
        return bool(self.table_columns(table))

    def ensure_schema(self, table: TableRef) -> None:
        """Create the table's schema if it is missing (once per warehouse object)."""
        known: set[tuple[str | None, str | None]] = self.__dict__.setdefault("_drivetrain_schemas", set())
        schema = table.schema or self.dialect.default_schema
        key = (table.database or self.dialect.default_database, schema)
        if schema is None or key in known:
            return
        name = ".".join(self.dialect.owned(p) for p in key if p)
        with self.sql(self.where(table, "create the schema of")) as s:
            s.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
        known.add(key)

    # -- windows --------------------------------------------------------------------------

    def count_window(self, table: TableRef, window: Window) -> int:
        """Rows whose query field lies in the window (0 when the table does not exist)."""
        if not self.table_exists(table):
            return 0
        d = self.dialect
        with self.sql(self.where(table, "count")) as s:
            rows = s.rows(f"SELECT COUNT(*) FROM {d.qualified(table)} WHERE {d.window_sql(table)}", [window.start, window.end])
        return int(rows[0][0])

    def read_window(self, table: TableRef, window: Window, batch_size: int) -> Iterator[pa.RecordBatch]:
        """Stream the window's rows."""
        if not self.table_exists(table):
            return
        d = self.dialect
        with self.sql(self.where(table, "read")) as s:
            yield from s.arrow(f"SELECT * FROM {d.qualified(table)} WHERE {d.window_sql(table)}", [window.start, window.end], batch_size)

    def group_count(self, table: TableRef, window: Window, column: str) -> dict[str, int]:
        """Count the window's rows grouped by one column (reject reasons, for the audit)."""
        if not self.table_exists(table):
            return {}
        d = self.dialect
        with self.sql(self.where(table, "count")) as s:
            rows = s.rows(f"SELECT {d.quote(column)}, COUNT(*) FROM {d.qualified(table)} WHERE {d.window_sql(table)} "
                          "GROUP BY 1 ORDER BY 2 DESC", [window.start, window.end])
        return {str(key): int(n) for key, n in rows}

    def count_merged(self, stage: TableRef, target: TableRef, window: Window, keys: Sequence[tuple[str, str]],
                     version: tuple[str, str]) -> tuple[int, int] | None:
        """How the target holds the stage window's rows after a merge: ``(held, newer)``.

        ``held``: rows of the stage's window whose record (by key) the target holds at the row's
        version or a newer one; ``newer``: those of them held in a newer version (a later copy in
        the window, or an update a later window loaded). ``keys`` and ``version`` pair each target
        column with the SQL expression over stage columns that fills it.
        """
        if not (self.table_exists(stage) and self.table_exists(target)):
            return (0, 0)
        d = self.dialect
        exprs = ", ".join(f"{expr} AS {d.quote(f'_k{i}')}" for i, (_, expr) in enumerate(keys))
        on = " AND ".join(f"t.{d.quote(name)} = s.{d.quote(f'_k{i}')}" for i, (name, _) in enumerate(keys)) + d.scope(target, "t.")
        tv, sv = f"t.{d.quote(version[0])}", f"s.{d.quote('_v')}"
        with self.sql(self.where(target, f"count against {stage}")) as s:
            rows = s.rows(
                f"SELECT COUNT({tv}), COUNT(CASE WHEN {tv} > {sv} THEN 1 END) FROM (SELECT {exprs}, {version[1]} AS {d.quote('_v')} "
                f"FROM {d.qualified(stage)} WHERE {d.window_sql(stage)}) AS s "
                f"LEFT JOIN {d.qualified(target)} AS t ON {on} AND {tv} >= {sv}",
                [window.start, window.end],
            )
        return int(rows[0][0]), int(rows[0][1])

    def push_down(self, spec: PushDown, window: Window, lineage: Mapping[str, Any], *, fence: Fence | None = None) -> PushDownStats:
        """Run stage-to-target as SQL inside the warehouse, in one transaction."""
        return run_push_down(self, spec, window, lineage, fence)  # type: ignore[arg-type]

    # -- dates (stage cleaning) -----------------------------------------------------------

    def _date_sql(self, table: TableRef) -> str:
        d = self.dialect
        return f"{d.quote(TARGET_DATE)} = ?{d.scope(table)}"

    def dates_before(self, table: TableRef, cutoff: date) -> list[date]:
        """Distinct ``_drivetrain_target_date`` values older than cutoff."""
        if not self.table_exists(table):
            return []
        d = self.dialect
        with self.sql(self.where(table, "list old dates of")) as s:
            rows = s.rows(f"SELECT DISTINCT {d.quote(TARGET_DATE)} FROM {d.qualified(table)} "
                          f"WHERE {d.quote(TARGET_DATE)} < ?{d.scope(table)} ORDER BY 1", [cutoff])
        return [r[0] for r in rows]

    def read_date(self, table: TableRef, day: date, batch_size: int) -> Iterator[pa.RecordBatch]:
        with self.sql(self.where(table, f"read {day} of")) as s:
            yield from s.arrow(f"SELECT * FROM {self.dialect.qualified(table)} WHERE {self._date_sql(table)}", [day], batch_size)

    def count_date(self, table: TableRef, day: date) -> int:
        with self.sql(self.where(table, f"count {day} of")) as s:
            return int(s.rows(f"SELECT COUNT(*) FROM {self.dialect.qualified(table)} WHERE {self._date_sql(table)}", [day])[0][0])

    def delete_date(self, table: TableRef, day: date, expected: int, *, fence: Fence | None = None) -> int:
        """Delete one target_date's rows; roll back unless exactly ``expected`` rows go."""
        with self.sql(self.where(table, f"delete {day} from")) as s, s.transaction():
            deleted = s.execute(f"DELETE FROM {self.dialect.qualified(table)} WHERE {self._date_sql(table)}", [day])
            if deleted != expected:
                raise PermanentError(f"{table}: {deleted} rows for {day} but {expected} were archived; nothing deleted")
            if fence is not None:
                fence()
        return deleted

    # -- ownership (see drivetrain.ownership) ---------------------------------------------

    def owners_table(self, table: TableRef) -> TableRef:
        """The claims table beside ``table``."""
        return TableRef(name=OWNERS_TABLE, schema=table.schema, database=table.database)

    def table_claims(self, table: TableRef) -> list[Claim]:
        """Every pipeline's claim on ``table``."""
        owners = self.owners_table(table)
        if not self.table_exists(owners):
            return []
        with self.sql(self.where(owners, f"read the owners of {table.name} in")) as s:
            rows = s.rows(f"SELECT pipeline_name, shared, claimed_at FROM {self.dialect.qualified(owners)} WHERE table_name = ?",
                          [self.dialect.stored_name(table.name)])
        return [Claim(pipeline=p, shared=bool(shared), claimed_at=at) for p, shared, at in rows]

    def record_claim(self, table: TableRef) -> tuple[list[Claim], bool]:
        """Record ``table.owner``'s claim unless it has one; returns every claim and whether it was new."""
        d, owners = self.dialect, self.owners_table(table)
        self.ensure_schema(owners)
        q = d.qualified(owners)
        columns = [("table_name", "text", True), ("pipeline_name", "text", True), ("shared", "boolean", True), ("claimed_at", "timestamp", True)]
        with self.sql(self.where(owners, f"claim {table.name} for {table.owner} in")) as s:
            s.execute(f"CREATE TABLE IF NOT EXISTS {q} ({', '.join(d.column_sql(*c) for c in columns)})")
            key = [d.stored_name(table.name), table.owner]
            # one statement: a pipeline never holds two claims
            inserted = s.execute(
                f"INSERT INTO {q} (table_name, pipeline_name, shared, claimed_at) SELECT ?, ?, ?, ? FROM (SELECT 1) AS one "
                f"WHERE NOT EXISTS (SELECT 1 FROM {q} WHERE table_name = ? AND pipeline_name = ?)",
                [*key, table.shared, utc_now(), *key],
            )
        return self.table_claims(table), inserted > 0

    def set_claim_shared(self, table: TableRef) -> None:
        """Store ``table.shared`` in ``table.owner``'s claim (after the claim was judged)."""
        owners = self.owners_table(table)
        with self.sql(self.where(owners, "update a claim in")) as s:
            s.execute(f"UPDATE {self.dialect.qualified(owners)} SET shared = ? WHERE table_name = ? AND pipeline_name = ?",
                      [table.shared, self.dialect.stored_name(table.name), table.owner])

    def release_claim(self, table: TableRef) -> None:
        """Remove ``table.owner``'s claim (it lost to another one)."""
        owners = self.owners_table(table)
        with self.sql(self.where(owners, "release a claim in")) as s:
            s.execute(f"DELETE FROM {self.dialect.qualified(owners)} WHERE table_name = ? AND pipeline_name = ?",
                      [self.dialect.stored_name(table.name), table.owner])

    def claims_location(self, table: TableRef) -> str:
        """Where the claims on ``table`` are kept, for messages."""
        return f"{self.describe()} {self.owners_table(table)}"
