"""The state of many pipelines at once, in a few queries per drive table (``drivetrain status``).

Reading a fleet pipeline by pipeline costs a query (and, on the embedded default, an opening of
the drive file) per pipeline and question; reading each pipeline's whole history into Python
costs its whole history. Here every pipeline sharing a drive table is answered together:

* the newest run of each pipeline: the rows at each pipeline's latest ``pipeline_start_timestamp``
  (a join on a grouped maximum, not a window function over the whole table);
* its open failures: windows whose newest attempt FAILED, or is RUNNING in a process known to be
  gone. Only windows with a FAILED or RUNNING row can be open, so the query starts from those
  rows (a few per cent of the table) and reads the other attempts of just those windows;
* when it last succeeded (for ``--stale``), one grouped maximum.

The last two read the window summary (:mod:`drivetrain.sql.drive_windows`: one narrow row per
window, kept by the store with every write) where the drive table has one, and the drive
table's own rows otherwise (a drive table of an older layout that no run of this version has
written yet).

The next window of each pipeline (what a plain run would take) is the one per-pipeline question
left: ``status`` asks it only for the pipelines it prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.drive import DriveStore
from drivetrain.errors import DrivetrainError
from drivetrain.monitoring.queries import OK_STATUSES
from drivetrain.record import RunRecord, RunStatus

if TYPE_CHECKING:
    from drivetrain.pipeline import Pipeline

__all__ = ["PipelineState", "fleet_states", "reading", "store_key"]


@contextmanager
def reading(pipelines: Iterable[Pipeline]) -> Iterator[None]:
    """Hold a drive-table connection for a block of reads (one command); see
    :meth:`DriveStore.reading`. One per drive table: the first pipeline's store of each is
    held, and the fleet queries run on it (a fleet of 500 sharing one drive file opened it 500
    times, 3 s). A pipeline whose drive table cannot be opened is left alone (its own reads
    say why)."""
    with ExitStack() as stack:
        held: set[tuple[type, str]] = set()
        for pipeline in pipelines:
            with suppress(DrivetrainError):
                store = pipeline.drive_store()
                if store_key(store) not in held:
                    held.add(store_key(store))
                    stack.enter_context(store.reading())
        yield


def store_key(store: DriveStore) -> tuple[type, str]:
    """What identifies a drive table: pipelines with the same key share it."""
    return type(store), f"{store.location} {getattr(store, 'table_sql', '')}"


@attrs.frozen
class PipelineState:
    """What ``status`` shows about one pipeline."""

    name: str
    latest: RunRecord | None = None
    open_failures: int = 0
    """Windows whose newest attempt failed (or ran in a process that is gone)."""
    last_success_at: datetime | None = None
    """When its newest SUCCESS or SKIPPED run ended."""

    @property
    def failing(self) -> bool:
        return self.open_failures > 0 or (self.latest is not None and self.latest.pipeline_status is RunStatus.FAILED)

    def stale(self, threshold_seconds: float | None, now: datetime) -> bool:
        """Older than ``threshold_seconds`` (never stale without one), or never succeeded."""
        if threshold_seconds is None or self.latest is None:
            return False
        if self.last_success_at is None:
            return True
        return (now - self.last_success_at).total_seconds() > threshold_seconds


def fleet_states(store: DriveStore, names: Sequence[str]) -> dict[str, PipelineState]:
    """The state of each pipeline of ``names`` in ``store`` (all in one drive table)."""
    if not names or not store.exists():
        return {name: PipelineState(name) for name in names}
    p = store.dialect.param
    table = store.table_sql
    among = f"pipeline_name IN ({', '.join(p for _ in names)})"
    params = list(names)
    seek = seeks(store, names)
    newest_sql = (f"SELECT d.* FROM {table} d JOIN (SELECT pipeline_name AS newest_name, MAX(pipeline_start_timestamp) "
                  f"AS newest_start FROM {table} WHERE {among} GROUP BY pipeline_name) m ")
    if seek:  # each pipeline's newest start by one seek of its index, not a pass over its history
        newest_sql = (f"SELECT d.* FROM {table} d JOIN (SELECT names.name AS newest_name, (SELECT MAX(pipeline_start_timestamp) "
                      f"FROM {table} WHERE pipeline_name = names.name) AS newest_start FROM {seek.sql}) m ")
    newest: dict[str, RunRecord] = {}
    for row in store.query(
            newest_sql + "ON d.pipeline_name = m.newest_name AND d.pipeline_start_timestamp = m.newest_start", params):
        record = _record(row, store)
        held = newest.get(record.pipeline_name)
        if held is None or record.pipeline_id > held.pipeline_id:
            newest[record.pipeline_name] = record
    windows = windows_of(store)
    if windows:
        failures = _open_failures_summarized(store, windows, among, params)
        last_ok_sql = f"SELECT pipeline_name, MAX(ok_end) AS last_ok FROM {windows} WHERE {among} GROUP BY pipeline_name"
        if seek:
            last_ok_sql = (f"SELECT names.name AS pipeline_name, (SELECT MAX(ok_end) FROM {windows} WHERE pipeline_name = names.name) "
                           f"AS last_ok FROM {seek.sql}")
    else:
        failures = _open_failures(store, among, params)
        ok = ", ".join(f"'{s}'" for s in OK_STATUSES)
        last_ok_sql = (f"SELECT pipeline_name, MAX(pipeline_end_timestamp) AS last_ok FROM {table} "
                       f"WHERE {among} AND pipeline_status IN ({ok}) GROUP BY pipeline_name")
    last_ok = {str(r["pipeline_name"]): _aware(r["last_ok"]) for r in _lower(store.query(last_ok_sql, params))}
    return {name: PipelineState(name, newest.get(name), failures.get(name, 0), last_ok.get(name)) for name in names}


@attrs.frozen
class Names:
    """A relation of pipeline names (one column, ``name``) to drive per-pipeline seeks from,
    written for the store's dialect, with the parameters it binds (the names, in order)."""

    sql: str
    params: tuple[str, ...]


