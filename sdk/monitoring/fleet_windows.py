"""What a fleet's windows look like, in three queries per drive table: next windows and gaps.

Asking each pipeline for its next window costs three indexed queries (and gap detection read
every window of every pipeline into Python). Here the drive table is read once for all the
pipelines sharing it, and answers come from three small results per pipeline:

* its **islands of completed windows**: the windows some run completed (SUCCESS or SKIPPED,
  started after the window ended), joined into runs where each window starts where the one
  before ends. Only the edges are read: the completed windows no completed window ends
  before (an island's start) or starts after (its end), two anti-joins. A year of hourly
  windows with a handful of holes is a handful of islands;
* its **open windows**: windows with runs but none that completed them (failed, running, or
  only run partially): few, they are the exceptions;
* the start of its oldest window (for ``catchup: false``).

Where the drive table has its window summary (:mod:`drivetrain.sql.drive_windows`, one narrow
row per window, kept by the store with every write), the three are read from it: the completed
windows are its rows with ``completed > 0``, the open ones those with none. A drive table of an
older layout not yet written by this version is read directly.

Everything is plain SQL (``NOT EXISTS``, ``UNION ALL``, ``GROUP BY``, the dialect's seconds
between two timestamps) that DuckDB, Snowflake and PostgreSQL run alike. (Numbering islands
with ``LAG`` and a running ``SUM`` sorts the whole table: 1.4 s against 0.8 s here at 374k rows.)

The answers are exactly :func:`drivetrain.window_choice.next_window`'s and
:func:`drivetrain.monitoring.gaps.find_gaps`'s. They rely on each island being made of the
grid's windows; an island that is not (a window of another length, recorded before a config
change, or any window of a calendar grid, whose days are not all equally long) sends that
pipeline back to the per-pipeline questions, which look at every window.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.monitoring.fleet import seeks, windows_of
from drivetrain.monitoring.queries import OK_STATUSES, Query, ReportSource, rows_of
from drivetrain.window import Window, WindowGrid

if TYPE_CHECKING:
    from drivetrain.pipeline import Pipeline

__all__ = ["Island", "OpenRun", "WindowFacts", "beginning", "by_store", "grid_of", "next_window", "next_windows", "window_facts"]


@attrs.frozen
class Island:
    """Consecutive completed windows covering ``[start, end)``."""

    start: datetime
    end: datetime


@attrs.frozen
class OpenRun:
    """A window with runs but none that completed it."""

    start: datetime
    end: datetime
    attempts: int
    failed: int
    running: int


@attrs.frozen
class WindowFacts:
    """One pipeline's islands (oldest first), open windows (oldest first) and oldest window start."""

    islands: tuple[Island, ...] = ()
    open: tuple[OpenRun, ...] = ()
    earliest: datetime | None = None
    lengths: tuple[float, float] | None = None
    """The shortest and longest completed window, in seconds (None: none completed)."""
    paired: bool = True
    """Whether every island start found its end (windows that overlap break the pairing)."""

    def regular(self, pipeline: Pipeline) -> bool:
        """Whether every island is made of the pipeline's grid windows (see the module docstring).

        Every completed window lasting the grid's step and every island starting on the grid
        is enough: a window that does not start an island follows one that ends where it
        starts, so walking back it lines up with an island's start."""
        if not self.islands:
            return True
        grid = grid_of(pipeline)
        if grid.is_calendar or not self.paired:
            return False
        step = grid.first().duration.total_seconds()
        return self.lengths == (step, step) and all(grid.window_at(i.start).start == i.start for i in self.islands)

    def island_at(self, instant: datetime) -> Island | None:
        """The island holding ``instant``, if any."""
        for island in self.islands:
            if island.start <= instant < island.end:
                return island
        return None


