"""The drive table's storage interface, and the lease that keeps two runs off one window.

A :class:`DriveStore` keeps :class:`~drivetrain.record.RunRecord` rows and the leases. Only the
runner writes through it. The lease is per (pipeline, window): whoever holds it may run the
window; a fencing token that grows with every new holder lets a store refuse writes from a
holder that lost the lease (paused past its expiry while another run took over).
"""

from __future__ import annotations

import abc
import os
import socket
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime

import attrs

from drivetrain.record import RunRecord, RunStatus
from drivetrain.sql.dialect import SqlDialect

__all__ = ["PARTIAL_WINDOW", "SCHEMA_VERSION", "DriveStore", "Lease", "OpenWindow", "SqlDialect", "holder_is_dead",
           "is_partial", "new_holder_id"]

#: Version of the drive table's layout; stores migrate older layouts on first use.
#: 2: ``publish_phase`` (the publish gate's phase) after ``audit_phase``.
#: 3: the window summary ``<drive table>__windows`` (:mod:`drivetrain.sql.drive_windows`), kept
#: by every write; an older drivetrain would write rows without it, so it refuses this layout.
#: 4: the phase summary ``<drive table>__phases`` (:mod:`drivetrain.sql.drive_phases`), likewise.
#: 5: on SQLite, the window summary's island edges (``drivetrain.connectors.sqlite.drive_islands``),
#: kept by its triggers; the other stores' tables are unchanged, so they stay at layout 4 and an
#: older drivetrain still reads them (each store writes its own ``layout``: see
#: :class:`drivetrain.sql.drive.SqlDriveStore`). The newest layout of any store: higher is refused.
SCHEMA_VERSION = 5

#: Key in pre-validation's ``phase_specific_details`` marking a run that started before its
#: window ended (``run --allow-partial``): its success does not complete the window. The
#: queries below tell such runs by ``pipeline_start_timestamp < query_window_end_timestamp``.
PARTIAL_WINDOW = "partial_window"


def is_partial(record: RunRecord) -> bool:
    """Whether the run started before its window ended (so it may have missed records)."""
    return record.pipeline_start_timestamp < record.query_window_end_timestamp


@attrs.frozen
class OpenWindow:
    """A window with runs but no complete success (see :meth:`DriveStore.open_windows`)."""

    start: datetime
    end: datetime
    attempts: int
    failed: int
    """Attempts that ended FAILED."""
    running: int
    """Attempts still RUNNING (alive, or dead and not closed yet)."""
    partial: int
    """Successful attempts made before the window ended."""


