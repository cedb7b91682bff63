"""Window leases on Snowflake, where PRIMARY KEY / UNIQUE are not enforced and reads never block.

``DRIVETRAIN_LEASES`` holds one row per (pipeline, window start): holder, fencing token, expiry,
the Snowflake session of the holder, and when it was released. Rows are never deleted, so the
token of a window only grows: a holder that lost its lease can never match a later one.

Taking a lease (:meth:`LeaseTable.acquire`):

1. read the row (a plain read; it never waits) and refuse at once when a live holder has it;
2. if the holder being replaced left its session behind (expired lease, or a holder process
   that died on this host; or the previous step of a step-by-step run), abort that session with
   ``SYSTEM$ABORT_SESSION``, so the locks of a transaction it never finished are released
   instead of blocking us for minutes;
3. in one transaction: UPDATE the ``lease_mutex`` row of ``DRIVETRAIN_META``. UPDATE takes a
   lock that is held until COMMIT, so acquirers of every window go through this point one at a
   time; the next one's UPDATE waits (up to LOCK_TIMEOUT) for the previous COMMIT. Then read
   the lease row again (READ COMMITTED: a new statement sees every committed acquisition),
   decide again, and write the row (UPDATE, or INSERT when there is none: no duplicate can
   appear because every INSERT happens under the mutex); COMMIT.

The check-then-write race that a missing unique key would allow is closed by step 3. Fencing:
the token is checked just before each data COMMIT (:meth:`verify`, inside the data
transaction, after its DELETE/INSERT took their table locks) and in every fenced drive-row
update (``AND EXISTS`` on the lease row with this token). A run paused past its expiry finds
another token and rolls back; if it passed the check just before being replaced, its table locks
make the new holder's writes queue behind its COMMIT, so the newer data is written last.

Holders named ``step:...`` (a run driven step by step, e.g. by Airflow) keep their lease until
it expires even when no process of theirs is alive; the same holder taking it again keeps its
token. Time is the client's UTC clock: keep hosts on NTP.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from drivetrain.drive import Lease, holder_is_dead
from drivetrain.errors import ConnectorError, LeaseError
from drivetrain.sql.session import utc_now as _now

from .sql import obj

if TYPE_CHECKING:
    from collections.abc import Sequence

    from drivetrain.warehouse import TableRef

    from .connection import Session, SnowflakeHome

log = logging.getLogger(__name__)

#: (column, logical type, NOT NULL), see drivetrain.sql.drive.
LEASE_COLUMNS: list[tuple[str, str, bool]] = [
    ("pipeline_name", "text", True),
    ("window_start", "timestamp", True),
    ("window_end", "timestamp", True),
    ("holder", "text", True),
    ("token", "integer", True),
    ("acquired_at", "timestamp", True),
    ("expires_at", "timestamp", True),
    ("session_id", "text", False),
    ("released_at", "timestamp", False),
]
# Whether the lease was released is decided by the server (RELEASED_AT IS NULL), never from the
# value the driver hands back: some servers and drivers return a NULL timestamp as a value
# (fakesnow's stock server sends 1970-01-01), which would read as "released".
_SELECT = ("PIPELINE_NAME, WINDOW_START, WINDOW_END, HOLDER, TOKEN, EXPIRES_AT, SESSION_ID, "
           "CASE WHEN RELEASED_AT IS NULL THEN 0 ELSE 1 END AS IS_RELEASED")
_KEY = "PIPELINE_NAME = ? AND WINDOW_START = ?"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Row:
    """A lease row as read, with what only this module needs (session, released)."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        name, start, end, holder, token, expires, session_id, released = values
        self.lease = Lease(name, _utc(start), _utc(end), holder, int(token), _utc(expires))
        self.session_id: str | None = session_id
        self.released = bool(released)


class LeaseStore(Protocol):
    """What the lease table uses of the :class:`~.drive.SnowflakeDriveStore` that holds it."""

    location: str
    meta: TableRef
    wh: SnowflakeHome

    def q(self, table: TableRef) -> str:
        """The table's name for SQL."""
        ...

    def run(self, sql: str, params: Sequence[Any] | None = None, *, hints: dict[str, Any] | None = None) -> Any:
        """One idempotent statement, retried on transient errors; returns the cursor."""
        ...