def grid_of(pipeline: Pipeline) -> WindowGrid:
    """``pipeline.grid``, built once per (duration, zone, start date): a fleet's pipelines
    mostly share one, and building it 2,000 times cost a second of ``status``."""
    schedule = pipeline.config.schedule
    return _grid(pipeline.config.query_window.duration, schedule.timezone, schedule.start_date)


@functools.lru_cache(maxsize=1024)
def _grid(duration: str, timezone: str, start_date: date) -> WindowGrid:
    return WindowGrid.from_config(duration, timezone, start_date)


def _utc(value: Any) -> datetime:
    from drivetrain.drive import _utc as utc

    return utc(value)


def window_facts(store: ReportSource, names: Sequence[str]) -> dict[str, WindowFacts]:
    """The facts of each pipeline of ``names`` in ``store`` (all in one drive table)."""
    if not names:
        return {}
    p = store.dialect.param
    among = f"pipeline_name IN ({', '.join(p for _ in names)})"
    windows = windows_of(store)
    seek = seeks(store, names)
    indexes = getattr(store, "island_indexes", lambda: None)()  # a store whose summary keeps island edges
    if windows and seek and indexes is not None:
        islands_sql, open_sql, earliest_sql = _edges_sql(windows, among, seek.sql, indexes)
    elif windows:
        islands_sql, open_sql, earliest_sql = _summary_sql(windows, among)
    else:
        islands_sql, open_sql, earliest_sql = _drive_sql(store, among)
    params = tuple(names)
    # every query binds the names once for each list of them it holds (its IN lists, its names relation)
    def bound(sql: str) -> tuple[Any, ...]:
        return params * (sql.count(among) + (sql.count(seek.sql) if seek else 0))

    edges: dict[str, tuple[list[datetime], list[datetime]]] = {}
    lengths: dict[str, tuple[float, float]] = {}
    for r in rows_of(store, Query(islands_sql, bound(islands_sql))):
        kind = int(r["starts"])
        if kind == 2:
            if r["shortest"] is not None:
                lengths[str(r["pn"])] = (float(r["shortest"]), float(r["longest"]))
        else:
            edges.setdefault(str(r["pn"]), ([], []))[1 - kind].append(_utc(r["edge"]))
    islands = {name: _pair(*found) for name, found in edges.items()}
    opened: dict[str, list[OpenRun]] = {}
    for r in rows_of(store, Query(open_sql, bound(open_sql))):
        opened.setdefault(str(r["pn"]), []).append(OpenRun(
            _utc(r["ws"]), _utc(r["we"]), int(r["attempts"] or 0), int(r["failed"] or 0), int(r["running"] or 0)))
    earliest = {str(r["pn"]): _utc(r["first_start"]) for r in rows_of(store, Query(earliest_sql, bound(earliest_sql)))
                if r["first_start"] is not None}
    return {
        name: WindowFacts(
            islands.get(name, ((), True))[0],
            tuple(sorted(opened.get(name, ()), key=lambda o: (o.start, o.end))),
            earliest.get(name),
            lengths.get(name),
            islands.get(name, ((), True))[1],
        )
        for name in names
    }


def _summary_sql(windows: str, among: str) -> tuple[str, str, str]:
    """The three queries over the window summary: island edges by anti-joins on its completed
    rows (indexed on both ends of a window on SQLite), the lengths it keeps, open windows."""
    done = f"{among} AND completed > 0"
    islands = (
        f"SELECT pipeline_name AS pn, NULL AS edge, 2 AS starts, MIN(window_seconds) AS shortest, MAX(window_seconds) AS longest "
        f"FROM {windows} WHERE {done} GROUP BY pipeline_name "
        f"UNION ALL SELECT pipeline_name AS pn, window_start AS edge, 1 AS starts, NULL AS shortest, NULL AS longest FROM {windows} d "
        f"WHERE {done} AND NOT EXISTS (SELECT 1 FROM {windows} n WHERE n.pipeline_name = d.pipeline_name "
        "AND n.window_end = d.window_start AND n.completed > 0) "
        f"UNION ALL SELECT pipeline_name AS pn, window_end AS edge, 0 AS starts, NULL AS shortest, NULL AS longest FROM {windows} d "
        f"WHERE {done} AND NOT EXISTS (SELECT 1 FROM {windows} n WHERE n.pipeline_name = d.pipeline_name "
        "AND n.window_start = d.window_end AND n.completed > 0)"
    )
    opened = (f"SELECT pipeline_name AS pn, window_start AS ws, window_end AS we, attempts, failed, running "
              f"FROM {windows} WHERE {among} AND completed = 0")
    earliest = f"SELECT pipeline_name AS pn, MIN(window_start) AS first_start FROM {windows} WHERE {among} GROUP BY pipeline_name"
    return islands, opened, earliest


