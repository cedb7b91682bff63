"""The drive table in Snowflake, with its meta table; leases live in :mod:`.lease`.

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

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drivetrain.drive import SCHEMA_VERSION, DriveStore, Lease, SqlDialect
from drivetrain.errors import LeaseError, PermanentError
from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN
from drivetrain.record import RunRecord, RunStatus
from drivetrain.warehouse import TableRef

from .lease import LEASE_COLUMNS, LeaseTable
from .sql import folded, obj

if TYPE_CHECKING:
    from .warehouse import SnowflakeWarehouse

#: (record key, Snowflake type); the column is the key upper-cased.
COLUMNS: list[tuple[str, str]] = [
    ("pipeline_id", "VARCHAR NOT NULL"),
    ("pipeline_name", "VARCHAR NOT NULL"),
    ("pipeline_status", "VARCHAR NOT NULL"),
    ("pipeline_retry_number", "INTEGER NOT NULL DEFAULT 0"),
    ("pipeline_start_timestamp", "TIMESTAMP_TZ NOT NULL"),
    ("pipeline_end_timestamp", "TIMESTAMP_TZ"),
    ("pipeline_run_duration", "VARCHAR"),
    ("query_window_start_timestamp", "TIMESTAMP_TZ NOT NULL"),
    ("query_window_end_timestamp", "TIMESTAMP_TZ NOT NULL"),
    ("target_date", "DATE NOT NULL"),
    ("query_window_duration", "VARCHAR NOT NULL"),
    *[(VARIANT_COLUMN[name], "VARIANT") for name in PHASE_NAMES],
    ("phases_completed", "ARRAY"),
    ("phases_skipped", "ARRAY"),
    ("phase_failed", "VARCHAR"),
    ("phases_pending", "ARRAY"),
    ("heartbeat_at", "TIMESTAMP_TZ"),
    ("lease_holder", "VARCHAR"),
    ("config_hash", "VARCHAR"),
    ("config_snapshot", "VARIANT"),
    ("created_at", "TIMESTAMP_TZ NOT NULL"),
    ("updated_at", "TIMESTAMP_TZ NOT NULL"),
]
KIND = {name: sql_type.split()[0] for name, sql_type in COLUMNS}
NAMES = ", ".join(obj(name) for name, _ in COLUMNS)
LEASE_MUTEX = "lease_mutex"


def _now() -> datetime:
    return datetime.now(UTC)


def _decode(name: str, value: Any) -> Any:
    if KIND[name] in ("VARIANT", "ARRAY") and isinstance(value, str):
        return json.loads(value)
    return value


class SnowflakeDialect(SqlDialect):
    """Snowflake: VARIANT paths with ``:`` and casts; durations with DATEDIFF."""

    param = "?"

    def json_text(self, column: str, *path: str) -> str:
        return f"{column}:{_variant_path(path)}::string"

    def json_number(self, column: str, *path: str) -> str:
        return f"TRY_TO_DOUBLE({column}:{_variant_path(path)}::string)"

    def seconds_between(self, start: str, end: str) -> str:
        return f"(DATEDIFF('microsecond', {start}, {end}) / 1000000.0)"

    def array_contains(self, column: str, value_sql: str) -> str:
        return f"ARRAY_CONTAINS({value_sql}::variant, {column})"


def _variant_path(path: tuple[str, ...]) -> str:
    return SqlDialect.dotted(path)


class SnowflakeDriveStore(DriveStore):
    """``<DB>.<SCHEMA>.PIPELINE_EXECUTION_DRIVE`` plus ``DRIVETRAIN_LEASES`` and ``DRIVETRAIN_META``."""

    def __init__(self, warehouse: SnowflakeWarehouse, table: TableRef) -> None:
        self.wh = warehouse
        self.table = table
        self.meta = TableRef(name="drivetrain_meta", schema=table.schema, database=table.database)
        self.leases = LeaseTable(self, TableRef(name="drivetrain_leases", schema=table.schema, database=table.database))
        parts = (table.database or warehouse.options.database, table.schema or warehouse.options.schema, table.name)
        self.location = f"{warehouse.describe()}: {'.'.join(folded(p) for p in parts)}"
        self._ready = False
        self.dialect = SnowflakeDialect()
        self.table_sql = self.q(table)

    def q(self, table: TableRef) -> str:
        return self.wh.qualified(table)

    def run(self, sql: str, params: Sequence[Any] | None = None, *, hints: dict[str, Any] | None = None) -> Any:
        """One idempotent statement, retried on transient errors; returns the cursor."""
        return self.wh.pool.retrying(lambda s: s.execute(sql, params, what=f"drive table {self.location}", hints=hints))

    def rows(self, sql: str, params: Sequence[Any] | None = None, *, hints: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.wh.pool.retrying(lambda s: s.rows(sql, params, what=f"drive table {self.location}", hints=hints))

    # -- schema ---------------------------------------------------------------------------

    def ensure(self) -> None:
        if self._ready:
            return
        self.wh.ensure_schema(self.table)
        cols = ", ".join(f"{obj(n)} {t}" for n, t in COLUMNS)
        self.run(f"CREATE TABLE IF NOT EXISTS {self.q(self.table)} ({cols})")
        lease_cols = ", ".join(f"{obj(n)} {t}" for n, t in LEASE_COLUMNS)
        self.run(f"CREATE TABLE IF NOT EXISTS {self.q(self.leases.ref)} ({lease_cols})")
        self.run(f"CREATE TABLE IF NOT EXISTS {self.q(self.meta)} (META_KEY VARCHAR NOT NULL, META_VALUE VARCHAR)")
        versions = [int(r[0]) for r in self.rows(f"SELECT META_VALUE FROM {self.q(self.meta)} WHERE META_KEY = 'schema_version'")]
        if not versions:
            self._put_meta("schema_version", str(SCHEMA_VERSION))
        elif max(versions) > SCHEMA_VERSION:
            raise PermanentError(
                f"{self.location}: the drive table has layout version {max(versions)}, newer than this "
                f"drivetrain understands ({SCHEMA_VERSION}); upgrade drivetrain"
            )
        else:
            self._migrate(max(versions))
        self._put_meta(LEASE_MUTEX, "")
        self._ready = True

    def _put_meta(self, key: str, value: str) -> None:
        """Insert a meta row unless one exists (a duplicate from a race is harmless)."""
        meta = self.q(self.meta)
        self.run(
            f"INSERT INTO {meta} (META_KEY, META_VALUE) SELECT ?, ? FROM (SELECT 1) AS one "
            f"WHERE NOT EXISTS (SELECT 1 FROM {meta} WHERE META_KEY = ?)",
            [key, value, key],
        )

    def _migrate(self, version: int) -> None:
        """Add the columns of newer layouts (version 1 is the first)."""
        existing = {name.upper() for name in self.wh.table_columns(self.table)}
        for name, sql_type in COLUMNS:
            if name.upper() not in existing:
                self.run(f"ALTER TABLE {self.q(self.table)} ADD COLUMN {obj(name)} {sql_type.replace(' NOT NULL', '')}")
        if version < SCHEMA_VERSION:
            self.run(f"UPDATE {self.q(self.meta)} SET META_VALUE = ? WHERE META_KEY = 'schema_version'", [str(SCHEMA_VERSION)])

    # -- rows -----------------------------------------------------------------------------

    def _row(self, record: RunRecord) -> dict[str, Any]:
        row = record.to_row()
        row["updated_at"] = _now()
        row["created_at"] = row["created_at"] or row["updated_at"]
        if record.pipeline_status is RunStatus.RUNNING:
            row["heartbeat_at"] = row["updated_at"]
        return row

    @staticmethod
    def _value_sql(name: str, value: Any) -> tuple[str, list[Any]]:
        """SQL for one column's value and its parameters (VARIANT via PARSE_JSON, ARRAY via ARRAY_CONSTRUCT)."""
        kind = KIND[name]
        if kind == "VARIANT":
            return "PARSE_JSON(?)", [None if value is None else json.dumps(value, default=str)]
        if kind == "ARRAY":
            items = list(value or [])
            return f"ARRAY_CONSTRUCT({', '.join('?' for _ in items)})", items
        return "?", [value]

    def insert(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        row = self._row(record)
        exprs, params = [], []
        for name, _ in COLUMNS:
            sql, values = self._value_sql(name, row[name])
            exprs.append(sql)
            params.extend(values)
        guard, guard_params = self.leases.fence_sql(fence)
        table = self.q(self.table)
        hints = {"pipeline": record.pipeline_name, "run_id": record.pipeline_id}
        cursor = self.run(
            f"INSERT INTO {table} ({NAMES}) SELECT {', '.join(exprs)} FROM (SELECT 1) AS one "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE PIPELINE_ID = ?){guard}",
            [*params, record.pipeline_id, *guard_params], hints=hints,
        )
        if int(cursor.rowcount or 0) < 1 and self.get(record.pipeline_id) is None:
            raise self._lost(record, fence)

    def update(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        row = self._row(record)
        sets, params = [], []
        for name, _ in COLUMNS:
            if name in ("pipeline_id", "created_at"):
                continue
            sql, values = self._value_sql(name, row[name])
            sets.append(f"{obj(name)} = {sql}")
            params.extend(values)
        guard, guard_params = self.leases.fence_sql(fence)
        hints = {"pipeline": record.pipeline_name, "run_id": record.pipeline_id}
        cursor = self.run(
            f"UPDATE {self.q(self.table)} SET {', '.join(sets)} WHERE PIPELINE_ID = ?{guard}",
            [*params, record.pipeline_id, *guard_params], hints=hints,
        )
        if int(cursor.rowcount or 0) < 1:
            raise self._lost(record, fence)

    def _lost(self, record: RunRecord, fence: Lease | None) -> Exception:
        if fence is not None:
            return LeaseError(f"run {record.pipeline_id} lost the lease of its window to another run; it stops without writing")
        return PermanentError(f"{self.location}: run {record.pipeline_id} is not in the drive table")

    def _select(self, where: str = "", params: Sequence[Any] = (), order: str = "", limit: int | None = None) -> list[RunRecord]:
        self.ensure()
        sql = f"SELECT {NAMES} FROM {self.q(self.table)}"
        if where:
            sql += f" WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = []
        for values in self.rows(sql, list(params)):
            data = {name: _decode(name, v) for (name, _), v in zip(COLUMNS, values, strict=True)}
            out.append(RunRecord.from_row(data, where=self.location))
        return out

    def get(self, pipeline_id: str) -> RunRecord | None:
        found = self._select("PIPELINE_ID = ?", [pipeline_id], order="UPDATED_AT DESC", limit=1)
        return found[0] if found else None

    def attempts(self, pipeline_name: str, window_start: datetime, window_end: datetime) -> list[RunRecord]:
        return self._select(
            "PIPELINE_NAME = ? AND QUERY_WINDOW_START_TIMESTAMP = ? AND QUERY_WINDOW_END_TIMESTAMP = ?",
            [pipeline_name, window_start, window_end],
            order="PIPELINE_START_TIMESTAMP, PIPELINE_RETRY_NUMBER",
        )

    def history(self, pipeline_name: str | None = None, *, status: Sequence[RunStatus] = (), limit: int | None = None) -> list[RunRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if pipeline_name is not None:
            clauses.append("PIPELINE_NAME = ?")
            params.append(pipeline_name)
        if status:
            clauses.append(f"PIPELINE_STATUS IN ({', '.join('?' for _ in status)})")
            params.extend(s.value for s in status)
        return self._select(" AND ".join(clauses), params, order="PIPELINE_START_TIMESTAMP DESC, PIPELINE_ID DESC", limit=limit)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """A report query; column names come back lower-case, as the DuckDB store gives them."""
        self.ensure()
        cursor = self.run(sql, list(params))
        names = [d[0].lower() for d in cursor.description]
        return [{n: _decode(n.upper(), v) if n.upper() in KIND else v for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]

    def pipelines(self) -> list[str]:
        self.ensure()
        return [r[0] for r in self.rows(f"SELECT DISTINCT PIPELINE_NAME FROM {self.q(self.table)} ORDER BY 1")]

    def heartbeat(self, pipeline_id: str, at: datetime) -> None:
        self.run(f"UPDATE {self.q(self.table)} SET HEARTBEAT_AT = ? WHERE PIPELINE_ID = ?", [at, pipeline_id],
                 hints={"run_id": pipeline_id, "phase": "heartbeat"})

    def check(self) -> list[str]:
        """Warns when the server or driver returns NULL timestamps as values (see lease.py)."""
        from .lease import null_timestamp_problem

        problem = self.wh.pool.retrying(null_timestamp_problem)
        return [problem] if problem else []

    # -- leases (see lease.py) ------------------------------------------------------------

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
