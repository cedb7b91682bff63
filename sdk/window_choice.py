"""Which window a run without arguments takes: never one that leaves a hole behind.

A plain run takes the oldest window that has failed (a dead run's window counts as failed),
else the oldest window from the pipeline's beginning that no run has completed (never run, or
run only partially before it ended). The beginning is ``start_date`` with ``catchup: true``;
with ``catchup: false`` it is the oldest window the pipeline has ever run, or, before its
first run, the latest window that has ended. Windows that have not ended are never chosen, and
a window that a live process is running now is passed over (it is not a hole).

Everything is answered by a few aggregate queries on the drive table (see
:meth:`DriveStore.open_windows` and :meth:`DriveStore.first_incomplete`), so the cost does not
grow with the number of successful runs read into Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from drivetrain.record import RunStatus
from drivetrain.window import Window, WindowGrid

if TYPE_CHECKING:
    from drivetrain.pipeline import Pipeline

__all__ = ["begin_at", "beginning", "choose", "live_windows", "next_window"]


def beginning(pipeline: Pipeline, now: datetime) -> datetime | None:
    """Where the windows a plain run must complete begin (see the module docstring).

    None when no window since ``start_date`` has ended yet.
    """
    return begin_at(pipeline.grid, now, catchup=pipeline.config.schedule.catchup,
                    earliest=lambda: pipeline.drive_store().earliest_window(pipeline.name))


def begin_at(grid: WindowGrid, now: datetime, *, catchup: bool,
             earliest: Callable[[], datetime | None]) -> datetime | None:
    """:func:`beginning`'s rule, given how to find the oldest window ever run (asked only
    without catchup): shared by a pipeline's own answer and the fleet's."""
    first = grid.first()
    if first.end > now:
        return None
    if catchup:
        return first.start
    oldest = earliest()
    if oldest is None:
        return grid.last_complete(now).start
    return max(oldest, first.start)

def live_windows(pipeline: Pipeline) -> set[tuple[datetime, datetime]]:
    """Windows with a RUNNING row whose process may still be alive (see DriveStore.dead_reason):
    a plain run passes over them, and they are not gaps."""
    store = pipeline.drive_store()
    return {
        (r.query_window_start_timestamp, r.query_window_end_timestamp)
        for r in store.history(pipeline.name, status=[RunStatus.RUNNING])
        if store.dead_reason(r) is None
    }

def next_window(pipeline: Pipeline, now: datetime) -> Window | None:
    """The window a plain run takes at ``now``; None when every ended window is complete."""
    with pipeline.drive_store().reading():  # its few queries share one opening of the drive file
        return _next_window(pipeline, now)


def _next_window(pipeline: Pipeline, now: datetime) -> Window | None:
    begin = beginning(pipeline, now)
    if begin is None:
        return None
    store = pipeline.drive_store()
    return choose(pipeline.grid, begin, now, store.open_windows(pipeline.name, begin),
                  live=lambda: live_windows(pipeline),
                  first_incomplete=lambda since: store.first_incomplete(pipeline.name, since))


def choose(grid: WindowGrid, begin: datetime, now: datetime, open_windows: Sequence[Any], *,
           live: Callable[[], set[tuple[datetime, datetime]]],
           first_incomplete: Callable[[datetime], datetime]) -> Window | None:
    """The rule of the module docstring, from its facts: ``open_windows`` (oldest first, each
    with ``start``, ``end``, ``failed`` and ``running``), the windows a live process runs
    (asked only if one is running), and the first incomplete window from a start. Shared by a
    pipeline's own answer and the fleet's (:mod:`drivetrain.monitoring.fleet_windows`)."""
    running = live() if any(w.running for w in open_windows) else set()
    for w in open_windows:  # oldest first: a failed (or dead) attempt comes before anything new
        window = Window(w.start, w.end, grid.timezone)
        if (w.failed or w.running) and w.end <= now and (w.start, w.end) not in running and grid.is_aligned(window):
            return window
    start = begin
    while True:
        window = grid.window_at(first_incomplete(start))
        if window.end > now:
            return None
        if (window.start, window.end) not in running:
            return window
        start = window.end