def _edges_sql(windows: str, among: str, names: str, indexes: tuple[str, str]) -> tuple[str, str, str]:
    """The three queries over a window summary that carries its island edges (SQLite, layout 5:
    see ``drivetrain.connectors.sqlite.drive_islands``): the edges through their partial
    indexes (``indexes``: the starts' and the ends', named to SQLite's ``INDEXED BY``), each
    pipeline's shortest and longest completed window and its oldest window by a seek each
    (``names``: the pipelines as a relation), open windows as before. Nothing here reads a
    pipeline's whole history."""
    def seek(what: str, where: str = "") -> str:
        return f"(SELECT {what} FROM {windows} WHERE pipeline_name = names.name{where})"

    done = " AND completed > 0"
    islands = (
        f"SELECT names.name AS pn, NULL AS edge, 2 AS starts, {seek('MIN(window_seconds)', done)} AS shortest, "
        f"{seek('MAX(window_seconds)', done)} AS longest FROM {names} "
        f"UNION ALL SELECT pipeline_name AS pn, window_start AS edge, 1 AS starts, NULL AS shortest, NULL AS longest "
        f"FROM {windows} INDEXED BY {indexes[0]} WHERE {among} AND island_start = 1 "
        f"UNION ALL SELECT pipeline_name AS pn, window_end AS edge, 0 AS starts, NULL AS shortest, NULL AS longest "
        f"FROM {windows} INDEXED BY {indexes[1]} WHERE {among} AND island_end = 1"
    )
    _, opened, _ = _summary_sql(windows, among)
    earliest = f"SELECT names.name AS pn, {seek('MIN(window_start)')} AS first_start FROM {names}"
    return islands, opened, earliest


def _drive_sql(store: ReportSource, among: str) -> tuple[str, str, str]:
    """The three queries over the drive table itself (a layout without the window summary)."""
    table = store.table_sql
    ok = ", ".join(f"'{s}'" for s in OK_STATUSES)
    complete = f"pipeline_status IN ({ok}) AND pipeline_start_timestamp >= query_window_end_timestamp"
    length = store.dialect.seconds_between("ws", "we")
    # island edges by anti-joins on the distinct completed windows (no window function: no
    # sort of the whole table), and each pipeline's shortest and longest completed window
    islands = (
        "WITH done AS (SELECT DISTINCT pipeline_name AS pn, query_window_start_timestamp AS ws, "
        f"query_window_end_timestamp AS we FROM {table} WHERE {among} AND {complete}) "
        # the typed branch first: PostgreSQL types a UNION's NULL columns pair by pair
        f"SELECT pn, NULL AS edge, 2 AS starts, MIN({length}) AS shortest, MAX({length}) AS longest FROM done GROUP BY pn "
        "UNION ALL SELECT pn, ws AS edge, 1 AS starts, NULL AS shortest, NULL AS longest FROM done d "
        "WHERE NOT EXISTS (SELECT 1 FROM done n WHERE n.pn = d.pn AND n.we = d.ws) "
        "UNION ALL SELECT pn, we AS edge, 0 AS starts, NULL AS shortest, NULL AS longest FROM done d "
        "WHERE NOT EXISTS (SELECT 1 FROM done n WHERE n.pn = d.pn AND n.ws = d.we)"
    )
    opened = (
        "SELECT pipeline_name AS pn, query_window_start_timestamp AS ws, query_window_end_timestamp AS we, "
        "COUNT(*) AS attempts, SUM(CASE WHEN pipeline_status = 'FAILED' THEN 1 ELSE 0 END) AS failed, "
        "SUM(CASE WHEN pipeline_status = 'RUNNING' THEN 1 ELSE 0 END) AS running "
        f"FROM {table} WHERE {among} GROUP BY pipeline_name, query_window_start_timestamp, query_window_end_timestamp "
        f"HAVING SUM(CASE WHEN {complete} THEN 1 ELSE 0 END) = 0"
    )
    earliest = (f"SELECT pipeline_name AS pn, MIN(query_window_start_timestamp) AS first_start FROM {table} "
                f"WHERE {among} GROUP BY pipeline_name")
    return islands, opened, earliest

