"""DuckDB as warehouse: stage and target in one embedded file, the drive table beside it.

The drive table lives in its own small file (``drive_path``, default ``drive.sqlite`` beside the
warehouse file): a SQLite file in WAL mode, written in transactions of a few milliseconds and read
without waiting (see :mod:`drivetrain.connectors.sqlite`), so a phase holding the warehouse file for
its whole length never makes ``status`` or a report wait, and pipelines with their own warehouse
files can share one drive table. A ``drive_path`` naming a DuckDB file keeps the drive table there,
handed over between processes (see :mod:`.drive`); the runs of a folder written before the SQLite
default (``drive.duckdb``, or the one-file layout) move into ``drive.sqlite`` once, at its first use.

Loads are Arrow scans (no row-by-row INSERT, see :mod:`.load`); everything else is the shared
SQL layer (:mod:`drivetrain.sql`) in DuckDB's dialect (:mod:`.sql`). What is DuckDB's own: the
connection pool and its file lock, schema creation, DDL from Arrow schemas, VACUUM.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain._lazy import lazy_module
from drivetrain.errors import ConfigError
from drivetrain.ownership import OWNERS_TABLE
from drivetrain.warehouse import TableRef, Warehouse, WindowLoad, check_identifier

from .connection import ConnectionPool, duckdb_errors
from .drive import DuckDBDriveStore
from .load import DuckDBWindowLoad
from .sql import DuckDBDialect, DuckDBSession, qualified, quote

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from drivetrain.config import Credentials, SystemConfig
    from drivetrain.drive import DriveStore
    from drivetrain.window import Window
else:  # imported on first use: reading commands that open no connection do not pay for them
    duckdb = lazy_module("duckdb")
    pa = lazy_module("pyarrow")

_batch_names = itertools.count()
#: Up to this many matching rows, DuckDB reads the drive table through its indexes (pipeline_name,
#: pipeline_id) rather than scanning it: one pipeline's year of hourly runs is about 9,000 rows,
#: above DuckDB's default (2,048), and a scan of a fleet's 4.4M rows costs 10x the index read.
INDEX_SCAN_ROWS = 50_000
#: A ``drive_path`` ending so keeps the drive table in SQLite rather than DuckDB.
SQLITE_SUFFIXES = (".sqlite", ".sqlite3")
#: The drive file beside the warehouse file when the config names no ``drive_path``.
DEFAULT_DRIVE_FILE = "drive.sqlite"
#: The DuckDB drive file of earlier versions' default: a SQLite drive file's runs move from it.
DUCKDB_DRIVE_FILE = "drive.duckdb"
__all__ = ["DuckDBWarehouse", "qualified", "quote"]


class DuckDBWarehouse(Warehouse):
    """Stage and target in a local DuckDB file, the drive table beside it (SQLite by default)."""

    type_name = "duckdb"
    dialect = DuckDBDialect()
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "type": {"const": "duckdb", "description": "An embedded DuckDB file holding stage and target; the drive table beside it (see drive_path)."},
            "credentials_ref": {"type": "string", "description": "Unused by DuckDB; allowed for symmetry."},
            "path": {"type": "string", "description": "DuckDB file; relative to the config's folder. Default warehouse.duckdb."},
            "schema": {"type": "string", "description": "Schema holding the table. Default main."},
            "table": {"type": "string", "description": "Table name: letters, digits and underscores."},
            "database": {"type": "string", "description": "Ignored by DuckDB (kept so a Snowflake section can be tried locally)."},
            "temp_table_prefix": {"type": "string", "description": "Ignored: DuckDB loads a window inside one transaction, without temporary tables."},
            "lock_timeout_seconds": {"type": "number", "minimum": 0, "description": "How long to wait for another process to release the file. Default 120."},
            "memory_limit": {"type": "string", "description": "DuckDB memory_limit, e.g. '2GB'."},
            "threads": {"type": "integer", "minimum": 1, "description": "DuckDB worker threads. Default: all cores."},
            "compress_stage": {"type": "boolean", "description": (
                "stage_system only. Default false: a window's text columns are written to the stage uncompressed "
                "while its insert runs on one thread (always under the default memory_limit), about 40% less CPU for "
                "that insert, for 2-4 times the disk until stage cleaning deletes the window (the target is always "
                "compressed). true: compressed, for a small or slow disk.")},
            "drive_path": {"type": "string", "description": (
                "File holding the drive table and its leases, so status and reports never wait for a running phase; "
                "relative to the config's folder. A DuckDB file is kept open by a run between its writes but handed "
                "over within milliseconds to any process that asks. "
                "Default drive.sqlite beside 'path'. Give pipelines the same drive_path to share one drive table. "
                "The same file as 'path' keeps the drive table inside the warehouse file (the layout of drivetrain 0.1: "
                "readers then wait for a running phase). A file ending in .sqlite (the default) keeps it in SQLite (WAL): "
                "no hand-over, so pipelines running at the same time share it without waiting; the runs already in "
                "drive.duckdb (or the warehouse file) are moved into it once, at its first use. Name a .duckdb file "
                "(drive.duckdb was the default before) to keep the drive table in DuckDB.")},
        },
        "required": ["type"],
        "additionalProperties": False,
    }

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        if config.get("compress_stage") is not None and config.role != "stage_system":
            raise ConfigError(f"{config.source_file}: {config.json_path}.compress_stage: applies to stage_system only "
                              "(how the stage table stores a window; the target is always compressed): move it there "
                              "or remove it")
        super().__init__(config, credentials)
        self.path: Path = (config.path("path") or (config.base_dir / "warehouse.duckdb")).resolve()
        self.schema = check_identifier(config.get("schema") or "main", "schema")
        settings: dict[str, Any] = {}
        if config.get("memory_limit"):
            settings["memory_limit"] = str(config.get("memory_limit"))
        if config.get("threads"):
            settings["threads"] = int(config.get("threads"))
        self.pool = ConnectionPool(self.path, lock_timeout=float(config.get("lock_timeout_seconds", 120)), settings=settings)
        self._known_schemas: set[str] = set()
        self.drive_path: Path = (config.path("drive_path") or self.path.with_name(DEFAULT_DRIVE_FILE)).resolve()
        self.momentary = False
        """True for the drive file's own warehouse: never held for a phase (a session), only
        kept between statements by a run that lets go as soon as another process asks."""

    def drive_home(self) -> DuckDBWarehouse:
        """The warehouse over :attr:`drive_path`: same settings, its own connection pool, and a
        connection that is never held for a phase: a run keeps it between its drive writes and
        closes it as soon as another process asks for the file (see :mod:`.handover`)."""
        if self.drive_path == self.path:
            return self
        home = copy.copy(self)
        home.path, home.momentary, home._known_schemas = self.drive_path, True, set()
        home.__dict__.pop("_drivetrain_schemas", None)
        settings = {k: v for k, v in self.pool.settings.items() if k != "temp_directory"}
        settings["index_scan_max_count"] = INDEX_SCAN_ROWS
        settings["checkpoint_threshold"] = "1MB"  # the WAL a next opening replays stays small
        # Handed over within milliseconds, so a waiting process tries again soon; and closing
        # does not checkpoint (committed rows are safe in the WAL): a hand-over cost 20-50 ms
        # more with a checkpoint at every close.
        home.pool = ConnectionPool(self.drive_path, lock_timeout=self.pool.lock_timeout, settings=settings,
                                   retry=(0.005, 0.05), init=("PRAGMA disable_checkpoint_on_shutdown",),
                                   gate=self.drive_path.with_name(self.drive_path.name + ".locks") / "open.gate")
        return home

    def local_files(self) -> list[Path]:
        return [self.path]

    def describe(self) -> str:
        return f"duckdb:{self.path}"

    def connect(self):  # noqa: ANN201 - context manager of a DuckDB connection
        return self.pool.connect()

    def session(self) -> AbstractContextManager[object]:
        """Holds this thread's connection for the block, the file opening meanwhile on a thread of
        its own (not for the drive file: see :meth:`drive_home`)."""
        return nullcontext() if self.momentary else self.pool.session()

    def keep_open(self) -> AbstractContextManager[object]:
        """Keeps the connection between uses for a run (see ConnectionPool.keep_open); the drive
        file's too, which another process asking for it gets within milliseconds, even in the
        middle of a phase."""
        return self.pool.keep_open()

    @contextmanager
    def sql(self, what: str, *, retry: bool = False) -> Iterator[DuckDBSession]:
        """This thread's connection (the file lock of the pool); DuckDB has no transient errors to retry."""
        with self.connect() as conn, duckdb_errors(what):
            yield DuckDBSession(conn)

    # -- tables ---------------------------------------------------------------------------

    def table_ref(self, role_options: Mapping[str, Any], query_field: str | None) -> TableRef:
        return TableRef(name=role_options["table"], schema=role_options.get("schema") or self.schema, query_field=query_field)

    def ensure_schema(self, table: TableRef) -> None:
        schema = table.schema or "main"
        if schema in self._known_schemas or schema == "main":
            return
        with self.connect() as conn, duckdb_errors(f"{self.describe()}: create schema {schema}"):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        self._known_schemas.add(schema)

    def table_columns(self, table: TableRef) -> dict[str, str]:
        """Column names and types of ``table`` in this file ({} when it does not exist).

        Read from ``duckdb_columns()`` directly: ``information_schema.columns`` is a view that
        builds every column of every catalog before filtering (7 ms a look-up against 1.4 ms,
        and a run looks a table up about twenty times)."""
        with self.connect() as conn, duckdb_errors(self.describe()):
            rows = conn.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ? ORDER BY column_index",
                [table.schema or "main", table.name],
            ).fetchall()
        return {name: dtype for name, dtype in rows}

    def ensure_table(self, table: TableRef, schema: pa.Schema) -> None:
        self.ensure_schema(table)
        with self.connect() as conn, duckdb_errors(f"{self.describe()}: create {table}"):
            existing = self.table_columns(table)
            if not existing:
                name = f"_drivetrain_schema_{next(_batch_names)}"
                conn.register(name, schema.empty_table())
                try:
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {qualified(table)} AS SELECT * FROM {name} WITH NO DATA")
                finally:
                    conn.unregister(name)
                return
            from drivetrain.schema_types import arrow_kind, sql_kind, widen_columns, widened_type

            missing = [f for f in schema if f.name not in existing]
            # an existing column whose values got wider is widened where that loses nothing
            wider = [f for f in schema if f.name in existing and widened_type("duckdb", sql_kind(existing[f.name]), arrow_kind(f.type))]
            if missing or wider:
                name = f"_drivetrain_schema_{next(_batch_names)}"
                conn.register(name, pa.schema(missing + wider).empty_table())
                try:
                    described = conn.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
                finally:
                    conn.unregister(name)
                for column, dtype, *_ in described:
                    if column not in existing:
                        conn.execute(f"ALTER TABLE {qualified(table)} ADD COLUMN IF NOT EXISTS {quote(column)} {dtype}")
                widen_columns(self, table, existing, {c: t for c, t, *_ in described if c in existing})

    def claims_location(self, table: TableRef) -> str:
        return f"{self.describe()} {table.schema or 'main'}.{OWNERS_TABLE}"

    def window_load(self, window: Window, key: str) -> WindowLoad:
        return DuckDBWindowLoad(self, window, key)

    def same_warehouse(self, other: Warehouse) -> bool:
        return isinstance(other, DuckDBWarehouse) and other.path == self.path

    def vacuum(self, table: TableRef) -> tuple[bool, str]:
        """VACUUM and CHECKPOINT; never raises: space is reclaimed at a later checkpoint anyway."""
        try:
            with self.connect() as conn:
                conn.execute(f"VACUUM {qualified(table)}")
                conn.execute("CHECKPOINT")
        except duckdb.Error as exc:
            return False, f"not vacuumed now ({exc}); DuckDB reclaims the space at its next checkpoint"
        return True, "VACUUM and CHECKPOINT"

    def drive_store(self, table: TableRef) -> DriveStore:
        if self.drive_path.suffix in SQLITE_SUFFIXES:
            return self._sqlite_drive_store(table)
        return DuckDBDriveStore(self, table)

    def _sqlite_drive_store(self, table: TableRef) -> DriveStore:
        """A ``drive_path`` naming a ``.sqlite`` file: the drive table in SQLite (WAL), moved there
        once from ``drive.duckdb`` (or a one-file layout) beside the warehouse file, window locks
        kept in the DuckDB drive file's lock folder so runs of either layout exclude each other."""
        from drivetrain.connectors.sqlite import SqliteWarehouse
        from drivetrain.connectors.sqlite.drive import SqliteDriveStore
        from drivetrain.sql.window_locks import WindowLocks

        old = copy.copy(self)
        old.drive_path = self.path.with_name(DUCKDB_DRIVE_FILE)
        home = SqliteWarehouse.at(self.drive_path, lock_timeout=self.pool.lock_timeout, source_file=self.config.source_file)
        return SqliteDriveStore(home, table, previous=DuckDBDriveStore(old, table), locks=WindowLocks(old.drive_path))

    def write_problem(self, table: TableRef) -> str | None:
        """Insert nothing into the table (or create a scratch table beside it) and roll back."""
        try:
            with self.connect() as conn:
                conn.execute("BEGIN TRANSACTION")
                try:
                    if self.table_exists(table):
                        conn.execute(f"INSERT INTO {qualified(table)} SELECT * FROM {qualified(table)} LIMIT 0")
                    else:
                        if (table.schema or "main") != "main":
                            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.schema or 'main')}")
                        conn.execute(f"CREATE TABLE {qualified(table.sibling('__drivetrain_write_probe'))} (probe INTEGER)")
                finally:
                    conn.execute("ROLLBACK")
        except (duckdb.Error, OSError) as exc:
            return str(exc).splitlines()[0]
        return None

    def gather_statistics(self, table: TableRef) -> tuple[bool, str]:
        """ANALYZE the table, so DuckDB's optimizer sees the rows now in it."""
        try:
            with self.connect() as conn:
                conn.execute(f"ANALYZE {qualified(table)}")
        except duckdb.Error as exc:
            return False, f"not gathered: {str(exc).splitlines()[0]}"
        return True, f"ANALYZE {table}"