class LeaseTable:
    """``DRIVETRAIN_LEASES`` of one drive store."""

    def __init__(self, store: LeaseStore, ref: TableRef) -> None:
        self.store = store
        self.ref = ref

    @property
    def _q(self) -> str:
        return self.store.q(self.ref)

    def _read(self, session: Session, pipeline_name: str, window_start: datetime) -> _Row | None:
        rows = session.rows(
            f"SELECT {_SELECT} FROM {self._q} WHERE {_KEY} ORDER BY TOKEN DESC LIMIT 1",
            [pipeline_name, window_start], what=f"read the lease ({self.store.location})", hints={"pipeline": pipeline_name},
        )
        return _Row(rows[0]) if rows else None

    def _refuse_if_held(self, row: _Row | None, holder: str, now: datetime) -> None:
        if row is None or row.released or row.lease.holder == holder:
            return
        current = row.lease
        window = current.window_start.isoformat()
        if current.holder.startswith("step:") and current.expires_at > now:
            raise LeaseError(
                f"{current.pipeline_name}: the window {window} belongs to a run driven step by step ({current.holder}, "
                f"e.g. an Airflow DAG run) until {current.expires_at.isoformat()}; not starting a second run",
                holder=current.holder,
            )
        if current.expires_at > now and not holder_is_dead(current.holder):
            raise LeaseError(
                f"{current.pipeline_name}: the window {window} is being run by {current.holder} (lease until "
                f"{current.expires_at.isoformat()}); not starting a second run",
                holder=current.holder,
            )

    def acquire(self, pipeline_name: str, window_start: datetime, window_end: datetime, holder: str, seconds: float) -> Lease:
        """Take the window (see the module docstring) or raise LeaseError naming the holder."""
        hints = {"pipeline": pipeline_name, "phase": "lease"}

        def attempt(session: Session) -> Lease:
            now = _now()
            row = self._read(session, pipeline_name, window_start)
            self._refuse_if_held(row, holder, now)
            if row is not None and not row.released and (row.lease.holder != holder or holder.startswith("step:")):
                self._abort_session(session, row)
            with session.transaction(f"take the lease ({self.store.location})"):
                session.execute(
                    f"UPDATE {self.store.q(self.store.meta)} SET META_VALUE = ? WHERE META_KEY = 'lease_mutex'",
                    [holder], what=f"lock the leases ({self.store.location})", hints=hints,
                )
                row = self._read(session, pipeline_name, window_start)
                self._refuse_if_held(row, holder, now)
                if row is None:
                    token = 1
                elif row.lease.holder == holder and not row.released:
                    token = row.lease.token
                else:
                    token = row.lease.token + 1
                lease = Lease(pipeline_name, window_start, window_end, holder, token, now + timedelta(seconds=seconds))
                values = [holder, token, window_end, now, lease.expires_at, session.session_id]
                what = f"write the lease ({self.store.location})"
                if row is None:
                    names = ", ".join(obj(n) for n, _, _ in LEASE_COLUMNS if n != "released_at")
                    session.execute(
                        f"INSERT INTO {self._q} ({names}) SELECT ?, ?, ?, ?, ?, ?, ?, ?",
                        [pipeline_name, window_start, window_end, holder, token, now, lease.expires_at, session.session_id],
                        what=what, hints=hints,
                    )
                else:
                    session.execute(
                        f"UPDATE {self._q} SET HOLDER = ?, TOKEN = ?, WINDOW_END = ?, ACQUIRED_AT = ?, EXPIRES_AT = ?, "
                        f"SESSION_ID = ?, RELEASED_AT = NULL WHERE {_KEY}",
                        [*values, pipeline_name, window_start], what=what, hints=hints,
                    )
            return lease

        return self.store.wh.pool.retrying(attempt, attempts=8)

    def _abort_session(self, session: Session, row: _Row) -> None:
        """End the session the replaced holder left behind, releasing its locks (best effort).

        Also for the next step of a run driven step by step: the step before it has ended (the
        scheduler runs them one after another), so a session it left open is an orphan.
        """
        if not row.session_id or row.session_id == session.session_id:
            return
        try:
            session.execute("SELECT SYSTEM$ABORT_SESSION(?)", [int(row.session_id)], what="abort the session of a dead lease holder",
                            hints={"pipeline": row.lease.pipeline_name, "phase": "lease"})
            log.info("ended session %s left behind by %s (lease of %s)", row.session_id, row.lease.holder, row.lease.window_start)
        except (ConnectorError, ValueError) as exc:
            log.info("could not end session %s of %s (its locks go when Snowflake ends it): %s", row.session_id, row.lease.holder, exc)

    def renew(self, lease: Lease, seconds: float) -> Lease:
        expires = _now() + timedelta(seconds=seconds)
        cursor = self.store.run(
            f"UPDATE {self._q} SET EXPIRES_AT = ? WHERE {_KEY} AND TOKEN = ? AND HOLDER = ? AND RELEASED_AT IS NULL",
            [expires, lease.pipeline_name, lease.window_start, lease.token, lease.holder],
            hints={"pipeline": lease.pipeline_name, "phase": "heartbeat"},
        )
        if int(cursor.rowcount or 0) < 1:
            self.verify(lease)
            raise self._lost(lease, None)
        return Lease(lease.pipeline_name, lease.window_start, lease.window_end, lease.holder, lease.token, expires)

    def release(self, lease: Lease) -> None:
        now = _now()
        self.store.run(
            f"UPDATE {self._q} SET RELEASED_AT = ?, EXPIRES_AT = ? WHERE {_KEY} AND TOKEN = ? AND HOLDER = ? AND RELEASED_AT IS NULL",
            [now, now, lease.pipeline_name, lease.window_start, lease.token, lease.holder],
            hints={"pipeline": lease.pipeline_name, "phase": "lease"},
        )

    def let_go(self, lease: Lease) -> None:
        """Keep the lease for the run's next step, but forget this process's session (it ends cleanly)."""
        self.store.run(
            f"UPDATE {self._q} SET SESSION_ID = NULL WHERE {_KEY} AND TOKEN = ? AND HOLDER = ? AND RELEASED_AT IS NULL",
            [lease.pipeline_name, lease.window_start, lease.token, lease.holder],
            hints={"pipeline": lease.pipeline_name, "phase": "lease"},
        )

    def verify(self, lease: Lease) -> None:
        """The fencing check; runs on this thread's session, so inside its open transaction."""
        row = self.store.wh.pool.retrying(lambda s: self._read(s, lease.pipeline_name, lease.window_start))
        if row is None or row.released or row.lease.token != lease.token or row.lease.holder != lease.holder:
            raise self._lost(lease, row)

    def current(self, pipeline_name: str, window_start: datetime) -> Lease | None:
        row = self.store.wh.pool.retrying(lambda s: self._read(s, pipeline_name, window_start))
        return None if row is None or row.released else row.lease

    def fence_sql(self, lease: Lease | None) -> tuple[str, list[Any]]:
        """A condition that holds only while ``lease`` is the window's current lease."""
        if lease is None:
            return "", []
        return (
            f" AND EXISTS (SELECT 1 FROM {self._q} WHERE {_KEY} AND TOKEN = ? AND HOLDER = ? AND RELEASED_AT IS NULL)",
            [lease.pipeline_name, lease.window_start, lease.token, lease.holder],
        )

    @staticmethod
    def _lost(lease: Lease, row: _Row | None) -> LeaseError:
        holder = None if row is None or row.released else row.lease.holder
        window = f"{lease.pipeline_name} window starting {lease.window_start.isoformat()}"
        if holder is None:
            what = "its lease was released and no other run holds the window" if row is not None else "its lease row is gone"
            return LeaseError(f"{window}: this run no longer holds the window ({what}); it stops without writing", holder=None)
        return LeaseError(
            f"{window}: this run lost its lease to {holder} (it was not renewed in time); it stops without writing",
            holder=holder,
        )


def null_timestamp_problem(session: Session) -> str | None:
    """What is wrong when the server or driver returns a NULL timestamp as a value, else None.

    drivetrain decides lease state on the server, so runs are right either way; but NULL end
    times and heartbeats read from the drive table (history, show, reports) would show that value.
    """
    value = session.rows("SELECT CAST(NULL AS TIMESTAMP_TZ) AS NULL_TIMESTAMP", what="check how NULL timestamps come back")[0][0]
    if value is None:
        return None
    return (f"warning: this server or driver returns a NULL timestamp as {value!r} instead of NULL (the stock fakesnow "
            "server does this); leases are still decided on the server, but NULL end times and heartbeats in the drive "
            "table will read as that value. Use a real Snowflake account, or see docs/connectors.md for local trials")
