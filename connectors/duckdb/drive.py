"""The drive table, its leases and its schema version, in DuckDB.

VARIANT columns are DuckDB ``JSON``; ARRAY columns are ``VARCHAR[]``. Every statement runs under
a process-wide lock (the heartbeat thread and the runner share the store) and inside the
connection pool's file lock (other processes wait their turn).

The lease of a window is an OS file lock (``flock``) on ``<db>.locks/<pipeline>__<window>.lock``,
held for the whole run, plus a row in ``drivetrain_leases`` carrying the holder and the fencing
token. The kernel drops the file lock when the holder dies, even by SIGKILL, so a crashed
run's window is free at once; a paused one keeps it. Lock files are never deleted: removing a
file another process has open would let two processes lock two different files.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivetrain.drive import SCHEMA_VERSION, DriveStore, Lease, SqlDialect
from drivetrain.errors import LeaseError, PermanentError
from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN
from drivetrain.record import RunRecord, RunStatus
from drivetrain.warehouse import TableRef

from .connection import duckdb_errors, transaction
from .warehouse import qualified, quote

if TYPE_CHECKING:
    from .warehouse import DuckDBWarehouse


COLUMNS: list[tuple[str, str]] = [
    ("pipeline_id", "VARCHAR NOT NULL"),
    ("pipeline_name", "VARCHAR NOT NULL"),
    ("pipeline_status", "VARCHAR NOT NULL"),
    ("pipeline_retry_number", "INTEGER NOT NULL DEFAULT 0"),
    ("pipeline_start_timestamp", "TIMESTAMPTZ NOT NULL"),
    ("pipeline_end_timestamp", "TIMESTAMPTZ"),
    ("pipeline_run_duration", "VARCHAR"),
    ("query_window_start_timestamp", "TIMESTAMPTZ NOT NULL"),
    ("query_window_end_timestamp", "TIMESTAMPTZ NOT NULL"),
    ("target_date", "DATE NOT NULL"),
    ("query_window_duration", "VARCHAR NOT NULL"),
    *[(VARIANT_COLUMN[name], "JSON") for name in PHASE_NAMES],
    ("phases_completed", "VARCHAR[]"),
    ("phases_skipped", "VARCHAR[]"),
    ("phase_failed", "VARCHAR"),
    ("phases_pending", "VARCHAR[]"),
    ("heartbeat_at", "TIMESTAMPTZ"),
    ("lease_holder", "VARCHAR"),
    ("config_hash", "VARCHAR"),
    ("config_snapshot", "JSON"),
    ("created_at", "TIMESTAMPTZ NOT NULL DEFAULT current_timestamp"),
    ("updated_at", "TIMESTAMPTZ NOT NULL DEFAULT current_timestamp"),
]
JSON_COLUMNS = {name for name, sql_type in COLUMNS if sql_type == "JSON"}
_LOCK = threading.RLock()


def _now() -> datetime:
    return datetime.now(UTC)


class DuckDBDialect(SqlDialect):
    """DuckDB: JSON columns read with json_extract_string / json_extract."""

    def json_text(self, column: str, *path: str) -> str:
        return f"json_extract_string({quote(column)}, '{_json_path(path)}')"

    def json_number(self, column: str, *path: str) -> str:
        return f"TRY_CAST(json_extract({quote(column)}, '{_json_path(path)}') AS DOUBLE)"

    def seconds_between(self, start: str, end: str) -> str:
        return f"(epoch({end}) - epoch({start}))"

    def array_contains(self, column: str, value_sql: str) -> str:
        return f"list_contains({quote(column)}, {value_sql})"


def _json_path(path: tuple[str, ...]) -> str:
    return "$." + SqlDialect.dotted(path)


class DuckDBDriveStore(DriveStore):
    """Drive table ``<schema>.pipeline_execution_drive`` plus ``drivetrain_leases`` and ``drivetrain_meta``."""

    def __init__(self, warehouse: DuckDBWarehouse, table: TableRef) -> None:
        self.wh = warehouse
        self.table = table
        self.leases = TableRef(name="drivetrain_leases", schema=table.schema)
        self.meta = TableRef(name="drivetrain_meta", schema=table.schema)
        self.location = f"{warehouse.path}: {table}"
        self.dialect = DuckDBDialect()
        self.table_sql = qualified(table)
        self._ready = False
        self._file_locks: dict[tuple[str, datetime], int] = {}

    # -- schema ---------------------------------------------------------------------------

    def ensure(self) -> None:
        if self._ready:
            return
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            self.wh.ensure_schema(conn, self.table.schema)
            cols = ", ".join(f"{quote(n)} {t}" for n, t in COLUMNS)
            conn.execute(f"CREATE TABLE IF NOT EXISTS {qualified(self.table)} ({cols})")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {qualified(self.leases)} (pipeline_name VARCHAR NOT NULL, "
                "window_start TIMESTAMPTZ NOT NULL, window_end TIMESTAMPTZ NOT NULL, holder VARCHAR NOT NULL, "
                "token BIGINT NOT NULL, acquired_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
            )
            conn.execute(f"CREATE TABLE IF NOT EXISTS {qualified(self.meta)} (key VARCHAR NOT NULL, value VARCHAR)")
            row = conn.execute(f"SELECT value FROM {qualified(self.meta)} WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(f"INSERT INTO {qualified(self.meta)} VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            elif int(row[0]) > SCHEMA_VERSION:
                raise PermanentError(
                    f"{self.location}: the drive table has layout version {row[0]}, newer than this "
                    f"drivetrain understands ({SCHEMA_VERSION}); upgrade drivetrain"
                )
            else:
                self._migrate(conn, int(row[0]))
        self._ready = True

    def _migrate(self, conn: Any, version: int) -> None:
        """Bring an older layout up to SCHEMA_VERSION (version 1 is the first layout)."""
        existing = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [self.table.schema or "main", self.table.name],
        ).fetchall()}
        for name, sql_type in COLUMNS:
            if name not in existing:
                conn.execute(f"ALTER TABLE {qualified(self.table)} ADD COLUMN {quote(name)} {sql_type.replace(' NOT NULL', '')}")
        if version < SCHEMA_VERSION:
            conn.execute(f"UPDATE {qualified(self.meta)} SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])

    # -- rows -----------------------------------------------------------------------------

    def _values(self, record: RunRecord) -> list[Any]:
        row = record.to_row()
        row["updated_at"] = _now()
        row["created_at"] = row["created_at"] or row["updated_at"]
        row["heartbeat_at"] = row["updated_at"] if record.pipeline_status is RunStatus.RUNNING else row["heartbeat_at"]
        return [json.dumps(row[n], default=str) if n in JSON_COLUMNS and row[n] is not None else row[n] for n, _ in COLUMNS]

    def _fence_sql(self, fence: Lease | None) -> tuple[str, list[Any]]:
        if fence is None:
            return "", []
        return (
            f" AND EXISTS (SELECT 1 FROM {qualified(self.leases)} WHERE pipeline_name = ? AND window_start = ? AND token = ?)",
            [fence.pipeline_name, fence.window_start, fence.token],
        )

    def insert(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        names = ", ".join(quote(n) for n, _ in COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            if fence is not None:
                self._check_fence(conn, fence)
            conn.execute(f"INSERT INTO {qualified(self.table)} ({names}) VALUES ({marks})", self._values(record))

    def update(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        sets = ", ".join(f"{quote(n)} = ?" for n, _ in COLUMNS if n not in ("pipeline_id", "created_at"))
        values = [v for (n, _), v in zip(COLUMNS, self._values(record), strict=True) if n not in ("pipeline_id", "created_at")]
        extra, extra_params = self._fence_sql(fence)
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            changed = conn.execute(
                f"UPDATE {qualified(self.table)} SET {sets} WHERE pipeline_id = ?{extra}",
                [*values, record.pipeline_id, *extra_params],
            ).fetchone()[0]
        if changed != 1:
            if fence is not None:
                raise LeaseError(
                    f"run {record.pipeline_id} lost the lease of its window to another run; "
                    "it stops without writing", holder=None,
                )
            raise PermanentError(f"{self.location}: run {record.pipeline_id} is not in the drive table")

    def exists(self) -> bool:
        """True when the drive table is there; never creates the file or the table."""
        if self._ready:
            return True
        if not self.wh.path.exists():
            return False
        return self.wh.table_exists(self.table) and self.wh.table_exists(self.leases)

    def _select(self, where: str = "", params: Sequence[Any] = (), order: str = "", limit: int | None = None) -> list[RunRecord]:
        if not self.exists():
            return []
        sql = f"SELECT {', '.join(quote(n) for n, _ in COLUMNS)} FROM {qualified(self.table)}"
        if where:
            sql += f" WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            rows = conn.execute(sql, list(params)).fetchall()
        out = []
        for row in rows:
            data = {n: (json.loads(v) if n in JSON_COLUMNS and isinstance(v, str) else v) for (n, _), v in zip(COLUMNS, row, strict=True)}
            out.append(RunRecord.from_row(data, where=self.location))
        return out

    def get(self, pipeline_id: str) -> RunRecord | None:
        rows = self._select("pipeline_id = ?", [pipeline_id])
        return rows[0] if rows else None

    def attempts(self, pipeline_name: str, window_start: datetime, window_end: datetime) -> list[RunRecord]:
        return self._select(
            "pipeline_name = ? AND query_window_start_timestamp = ? AND query_window_end_timestamp = ?",
            [pipeline_name, window_start, window_end],
            order="pipeline_start_timestamp, pipeline_retry_number",
        )

    def history(self, pipeline_name: str | None = None, *, status: Sequence[RunStatus] = (), limit: int | None = None) -> list[RunRecord]:
        clauses, params = [], []
        if pipeline_name is not None:
            clauses.append("pipeline_name = ?")
            params.append(pipeline_name)
        if status:
            clauses.append(f"pipeline_status IN ({', '.join('?' for _ in status)})")
            params.extend(s.value for s in status)
        return self._select(" AND ".join(clauses), params, order="pipeline_start_timestamp DESC, pipeline_id DESC", limit=limit)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location), conn.cursor() as cur:
            cur.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def pipelines(self) -> list[str]:
        if not self.exists():
            return []
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            return [r[0] for r in conn.execute(f"SELECT DISTINCT pipeline_name FROM {qualified(self.table)} ORDER BY 1").fetchall()]

    # -- leases ---------------------------------------------------------------------------

    def _lease_row(self, conn: Any, pipeline_name: str, window_start: datetime) -> Lease | None:
        row = conn.execute(
            f"SELECT pipeline_name, window_start, window_end, holder, token, expires_at FROM {qualified(self.leases)} "
            "WHERE pipeline_name = ? AND window_start = ?",
            [pipeline_name, window_start],
        ).fetchone()
        if row is None:
            return None
        return Lease(row[0], row[1].astimezone(UTC), row[2].astimezone(UTC), row[3], int(row[4]), row[5].astimezone(UTC))

    def _check_fence(self, conn: Any, lease: Lease) -> None:
        current = self._lease_row(conn, lease.pipeline_name, lease.window_start)
        if current is None or current.token != lease.token:
            holder = current.holder if current else None
            raise LeaseError(
                f"{lease.pipeline_name} window starting {lease.window_start.isoformat()}: this run lost its "
                f"lease (now held by {holder or 'nobody'}); it stops without writing", holder=holder,
            )

    def _lock_path(self, pipeline_name: str, window_start: datetime, *, create: bool = True) -> Path:
        folder = self.wh.path.with_name(self.wh.path.name + ".locks")
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in pipeline_name)
        return folder / f"{safe}__{window_start.astimezone(UTC):%Y%m%dT%H%M%S}Z.lock"

    def _take_file_lock(self, pipeline_name: str, window_start: datetime, holder: str) -> int:
        """An OS lock held for the whole run: released by the kernel if the process dies."""
        path = self._lock_path(pipeline_name, window_start)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            current = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise LeaseError(
                f"{pipeline_name}: the window {window_start.isoformat()} is being run by {current}; "
                "not starting a second run", holder=current,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        return fd

    def acquire_lease(self, pipeline_name: str, window_start: datetime, window_end: datetime, holder: str, seconds: float) -> Lease:
        fd = self._take_file_lock(pipeline_name, window_start, holder)  # first: a loser never waits on the file
        now = _now()
        try:
            self.ensure()
            with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location), transaction(conn):
                current = self._lease_row(conn, pipeline_name, window_start)
                if (current is not None and current.holder != holder and current.holder.startswith("step:")
                        and current.expires_at > now):
                    raise LeaseError(
                        f"{pipeline_name}: the window {window_start.isoformat()} belongs to a run driven step by step "
                        f"({current.holder}, e.g. an Airflow DAG run) until {current.expires_at.isoformat()}; "
                        "not starting a second run", holder=current.holder,
                    )
                if current is not None and current.holder == holder:
                    token = current.token
                else:
                    token = (current.token + 1) if current is not None else 1
                conn.execute(f"DELETE FROM {qualified(self.leases)} WHERE pipeline_name = ? AND window_start = ?", [pipeline_name, window_start])
                lease = Lease(pipeline_name, window_start, window_end, holder, token, now + timedelta(seconds=seconds))
                conn.execute(
                    f"INSERT INTO {qualified(self.leases)} VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [pipeline_name, window_start, window_end, holder, token, now, lease.expires_at],
                )
        except BaseException:
            os.close(fd)
            raise
        self._file_locks[(pipeline_name, window_start)] = fd
        return lease

    def is_held(self, pipeline_name: str, window_start: datetime) -> bool:
        """True while some process (this one included) runs the window."""
        if (pipeline_name, window_start) in self._file_locks:
            return True
        path = self._lock_path(pipeline_name, window_start, create=False)
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def dead_reason(self, record: RunRecord) -> str | None:
        """A run driven by one process holds its window's file lock until it ends: once the lock
        is free, that process is gone (the kernel dropped the lock when it died). A run driven
        step by step (Airflow) holds no file lock between steps; its lease row tells instead."""
        start = record.query_window_start_timestamp
        if record.lease_holder is None or self.is_held(record.pipeline_name, start):
            return None
        if record.lease_holder.startswith("step:"):
            return super().dead_reason(record)
        return (f"no process holds the window's lock any more: its process ({record.lease_holder}) "
                "was killed or crashed")

    def renew_lease(self, lease: Lease, seconds: float) -> Lease:
        expires = _now() + timedelta(seconds=seconds)
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            changed = conn.execute(
                f"UPDATE {qualified(self.leases)} SET expires_at = ? WHERE pipeline_name = ? AND window_start = ? AND token = ?",
                [expires, lease.pipeline_name, lease.window_start, lease.token],
            ).fetchone()[0]
            if changed != 1:
                self._check_fence(conn, lease)
        return Lease(lease.pipeline_name, lease.window_start, lease.window_end, lease.holder, lease.token, expires)

    def verify_lease(self, lease: Lease) -> None:
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            self._check_fence(conn, lease)

    def session(self):  # noqa: ANN201
        return self.wh.session()

    def keep_open(self):  # noqa: ANN201
        return self.wh.keep_open()

    def close(self) -> None:
        """Let go of any window still locked by this process (the drive rows stay as they are)."""
        for fd in self._file_locks.values():
            os.close(fd)
        self._file_locks.clear()

    def heartbeat(self, pipeline_id: str, at: datetime) -> None:
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            conn.execute(f"UPDATE {qualified(self.table)} SET heartbeat_at = ? WHERE pipeline_id = ?", [at, pipeline_id])

    def release_lease(self, lease: Lease, *, keep_row: bool = False) -> None:
        try:
            if keep_row:
                return
            with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
                # expire rather than delete: the row keeps the token, so the next holder's is larger
                conn.execute(
                    f"UPDATE {qualified(self.leases)} SET expires_at = ? WHERE pipeline_name = ? AND window_start = ? AND token = ?",
                    [_now(), lease.pipeline_name, lease.window_start, lease.token],
                )
        finally:
            fd = self._file_locks.pop((lease.pipeline_name, lease.window_start), None)
            if fd is not None:
                os.close(fd)  # closing the descriptor releases the lock; the file stays (see module doc)

    def current_lease(self, pipeline_name: str, window_start: datetime) -> Lease | None:
        if not self.exists():
            return None
        with _LOCK, self.wh.connect() as conn, duckdb_errors(self.location):
            return self._lease_row(conn, pipeline_name, window_start)