def seeks(store: Any, names: Sequence[str] = ()) -> Names | None:
    """The names as a relation, when ``store`` answers a per-pipeline newest or oldest value
    (``MAX(x) ... WHERE pipeline_name = name``) by one seek of an index on (pipeline_name, x),
    cheaper than grouping the pipelines' whole histories (``seeks_per_pipeline``: SQLite, whose
    ``GROUP BY`` reads every index entry of every pipeline; a year of a 500-pipeline fleet is
    4.4 million). None: the store groups (a columnar engine scans a column faster than it joins)."""
    if not getattr(store, "seeks_per_pipeline", False):
        return None
    p = store.dialect.param
    return Names(f"(SELECT column1 AS name FROM (VALUES {', '.join(f'({p})' for _ in names)}) listed) names", tuple(names))


def windows_of(store: Any) -> str | None:
    """The qualified name of ``store``'s window summary, when it has one to read (see
    :mod:`drivetrain.sql.drive_windows`); None: read the drive table itself."""
    check = getattr(store, "summarized", None)
    return str(store.windows_sql) if check is not None and check() else None


def phases_of(store: Any) -> str | None:
    """The qualified name of ``store``'s phase summary, when it has one to read (see
    :mod:`drivetrain.sql.drive_phases`); None: read the phase documents of the drive table."""
    check = getattr(store, "phases_summarized", None)
    return str(store.phases_sql) if check is not None and check() else None


def _open_failures_summarized(store: DriveStore, windows: str, among: str, params: list[Any]) -> dict[str, int]:
    """:func:`_open_failures` from the window summary: the FAILED newest attempts are counted
    there; the RUNNING ones (few) are read from the drive table to ask whether their process is gone."""
    counts: dict[str, int] = {}
    for row in _lower(store.query(
            f"SELECT pipeline_name, SUM(newest_failed) AS failed FROM {windows} "
            f"WHERE {among} AND newest_failed > 0 GROUP BY pipeline_name", params)):
        counts[str(row["pipeline_name"])] = int(row["failed"])
    running = []  # the windows first (few, from the summary), then their runs through the drive table's index
    for w in _lower(store.query(
            f"SELECT pipeline_name, window_start, window_end, newest_start FROM {windows} "
            f"WHERE {among} AND newest_running > 0", params)):
        runs = store.attempts(str(w["pipeline_name"]), _aware(w["window_start"]), _aware(w["window_end"]))  # type: ignore[arg-type]
        running += [{"pipeline_name": r.pipeline_name, "pipeline_id": r.pipeline_id} for r in runs
                    if r.pipeline_status is RunStatus.RUNNING and r.pipeline_start_timestamp == _aware(w["newest_start"])]
    _count_dead(store, running, counts)
    return counts


def _count_dead(store: DriveStore, running: list[dict[str, Any]], counts: dict[str, int]) -> None:
    """Add to ``counts`` each run of ``running`` whose process is gone."""
    for row in running:
        record = store.get(str(row["pipeline_id"]))
        if record is None or store.dead_reason(record) is None:
            continue  # alive: not a failure (yet)
        counts[str(row["pipeline_name"])] = counts.get(str(row["pipeline_name"]), 0) + 1


def _open_failures(store: DriveStore, among: str, params: list[Any]) -> dict[str, int]:
    """Per pipeline, the windows whose newest attempt FAILED, or is RUNNING in a dead process."""
    table = store.table_sql
    on = ("{a}.pipeline_name = {b}_name AND {a}.query_window_start_timestamp = {b}_start "
          "AND {a}.query_window_end_timestamp = {b}_end")
    rows = _lower(store.query(
        f"WITH w AS (SELECT DISTINCT pipeline_name AS w_name, query_window_start_timestamp AS w_start, "
        f"query_window_end_timestamp AS w_end FROM {table} WHERE {among} AND pipeline_status IN ('FAILED', 'RUNNING')), "
        "a AS (SELECT d.pipeline_name, d.query_window_start_timestamp, d.query_window_end_timestamp, d.pipeline_id, "
        f"d.pipeline_status, d.pipeline_start_timestamp FROM {table} d JOIN w ON {on.format(a='d', b='w')}), "
        "n AS (SELECT pipeline_name AS n_name, query_window_start_timestamp AS n_start, query_window_end_timestamp AS n_end, "
        "MAX(pipeline_start_timestamp) AS n_at FROM a GROUP BY pipeline_name, query_window_start_timestamp, query_window_end_timestamp) "
        f"SELECT a.pipeline_name, a.pipeline_id, a.pipeline_status FROM a JOIN n ON {on.format(a='a', b='n')} "
        "AND a.pipeline_start_timestamp = n.n_at WHERE a.pipeline_status IN ('FAILED', 'RUNNING')", params))
    counts: dict[str, int] = {}
    for row in rows:
        if row["pipeline_status"] != RunStatus.RUNNING.value:
            counts[str(row["pipeline_name"])] = counts.get(str(row["pipeline_name"]), 0) + 1
    _count_dead(store, [r for r in rows if r["pipeline_status"] == RunStatus.RUNNING.value], counts)
    return counts


def _lower(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{str(k).lower(): v for k, v in row.items()} for row in rows]


def _record(row: dict[str, Any], store: DriveStore) -> RunRecord:
    return RunRecord.from_row({str(k).lower(): v for k, v in row.items()}, where=getattr(store, "location", None))


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