def _utc(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_holder_id() -> str:
    """``host:pid:random``: who holds a lease, readable by an operator."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True when the holder ran on this host and its process no longer exists.

    A lease of a killed process on this machine can be taken over at once instead of waiting
    for it to expire. Holders on other hosts are never judged dead here.
    """
    try:
        host, pid_text, _ = holder.split(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@attrs.frozen
class Lease:
    """The right to run one window of one pipeline, until ``expires_at`` unless renewed."""

    pipeline_name: str
    window_start: datetime
    window_end: datetime
    holder: str
    token: int
    """Fencing token: grows by one with every new holder of this window."""
    expires_at: datetime


class DriveStore(abc.ABC):
    """Where drive-table rows and leases live."""

    #: Where the table is, for messages ("warehouse.duckdb: main.pipeline_execution_drive").
    location: str = ""
    #: SQL helpers for report queries over this store.
    dialect: SqlDialect = SqlDialect()
    #: The drive table's qualified, quoted name, for report queries.
    table_sql: str = ""

    @abc.abstractmethod
    def ensure(self) -> None:
        """Create the drive table, lease table and meta table if needed; migrate old layouts."""

    @abc.abstractmethod
    def insert(self, record: RunRecord, *, fence: Lease | None = None) -> None: ...

    @abc.abstractmethod
    def update(self, record: RunRecord, *, fence: Lease | None = None) -> None:
        """Replace the row with the same pipeline_id. With ``fence``, only if the lease holds."""

    @abc.abstractmethod
    def get(self, pipeline_id: str) -> RunRecord | None: ...

    @abc.abstractmethod
    def attempts(self, pipeline_name: str, window_start: datetime, window_end: datetime) -> list[RunRecord]:
        """Every run of this window, oldest first."""

    @abc.abstractmethod
    def history(
        self,
        pipeline_name: str | None = None,
        *,
        status: Sequence[RunStatus] = (),
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs newest first, optionally for one pipeline and some statuses."""

    @abc.abstractmethod
    def pipelines(self) -> list[str]:
        """Names of every pipeline with at least one run."""

    @abc.abstractmethod
    def acquire_lease(self, pipeline_name: str, window_start: datetime, window_end: datetime, holder: str, seconds: float) -> Lease:
        """Take the window or raise LeaseError naming the current holder.

        An expired lease, or one whose holder process is dead on this host, is taken over
        with the next fencing token. The same holder taking it again (the next step of a run
        started elsewhere) keeps the token.
        """

    @abc.abstractmethod
    def renew_lease(self, lease: Lease, seconds: float) -> Lease:
        """Extend the lease; LeaseError when another holder has taken it."""

    @abc.abstractmethod
    def release_lease(self, lease: Lease, *, keep_row: bool = False) -> None:
        """Give the window back (no-op when someone else holds it now).

        With ``keep_row`` the lease stays recorded (until it expires) for the next step of
        the same run, which may come from another process; only this process lets go.
        """

    @abc.abstractmethod
    def verify_lease(self, lease: Lease) -> None:
        """Raise LeaseError unless ``lease`` is still the current one (the fencing check)."""

    @abc.abstractmethod
    def heartbeat(self, pipeline_id: str, at: datetime) -> None:
        """Record a sign of life for a running row (only ``heartbeat_at`` changes)."""

    @abc.abstractmethod
    def current_lease(self, pipeline_name: str, window_start: datetime) -> Lease | None: ...

    def exists(self) -> bool:
        """True when the drive table exists; reading never creates it."""
        return True

    def check(self) -> list[str]:
        """Lines for ``drivetrain validate`` about what the store's server does (after ensure()).

        Warnings start with ``warning:``; a store that cannot be used raises instead.
        """
        return []

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
        """Run a read-only report query (written with :attr:`dialect`); rows as dicts."""
        raise NotImplementedError(f"{type(self).__name__} does not run report queries")

    # -- choosing windows: a few aggregate queries, never the whole history in Python --------

    def _complete_sql(self) -> str:
        """SQL condition: a run that completes its window (succeeded, and started after it ended)."""
        return "(pipeline_status IN ('SUCCESS', 'SKIPPED') AND pipeline_start_timestamp >= query_window_end_timestamp)"

    def open_windows(self, pipeline_name: str, since: datetime) -> list[OpenWindow]:
        """Windows starting at or after ``since`` that have runs but none that completed them
        (failed, running, or only run partially), oldest first."""
        p = self.dialect.param
        candidates, bound = self._open_candidates(pipeline_name, since)
        sql = (
            "SELECT query_window_start_timestamp AS window_start, query_window_end_timestamp AS window_end, "
            "COUNT(*) AS attempts, "
            "SUM(CASE WHEN pipeline_status = 'FAILED' THEN 1 ELSE 0 END) AS failed, "
            "SUM(CASE WHEN pipeline_status = 'RUNNING' THEN 1 ELSE 0 END) AS running, "
            "SUM(CASE WHEN pipeline_status IN ('SUCCESS', 'SKIPPED') THEN 1 ELSE 0 END) AS partial "
            f"FROM {self.table_sql} WHERE pipeline_name = {p} AND query_window_start_timestamp >= {p}{candidates} "
            "GROUP BY query_window_start_timestamp, query_window_end_timestamp "
            f"HAVING SUM(CASE WHEN {self._complete_sql()} THEN 1 ELSE 0 END) = 0 "
            "ORDER BY window_start"
        )
        out = []
        for row in self.query(sql, [pipeline_name, since, *bound]):
            r = {str(k).lower(): v for k, v in row.items()}
            out.append(OpenWindow(_utc(r["window_start"]), _utc(r["window_end"]), int(r["attempts"] or 0),  # type: ignore[call-overload]
                                  int(r["failed"] or 0), int(r["running"] or 0), int(r["partial"] or 0)))  # type: ignore[call-overload]
        return out

    def _open_candidates(self, pipeline_name: str, since: datetime) -> tuple[str, list[object]]:
        """`` AND <condition>`` narrowing :meth:`open_windows` to windows that may be open, with
        its parameters; a store that knows them without reading every run overrides it."""
        return "", []

    def first_incomplete(self, pipeline_name: str, since: datetime) -> datetime:
        """The start of the oldest window from ``since`` on that no run completed.

        Windows tile time (each ends where the next starts), so that is ``since`` itself, or
        the end of a completed window that no completed window follows: one query, whatever
        the length of the history.
        """
        p = self.dialect.param
        sql = (
            "WITH done AS (SELECT DISTINCT query_window_start_timestamp AS ws, query_window_end_timestamp AS we "
            f"FROM {self.table_sql} WHERE pipeline_name = {p} AND query_window_start_timestamp >= {p} "
            f"AND {self._complete_sql()}) "
            f"SELECT (SELECT COUNT(*) FROM done WHERE ws = {p}) AS covered, "
            "(SELECT MIN(d.we) FROM done d WHERE NOT EXISTS (SELECT 1 FROM done n WHERE n.ws = d.we)) AS first_gap"
        )
        rows = self.query(sql, [pipeline_name, since, since])
        row = {str(k).lower(): v for k, v in rows[0].items()} if rows else {}
        if not row or not row.get("covered") or row.get("first_gap") is None:
            return since
        return _utc(row["first_gap"])

    def earliest_window(self, pipeline_name: str) -> datetime | None:
        """The start of the oldest window this pipeline has a run of (None before its first run)."""
        p = self.dialect.param
        rows = self.query(f"SELECT MIN(query_window_start_timestamp) AS first_start FROM {self.table_sql} "
                          f"WHERE pipeline_name = {p}", [pipeline_name])
        value = {str(k).lower(): v for k, v in rows[0].items()}.get("first_start") if rows else None
        return None if value is None else _utc(value)

    def is_held(self, pipeline_name: str, window_start: datetime) -> bool:
        """True while a live process holds the window's lease."""

        lease = self.current_lease(pipeline_name, window_start)
        return (
            lease is not None
            and lease.expires_at > datetime.now(UTC)
            and not holder_is_dead(lease.holder)
        )

    def dead_reason(self, record: RunRecord) -> str | None:
        """Why the process of a RUNNING row is known to be gone, or None while it may be alive.

        The default reads the window's lease: released, taken by another run, expired without
        renewal, or held by a process that no longer exists on this host. A store that can tell
        sooner (DuckDB: the file lock a dying process drops) overrides this. Rows without a
        lease holder (written by an older version) are never judged here: the heartbeat age
        of stale handling closes them.
        """
        if record.lease_holder is None:
            return None
        lease = self.current_lease(record.pipeline_name, record.query_window_start_timestamp)
        if lease is None:
            return "its lease was given back without the run being finalized (its process stopped)"
        if lease.holder != record.lease_holder:
            return f"its window's lease now belongs to {lease.holder}"
        if lease.expires_at <= datetime.now(UTC):
            return f"its lease expired at {lease.expires_at.isoformat()} without renewal (its process stopped sending heartbeats)"
        if holder_is_dead(lease.holder):
            return f"its process ({lease.holder}) no longer exists"
        return None

    def session(self) -> AbstractContextManager[object]:
        """Keep the store's connection open for a block of work (see Warehouse.session)."""
        return nullcontext()

    def keep_open(self) -> AbstractContextManager[object]:
        """Keep the store's connection for a whole run (see Warehouse.keep_open)."""
        return nullcontext()

    def reading(self) -> AbstractContextManager[object]:
        """Keep the store's connection for a block of reads (one command: status, a report).
        A store whose file other processes write lets go between two reads when one asks."""
        return nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
