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

from datetime import datetime
from typing import TYPE_CHECKING

from drivetrain.record import RunStatus
from drivetrain.window import Window

if TYPE_CHECKING:
    from drivetrain.drive import DriveStore
    from drivetrain.pipeline import Pipeline

__all__ = ["beginning", "next_window"]


def beginning(pipeline: Pipeline, now: datetime) -> datetime | None:
    """Where the windows a plain run must complete begin (see the module docstring).

    None when no window since ``start_date`` has ended yet.
    """
    grid = pipeline.grid
    first = grid.first()
    if first.end > now:
        return None
    if pipeline.config.schedule.catchup:
        return first.start
    earliest = pipeline.drive_store().earliest_window(pipeline.name)
    if earliest is None:
        return grid.last_complete(now).start
    return max(earliest, first.start)


def _live(store: DriveStore, pipeline: Pipeline) -> set[tuple[datetime, datetime]]:
    """Windows a live process is running now."""
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
    grid = pipeline.grid
    store = pipeline.drive_store()
    open_windows = store.open_windows(pipeline.name, begin)
    live = _live(store, pipeline) if any(w.running for w in open_windows) else set()
    for w in open_windows:  # oldest first: a failed (or dead) attempt comes before anything new
        window = Window(w.start, w.end, grid.timezone)
        if (w.failed or w.running) and w.end <= now and (w.start, w.end) not in live and grid.is_aligned(window):
            return window
    start = begin
    while True:
        window = grid.window_at(store.first_incomplete(pipeline.name, start))
        if window.end > now:
            return None
        if (window.start, window.end) not in live:
            return window
        start = window.end
