"""One Airflow DAG per pipeline, built from its config.

A DAG file is one line::

    from drivetrain.airflow import build_dag
    dag = build_dag("genetic_tests")

The default shape (``shape="phases"``), one task per phase::

    initialize_pipeline -> <one task per enabled phase> -> finalize_pipeline -> notify_result
                      \\______________________ all of them ______________________/
                                                 |
                                          watch_for_failure

Two faster shapes for a backlog run the phases in one task process (see
:mod:`drivetrain.airflow.window_tasks`): ``shape="window"`` is one task, ``run_window``, that
loads the DAG run's window; ``shape="catchup"`` is one task, ``catch_up``, that walks the due
windows oldest first (at most ``max_windows`` per DAG run), and turns Airflow's own catchup
off, since the task walks the backlog itself.

Building reads only config.json (and the pipeline's ``pipeline.py``): no connection is opened,
so the DAG processor can parse it often and quickly, and every parse gives the same DAG.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, TriggerRule, chain

from drivetrain.phase_names import PHASE_NAMES
from drivetrain.pipeline import Pipeline

from .operators import (
    START_TASK_ID,
    PipelinePhaseOperator,
    PipelineRef,
    PipelineStartOperator,
    load_pipeline,
)
from .run_tasks import PipelineFailureWatcher, PipelineFinishOperator, PipelineNotifyOperator
from .window_tasks import (
    CATCH_UP_TASK_ID,
    WINDOW_TASK_ID,
    PipelineCatchUpOperator,
    PipelineWindowOperator,
)

__all__ = ["DAG_SHAPES", "FINALIZE_TASK_ID", "NOTIFY_TASK_ID", "WATCHER_TASK_ID", "build_dag", "dag_arguments"]

FINALIZE_TASK_ID = "finalize_pipeline"
NOTIFY_TASK_ID = "notify_result"
WATCHER_TASK_ID = "watch_for_failure"
#: What ``build_dag(shape=...)`` takes: one task per phase (the default), one task per window,
#: or one task that walks the due windows.
DAG_SHAPES = ("phases", "window", "catchup")


def _start_date(pipeline: Pipeline) -> Any:
    """Midnight of ``start_date`` in the schedule's zone, as Airflow likes it (pendulum)."""
    import pendulum

    sched = pipeline.config.schedule
    day = sched.start_date
    return pendulum.datetime(day.year, day.month, day.day, tz=sched.timezone)


def _doc_md(pipeline: Pipeline) -> str:
    config = pipeline.config
    meta = config.metadata
    rows = [
        ("Window", f"{config.query_window.duration} ({config.query_window.type})"),
        ("Schedule", f"`{config.schedule.cron_expression}` in {config.schedule.timezone}"),
        ("Source", config.source.type),
        ("Stage", f"{config.stage.type}: {config.stage.get('table', '')}"),
        ("Target", f"{config.target.type}: {config.target.get('table', '')}"),
        ("Drive table", f"{config.drive_table.type}: {config.drive_table.get('table', '')}"),
        ("Owner", ", ".join(x for x in (meta.owner_name, meta.owner_email) if x) or "-"),
        ("Config", f"`{config.source_file}`"),
    ]
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    description = meta.pipeline_description or "A drivetrain pipeline."
    return (
        f"# {pipeline.name}\n\n{description}\n\n| | |\n|---|---|\n{table}\n\n"
        "Each run loads the DAG run's data interval as one window. The drive table is the record "
        "of every attempt; clearing a failed DAG run (or the next run of the same interval) "
        "resumes it and skips the phases that already completed.\n"
    )


def dag_arguments(pipeline: Pipeline) -> dict[str, Any]:
    """The ``DAG(...)`` arguments config gives: id, timetable, start, catchup, owner, tags, docs."""
    config = pipeline.config
    meta = config.metadata
    sched = config.schedule
    tags = list(dict.fromkeys(["drivetrain", pipeline.name, *meta.tags]))
    description = (meta.pipeline_description or "").strip().splitlines()
    return {
        "dag_id": f"pipeline_{pipeline.name}",
        "schedule": CronDataIntervalTimetable(sched.cron_expression, timezone=sched.timezone),
        "start_date": _start_date(pipeline),
        "catchup": sched.catchup,
        "tags": tags,
        "description": description[0] if description else None,
        "doc_md": _doc_md(pipeline),
        # Windows of one pipeline load in order, one at a time.
        "max_active_runs": 1,
        # drivetrain retries transient errors inside each phase; a failed window is resumed
        # by the next run of its interval, not by Airflow re-running one task. The start date
        # here too makes `airflow dags trigger` refuse a logical date before it: Airflow would
        # create such a run without any task and mark it successful, loading nothing.
        "default_args": {"owner": meta.owner_name or "drivetrain", "retries": 0, "start_date": _start_date(pipeline)},
    }


