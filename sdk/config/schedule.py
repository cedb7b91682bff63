"""Whether the cron schedule and the window grid agree: one scheduled run, one window.

Under Airflow a DAG run covers the data interval between two cron ticks, and that interval
must be exactly one window of the pipeline's grid, or the run's first task cannot tell which
window to load and fails. :func:`schedule_problem` finds such a mismatch from the config alone,
before anything runs (``drivetrain validate`` calls it); :func:`interval_window` is the same
rule applied to one DAG run's interval (the Airflow operator calls it).

The check walks the schedule's first runs from ``start_date`` and the runs around each
daylight-saving change of its zone in the following year, since that is where calendar
windows and cron ticks drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING

from drivetrain.errors import ConfigError

if TYPE_CHECKING:
    from drivetrain.config.model import PipelineConfig
    from drivetrain.window import Window, WindowGrid

__all__ = ["interval_window", "schedule_problem"]

#: Runs checked from the start date, and around each daylight-saving change.
_RUNS_CHECKED = 48


def _grid(config: PipelineConfig) -> WindowGrid:
    from drivetrain.window import WindowGrid

    sched = config.schedule
    return WindowGrid.from_config(config.query_window.duration, sched.timezone, sched.start_date)


def _schedule_key(config: PipelineConfig) -> str:
    """Where the schedule is written: its cron expression, or the frequency standing for one."""
    written = config.raw.get("dag_schedule")
    if isinstance(written, Mapping) and written.get("cron_expression"):
        return "dag_schedule.cron_expression"
    return "dag_schedule.frequency"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _ticks(expression: str, after: datetime, count: int) -> list[datetime]:
    from croniter import croniter

    it = croniter(expression, after - timedelta(seconds=1))
    return [_utc(it.get_next(datetime)) for _ in range(count)]


def _offset_changes(config: PipelineConfig) -> list[date]:
    """The days in the year after ``start_date`` on which the schedule's zone changes its offset."""
    zone = config.schedule.tzinfo
    day = config.schedule.start_date
    out = []
    previous = datetime.combine(day, time(), zone).utcoffset()
    for n in range(1, 367):
        current = datetime.combine(day + timedelta(days=n), time(), zone).utcoffset()
        if current != previous:
            out.append(day + timedelta(days=n - 1))
        previous = current
    return out


def _mismatch(grid: WindowGrid, start: datetime, end: datetime) -> str | None:
    """Why the run interval ``[start, end)`` is not exactly one window, or None when it is."""
    try:
        window = grid.window_starting(start)
    except ValueError as exc:
        return f"a run starting at {start.isoformat()} does not start a window ({exc})"
    if window.end != end:
        return (f"the run covering [{start.isoformat()}, {end.isoformat()}) lasts {end - start}, "
                f"but the window starting there ends at {window.end.isoformat()}")
    return None


def _suggestion(duration: str, start_date: date) -> str:
    """A cron expression that fires once per ``duration`` window, for the common ones."""
    from drivetrain.durations import parse_duration

    try:
        length = parse_duration(duration)
    except ValueError:
        return ""
    minutes = int(length.total_seconds() // 60)
    if length.total_seconds() % 60:
        return ""
    if minutes < 60 and 60 % minutes == 0:
        cron = "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    elif minutes % 60 == 0 and minutes < 1440 and 24 % (minutes // 60) == 0:
        cron = "0 * * * *" if minutes == 60 else f"0 */{minutes // 60} * * *"
    elif minutes == 1440:
        cron = "0 0 * * *"
    elif minutes == 7 * 1440:
        cron = f"0 0 * * {start_date.isoweekday() % 7}"  # windows start on start_date's weekday
    else:
        return ""
    return f" (for {duration!r} windows: {cron!r})"


def schedule_problem(config: PipelineConfig) -> tuple[str, str] | None:
    """``(json path, what is wrong)`` when the schedule's runs are not one window each, else None."""
    grid = _grid(config)
    sched = config.schedule
    first = datetime.combine(sched.start_date, time(), sched.tzinfo)
    starts = [first] + [datetime.combine(day, time(), sched.tzinfo) for day in _offset_changes(config)]
    for start in starts:
        try:
            ticks = _ticks(sched.cron_expression, start, _RUNS_CHECKED)
        except Exception:  # croniter gives up on a date no calendar has (such as 30 February)
            return _schedule_key(config), (
                f"{sched.cron_expression!r} in {sched.timezone} never fires (no date matches it), so no run "
                "would ever start; give a cron expression that fires once per window")
        for begin, end in pairwise(ticks):
            why = _mismatch(grid, begin, end)
            if why is not None:
                return _schedule_key(config), (
                    f"{sched.cron_expression!r} in {sched.timezone} does not fire once per "
                    f"{config.query_window.duration!r} window: {why}. Under Airflow every such run "
                    f"fails in initialize_pipeline; make the schedule fire on window boundaries, once per "
                    f"window{_suggestion(config.query_window.duration, sched.start_date)}, or change query_window.duration"
                )
    return None


def interval_window(config: PipelineConfig, start: datetime | None, end: datetime | None) -> Window:
    """The window a DAG run's data interval ``[start, end)`` stands for.

    :raises ConfigError: the run has no data interval, or the interval is not exactly one
        window of the pipeline's grid (the schedule does not match ``query_window``).
    """
    where = f"{config.source_file}: {_schedule_key(config)}"
    if start is None or end is None:
        raise ConfigError(
            f"{where}: this DAG run has no data interval, so drivetrain cannot tell which window "
            "to load; schedule the DAG with its cron timetable or trigger it with a logical date",
            source=config.source_file,
        )
    start, end = _utc(start), _utc(end)
    grid = _grid(config)
    try:
        window = grid.window_starting(start)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: the DAG run's data interval [{start.isoformat()}, {end.isoformat()}) does not "
            f"start a {config.query_window.duration!r} window: {exc}; make the cron expression "
            f"({config.schedule.cron_expression!r} in {config.schedule.timezone}) fire on window boundaries",
            source=config.source_file,
        ) from exc
    if window.end != end:
        raise ConfigError(
            f"{where}: the DAG run's data interval [{start.isoformat()}, {end.isoformat()}) is not one "
            f"{config.query_window.duration!r} window (that would end at {window.end.isoformat()}); "
            f"make the cron expression ({config.schedule.cron_expression!r}) fire once per window",
            source=config.source_file,
        )
    return window
