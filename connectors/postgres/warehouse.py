"""PostgreSQL as warehouse: stage, target and drive table in one database.

Config (``stage_system``, ``target_system`` or ``drive_table``)::

    {"type": "postgres", "host": "pg-dwh.company.com", "port": 5432, "database": "dwh",
     "schema": "lab", "table": "stg_genetic_tests", "credentials_ref": "pg_dwh"}

``credentials_ref`` supplies ``user`` and ``password``, as for the PostgreSQL source. Loads are
binary COPY inside one transaction per window (:mod:`.load`); stage-to-target is pushed down as
SQL when both tables are in one database; the drive table's leases are advisory locks
(:mod:`.drive`). Everything else is the shared SQL layer (:mod:`drivetrain.sql`) in PostgreSQL's
dialect (:mod:`.dialect`). Names follow the casing policy described there.

The user needs CONNECT on the database, CREATE on the schema (or the schema to exist with CREATE
on it), and SELECT, INSERT, UPDATE, DELETE on the tables it writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.errors import PermanentError, TransientError
from drivetrain.ownership import Claim
from drivetrain.schema_types import arrow_kind, sql_kind, widen_columns, widened_type
from drivetrain.sql.session import utc_now
from drivetrain.warehouse import TableRef, Warehouse, WindowLoad

from .dialect import PostgresDialect, arrow_type_sql
from .drive import PostgresDriveStore
from .load import PostgresWindowLoad
from .session import ConnectionPool, PgSession, psycopg_module
from .warehouse_config import OPTIONS_SCHEMA, parse_options

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import SystemConfig
    from drivetrain.drive import DriveStore
    from drivetrain.secrets import Credentials
    from drivetrain.sql.names import Fence, PushDown, PushDownStats
    from drivetrain.window import Window

log = logging.getLogger(__name__)

#: Every column of a table, its type, and whether an index starts with it (one round trip).
_COLUMNS_SQL = (
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
    "WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum) FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = ? AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)


class PostgresWarehouse(Warehouse):
    """Stage, target and drive table in a PostgreSQL database."""

    type_name = "postgres"
    aliases: ClassVar[tuple[str, ...]] = ("postgresql",)
    options_schema: ClassVar[Mapping[str, Any]] = OPTIONS_SCHEMA
    dialect: PostgresDialect

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self.options = parse_options(config, credentials)
        self.pool = ConnectionPool(self.options)
        self.dialect = PostgresDialect(self.options.schema)
        self._version: int | None = None
        self._load_lock = threading.Lock()
        self._idle_load: Any = None

    def describe(self) -> str:
        return self.options.describe()

    def __repr__(self) -> str:
        return f"<PostgresWarehouse {self.describe()}>"

    def server_version(self) -> int:
        """``server_version_num`` (150004 for 15.4); MERGE needs 150000."""
        if self._version is None:
            with self.sql(f"connect to {self.describe()}", retry=True) as s:
                self._version = int(s.rows("SHOW server_version_num")[0][0])
            self.dialect.merge = self._version >= 150000
        return self._version

    def check(self) -> list[str]:
        version = self.server_version()
        note = "" if self.dialect.merge else " (before 15: merges run as DELETE + INSERT)"
        return [f"{self.describe()}: connected (PostgreSQL {version // 10000}.{version % 10000}){note}"]

    def close(self) -> None:
        self.pool.close()
        with self._load_lock:
            idle, self._idle_load = self._idle_load, None
        if idle is not None:
            with suppress(Exception):
                idle.close()

    def load_connection(self, what: str) -> Any:
        """A connection for a window load (not in autocommit: the load commits): the one a
        committed load gave back when it still answers (no second authentication in a run), else
        a new one."""
        with self._load_lock:
            idle, self._idle_load = self._idle_load, None
        if idle is not None:
            try:
                idle.execute("SELECT 1").fetchall()
                return idle
            except Exception:  # noqa: BLE001 - dropped by the server meanwhile: open a new one
                with suppress(Exception):
                    idle.close()
        psycopg = psycopg_module()
        with self.pool.errors(f"{what}: connect"):
            return psycopg.connect(**self.options.connect_kwargs(), autocommit=False)

    def keep_load_connection(self, conn: Any) -> None:
        """Keep a load's connection (its transaction ended) for the next window's load."""
        with self._load_lock:
            conn, self._idle_load = (conn, None) if self._idle_load is not None else (None, conn)
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def sql(self, what: str, *, retry: bool = False) -> PgSession:
        """This thread's connection; with ``retry`` each statement is retried on a transient error."""
        return PgSession(self.pool, what, retry=retry)

    def same_warehouse(self, other: Warehouse) -> bool:
        return isinstance(other, PostgresWarehouse) and other.options.identity == self.options.identity

    # -- tables ---------------------------------------------------------------------------

    def table_ref(self, role_options: Mapping[str, Any], query_field: str | None) -> TableRef:
        return TableRef(name=role_options["table"], schema=role_options.get("schema") or self.options.schema,
                        query_field=query_field)

    def _parts(self, table: TableRef) -> tuple[str, str]:
        return (table.schema or self.options.schema).lower(), table.name.lower()

    def where(self, table: TableRef, action: str) -> str:
        schema, name = self._parts(table)
        return f"{action} {schema}.{name} ({self.describe()})"

    def record_claim(self, table: TableRef) -> tuple[list[Claim], bool]:
        """The shared claim in one statement once the owners table exists (an INSERT whose
        RETURNING joins the claims already there): one round trip instead of four."""
        d, owners = self.dialect, self.owners_table(table)
        q, key = d.qualified(owners), [d.stored_name(table.name), table.owner]
        sql = (f"WITH added AS (INSERT INTO {q} (table_name, pipeline_name, shared, claimed_at) SELECT ?, ?, ?, ? "
               f"WHERE NOT EXISTS (SELECT 1 FROM {q} WHERE table_name = ? AND pipeline_name = ?) "
               "RETURNING pipeline_name, shared, claimed_at) "
               f"SELECT pipeline_name, shared, claimed_at, false FROM {q} WHERE table_name = ? "
               "UNION ALL SELECT pipeline_name, shared, claimed_at, true FROM added")
        if self.pool.connection().info.transaction_status != 0:  # a failed statement would end the transaction
            return super().record_claim(table)
        try:
            with self.sql(self.where(owners, f"claim {table.name} for {table.owner} in")) as s:
                rows = s.rows(sql, [*key, table.shared, utc_now(), *key, key[0]])
        except PermanentError as exc:
            if getattr(exc.__cause__, "sqlstate", None) not in ("42P01", "3F000"):
                raise
            return super().record_claim(table)  # no owners table (or schema) yet: created with the first claim
        return [Claim(pipeline=p, shared=bool(shared), claimed_at=at) for p, shared, at, _ in rows], any(r[3] for r in rows)

    def claims_location(self, table: TableRef) -> str:
        return self.where(self.owners_table(table), "the table")

    def ensure_schema(self, table: TableRef) -> None:
        """Create the table's schema unless it exists (creating needs CREATE on the database)."""
        schema, _ = self._parts(table)
        known: set[str] = self.__dict__.setdefault("_schemas", set())
        if schema in known:
            return
        with self.sql(self.where(table, "look up the schema of"), retry=True) as s:
            found = s.rows("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = ?", [schema])
        if not found:
            with self.sql(self.where(table, "create the schema of")) as s:
                s.execute(f"CREATE SCHEMA IF NOT EXISTS {self.dialect.owned(schema)}")
        known.add(schema)

    def table_columns(self, table: TableRef) -> dict[str, str]:
        return self._columns(table)[0]

    def _columns(self, table: TableRef) -> tuple[dict[str, str], set[str]]:
        """The table's columns with their types, and the columns an index starts with."""
        with self.sql(self.where(table, "read the columns of"), retry=True) as s:
            rows = s.rows(_COLUMNS_SQL, list(self._parts(table)))
        return {name: sql_type for name, sql_type, _ in rows}, {name for name, _, indexed in rows if indexed}

    def ensure_window_index(self, table: TableRef, columns: tuple[dict[str, str], set[str]] | None = None) -> bool:
        """Index the table's query field unless an index starts with it already: a window's
        DELETE and count then read the window's block ranges, not the whole table. A BRIN index:
        windows arrive in time order, so the field follows the rows' place in the table; it
        found one window of 30 as fast as a B-tree and costs next to nothing to keep up at
        load, where a B-tree doubled the time of a 400k-row COPY (benchmarks/postgres.py
        ``window-delete``; blocks not yet summarized are read, never skipped). Checked once per
        table and warehouse object; ``columns`` is :meth:`_columns`' answer when the caller has
        it. Returns False when the table (or its query field) does not exist yet.
        """
        field = table.query_field
        known: set[TableRef] = self.__dict__.setdefault("_indexed", set())
        if not field or table in known:
            return True
        existing, indexed = columns if columns is not None else self._columns(table)
        if field not in existing:
            return False
        known.add(table)
        if field not in indexed:
            d = self.dialect
            create = (f"CREATE INDEX IF NOT EXISTS {d.quote(window_index_name(table))} ON {d.qualified(table)} "
                      f"USING brin ({d.quote(field)}) WITH (autosummarize = on)")
            try:
                with self.sql(self.where(table, f"index the query field {field!r} of")) as s:
                    s.execute(create)
            except (PermanentError, TransientError) as exc:  # e.g. a table the user may write but not own: slower, still right
                log.warning("%s; every window's DELETE and count scan the table until its owner runs: %s",
                            str(exc).splitlines()[0], create)
        return True

    def ensure_table(self, table: TableRef, schema: pa.Schema) -> None:
        self.ensured_columns(table, schema)

    def ensured_columns(self, table: TableRef, schema: pa.Schema) -> dict[str, str]:
        """:meth:`ensure_table`, then the table's columns (read once when nothing had to change)."""
        d = self.dialect
        existing, indexed = self._columns(table)
        if not existing:
            self.ensure_schema(table)
            columns = ", ".join(f"{d.quote(f.name)} {arrow_type_sql(f)}" for f in schema)
            with self.sql(self.where(table, "create")) as s:
                s.execute(f"CREATE TABLE IF NOT EXISTS {d.qualified(table)} ({columns})")
            created = self._columns(table)
            self.ensure_window_index(table, created)
            return created[0]
        self.ensure_window_index(table, (existing, indexed))
        added = [f for f in schema if f.name not in existing]
        for field in added:
            with self.sql(self.where(table, f"add column {field.name!r} to")) as s:
                s.execute(f"ALTER TABLE {d.qualified(table)} ADD COLUMN IF NOT EXISTS {d.quote(field.name)} {arrow_type_sql(field)}")
        # an existing column whose values got wider is widened where that loses nothing
        wider = {f.name: arrow_type_sql(f) for f in schema if f.name in existing
                 and widened_type("postgres", sql_kind(existing[f.name]), arrow_kind(f.type))}
        widen_columns(self, table, existing, wider)
        return self.table_columns(table) if added or wider else existing

    def window_load(self, window: Window, key: str) -> WindowLoad:
        return PostgresWindowLoad(self, window, key)

    def push_down(self, spec: PushDown, window: Window, lineage: Mapping[str, Any], *, fence: Fence | None = None) -> PushDownStats:
        """The shared push-down, once the server's version says MERGE or DELETE + INSERT; the
        target's query field indexed (before, or after the push-down created the target)."""
        self.server_version()
        indexed = self.ensure_window_index(spec.target)
        stats = super().push_down(spec, window, lineage, fence=fence)
        if not indexed:
            self.ensure_window_index(spec.target)
        return stats

    def vacuum(self, table: TableRef) -> tuple[bool, str]:
        """VACUUM (outside a transaction); never raises: autovacuum reclaims the space anyway."""
        return self._maintain(table, "VACUUM", "not vacuumed now ({}); autovacuum reclaims the space later")

    def gather_statistics(self, table: TableRef) -> tuple[bool, str]:
        """ANALYZE the table, so the planner sees the rows now in it."""
        return self._maintain(table, "ANALYZE", "not gathered: {}")

    def _maintain(self, table: TableRef, command: str, failed: str) -> tuple[bool, str]:
        """Run ``command`` on ``table``; (done, what happened), ``failed`` formatted with the error."""
        try:
            with self.sql(self.where(table, command.lower())) as s:
                s.execute(f"{command} {self.dialect.qualified(table)}")
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return False, failed.format(str(exc).splitlines()[0])
        return True, f"{command} {table}"

    def write_problem(self, table: TableRef) -> str | None:
        """Insert nothing into the table (or create a scratch table beside it) and roll back."""
        d = self.dialect
        try:
            with self.sql(self.where(table, "try a write to")) as s, s.transaction():
                if self.table_exists(table):
                    s.execute(f"INSERT INTO {d.qualified(table)} SELECT * FROM {d.qualified(table)} LIMIT 0")
                else:
                    schema, _ = self._parts(table)
                    if not s.rows("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = ?", [schema]):
                        s.execute(f"CREATE SCHEMA {d.owned(schema)}")
                    s.execute(f"CREATE TABLE {d.qualified(table.sibling('__drivetrain_write_probe'))} (probe INTEGER)")
                raise _RolledBack
        except _RolledBack:
            return None
        except Exception as exc:  # noqa: BLE001 - the reason is the answer
            return str(exc).splitlines()[0]

    def drive_store(self, table: TableRef) -> DriveStore:
        return PostgresDriveStore(self, table)


def window_index_name(table: TableRef) -> str:
    """The name of the index drivetrain gives a table's query field: the table's name and a
    digest of (table, field), within PostgreSQL's 63 characters."""
    import hashlib

    name = table.name.lower()
    digest = hashlib.sha256(f"{name}\0{table.query_field}".encode()).hexdigest()[:8]
    return f"{name[:45]}_window_{digest}"


class _RolledBack(Exception):
    """Raised to roll back a trial write."""
