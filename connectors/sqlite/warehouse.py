"""The SQLite "warehouse" of a ``drive_table`` section: a file holding only the drive table.

Config::

    "drive_table": {"type": "sqlite", "path": "drive.sqlite"}

It implements the warehouse interface so the shared drive store (:mod:`drivetrain.sql.drive`)
runs on it; loading windows is refused, and a ``stage_system`` or ``target_system`` of type
``sqlite`` is a config error naming the key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.errors import ConfigError, PermanentError
from drivetrain.warehouse import TableRef, Warehouse, WindowLoad

from .dialect import SqliteDialect
from .drive import SqliteDriveStore
from .session import Connections, SqliteSession, about

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import Credentials, SystemConfig
    from drivetrain.drive import DriveStore
    from drivetrain.window import Window

#: The file of a ``drive_table`` section of type sqlite that names no path.
DEFAULT_FILE = "drive.sqlite"


class SqliteWarehouse(Warehouse):
    """A SQLite file holding the drive table, its leases and its meta rows (nothing else)."""

    type_name = "sqlite"
    dialect = SqliteDialect()
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "type": {"const": "sqlite", "description": (
                "A SQLite file in WAL mode holding only the drive table (drive_table only): many processes read it "
                "while one writes, each write a short transaction, so pipelines sharing it never wait for each "
                "other's phases.")},
            "credentials_ref": {"type": "string", "description": "Unused by SQLite; allowed for symmetry."},
            "path": {"type": "string", "description": (
                "SQLite file; relative to the config's folder. Default drive.sqlite. Give pipelines the same path "
                "to share one drive table.")},
            "table": {"type": "string", "description": "Name of the drive table. Default pipeline_execution_drive."},
            "lock_timeout_seconds": {"type": "number", "minimum": 0, "description": (
                "How long a write waits for another process's write to finish (SQLite's busy timeout). Default 120.")},
        },
        "required": ["type"],
        "additionalProperties": False,
    }

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        if config.role != "drive_table":
            raise ConfigError(f"{config.source_file}: {config.json_path}.type: 'sqlite' holds only the drive table "
                              f"(drive_table.type); {config.role} needs a warehouse such as duckdb, postgres or snowflake")
        super().__init__(config, credentials)
        self.path: Path = (config.path("path") or (config.base_dir / DEFAULT_FILE)).resolve()
        self.pool = Connections(self.path, float(config.get("lock_timeout_seconds", 120)))

    @classmethod
    def at(cls, path: Path, *, lock_timeout: float, source_file: str = "config.json") -> SqliteWarehouse:
        """The SQLite drive file at ``path`` (for another warehouse keeping its drive table there)."""
        from drivetrain.config import SystemConfig

        section = {"type": "sqlite", "path": str(path), "lock_timeout_seconds": lock_timeout}
        return cls(SystemConfig._build("drive_table", section, base_dir=path.parent, source_file=source_file))  # noqa: SLF001

    def local_files(self) -> list[Path]:
        return [self.path]

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    @contextmanager
    def sql(self, what: str, *, retry: bool = False) -> Iterator[SqliteSession]:
        """A connection for the block (this thread's held one inside :meth:`session`); SQLite's
        busy timeout already waits for a writer, so nothing is retried here."""
        with self.pool.connect(what) as conn:
            yield SqliteSession(conn, about(self.path, what))

    def session(self) -> AbstractContextManager[object]:
        return self.pool.hold()

    def keep_open(self) -> AbstractContextManager[object]:
        return self.pool.hold()

    def table_ref(self, role_options: Mapping[str, Any], query_field: str | None) -> TableRef:
        return TableRef(name=role_options["table"], query_field=query_field)

    def ensure_schema(self, table: TableRef) -> None:
        """A SQLite file has no schemas."""

    def table_columns(self, table: TableRef) -> dict[str, str]:
        if not self.path.exists():
            return {}
        with self.sql(f"columns of {table.name}") as s:
            rows = s.rows("SELECT name, type FROM pragma_table_info(?)", [table.name])
        return {name: dtype for name, dtype in rows}

    def _refuse(self, what: str) -> PermanentError:
        return PermanentError(f"{self.describe()}: SQLite holds only the drive table; it cannot {what}")

    def ensure_table(self, table: TableRef, schema: pa.Schema) -> None:
        raise self._refuse(f"hold the table {table.name}")

    def window_load(self, window: Window, key: str) -> WindowLoad:
        raise self._refuse("load a window")

    def drive_store(self, table: TableRef) -> DriveStore:
        return SqliteDriveStore(self, table)

    def same_warehouse(self, other: Warehouse) -> bool:
        return isinstance(other, SqliteWarehouse) and other.path == self.path
