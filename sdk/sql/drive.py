"""The drive table in any SQL warehouse: one row codec, one schema story, one set of queries.

A backend's store subclasses :class:`SqlDriveStore` and adds only its lease strategy (how a
window is taken, renewed, released, verified and read back, and the SQL condition that fences a
write), plus the layout of its lease table. Rows, the schema version and its migrations, history
and heartbeats are written here, in the warehouse's dialect, through its session.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.drive import SCHEMA_VERSION, DriveStore, Lease
from drivetrain.errors import LeaseError, PermanentError
from drivetrain.network_disk import network_disk_warnings
from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN
from drivetrain.record import RunRecord, RunStatus
from drivetrain.sql import drive_phases, drive_windows
from drivetrain.sql.names import TableRef
from drivetrain.sql.session import utc_now

if TYPE_CHECKING:
    from drivetrain.sql.session import SqlHome, SqlSession

#: The drive table: (column, logical type, NOT NULL). Order is the table's order.
DRIVE_COLUMNS: list[tuple[str, str, bool]] = [
    ("pipeline_id", "text", True),
    ("pipeline_name", "text", True),
    ("pipeline_status", "text", True),
    ("pipeline_retry_number", "integer", True),
    ("pipeline_start_timestamp", "timestamp", True),
    ("pipeline_end_timestamp", "timestamp", False),
    ("pipeline_run_duration", "text", False),
    ("query_window_start_timestamp", "timestamp", True),
    ("query_window_end_timestamp", "timestamp", True),
    ("target_date", "date", True),
    ("query_window_duration", "text", True),
    *[(VARIANT_COLUMN[name], "json", False) for name in PHASE_NAMES],
    ("phases_completed", "array", False),
    ("phases_skipped", "array", False),
    ("phase_failed", "text", False),
    ("phases_pending", "array", False),
    ("heartbeat_at", "timestamp", False),
    ("lease_holder", "text", False),
    ("config_hash", "text", False),
    ("config_snapshot", "json", False),
    ("created_at", "timestamp", True),
    ("updated_at", "timestamp", True),
]
#: Column defaults, so a row written by hand (or by another tool) still gets its timestamps.
DRIVE_DEFAULTS = {"pipeline_retry_number": "0", "created_at": "CURRENT_TIMESTAMP", "updated_at": "CURRENT_TIMESTAMP"}
KIND = {name: kind for name, kind, _ in DRIVE_COLUMNS}
KIND.update({name.upper(): kind for name, kind, _ in DRIVE_COLUMNS})
_NOT_UPDATED = ("pipeline_id", "created_at")


def next_token(current: Lease | None, holder: str, now: datetime) -> int:
    """The fencing token ``holder`` takes over ``current`` (the window's lease row, if any).

    A run driven step by step (an Airflow DAG run, holder ``step:...``) keeps its window while its
    lease is valid, though it holds no process lock between steps: LeaseError then. The same
    holder keeps its token; anyone else takes the next one, so the old holder's writes are fenced.
    """
    if current is None:
        return 1
    if current.holder != holder and current.holder.startswith("step:") and current.expires_at > now:
        raise LeaseError(
            f"{current.pipeline_name}: the window {current.window_start.isoformat()} belongs to a run driven step by "
            f"step ({current.holder}, e.g. an Airflow DAG run) until {current.expires_at.isoformat()}; "
            "not starting a second run", holder=current.holder,
        )
    return current.token if current.holder == holder else current.token + 1


def check_fence(lease: Lease, current: Lease | None) -> None:
    """LeaseError unless ``current`` (the window's lease row now) is still ``lease``."""
    if current is None or current.token != lease.token or current.holder != lease.holder:
        holder = current.holder if current else None
        raise LeaseError(
            f"{lease.pipeline_name} window starting {lease.window_start.isoformat()}: this run lost its "
            f"lease (now held by {holder or 'nobody'}); it stops without writing", holder=holder,
        )


class SqlDriveStore(DriveStore):
    """``<schema>.pipeline_execution_drive`` plus ``drivetrain_leases`` and ``drivetrain_meta``."""

    #: The backend's lease table: (column, logical type, NOT NULL).
    lease_columns: ClassVar[list[tuple[str, str, bool]]] = []
    #: Key and value columns of the meta table.
    meta_columns: ClassVar[tuple[str, str]] = ("meta_key", "meta_value")
    #: Meta rows the lease strategy needs (e.g. a mutex row), inserted once by :meth:`ensure`.
    meta_rows: ClassVar[dict[str, str]] = {}
    #: Whether a read creates the tables (True) or finds nothing while they are missing (False).
    create_on_read: ClassVar[bool] = True
    #: Whether the database keeps the window summary itself (triggers: see drive_windows.trigger_sql).
    summary_by_trigger: ClassVar[bool] = False
    #: Held around every statement (a process-wide lock for engines whose threads share a file).
    lock: ClassVar[AbstractContextManager[Any] | None] = None
    #: The layout this store writes: the newest layout version that changed its tables. Layout 5
    #: changed only SQLite's (its window summary's island marks), so the other stores stay at 4
    #: and a drivetrain that knows layout 4 still reads them. A table of a layout newer than any
    #: this drivetrain knows (:data:`~drivetrain.drive.SCHEMA_VERSION`) is refused.
    layout: ClassVar[int] = 4

    def __init__(self, warehouse: SqlHome, table: TableRef) -> None:
        self.wh = warehouse
        self.table = table
        self.leases_ref = TableRef(name="drivetrain_leases", schema=table.schema, database=table.database)
        self.meta = TableRef(name="drivetrain_meta", schema=table.schema, database=table.database)
        self.windows_ref = drive_windows.summary_ref(table)
        """The window summary (:mod:`drivetrain.sql.drive_windows`), kept with every write."""
        self.phases_ref = drive_phases.summary_ref(table)
        """The phase summary (:mod:`drivetrain.sql.drive_phases`), kept with every write."""
        self.dialect = warehouse.dialect
        self.table_sql = self.dialect.qualified(table)
        self.location = f"{warehouse.describe()}: {table}"
        self._ready = False
        self._summarized = False
        self._phases_summarized = False

    def check(self) -> list[str]:
        """A warning for ``validate`` when the drive table's file is on a network file system."""
        return network_disk_warnings(self.wh.local_files(), "drive file",
                                     "a drive table on PostgreSQL or Snowflake")

    # -- the backend's lease strategy ------------------------------------------------------

    @abc.abstractmethod
    def fence_sql(self, lease: Lease | None) -> tuple[str, list[Any]]:
        """`` AND <condition>`` that holds only while ``lease`` is its window's lease, and its parameters."""

    def _set_lease_expiry(self, s: SqlSession, lease: Lease, expires: datetime) -> int:
        """Move ``lease``'s row's expiry (still its holder's and token's); the rows changed (0 or 1).

        Releasing sets it to now rather than deleting the row: the row keeps the token, so the
        next holder's is larger.
        """
        return s.execute(f"UPDATE {self.dialect.qualified(self.leases_ref)} SET expires_at = ? "
                         "WHERE pipeline_name = ? AND window_start = ? AND token = ? AND holder = ?",
                         [expires, lease.pipeline_name, lease.window_start, lease.token, lease.holder])

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def sql(self) -> Iterator[SqlSession]:
        """A session for drive-table statements (each retried on a transient error)."""
        with self.lock or nullcontext(), self.wh.sql(self.location, retry=True) as session:
            yield session

    def summarized(self) -> bool:
        """Whether the window summary can be read (a drive table of an older layout, not yet
        written by this version, has none: its readers ask the drive table itself)."""
        if not self._summarized:
            self._summarized = self._ready or (self.exists() and self.wh.table_exists(self.windows_ref))
        return self._summarized

    def phases_summarized(self) -> bool:
        """Whether the phase summary can be read (a drive table of layout 3 or older, not yet
        written by this version, has none: the report reads the phase documents instead)."""
        if not self._phases_summarized:
            self._phases_summarized = self._ready or (self.exists() and self.wh.table_exists(self.phases_ref))
        return self._phases_summarized

    @property
    def phases_sql(self) -> str:
        """The phase summary's qualified name."""
        return self.dialect.qualified(self.phases_ref)

    @property
    def windows_sql(self) -> str:
        """The window summary's qualified name."""
        return self.dialect.qualified(self.windows_ref)

    def _readable(self) -> bool:
        if self.create_on_read:
            self.ensure()
            return True
        return self.exists()

    # -- schema ---------------------------------------------------------------------------

    def ensure(self) -> None:
        if self._ready:
            return
        d = self.dialect
        self.wh.ensure_schema(self.table)
        key, value = self.meta_columns
        with self.sql() as s:
            drive = ", ".join(d.column_sql(*c, default=DRIVE_DEFAULTS.get(c[0])) for c in DRIVE_COLUMNS)
            s.execute(f"CREATE TABLE IF NOT EXISTS {d.qualified(self.table)} ({drive})")
            leases = ", ".join(d.column_sql(*c) for c in self.lease_columns)
            s.execute(f"CREATE TABLE IF NOT EXISTS {d.qualified(self.leases_ref)} ({leases})")
            s.execute(f"CREATE TABLE IF NOT EXISTS {d.qualified(self.meta)} ({d.column_sql(key, 'text', True)}, {d.column_sql(value, 'text')})")
            s.execute(drive_windows.create_sql(d, self.windows_ref))
            s.execute(drive_phases.create_sql(d, self.phases_ref))
            versions = [int(r[0]) for r in s.rows(f"SELECT {value} FROM {d.qualified(self.meta)} WHERE {key} = 'schema_version'")]
            if not versions:
                self._put_meta(s, "schema_version", str(self.layout))
                self.rebuild_summaries(s)  # a drive table made by hand or another tool may hold rows
            elif max(versions) > SCHEMA_VERSION:
                raise PermanentError(
                    f"{self.location}: the drive table has layout version {max(versions)}, newer than this "
                    f"drivetrain understands ({SCHEMA_VERSION}); upgrade drivetrain"
                )
            else:
                self._migrate(s, max(versions))
            for meta_key, meta_value in self.meta_rows.items():
                self._put_meta(s, meta_key, meta_value)
        self._ready = True

    def _put_meta(self, s: SqlSession, key: str, value: str) -> None:
        """Insert a meta row unless one exists (a duplicate from a race is harmless)."""
        meta, (k, v) = self.dialect.qualified(self.meta), self.meta_columns
        s.execute(f"INSERT INTO {meta} ({k}, {v}) SELECT ?, ? FROM (SELECT 1) AS one WHERE NOT EXISTS "
                  f"(SELECT 1 FROM {meta} WHERE {k} = ?)", [key, value, key])

    def _migrate(self, s: SqlSession, version: int) -> None:
        """Add the columns of newer layouts (version 1 is the first; 2 added publish_phase) and
        build the summaries of the rows already there (3 added the window summary, 4 the phase
        summary)."""
        existing = {name.upper() for name in self.wh.table_columns(self.table)}
        missing = [(name, kind) for name, kind, _ in DRIVE_COLUMNS if name.upper() not in existing]
        if missing:
            self._before_adding_columns(s)
        for name, kind in missing:
            s.execute(f"ALTER TABLE {self.table_sql} ADD COLUMN {self.dialect.column_sql(name, kind)}")
        if version < 3:
            self.rebuild_summaries(s)
        elif version < 4:
            drive_phases.rebuild(s, self.dialect, self.table)
        if version < self.layout:
            meta, (k, v) = self.dialect.qualified(self.meta), self.meta_columns
            s.execute(f"UPDATE {meta} SET {v} = ? WHERE {k} = 'schema_version'", [str(self.layout)])

    def rebuild_summaries(self, s: SqlSession) -> None:
        """The window and phase summaries again from every drive row (a migration; rows moved in)."""
        drive_windows.rebuild(s, self.dialect, self.table)
        drive_phases.rebuild(s, self.dialect, self.table)

    def _before_adding_columns(self, s: SqlSession) -> None:
        """What a backend must do before ``ALTER TABLE ... ADD COLUMN`` on the drive table (nothing here)."""

    # -- the row codec --------------------------------------------------------------------

    def _row(self, record: RunRecord) -> dict[str, Any]:
        row = record.to_row()
        row["updated_at"] = utc_now()
        row["created_at"] = row["created_at"] or row["updated_at"]
        if record.pipeline_status is RunStatus.RUNNING:
            row["heartbeat_at"] = row["updated_at"]
        return row

    def _value(self, name: str, value: Any) -> tuple[str, list[Any]]:
        kind = KIND[name]
        if kind == "json":
            return self.dialect.json_value(value)
        if kind == "array":
            return self.dialect.array_value(value)
        return "?", [value]

    def _decode(self, values: Sequence[Any]) -> RunRecord:
        data = {name: self.dialect.decode(kind, v) for (name, kind, _), v in zip(DRIVE_COLUMNS, values, strict=True)}
        return RunRecord.from_row(data, where=self.location)

    # -- writes ---------------------------------------------------------------------------

    def insert(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        if fence is not None:
            self.verify_lease(fence)  # the backend's own account of who holds the window now
        row = self._row(record)
        exprs, params = [], []
        for name, _, _ in DRIVE_COLUMNS:
            sql, values = self._value(name, row[name])
            exprs.append(sql)
            params.extend(values)
        guard, guard_params = self.fence_sql(fence)
        names = ", ".join(name for name, _, _ in DRIVE_COLUMNS)
        with self.sql() as s, s.transaction():  # the row and its window's summary: both or neither
            # guarded by NOT EXISTS: a retried insert keeps one row
            changed = s.execute(
                f"INSERT INTO {self.table_sql} ({names}) SELECT {', '.join(exprs)} FROM (SELECT 1) AS one "
                f"WHERE NOT EXISTS (SELECT 1 FROM {self.table_sql} WHERE pipeline_id = ?){guard}",
                [*params, record.pipeline_id, *guard_params], hints=_hints(record),
            )
            if changed != 0:
                self._refresh(s, record)
        if changed < 1 and self.get(record.pipeline_id) is None:
            raise self._lost(record, fence)

    def insert_many(self, records: Iterable[RunRecord], *, chunk: int = 200) -> int:
        """Insert finished rows in bulk (an import, a benchmark's history): no fence, no
        de-duplication; ``chunk`` rows per statement. Returns how many rows were inserted."""
        self.ensure()
        names = ", ".join(name for name, _, _ in DRIVE_COLUMNS)
        done = 0
        for part in chunks(records, chunk):
            selects, params = [], []
            for record in part:
                row = self._row(record)
                exprs = []
                for name, _, _ in DRIVE_COLUMNS:
                    sql, values = self._value(name, row[name])
                    exprs.append(sql)
                    params.extend(values)
                selects.append(f"SELECT {', '.join(exprs)}")
            with self.sql() as s, s.transaction():
                s.execute(f"INSERT INTO {self.table_sql} ({names}) {' UNION ALL '.join(selects)}", params)
                self.refresh_summaries(s, part)
            done += len(part)
        return done

    def update(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        self.ensure()
        row = self._row(record)
        sets, params = [], []
        for name, _, _ in DRIVE_COLUMNS:
            if name not in _NOT_UPDATED:
                sql, values = self._value(name, row[name])
                sets.append(f"{name} = {sql}")
                params.extend(values)
        guard, guard_params = self.fence_sql(fence)
        with self.sql() as s, s.transaction():
            changed = s.execute(f"UPDATE {self.table_sql} SET {', '.join(sets)} WHERE pipeline_id = ?{guard}",
                                [*params, record.pipeline_id, *guard_params], hints=_hints(record))
            if changed != 0:
                self._refresh(s, record)
        if changed < 1:
            raise self._lost(record, fence)

    def _refresh(self, s: SqlSession, record: RunRecord) -> None:
        if self.summary_by_trigger:
            return
        drive_windows.refresh(s, self.dialect, self.table, record.pipeline_name,
                              record.query_window_start_timestamp, record.query_window_end_timestamp)
        drive_phases.refresh(s, self.dialect, self.table, record.pipeline_name, record.pipeline_id)

    def refresh_summaries(self, s: SqlSession, records: Sequence[RunRecord]) -> None:
        """The summary rows of the windows and runs of ``records`` again (after a bulk insert)."""
        if self.summary_by_trigger:
            return
        keys = [(r.pipeline_name, r.query_window_start_timestamp) for r in records]
        drive_windows.refresh_spans(s, self.dialect, self.table, drive_windows.spans_of(keys))
        drive_phases.refresh_spans(s, self.dialect, self.table, drive_phases.spans_of(records))

    def _lost(self, record: RunRecord, fence: Lease | None) -> Exception:
        if fence is not None:
            return LeaseError(f"run {record.pipeline_id} lost the lease of its window to another run; it stops without writing", holder=None)
        return PermanentError(f"{self.location}: run {record.pipeline_id} is not in the drive table")

    def heartbeat(self, pipeline_id: str, at: datetime) -> None:
        with self.sql() as s:
            s.execute(f"UPDATE {self.table_sql} SET heartbeat_at = ? WHERE pipeline_id = ?", [at, pipeline_id],
                      hints={"run_id": pipeline_id, "phase": "heartbeat"})

    # -- reads ----------------------------------------------------------------------------

    def _select(self, where: str = "", params: Sequence[Any] = (), order: str = "", limit: int | None = None) -> list[RunRecord]:
        if not self._readable():
            return []
        sql = f"SELECT {', '.join(name for name, _, _ in DRIVE_COLUMNS)} FROM {self.table_sql}"
        if where:
            sql += f" WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.sql() as s:
            rows = s.rows(sql, list(params))
        return [self._decode(values) for values in rows]

    def get(self, pipeline_id: str) -> RunRecord | None:
        found = self._select("pipeline_id = ?", [pipeline_id], order="updated_at DESC", limit=1)
        return found[0] if found else None

    def attempts(self, pipeline_name: str, window_start: datetime, window_end: datetime) -> list[RunRecord]:
        return self._select(
            "pipeline_name = ? AND query_window_start_timestamp = ? AND query_window_end_timestamp = ?",
            [pipeline_name, window_start, window_end],
            order="pipeline_start_timestamp, pipeline_retry_number",
        )

    def history(self, pipeline_name: str | None = None, *, status: Sequence[RunStatus] = (), limit: int | None = None) -> list[RunRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if pipeline_name is not None:
            clauses.append("pipeline_name = ?")
            params.append(pipeline_name)
        if status:
            clauses.append(f"pipeline_status IN ({', '.join('?' for _ in status)})")
            params.extend(s.value for s in status)
        return self._select(" AND ".join(clauses), params, order="pipeline_start_timestamp DESC, pipeline_id DESC", limit=limit)

    def pipelines(self) -> list[str]:
        if not self._readable():
            return []
        with self.sql() as s:
            return [r[0] for r in s.rows(f"SELECT DISTINCT pipeline_name FROM {self.table_sql} ORDER BY 1")]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """A report query; column names lower-case, JSON and ARRAY columns of the drive table decoded."""
        if not self._readable():
            return []
        with self.sql() as s:
            rows = s.dicts(sql, list(params))
        return [{n: self.dialect.decode(KIND[n], v) if n in KIND else v for n, v in row.items()} for row in rows]

    def session(self) -> AbstractContextManager[object]:
        return self.wh.session()

    def keep_open(self) -> AbstractContextManager[object]:
        return self.wh.keep_open()


def chunks(records: Iterable[RunRecord], size: int) -> Iterator[list[RunRecord]]:
    part: list[RunRecord] = []
    for record in records:
        part.append(record)
        if len(part) >= size:
            yield part
            part = []
    if part:
        yield part


def _hints(record: RunRecord) -> dict[str, Any]:
    return {"pipeline": record.pipeline_name, "run_id": record.pipeline_id}
