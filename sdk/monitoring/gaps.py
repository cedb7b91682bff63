"""Gap detection: windows since the pipeline's beginning that never ran or never succeeded.

The grid comes from the pipeline's config (``Pipeline.grid``: window length, time zone and
``start_date``); the drive table says what happened to each window. The beginning is
``start_date`` with ``catchup: true``, and the first window the pipeline ran with
``catchup: false`` (see :func:`gaps_begin`): windows before it were never meant to run. A window is covered once
a run of it that started after the window had ended ended SUCCESS or SKIPPED (nothing to do).
Otherwise it is a gap:

* ``missing``: no run of the window at all;
* ``failed``: no run of it completed: they failed, their process died, or they ran only
  partially (started before the window ended, ``run --allow-partial``);
* ``running``: a run is in progress and none has succeeded yet (not something to fill).
  A RUNNING row whose process is known to be gone (the drive store can tell: a free DuckDB
  file lock, an expired lease) counts as ``failed``: it will never succeed.

Windows are matched exactly: runs recorded with another window length (before a config
change) do not cover the new grid's windows. Consecutive gaps of the same kind are grouped
into :class:`GapRange` values, each with the ``drivetrain run --from/--to`` command that
fills it (that command runs every window of the range, in order, and stops at a failure).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.monitoring._values import GapSummary
from drivetrain.monitoring.fleet_windows import (
    WindowFacts,
    beginning,
    by_store,
    grid_of,
    window_facts,
)
from drivetrain.monitoring.queries import OK_STATUSES, Query, ReportSource, rows_of
from drivetrain.window import Window
from drivetrain.window_choice import live_windows

if TYPE_CHECKING:
    from drivetrain.pipeline import Pipeline

MISSING, FAILED, RUNNING = "missing", "failed", "running"
#: Kinds that ``drivetrain run --from/--to`` should run.
FILLABLE = (MISSING, FAILED)

__all__ = ["FAILED", "MISSING", "RUNNING", "Gap", "GapRange", "find_gaps", "fill_windows", "gap_summaries", "gaps_begin", "group_gaps", "summarize"]


@attrs.frozen
class Gap:
    """One window that has no successful run."""

    window: Window
    kind: str
    """``missing``, ``failed`` or ``running``."""
    attempts: int = 0
    """Runs of the window so far."""


@attrs.frozen
class GapRange:
    """Consecutive gaps of one kind: ``[start, end)`` holding ``windows`` windows."""

    pipeline: str
    kind: str
    start: datetime
    end: datetime
    windows: int
    attempts: int
    """Runs of these windows so far (0 for missing ones)."""

    def fill_command(self) -> str:
        """The command that runs these windows in order."""
        return f"drivetrain run {self.pipeline} --from {_iso(self.start)} --to {_iso(self.end)}"


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)  # type: ignore[no-any-return]


def window_states(store: ReportSource, pipeline: str, since: datetime) -> dict[tuple[datetime, datetime], tuple[int, int, int]]:
    """``(start, end) -> (attempts, runs that completed it, runs still RUNNING)`` from ``since`` on."""
    p = store.dialect.param
    ok = ", ".join(f"'{s}'" for s in OK_STATUSES)
    sql = (
        "SELECT query_window_start_timestamp AS window_start, query_window_end_timestamp AS window_end, "
        "COUNT(*) AS attempts, "
        # a run that started before its window ended (a partial run) does not complete it
        f"SUM(CASE WHEN pipeline_status IN ({ok}) AND pipeline_start_timestamp >= query_window_end_timestamp "
        "THEN 1 ELSE 0 END) AS ok, "
        "SUM(CASE WHEN pipeline_status = 'RUNNING' THEN 1 ELSE 0 END) AS running "
        f"FROM {store.table_sql} WHERE pipeline_name = {p} AND query_window_end_timestamp > {p} "
        "GROUP BY query_window_start_timestamp, query_window_end_timestamp"
    )
    out = {}
    for row in rows_of(store, Query(sql, (pipeline, since))):
        key = (_aware(row["window_start"]), _aware(row["window_end"]))
        out[key] = (int(row["attempts"] or 0), int(row["ok"] or 0), int(row["running"] or 0))
    return out


def find_gaps(
    pipeline: Pipeline,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    store: ReportSource | None = None,
) -> list[Gap]:
    """Every window of ``pipeline`` in ``[start, end)`` without a successful run, oldest first.

    :param start: default: where the pipeline's windows begin (see :func:`gaps_begin`).
    :param end: default: ``now``; only windows that have ended by then count.
    :param now: the current time (for tests).
    :param store: the drive store (default: the pipeline's).
    """
    with pipeline.drive_store().reading():  # its queries share one opening of the drive file
        return _find_gaps(pipeline, start=start, end=end, now=now, store=store)


def _find_gaps(pipeline: Pipeline, *, start: datetime | None, end: datetime | None, now: datetime | None,
               store: ReportSource | None) -> list[Gap]:
    now = now or datetime.now(UTC)
    grid = grid_of(pipeline)
    if start is None:
        first = gaps_begin(pipeline, now)
        if first is None:
            return []
        begin = first
    else:
        begin = start
    stop = min(end or now, now)
    if stop <= begin:
        return []
    store = store or pipeline.drive_store()
    facts = window_facts(store, [pipeline.name])[pipeline.name]
    if facts.regular(pipeline):
        return list(_gaps_from(pipeline, facts, begin, stop))
    states = window_states(store, pipeline.name, begin)
    live = live_windows(pipeline) if any(running and not ok for _, ok, running in states.values()) else set()
    gaps = []
    for window in grid.windows_between(begin, stop):
        attempts, ok, running = states.get((window.start, window.end), (0, 0, 0))
        if ok:
            continue
        kind = MISSING if not attempts else RUNNING if (window.start, window.end) in live else FAILED
        gaps.append(Gap(window, kind, attempts))
    return gaps


def _holes(facts: WindowFacts, first: datetime, stop: datetime) -> list[tuple[datetime, datetime]]:
    """``[first, stop)`` (grid boundaries) without the islands of completed windows."""
    holes, at = [], first
    for island in facts.islands:
        if island.end <= at or island.start >= stop:
            continue
        if island.start > at:
            holes.append((at, island.start))
        at = island.end
    if at < stop:
        holes.append((at, stop))
    return holes


def _gaps_from(pipeline: Pipeline, facts: WindowFacts, begin: datetime, stop: datetime) -> Iterator[Gap]:
    """The gaps of ``[begin, stop)``: only the windows outside the islands are looked at."""
    grid = grid_of(pipeline)
    first, last = grid.window_at(begin).start, grid.window_at(stop).start
    opened = {(o.start, o.end): o for o in facts.open}
    live: set[tuple[datetime, datetime]] | None = None
    for hole_start, hole_end in _holes(facts, first, last):
        for window in grid.windows_between(hole_start, hole_end):
            found = opened.get((window.start, window.end))
            if found is None:
                yield Gap(window, MISSING, 0)
                continue
            if found.running and live is None:
                live = live_windows(pipeline)
            yield Gap(window, RUNNING if live and (window.start, window.end) in live else FAILED, found.attempts)


def gap_summaries(pipelines: Sequence[Pipeline], *, now: datetime | None = None) -> list[GapSummary]:
    """Each pipeline's gap counts (see :func:`summarize`), three queries per drive table.

    Only the windows outside the islands of completed windows are counted one by one, and on
    an exact grid (not whole days) not even those: a hole of N hours is N windows.
    """
    now = now or datetime.now(UTC)
    out = []
    for store, group in by_store(pipelines):
        with store.reading():
            facts = window_facts(store, sorted({p.name for p in group}))
            for pipeline in group:
                out.append(_summary(pipeline, facts[pipeline.name], now, store))
    return out


def _summary(pipeline: Pipeline, facts: WindowFacts, now: datetime, store: ReportSource) -> GapSummary:
    if not facts.regular(pipeline):
        return summarize(pipeline.name, _find_gaps(pipeline, start=None, end=None, now=now, store=store))
    begin = beginning(pipeline, facts, now)
    if begin is None or now <= begin:
        return summarize(pipeline.name, [])
    grid = grid_of(pipeline)
    first, last = grid.window_at(begin).start, grid.window_at(now).start
    holes = _holes(facts, first, last)
    if grid.is_calendar:
        return summarize(pipeline.name, [g for hole in holes for g in _gaps_from(pipeline, facts, hole[0], hole[1])])
    step = grid.first().duration
    total = sum(int((b - a) / step) for a, b in holes)
    attempted = [o for o in facts.open if first <= o.start and o.end <= last and grid.is_aligned(Window(o.start, o.end, grid.timezone))]
    live = live_windows(pipeline) if any(o.running for o in attempted) else set()
    failed = sum(1 for o in attempted if (o.start, o.end) not in live)
    return GapSummary(pipeline=pipeline.name, missing=total - len(attempted), failed=failed,
                      first=holes[0][0] if holes and total else None)


def gaps_begin(pipeline: Pipeline, now: datetime) -> datetime | None:
    """Where a pipeline's gaps can begin: the windows a plain run must complete.

    With ``catchup: true`` that is the first window from ``start_date``. With ``catchup: false``
    the pipeline was never meant to load the windows before it first ran, so it is the oldest
    window it has run (before its first run: the latest window that has ended), never before
    ``start_date``. None when no window since ``start_date`` has ended.
    """
    from drivetrain.window_choice import beginning

    return beginning(pipeline, now)


def group_gaps(pipeline: str, gaps: Iterable[Gap]) -> list[GapRange]:
    """Consecutive gaps of the same kind as ranges, oldest first."""
    ranges: list[GapRange] = []
    for gap in gaps:
        last = ranges[-1] if ranges else None
        if last is not None and last.kind == gap.kind and last.end == gap.window.start:
            ranges[-1] = attrs.evolve(last, end=gap.window.end, windows=last.windows + 1, attempts=last.attempts + gap.attempts)
        else:
            ranges.append(GapRange(pipeline, gap.kind, gap.window.start, gap.window.end, 1, gap.attempts))
    return ranges


def fill_windows(pipeline: Pipeline, start: datetime, end: datetime, *, now: datetime | None = None) -> list[Window]:
    """The windows of ``[start, end)`` that ``run --from/--to`` must run to fill the gaps.

    Windows that already succeeded, and windows being run right now, are left out.
    """
    return [g.window for g in find_gaps(pipeline, start=start, end=end, now=now) if g.kind in FILLABLE]


def summarize(pipeline: str, gaps: Sequence[Gap]) -> GapSummary:
    """Counts for the health dashboard."""
    return GapSummary(
        pipeline=pipeline,
        missing=sum(1 for g in gaps if g.kind == MISSING),
        failed=sum(1 for g in gaps if g.kind == FAILED),
        first=gaps[0].window.start if gaps else None,
    )