def build_dag(
    pipeline: PipelineRef,
    *,
    config_overrides: Mapping[str, Any] | None = None,
    shape: str | None = None,
    max_windows: int | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the DAG of one pipeline.

    :param pipeline: a :class:`~drivetrain.Pipeline`, a pipeline name (registered, or a folder
        under ``DRIVETRAIN_PIPELINES_HOME``), or the absolute path of a folder holding
        ``config.json``. A name never depends on the working directory; a relative path would,
        so it is refused.
    :param config_overrides: dotted config paths to override when loading by name or folder
        (as :meth:`Pipeline.load` takes them).
    :param shape: default: config's ``dag_schedule.dag_shape`` (``"phases"`` unless set).
        ``"phases"``: ``initialize_pipeline``, one task per enabled phase
        (named after the phase), ``finalize_pipeline``, ``notify_result`` and
        ``watch_for_failure``. ``"window"``: one task, ``run_window``, loads the DAG run's
        window with every phase. ``"catchup"``: one task, ``catch_up``, runs the due windows in
        order up to the DAG run's window, at most ``max_windows`` of them, stopping at the first
        failure; Airflow's catchup is off for this shape (the task does the catching up).
    :param max_windows: for ``shape="catchup"``: the most windows one DAG run loads (default:
        config's ``dag_schedule.max_windows_per_run``, 200 unless set).
    :param dag_kwargs: ``DAG(...)`` arguments that replace what config gives (``dag_id``,
        ``max_active_runs``...); ``default_args`` are merged over drivetrain's.
    :returns: the DAG.
    :raises ValueError: an unknown shape.
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline, overrides=config_overrides)
    elif config_overrides:
        raise TypeError("config_overrides apply when loading by name or folder; override the Pipeline yourself")
    schedule = pipeline.config.schedule
    shape = shape or schedule.dag_shape
    max_windows = max_windows or schedule.max_windows_per_run
    if shape not in DAG_SHAPES:
        raise ValueError(f"unknown DAG shape {shape!r}; build_dag(shape=...) takes one of: {', '.join(DAG_SHAPES)}")
    arguments = dag_arguments(pipeline)
    default_args = {**arguments["default_args"], **dict(dag_kwargs.pop("default_args", None) or {})}
    if shape == "catchup":
        arguments["catchup"] = False  # one DAG run walks the backlog; Airflow need not make a run per window
        arguments["doc_md"] += (
            f"\nShape **catchup**: the one task `{CATCH_UP_TASK_ID}` loads the due windows oldest first (a failed "
            f"one first), up to the end of the DAG run's window, at most {max_windows} per DAG run.\n"
        )
    elif shape == "window":
        arguments["doc_md"] += f"\nShape **window**: the one task `{WINDOW_TASK_ID}` runs every phase of the window.\n"
    arguments.update(dag_kwargs, default_args=default_args)
    if shape == "window":
        with DAG(**arguments) as dag:
            PipelineWindowOperator(task_id=WINDOW_TASK_ID, pipeline=pipeline)
        return dag
    if shape == "catchup":
        with DAG(**arguments) as dag:
            PipelineCatchUpOperator(task_id=CATCH_UP_TASK_ID, pipeline=pipeline, max_windows=max_windows)
        return dag
    enabled = [name for name in PHASE_NAMES if pipeline.config.phases.get(name).enabled]
    with DAG(**arguments) as dag:
        start = PipelineStartOperator(task_id=START_TASK_ID, pipeline=pipeline)
        phases = [PipelinePhaseOperator(task_id=name, phase=name, pipeline=pipeline) for name in enabled]
        finalize = PipelineFinishOperator(task_id=FINALIZE_TASK_ID, pipeline=pipeline)
        notify = PipelineNotifyOperator(task_id=NOTIFY_TASK_ID, pipeline=pipeline)
        watcher = PipelineFailureWatcher(task_id=WATCHER_TASK_ID, pipeline=pipeline, trigger_rule=TriggerRule.ONE_FAILED)
        chain(start, *phases, finalize, notify)
        [start, *phases, finalize, notify] >> watcher
    return dag
