"""Snowflake as warehouse: stage, target and drive table.

Config (``stage_system``, ``target_system`` or ``drive_table``)::

    {"type": "snowflake", "account": "myorg-myaccount", "warehouse": "LOAD_WH",
     "database": "RAW", "schema": "LAB", "table": "stg_genetic_tests",
     "role": "DRIVETRAIN", "credentials_ref": "snowflake_prod"}

Loads are Parquet files PUT to an internal stage and copied in with ``COPY INTO``; a window is
replaced by one transaction (delete the window, insert from the load table); stage-to-target is
pushed down as SQL when both tables are in one account. DDL never runs inside a transaction:
Snowflake would commit the transaction first. Names follow the casing policy of :mod:`.sql`.

The role needs USAGE on the warehouse, database and schema; CREATE TABLE (and CREATE STAGE,
unless ``load_stage`` names an existing stage) on the schema; SELECT, INSERT, UPDATE, DELETE on
the tables it writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.errors import PermanentError
from drivetrain.ownership import OWNERS_TABLE, Claim, scope_sql
from drivetrain.warehouse import Fence, PushDown, PushDownStats, TableRef, Warehouse, WindowLoad

from .config import OPTIONS_SCHEMA, parse_options
from .connection import SessionPool
from .sql import arrow_type_sql, check_case_collisions, col, column_type_sql, folded, obj, qualified

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import SystemConfig
    from drivetrain.drive import DriveStore
    from drivetrain.secrets import Credentials
    from drivetrain.window import Window

TARGET_DATE = "_drivetrain_target_date"


class SnowflakeWarehouse(Warehouse):
    """Stage, target and drive table in a Snowflake account."""

    type_name = "snowflake"
    options_schema: ClassVar[Mapping[str, Any]] = OPTIONS_SCHEMA

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self.options = parse_options(config, credentials)
        self.pool = SessionPool(self.options)
        self._schemas: set[tuple[str, str]] = set()

    def describe(self) -> str:
        return self.options.describe()

    def __repr__(self) -> str:
        return f"<SnowflakeWarehouse {self.describe()}>"

    def check(self) -> list[str]:
        version = self.pool.session().rows("SELECT CURRENT_VERSION()", what=f"connect to {self.describe()}")[0][0]
        return [f"{self.describe()}: connected (Snowflake {version})"]

    def close(self) -> None:
        self.pool.close()

    # -- names ----------------------------------------------------------------------------

    def table_ref(self, role_options: Mapping[str, Any], query_field: str | None) -> TableRef:
        return TableRef(
            name=role_options["table"],
            schema=role_options.get("schema") or self.options.schema,
            database=role_options.get("database") or self.options.database,
            query_field=query_field,
        )

    def qualified(self, table: TableRef) -> str:
        return qualified(table, self.options.database, self.options.schema)

    def _parts(self, table: TableRef) -> tuple[str, str, str]:
        return table.database or self.options.database, table.schema or self.options.schema, table.name

    def where(self, table: TableRef, action: str) -> str:
        return f"{action} {'.'.join(folded(p) for p in self._parts(table))} ({self.describe()})"

    def same_warehouse(self, other: Warehouse) -> bool:
        return isinstance(other, SnowflakeWarehouse) and other.options.identity == self.options.identity

    # -- tables ---------------------------------------------------------------------------

    def ensure_schema(self, table: TableRef) -> None:
        database, schema, _ = self._parts(table)
        if (database, schema) in self._schemas:
            return
        session = self.pool.session()
        found = session.rows(
            f"SELECT 1 FROM {obj(database)}.INFORMATION_SCHEMA.SCHEMATA WHERE SCHEMA_NAME = ?",
            [folded(schema)], what=self.where(table, "look up the schema of"),
        )
        if not found:
            session.execute(f"CREATE SCHEMA IF NOT EXISTS {obj(database)}.{obj(schema)}", what=self.where(table, "create the schema of"))
        self._schemas.add((database, schema))

    def table_exists(self, table: TableRef) -> bool:
        database, schema, name = self._parts(table)
        rows = self.pool.session().rows(
            f"SELECT COUNT(*) FROM {obj(database)}.INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            [folded(schema), folded(name)], what=self.where(table, "look up"),
        )
        return bool(rows[0][0])

    def table_columns(self, table: TableRef) -> dict[str, str]:
        database, schema, name = self._parts(table)
        rows = self.pool.session().rows(
            f"SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE FROM {obj(database)}.INFORMATION_SCHEMA.COLUMNS "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            [folded(schema), folded(name)], what=self.where(table, "read the columns of"),
        )
        return {r[0]: column_type_sql(r[1], r[2], r[3]) for r in rows}

    def ensure_table(self, table: TableRef, schema: pa.Schema) -> None:
        where = self.where(table, "create")
        check_case_collisions(schema.names, where)
        existing = self.table_columns(table)
        session = self.pool.session()
        if not existing:
            self.ensure_schema(table)
            columns = ", ".join(f"{col(f.name)} {arrow_type_sql(f)}" for f in schema)
            session.execute(f"CREATE TABLE IF NOT EXISTS {self.qualified(table)} ({columns})", what=where)
            return
        folded_existing = {name.upper(): name for name in existing}
        for field in schema:
            if field.name in existing:
                continue
            if field.name.upper() in folded_existing:
                check_case_collisions([folded_existing[field.name.upper()], field.name], where)
            session.execute(
                f"ALTER TABLE {self.qualified(table)} ADD COLUMN {col(field.name)} {arrow_type_sql(field)}",
                what=self.where(table, f"add column {field.name!r} to"),
            )

    def window_sql(self, table: TableRef, alias: str = "") -> str:
        if not table.query_field:
            raise PermanentError(f"table {table} has no query field to place rows in windows")
        field = f"{alias}{col(table.query_field)}"
        return f"{field} >= ? AND {field} < ?{self.scope(table, alias)}"

    def scope(self, table: TableRef, alias: str = "") -> str:
        """`` AND <only the owner's rows>`` for a shared table, else ``""``."""
        return scope_sql(table, f"{alias}{col(table.owner_column)}")

    # -- ownership ------------------------------------------------------------------------

    def _owners(self, table: TableRef) -> TableRef:
        return TableRef(name=OWNERS_TABLE, schema=table.schema, database=table.database)

    def claims_location(self, table: TableRef) -> str:
        return self.where(self._owners(table), "the table")

    def table_claims(self, table: TableRef) -> list[Claim]:
        owners = self._owners(table)
        if not self.table_exists(owners):
            return []
        rows = self.pool.session().rows(
            f"SELECT PIPELINE_NAME, SHARED, CLAIMED_AT FROM {self.qualified(owners)} WHERE TABLE_NAME = ?",
            [folded(table.name)], what=self.where(owners, "read"),
        )
        return [Claim(pipeline=p, shared=bool(shared), claimed_at=at) for p, shared, at in rows]

    def record_claim(self, table: TableRef) -> tuple[list[Claim], bool]:
        owners = self._owners(table)
        self.ensure_schema(owners)
        session = self.pool.session()
        what = self.where(owners, f"claim {table.name} for {table.owner} in")
        session.execute(f"CREATE TABLE IF NOT EXISTS {self.qualified(owners)} (TABLE_NAME VARCHAR NOT NULL, "
                        "PIPELINE_NAME VARCHAR NOT NULL, SHARED BOOLEAN NOT NULL, CLAIMED_AT TIMESTAMP_TZ NOT NULL)", what=what)
        key = [folded(table.name), table.owner]
        # one statement: Snowflake runs it atomically, so a pipeline never holds two claims
        inserted = session.execute(
            f"INSERT INTO {self.qualified(owners)} (TABLE_NAME, PIPELINE_NAME, SHARED, CLAIMED_AT) "
            f"SELECT ?, ?, ?, CURRENT_TIMESTAMP() WHERE NOT EXISTS (SELECT 1 FROM {self.qualified(owners)} "
            "WHERE TABLE_NAME = ? AND PIPELINE_NAME = ?)",
            [*key, table.shared, *key], what=what,
        ).rowcount
        return self.table_claims(table), bool(inserted)

    def set_claim_shared(self, table: TableRef) -> None:
        owners = self._owners(table)
        self.pool.session().execute(f"UPDATE {self.qualified(owners)} SET SHARED = ? WHERE TABLE_NAME = ? AND PIPELINE_NAME = ?",
                                    [table.shared, folded(table.name), table.owner], what=self.where(owners, "update a claim in"))

    def release_claim(self, table: TableRef) -> None:
        owners = self._owners(table)
        self.pool.session().execute(f"DELETE FROM {self.qualified(owners)} WHERE TABLE_NAME = ? AND PIPELINE_NAME = ?",
                                    [folded(table.name), table.owner], what=self.where(owners, "release a claim in"))

    def count_window(self, table: TableRef, window: Window) -> int:
        if not self.table_exists(table):
            return 0
        rows = self.pool.session().rows(
            f"SELECT COUNT(*) FROM {self.qualified(table)} WHERE {self.window_sql(table)}",
            [window.start, window.end], what=self.where(table, "count the window of"),
        )
        return int(rows[0][0])

    def count_merged(self, stage: TableRef, target: TableRef, window: Window, keys: Sequence[tuple[str, str]],
                     version: tuple[str, str]) -> tuple[int, int] | None:
        if not (self.table_exists(stage) and self.table_exists(target)):
            return (0, 0)
        exprs = ", ".join(f"{expr} AS {col(f'_k{i}')}" for i, (_, expr) in enumerate(keys))
        on = " AND ".join(f"t.{col(name)} = s.{col(f'_k{i}')}" for i, (name, _) in enumerate(keys)) + self.scope(target, "t.")
        tv = f"t.{col(version[0])}"
        rows = self.pool.session().rows(
            f"SELECT COUNT({tv}), COUNT(CASE WHEN {tv} > s.{col('_v')} THEN 1 END) FROM (SELECT {exprs}, {version[1]} AS {col('_v')} "
            f"FROM {self.qualified(stage)} WHERE {self.window_sql(stage)}) AS s "
            f"LEFT JOIN {self.qualified(target)} AS t ON {on} AND {tv} >= s.{col('_v')}",
            [window.start, window.end], what=self.where(target, "count the merged window of"),
        )
        return int(rows[0][0]), int(rows[0][1])

    def group_count(self, table: TableRef, window: Window, column: str) -> dict[str, int]:
        if not self.table_exists(table):
            return {}
        rows = self.pool.session().rows(
            f"SELECT {col(column)}, COUNT(*) FROM {self.qualified(table)} WHERE {self.window_sql(table)} GROUP BY 1 ORDER BY 2 DESC",
            [window.start, window.end], what=self.where(table, "count groups of"),
        )
        return {str(key): int(n) for key, n in rows}

    def read_window(self, table: TableRef, window: Window, batch_size: int) -> Iterator[pa.RecordBatch]:
        if not self.table_exists(table):
            return
        yield from self.pool.session().arrow(
            f"SELECT * FROM {self.qualified(table)} WHERE {self.window_sql(table)}",
            [window.start, window.end], batch_size, what=self.where(table, "read the window of"),
        )

    def window_load(self, window: Window, key: str) -> WindowLoad:
        from .load import SnowflakeWindowLoad

        return SnowflakeWindowLoad(self, window, key)

    def push_down(self, spec: PushDown, window: Window, lineage: Mapping[str, Any], *, fence: Fence | None = None) -> PushDownStats:
        from .pushdown import run_push_down

        return run_push_down(self, spec, window, lineage, fence)

    # -- stage cleaning -------------------------------------------------------------------

    def dates_before(self, table: TableRef, cutoff: date) -> list[date]:
        if not self.table_exists(table):
            return []
        rows = self.pool.session().rows(
            f"SELECT DISTINCT {col(TARGET_DATE)} FROM {self.qualified(table)} WHERE {col(TARGET_DATE)} < ?{self.scope(table)} ORDER BY 1",
            [cutoff], what=self.where(table, "list old dates of"),
        )
        return [r[0] for r in rows]

    def read_date(self, table: TableRef, day: date, batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from self.pool.session().arrow(
            f"SELECT * FROM {self.qualified(table)} WHERE {col(TARGET_DATE)} = ?{self.scope(table)}", [day], batch_size,
            what=self.where(table, f"read {day} of"),
        )

    def count_date(self, table: TableRef, day: date) -> int:
        rows = self.pool.session().rows(
            f"SELECT COUNT(*) FROM {self.qualified(table)} WHERE {col(TARGET_DATE)} = ?{self.scope(table)}", [day], what=self.where(table, f"count {day} of"),
        )
        return int(rows[0][0])

    def delete_date(self, table: TableRef, day: date, expected: int, *, fence: Fence | None = None) -> int:
        where = self.where(table, f"delete {day} from")
        with self.pool.session().transaction(where) as session:
            deleted = int(session.execute(f"DELETE FROM {self.qualified(table)} WHERE {col(TARGET_DATE)} = ?{self.scope(table)}", [day], what=where).rowcount)
            if deleted != expected:
                raise PermanentError(f"{table}: {deleted} rows for {day} but {expected} were archived; nothing deleted")
            if fence is not None:
                fence()
        return deleted

    def vacuum(self, table: TableRef) -> tuple[bool, str]:
        return False, "Snowflake has no VACUUM; storage is reclaimed automatically"

    def drive_store(self, table: TableRef) -> DriveStore:
        from .drive import SnowflakeDriveStore

        return SnowflakeDriveStore(self, table)
