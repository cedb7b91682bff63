"""Airflow operators that drive one pipeline run, one task per step.

Each task calls the same :class:`~drivetrain.runner.Runner` the CLI uses, step by step:
:class:`PipelineStartOperator` works out the DAG run's window (:mod:`drivetrain.airflow.run_window`:
a run's logical date is its window's start), creates its drive-table row and hands the run id to
later tasks by XCom; each :class:`PipelinePhaseOperator` reloads that run
from the drive table and runs one phase; the tasks in :mod:`drivetrain.airflow.run_tasks`
close the run, report it, and fail the DAG run when a phase failed. No task keeps state of its
own: any worker can run any of them.

How drivetrain outcomes show in Airflow:

- phase COMPLETED: the task succeeds;
- phase SKIPPED (disabled, carried from an earlier attempt, or the run ended early): the task
  is *skipped*, and later phases still run (they use trigger rule ``none_failed``);
- phase FAILED: the task fails without Airflow retries, so later phases end
  ``upstream_failed``; a phase with ``continue_on_failure`` logs a warning and succeeds;
- configuration mistakes and permanent connector errors fail the task without retries;
  transient errors and lease conflicts fail it normally (Airflow retries them if configured).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import attrs
from airflow.sdk import BaseOperator, Context, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from drivetrain.config.schedule import interval_window
from drivetrain.errors import ConfigError, PermanentError, PhaseFailed, PipelineNotFound
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.pipeline import Pipeline
from drivetrain.record import PhaseStatus, RunRecord
from drivetrain.runner import Runner
from drivetrain.secrets import redact
from drivetrain.window import Window

from .credentials import install_connection_resolver
from .run_window import DagRunFacts, RunWindowError, window_for_run

__all__ = [
    "AIRFLOW_RUN_KEY",
    "START_TASK_ID",
    "PipelinePhaseOperator",
    "PipelineRef",
    "PipelineStartOperator",
    "window_for_interval",
]

#: What a task accepts as ``pipeline``: the object, a registered name, or a folder.
PipelineRef: TypeAlias = Pipeline | str | os.PathLike[str]
#: The task that starts the run and pushes its run id.
START_TASK_ID = "initialize_pipeline"
#: Where a drive row started by Airflow records its DAG run: this key of the config snapshot.
AIRFLOW_RUN_KEY = "airflow_run"


def _utc(value: datetime) -> datetime:
    """A plain UTC datetime from Airflow's (pendulum) values."""
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone")
    return datetime.fromtimestamp(value.timestamp(), UTC)


def window_for_interval(pipeline: Pipeline, start: datetime | None, end: datetime | None) -> Window:
    """The pipeline window a DAG run's data interval ``[start, end)`` stands for.

    The rule lives in the core (:func:`drivetrain.config.schedule.interval_window`), where
    ``drivetrain validate`` checks the whole schedule against it before any run.

    :raises ConfigError: the run has no data interval, or the interval is not exactly one
        window of the pipeline's grid (the cron schedule does not match ``query_window``).
    """
    return interval_window(pipeline.config, _utc(start) if start is not None else None,
                           _utc(end) if end is not None else None)


def load_pipeline(ref: str | os.PathLike[str], **kwargs: Any) -> Pipeline:
    """:meth:`Pipeline.load` for a DAG file: a name (registered, or under a pipelines home) or an
    absolute path. A relative path would depend on the working directory of each Airflow
    process (the DAG processor, every worker), which is not ours to choose: refused.

    :raises PipelineNotFound: a relative path, or nothing by that name.
    """
    from drivetrain.pipeline_names import looks_like_path

    text = os.fspath(ref)
    if looks_like_path(ref) and not os.path.isabs(os.path.expanduser(text)):
        raise PipelineNotFound(
            f"{text!r} is a relative path, so under Airflow it would depend on the working directory of the "
            "DAG processor and of each worker; give an absolute path, such as "
            f"build_dag(Path(__file__).parent / {os.path.normpath(text)!r}) for a folder next to the DAG file, "
            "or a registered pipeline name"
        )
    return Pipeline.load(ref, **kwargs)


@contextlib.contextmanager
def airflow_errors() -> Iterator[None]:
    """Turn drivetrain errors that retrying cannot fix into failures Airflow does not retry."""
    try:
        yield
    except (ConfigError, PipelineNotFound, PermanentError, PhaseFailed, RunWindowError) as exc:
        raise AirflowFailException(redact(str(exc))) from exc


