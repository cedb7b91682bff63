"""Which window a DAG run loads: one rule for every kind of run.

The convention: **a DAG run's logical date is the start of the window it loads.** Airflow's
cron data-interval timetable already works that way for the runs it makes itself; manual runs
are brought in line here:

- **scheduled** and **backfill** runs load their data interval, which must be exactly one
  window starting at the run's logical date;
- a **manual** run (``airflow dags trigger``, the UI, ``dags test``, another DAG) with
  ``{"window_start": ...}`` in its conf loads the window starting there;
- a manual run with a logical date loads the window starting at that date. Airflow's data
  interval of a manual run is *not* used: ``airflow dags trigger`` derives it from the moment
  of the trigger, the REST API from the interval before the logical date;
- a manual run without a logical date loads the latest window that had ended when the run was
  created (its ``run_after``);
- clearing a DAG run runs it again with the same facts, so it loads the same window: the new
  attempt resumes the failed one.

Anything that does not fit (a logical date between window starts, a conf that names another
window than the logical date, a scheduled interval that is not one window) fails the run's
first task with a message naming both sides, before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from drivetrain.config.schedule import interval_window
from drivetrain.errors import DrivetrainError
from drivetrain.window import Window, WindowGrid, parse_timestamp

__all__ = ["CONF_WINDOW_START", "DagRunFacts", "RunWindowError", "window_for_run"]

#: The DAG run conf key that names the window to load.
CONF_WINDOW_START = "window_start"
#: Run types whose data interval comes from the DAG's timetable (and so is the window).
TIMETABLE_RUNS = ("scheduled", "backfill")


class RunWindowError(DrivetrainError):
    """A DAG run's facts (logical date, data interval, conf) do not name one window."""


def _utc(value: datetime | None) -> datetime | None:
    """A plain UTC datetime from Airflow's (pendulum) values."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone")
    return datetime.fromtimestamp(value.timestamp(), UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@attrs.frozen
class DagRunFacts:
    """What Airflow says about one DAG run, as plain UTC values."""

    run_type: str
    """``scheduled``, ``backfill``, ``manual``, ``asset_triggered``...; ``unknown`` without a DAG run."""
    run_id: str | None = None
    dag_id: str | None = None
    logical_date: datetime | None = attrs.field(default=None, converter=_utc)
    data_interval_start: datetime | None = attrs.field(default=None, converter=_utc)
    data_interval_end: datetime | None = attrs.field(default=None, converter=_utc)
    run_after: datetime | None = attrs.field(default=None, converter=_utc)
    """When Airflow created the run (a manual run without a logical date loads the window before)."""
    conf: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda c: dict(c or {}))

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> DagRunFacts:
        """The facts of the task's DAG run (``context["dag_run"]``); without one, the context's
        own data interval and logical date (a task run on its own)."""
        run = context.get("dag_run")
        if run is None:
            return cls(
                run_type="unknown",
                logical_date=context.get("logical_date"),
                data_interval_start=context.get("data_interval_start"),
                data_interval_end=context.get("data_interval_end"),
            )
        run_type = getattr(run, "run_type", None)
        return cls(
            run_type=str(getattr(run_type, "value", run_type) or "unknown"),
            run_id=run.run_id,
            dag_id=run.dag_id,
            logical_date=run.logical_date,
            data_interval_start=run.data_interval_start,
            data_interval_end=run.data_interval_end,
            run_after=run.run_after,
            conf=run.conf,
        )

    def record(self, rule: str) -> dict[str, Any]:
        """These facts as JSON for the drive row, with the rule that chose the window."""
        interval = None
        if self.data_interval_start is not None and self.data_interval_end is not None:
            interval = [_iso(self.data_interval_start), _iso(self.data_interval_end)]
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "run_type": self.run_type,
            "logical_date": _iso(self.logical_date),
            "data_interval": interval,
            "run_after": _iso(self.run_after),
            "conf_window_start": self.conf.get(CONF_WINDOW_START),
            "window_rule": rule,
        }


def _starting(grid: WindowGrid, start: datetime, what: str) -> Window:
    try:
        return grid.window_starting(start)
    except ValueError:
        holding = grid.window_at(start)
        raise RunWindowError(
            f"{what} {start.isoformat()} is not the start of a window ({grid.duration} windows in "
            f"{grid.timezone}): a DAG run's logical date is the start of the window it loads; for the window "
            f"[{holding.start.isoformat()}, {holding.end.isoformat()}) use {holding.start.isoformat()}"
        ) from None


def _conf_start(facts: DagRunFacts, grid: WindowGrid) -> datetime | None:
    text = facts.conf.get(CONF_WINDOW_START)
    if text is None:
        return None
    if not isinstance(text, str):
        raise RunWindowError(
            f"DAG run conf {CONF_WINDOW_START}: {text!r} is not a timestamp; "
            'give ISO 8601 text such as {"window_start": "2025-11-15T10:00:00+00:00"}'
        )
    try:
        return parse_timestamp(text, grid.timezone)
    except ValueError as exc:
        raise RunWindowError(f"DAG run conf {CONF_WINDOW_START}: {exc}") from None


def window_for_run(pipeline: Any, facts: DagRunFacts) -> tuple[Window, str]:
    """The window ``facts`` stand for, and which rule chose it (see the module doc).

    :raises RunWindowError: the facts name no window, or two different ones.
    :raises ConfigError: a scheduled interval is not one window of the pipeline's grid.
    """
    grid: WindowGrid = pipeline.grid
    conf_start = _conf_start(facts, grid)
    if facts.run_type in TIMETABLE_RUNS or (facts.run_type == "unknown" and conf_start is None
                                            and facts.data_interval_start is not None):
        window = interval_window(pipeline.config, facts.data_interval_start, facts.data_interval_end)
        rule = "the data interval of a scheduled or backfill run"
        claims = [("logical date", facts.logical_date), (f"conf {CONF_WINDOW_START}", conf_start)]
    elif conf_start is not None:
        window = _starting(grid, conf_start, f"DAG run conf {CONF_WINDOW_START}")
        rule = f"conf {CONF_WINDOW_START}"
        claims = [("logical date", facts.logical_date)]
    elif facts.logical_date is not None:
        window = _starting(grid, facts.logical_date, "the DAG run's logical date")
        rule = "the logical date is the window start"
        claims = []
    elif facts.run_after is not None:
        window = grid.last_complete(facts.run_after)
        rule = "no logical date: the latest window ended when the run was created"
        claims = []
    else:
        raise RunWindowError(
            "this DAG run has no logical date, data interval or conf window_start, so drivetrain cannot tell "
            'which window to load; trigger it with a logical date (the window start) or conf {"window_start": ...}'
        )
    for what, claimed in claims:
        if claimed is not None and claimed != window.start:
            raise RunWindowError(
                f"the DAG run ({facts.run_type}) names two windows: {rule} is [{window.start.isoformat()}, "
                f"{window.end.isoformat()}), but its {what} is {claimed.isoformat()}; a DAG run's logical date is the "
                "start of the window it loads: trigger it again with matching values"
            )
    return window, rule
