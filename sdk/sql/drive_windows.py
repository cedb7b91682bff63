"""The window summary: one row per (pipeline, window) saying what its attempts add up to.

Fleet questions (``status``, the next windows, gaps) ask about windows, not runs: which windows
a run completed, which are open, whether a window's newest attempt failed. Answering them from
the drive table reads every run's wide row (ten phase documents each); this table keeps, per
window, the few numbers those questions read, so they scan narrow rows through an index.

It is written in the same transaction as the drive row it follows: the window's row is computed
again from the window's attempts, read through the drive table's index, so it can never say
something the drive table does not. On SQLite (the embedded default) triggers do it, so a row
changed by hand (the runbook's ``UPDATE``) is followed too; on the other engines the drive store
does it in :meth:`drivetrain.sql.drive.SqlDriveStore.insert` and ``update``, and a row changed
there by hand is followed once a store next writes that window. Layout version 3 added the
summary; an older drive table gets it built from its rows on first use (:func:`rebuild`), as do
rows moved in from an older layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from drivetrain.sql.names import TableRef

if TYPE_CHECKING:
    from drivetrain.sql.dialect import SqlDialect
    from drivetrain.sql.session import SqlSession

#: The summary's columns: (column, logical type, NOT NULL).
WINDOW_COLUMNS: list[tuple[str, str, bool]] = [
    ("pipeline_name", "text", True),
    ("window_start", "timestamp", True),
    ("window_end", "timestamp", True),
    ("attempts", "integer", True),        # runs of the window
    ("failed", "integer", True),          # ... of which FAILED
    ("running", "integer", True),         # ... of which RUNNING
    ("completed", "integer", True),       # ... that completed it: SUCCESS or SKIPPED, started after the window ended
    ("newest_start", "timestamp", True),  # the newest attempt's pipeline_start_timestamp
    ("newest_failed", "integer", True),   # attempts at newest_start that FAILED
    ("newest_running", "integer", True),  # attempts at newest_start that are RUNNING
    ("ok_end", "timestamp", False),       # when its newest SUCCESS or SKIPPED run ended
    ("window_seconds", "bigint", True),   # the window's length (whole seconds)
    ("ok_start", "timestamp", False),     # when its newest SUCCESS or SKIPPED run started
]
#: Runs that ended without failing (as drivetrain.monitoring.queries.OK_STATUSES).
_OK = "('SUCCESS', 'SKIPPED')"
_WINDOW = ("pipeline_name", "query_window_start_timestamp", "query_window_end_timestamp")


def summary_ref(table: TableRef) -> TableRef:
    """The summary of drive table ``table``: ``<table>__windows`` beside it."""
    return TableRef(name=f"{table.name}__windows", schema=table.schema, database=table.database)


def create_sql(dialect: SqlDialect, summary: TableRef) -> str:
    columns = ", ".join(dialect.column_sql(*c) for c in WINDOW_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {dialect.qualified(summary)} ({columns})"


def _fill_sql(dialect: SqlDialect, drive: str, summary: str, where: str) -> str:
    """``INSERT`` the summary rows of the drive rows matching ``where`` (written for columns of
    alias ``d``; used twice, so its parameters are bound twice)."""
    names = ", ".join(name for name, _, _ in WINDOW_COLUMNS)
    on = " AND ".join(f"d.{c} = n.n_{i}" for i, c in enumerate(_WINDOW))
    status, start = "d.pipeline_status", "d.pipeline_start_timestamp"
    newest = f"{start} = n.newest"
    return (
        f"INSERT INTO {summary} ({names}) SELECT d.pipeline_name, d.query_window_start_timestamp, d.query_window_end_timestamp, "
        f"COUNT(*), SUM(CASE WHEN {status} = 'FAILED' THEN 1 ELSE 0 END), SUM(CASE WHEN {status} = 'RUNNING' THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {status} IN {_OK} AND {start} >= d.query_window_end_timestamp THEN 1 ELSE 0 END), MAX({start}), "
        f"SUM(CASE WHEN {status} = 'FAILED' AND {newest} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {status} = 'RUNNING' AND {newest} THEN 1 ELSE 0 END), "
        f"MAX(CASE WHEN {status} IN {_OK} THEN d.pipeline_end_timestamp END), "
        f"CAST(ROUND(MAX({dialect.seconds_between('d.query_window_start_timestamp', 'd.query_window_end_timestamp')})) "
        f"AS {dialect.types['bigint']}), MAX(CASE WHEN {status} IN {_OK} THEN {start} END) "
        f"FROM {drive} d JOIN (SELECT {', '.join(f'd.{c} AS n_{i}' for i, c in enumerate(_WINDOW))}, MAX({start}) AS newest "
        f"FROM {drive} d WHERE {where} GROUP BY {', '.join(f'd.{c}' for c in _WINDOW)}) n ON {on} "
        f"WHERE {where} GROUP BY {', '.join(f'd.{c}' for c in _WINDOW)}"
    )


def refresh(s: SqlSession, dialect: SqlDialect, drive: TableRef, name: str, start: datetime, end: datetime) -> None:
    """Compute one window's summary row again from its attempts (inside the caller's transaction)."""
    summary, table = dialect.qualified(summary_ref(drive)), dialect.qualified(drive)
    key = [name, start, end]
    s.execute(f"DELETE FROM {summary} WHERE pipeline_name = ? AND window_start = ? AND window_end = ?", key)
    where = "d.pipeline_name = ? AND d.query_window_start_timestamp = ? AND d.query_window_end_timestamp = ?"
    s.execute(_fill_sql(dialect, table, summary, where), key + key)


def refresh_spans(s: SqlSession, dialect: SqlDialect, drive: TableRef, spans: dict[str, tuple[datetime, datetime]]) -> None:
    """Compute again the summary rows of every window starting in ``[first, last]`` of each
    pipeline of ``spans`` (a bulk insert's windows)."""
    summary, table = dialect.qualified(summary_ref(drive)), dialect.qualified(drive)
    where = "d.pipeline_name = ? AND d.query_window_start_timestamp >= ? AND d.query_window_start_timestamp <= ?"
    for name, (first, last) in spans.items():
        key = [name, first, last]
        s.execute(f"DELETE FROM {summary} WHERE pipeline_name = ? AND window_start >= ? AND window_start <= ?", key)
        s.execute(_fill_sql(dialect, table, summary, where), key + key)


def rebuild(s: SqlSession, dialect: SqlDialect, drive: TableRef) -> None:
    """The whole summary again from the drive table (a migration, or rows moved in)."""
    summary = dialect.qualified(summary_ref(drive))
    s.execute(f"DELETE FROM {summary}")
    s.execute(_fill_sql(dialect, dialect.qualified(drive), summary, "1 = 1"))


def trigger_sql(dialect: SqlDialect, drive: TableRef, then: Callable[[str], str] | None = None) -> list[str]:
    """Triggers keeping the summary for every write to the drive table, a hand-written one
    included (engines with ``CREATE TRIGGER ... BEGIN ... END``: SQLite). ``then(row)``: more
    statements after a window's row (of ``NEW`` or ``OLD``) is computed again."""
    summary, table = dialect.qualified(summary_ref(drive)), dialect.qualified(drive)

    def refresh_of(row: str) -> str:
        where = " AND ".join(f"d.{c} = {row}.{c}" for c in _WINDOW)
        return (f"DELETE FROM {summary} WHERE pipeline_name = {row}.pipeline_name AND window_start = {row}.query_window_start_timestamp "
                f"AND window_end = {row}.query_window_end_timestamp; {_fill_sql(dialect, table, summary, where)};"
                f"{' ' + then(row) if then else ''}")

    name = drive.name + "__windows"
    return [
        f"CREATE TRIGGER IF NOT EXISTS {dialect.owned(name + '_insert')} AFTER INSERT ON {table} BEGIN {refresh_of('NEW')} END",
        f"CREATE TRIGGER IF NOT EXISTS {dialect.owned(name + '_update')} AFTER UPDATE OF pipeline_name, pipeline_status, "
        "pipeline_start_timestamp, pipeline_end_timestamp, query_window_start_timestamp, query_window_end_timestamp "
        f"ON {table} BEGIN {refresh_of('OLD')} {refresh_of('NEW')} END",
        f"CREATE TRIGGER IF NOT EXISTS {dialect.owned(name + '_delete')} AFTER DELETE ON {table} BEGIN {refresh_of('OLD')} END",
    ]


def spans_of(keys: Sequence[tuple[str, datetime]]) -> dict[str, tuple[datetime, datetime]]:
    """Per pipeline, the first and last window start among ``keys``."""
    out: dict[str, tuple[datetime, datetime]] = {}
    for name, start in keys:
        first, last = out.get(name, (start, start))
        out[name] = (min(first, start), max(last, start))
    return out


def expected(records: Sequence[Any]) -> set[tuple[Any, ...]]:
    """What the summary should hold for ``records`` (RunRecords), computed in Python: the
    definition the tests compare the table with."""
    windows: dict[tuple[Any, ...], list[Any]] = {}
    for r in records:
        windows.setdefault((r.pipeline_name, r.query_window_start_timestamp, r.query_window_end_timestamp), []).append(r)
    out = set()
    for key, runs in windows.items():
        status = [r.pipeline_status.value for r in runs]
        newest = max(r.pipeline_start_timestamp for r in runs)
        at_newest = [r.pipeline_status.value for r in runs if r.pipeline_start_timestamp == newest]
        ok = [r for r in runs if r.pipeline_status.value in ("SUCCESS", "SKIPPED")]
        ok_ends = [r.pipeline_end_timestamp for r in ok if r.pipeline_end_timestamp is not None]
        out.add((*key, len(runs), status.count("FAILED"), status.count("RUNNING"),
                 sum(1 for r in runs if r.pipeline_status.value in ("SUCCESS", "SKIPPED")
                     and r.pipeline_start_timestamp >= r.query_window_end_timestamp),
                 newest, at_newest.count("FAILED"), at_newest.count("RUNNING"), max(ok_ends) if ok_ends else None,
                 round((key[2] - key[1]).total_seconds()), max((r.pipeline_start_timestamp for r in ok), default=None)))
    return out