class PipelineTask(BaseOperator):
    """What every drivetrain task shares: the pipeline, its connectors opened per execution.

    :param pipeline: a :class:`~drivetrain.Pipeline`, a pipeline name (registered, or under
        ``DRIVETRAIN_PIPELINES_HOME``), or the absolute path of a folder holding ``config.json``.
        An object is used as is (workers re-parse the DAG file, so it
        is never serialised); a name or folder is loaded when the task runs.
    """

    # The Pipeline object is shared, never deep-copied (its config holds read-only mappings);
    # BaseOperator also keeps the constructor's keyword arguments, pipeline included.
    shallow_copy_attrs: Sequence[str] = ("pipeline", "_BaseOperator__init_kwargs")

    def __init__(self, *, pipeline: PipelineRef, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline

    @contextlib.contextmanager
    def open_pipeline(self) -> Iterator[Pipeline]:
        """The pipeline with Airflow connections as credentials; its connectors closed after."""
        install_connection_resolver()
        with airflow_errors():
            ref = self.pipeline
            pipeline = ref if isinstance(ref, Pipeline) else load_pipeline(ref)
        try:
            yield pipeline
        finally:
            pipeline.close()


class _AirflowRunner(Runner):
    """The runner, with the DAG run that started the row written into the row's config snapshot
    (under :data:`AIRFLOW_RUN_KEY`; the drive table has no column for it)."""

    def __init__(self, pipeline: Pipeline, *, airflow_run: Mapping[str, Any]) -> None:
        super().__init__(pipeline)
        self.airflow_run = dict(airflow_run)

    def _new_record(self, window: Window, attempts: list[RunRecord]) -> RunRecord:
        record = super()._new_record(window, attempts)
        snapshot = {**(record.config_snapshot or {}), AIRFLOW_RUN_KEY: self.airflow_run}
        return attrs.evolve(record, config_snapshot=snapshot)


class PipelineStartOperator(PipelineTask):
    """Start the run of the DAG run's window; pushes the run id (a str) to XCom.

    The window follows one rule for every kind of DAG run (scheduled, backfill, manual with or
    without a logical date, conf ``window_start``, cleared): see
    :mod:`drivetrain.airflow.run_window`. The drive-table row records the DAG run (id, type,
    logical date, data interval) in its config snapshot under ``airflow_run``.

    The row is created and the window taken with a lease that outlives this task:
    a CLI run of the same window is refused until the finalize task has closed the run. Phases disabled in config
    are recorded as skipped here, since they get no task of their own.
    """

    def execute(self, context: Context) -> str:
        facts = DagRunFacts.from_context(context)
        with self.open_pipeline() as pipeline, airflow_errors():
            window, rule = window_for_run(pipeline, facts)
            self.log.info("DAG run %s (%s) loads window %s: %s", facts.run_id, facts.run_type, window, rule)
            if facts.run_type not in ("scheduled", "backfill") and facts.data_interval_start is not None and (
                (facts.data_interval_start, facts.data_interval_end) != (window.start, window.end)
            ):
                self.log.info(
                    "Airflow gave this %s run the data interval [%s, %s); drivetrain loads the window its logical "
                    "date starts instead", facts.run_type, facts.data_interval_start, facts.data_interval_end,
                )
            runner = _AirflowRunner(pipeline, airflow_run=facts.record(rule))
            record = runner.start(window)  # phases disabled in config are recorded as skipped in the new row
        self.log.info(
            "started %s for window %s (attempt %d)", record.pipeline_id, window, record.pipeline_retry_number + 1
        )
        return record.pipeline_id


class RunTask(PipelineTask):
    """A task that works on the run started by the start task.

    :param run_id: the drive-table run id (templated); by default the start task's XCom.
    :param start_task_id: the task whose XCom holds the run id.
    """

    template_fields: Sequence[str] = ("run_id",)

    def __init__(self, *, run_id: str | None = None, start_task_id: str = START_TASK_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.start_task_id = start_task_id

    def current_run_id(self, context: Context) -> str | None:
        """The run id given, else the one the start task pushed (None when it pushed none)."""
        if self.run_id:
            return str(self.run_id)
        value = context["ti"].xcom_pull(task_ids=self.start_task_id)
        return str(value) if value else None


class PipelinePhaseOperator(RunTask):
    """Run one phase of the DAG run's pipeline run, through the drivetrain runner.

    The task id defaults to the phase name and the trigger rule to ``none_failed``, so a
    skipped phase lets the next one run while a failed one stops it.

    :param phase: the phase name (templated), one of :data:`drivetrain.PHASE_NAMES`.
    """

    template_fields: Sequence[str] = ("phase", "run_id")

    def __init__(self, *, phase: str, **kwargs: Any) -> None:
        if "{{" not in phase and phase not in PHASE_NAMES:
            raise ValueError(f"unknown phase {phase!r}; phases are: {', '.join(PHASE_NAMES)}")
        kwargs.setdefault("task_id", phase)
        kwargs.setdefault("trigger_rule", TriggerRule.NONE_FAILED)
        super().__init__(**kwargs)
        self.phase = phase

    def execute(self, context: Context) -> None:
        run_id = self.current_run_id(context)
        if run_id is None:
            raise AirflowFailException(f"no run id: {self.start_task_id} pushed none, so there is no run to continue")
        with self.open_pipeline() as pipeline, airflow_errors():
            if self.phase not in PHASE_NAMES:
                raise ConfigError(f"unknown phase {self.phase!r}; phases are: {', '.join(PHASE_NAMES)}")
            record = pipeline.drive_store().get(run_id)
            if record is not None and record.is_finished:
                raise AirflowFailException(
                    f"run {run_id} is already {record.pipeline_status.value}; to try the window again, clear "
                    f"the whole DAG run (from {self.start_task_id}): the new attempt skips the phases that completed"
                )
            state = pipeline.runner().run_phase(run_id, self.phase)
            stops_run = not pipeline.config.phases.get(self.phase).continue_on_failure
        details = state.phase_specific_details
        if state.status is PhaseStatus.SKIPPED:
            raise AirflowSkipException(f"{self.phase} skipped: {state.skip_reason or 'nothing to do'}")
        if state.status is PhaseStatus.FAILED:
            message = f"{self.phase} failed in {run_id}: {state.error_message}"
            if stops_run:
                raise AirflowFailException(message)
            self.log.warning("%s (continue_on_failure is set: the run goes on)", message)
            return
        self.log.info("%s %s in %s%s", self.phase, state.status.value, state.actual_run_duration, f": {details}" if details else "")
