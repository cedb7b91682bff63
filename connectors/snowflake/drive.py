"""The drive table in Snowflake: the shared SQL drive store, with leases from :mod:`.lease`.

Columns have the spec's types: VARCHAR, INTEGER, TIMESTAMP_TZ, DATE, VARIANT for each phase's
state and the config snapshot, ARRAY for the ``phases_*`` lists. Values are bound parameters:
VARIANTs are written with ``PARSE_JSON(?)``, ARRAYs with ``ARRAY_CONSTRUCT(?, ...)``, always in
``INSERT ... SELECT`` or ``UPDATE ... SET`` (Snowflake refuses functions in ``VALUES``). The
tables and their columns are upper-case names, so they can be queried without quotes.

``ensure`` creates the drive table, ``DRIVETRAIN_LEASES`` and ``DRIVETRAIN_META`` (schema version
and the row acquirers lock) on first use and adds columns a newer layout introduced. Every
statement is retried a few times on a transient error: each is idempotent (full-row updates,
inserts guarded by NOT EXISTS), and the runner does not retry drive-table writes itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.drive import Lease
from drivetrain.sql.drive import SqlDriveStore

from .lease import LEASE_COLUMNS, LeaseTable, null_timestamp_problem
from .sql import SnowflakeDialect, folded

if TYPE_CHECKING:
    from drivetrain.warehouse import TableRef

    from .connection import SnowflakeHome

LEASE_MUTEX = "lease_mutex"
__all__ = ["LEASE_MUTEX", "SnowflakeDialect", "SnowflakeDriveStore"]  # the dialect moved to .sql


class SnowflakeDriveStore(SqlDriveStore):
    """``<DB>.<SCHEMA>.PIPELINE_EXECUTION_DRIVE`` plus ``DRIVETRAIN_LEASES`` and ``DRIVETRAIN_META``."""

    lease_columns: ClassVar[list[tuple[str, str, bool]]] = LEASE_COLUMNS
    meta_columns: ClassVar[tuple[str, str]] = ("META_KEY", "META_VALUE")
    meta_rows: ClassVar[dict[str, str]] = {LEASE_MUTEX: ""}  # the row acquirers lock (see lease.py)

    def __init__(self, warehouse: SnowflakeHome, table: TableRef) -> None:
        super().__init__(warehouse, table)
        self.wh: SnowflakeHome = warehouse
        self.leases = LeaseTable(self, self.leases_ref)
        parts = (table.database or warehouse.options.database, table.schema or warehouse.options.schema, table.name)
        self.location = f"{warehouse.describe()}: {'.'.join(folded(p) for p in parts)}"

    def q(self, table: TableRef) -> str:
        return self.wh.qualified(table)

    def run(self, sql: str, params: Sequence[Any] | None = None, *, hints: dict[str, Any] | None = None) -> Any:
        """One idempotent statement, retried on transient errors; returns the cursor."""
        return self.wh.pool.retrying(lambda s: s.execute(sql, params, what=f"drive table {self.location}", hints=hints))

    def check(self) -> list[str]:
        """Warns when the server or driver returns NULL timestamps as values (see lease.py)."""
        problem = self.wh.pool.retrying(null_timestamp_problem)
        return [problem] if problem else []

    # -- leases (see lease.py) ------------------------------------------------------------

    def fence_sql(self, lease: Lease | None) -> tuple[str, list[Any]]:
        return self.leases.fence_sql(lease)

    def acquire_lease(self, pipeline_name: str, window_start: datetime, window_end: datetime, holder: str, seconds: float) -> Lease:
        self.ensure()
        return self.leases.acquire(pipeline_name, window_start, window_end, holder, seconds)

    def renew_lease(self, lease: Lease, seconds: float) -> Lease:
        return self.leases.renew(lease, seconds)

    def release_lease(self, lease: Lease, *, keep_row: bool = False) -> None:
        if keep_row:
            self.leases.let_go(lease)
        else:
            self.leases.release(lease)

    def verify_lease(self, lease: Lease) -> None:
        self.leases.verify(lease)

    def current_lease(self, pipeline_name: str, window_start: datetime) -> Lease | None:
        self.ensure()
        return self.leases.current(pipeline_name, window_start)
