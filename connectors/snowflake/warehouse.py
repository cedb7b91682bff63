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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.warehouse import TableRef, Warehouse, WindowLoad

from .config import OPTIONS_SCHEMA, parse_options
from .connection import SessionPool, SqlSession
from .drive import SnowflakeDriveStore
from .load import SnowflakeWindowLoad
from .sql import (
    SnowflakeDialect,
    arrow_type_sql,
    check_case_collisions,
    col,
    column_type_sql,
    folded,
    obj,
    qualified,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import SystemConfig
    from drivetrain.drive import DriveStore
    from drivetrain.secrets import Credentials
    from drivetrain.window import Window


class SnowflakeWarehouse(Warehouse):
    """Stage, target and drive table in a Snowflake account."""

    type_name = "snowflake"
    options_schema: ClassVar[Mapping[str, Any]] = OPTIONS_SCHEMA

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self.options = parse_options(config, credentials)
        self.pool = SessionPool(self.options)
        self.dialect = SnowflakeDialect(self.options.database, self.options.schema)
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
        return self.dialect.window_sql(table, alias)

    def sql(self, what: str, *, retry: bool = False) -> SqlSession:
        """This thread's session; with ``retry`` each statement is retried on a transient error."""
        return SqlSession(self.pool, what, retry=retry)

    def claims_location(self, table: TableRef) -> str:
        return self.where(self.owners_table(table), "the table")

    def window_load(self, window: Window, key: str) -> WindowLoad:
        return SnowflakeWindowLoad(self, window, key)

    def vacuum(self, table: TableRef) -> tuple[bool, str]:
        return False, "Snowflake has no VACUUM; storage is reclaimed automatically"

    def drive_store(self, table: TableRef) -> DriveStore:
        return SnowflakeDriveStore(self, table)