def _pair(starts: list[datetime], ends: list[datetime]) -> tuple[tuple[Island, ...], bool]:
    """Islands from their starts and ends (each sorted), and whether they pair up in order."""
    starts, ends = sorted(starts), sorted(ends)
    paired = len(starts) == len(ends) and all(s < e for s, e in zip(starts, ends, strict=False)) and all(
        e <= s for e, s in zip(ends, starts[1:], strict=False))
    return tuple(Island(s, e) for s, e in zip(starts, ends, strict=False)), paired


def by_store(pipelines: Iterable[Pipeline]) -> list[tuple[Any, list[Pipeline]]]:
    """The pipelines grouped by the drive table they share (one store per group)."""
    from drivetrain.monitoring.fleet import store_key

    groups: dict[tuple[type, str], tuple[Any, list[Pipeline]]] = {}
    for pipeline in pipelines:
        store = pipeline.drive_store()
        groups.setdefault(store_key(store), (store, []))[1].append(pipeline)
    return list(groups.values())


def beginning(pipeline: Pipeline, facts: WindowFacts, now: datetime) -> datetime | None:
    """:func:`drivetrain.window_choice.beginning` from the facts (no query)."""
    from drivetrain.window_choice import begin_at

    return begin_at(grid_of(pipeline), now, catchup=pipeline.config.schedule.catchup, earliest=lambda: facts.earliest)

def first_incomplete(pipeline: Pipeline, facts: WindowFacts, since: datetime) -> datetime:
    """:meth:`DriveStore.first_incomplete` from regular islands: the end of the island in
    which a window starts at ``since``, else ``since``."""
    island = facts.island_at(since)
    if island is None:
        return since
    grid = grid_of(pipeline)
    return island.end if grid.window_at(since).start == since else since


def next_window(pipeline: Pipeline, facts: WindowFacts, now: datetime) -> Window | None:
    """The window a plain run takes at ``now`` (see :mod:`drivetrain.window_choice`), from the facts."""
    from drivetrain.window_choice import choose, live_windows
    from drivetrain.window_choice import next_window as asked

    if not facts.regular(pipeline):
        return asked(pipeline, now)
    begin = beginning(pipeline, facts, now)
    if begin is None:
        return None
    return choose(grid_of(pipeline), begin, now, [o for o in facts.open if o.start >= begin],
                  live=lambda: live_windows(pipeline),
                  first_incomplete=lambda since: first_incomplete(pipeline, facts, since))


def next_windows(pipelines: Sequence[Pipeline], now: datetime) -> dict[int, Window | None]:
    """Each pipeline's next window (keyed by ``id(pipeline)``), three queries per drive table."""
    out: dict[int, Window | None] = {}
    for store, group in by_store(pipelines):
        facts = window_facts(store, sorted({p.name for p in group}))
        for pipeline in group:
            out[id(pipeline)] = next_window(pipeline, facts[pipeline.name], now)
    return out
