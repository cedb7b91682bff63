"""Operators for the fast DAG shapes: a whole window, or a walk over the due windows, in one task.

The default shape (one task per phase) costs one task process per phase: on a backlog the
Airflow overhead (seconds per task) dwarfs the work. These two operators run the phases in one
process through :meth:`Runner.run <drivetrain.runner.Runner.run>`, exactly as the CLI does,
so the drive table reads the same: one row per attempt, a failed window resumed by the next
attempt from the failed phase, the lease and heartbeat held while it runs.

- :class:`PipelineWindowOperator` loads the DAG run's window (the same rule as the default
  shape: :mod:`drivetrain.airflow.run_window`) with every phase in one task.
- :class:`PipelineCatchUpOperator` walks the windows that are due, oldest first, as a plain
  ``drivetrain run`` chooses them (the oldest failed window first, then the holes), up to the
  end of the DAG run's window and at most ``max_windows`` of them; it stops at the first
  failure. The next DAG run goes on where it stopped.

Either task fails when the run it made failed, so the DAG run ends FAILED; the failure
message names the run, phase and error from the drive table (what the watcher task of the
default shape does).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from drivetrain.pipeline import Pipeline
from drivetrain.record import RunRecord
from drivetrain.window import Window

from .operators import PipelineTask, _AirflowRunner, airflow_errors
from .run_tasks import _freshness_check, run_summary, summary_line
from .run_window import DagRunFacts, window_for_run

__all__ = ["CATCH_UP_TASK_ID", "DEFAULT_MAX_WINDOWS", "WINDOW_TASK_ID", "PipelineCatchUpOperator",
           "PipelineWindowOperator"]

#: The one task of the ``window`` shape.
WINDOW_TASK_ID = "run_window"
#: The one task of the ``catchup`` shape.
CATCH_UP_TASK_ID = "catch_up"
#: How many windows one catch-up task runs at most, by default.
DEFAULT_MAX_WINDOWS = 200


def _failure(record: RunRecord) -> str:
    failed = record.phase_failed
    error = record.phases[failed].error_message if failed in record.phases else None
    return f"run {record.pipeline_id} failed at {failed}: {error}; clear this DAG run to resume it from {failed}"


class _WholeRunTask(PipelineTask):
    """Runs whole windows in this task's process."""

    def run_window(self, pipeline: Pipeline, window: Window, facts: DagRunFacts, rule: str) -> RunRecord:
        runner = _AirflowRunner(pipeline, airflow_run=facts.record(rule))
        record = runner.run(window)
        self.log.info("%s", summary_line(run_summary(record)))
        return record

    def check_freshness(self, pipeline: Pipeline) -> None:
        check = _freshness_check()
        if check is not None:
            check(pipeline)


class PipelineWindowOperator(_WholeRunTask):
    """Load the DAG run's window, every phase in this one task; returns the run summary.

    The window follows the same rule as the default shape (scheduled, backfill, manual with or
    without a logical date, conf ``window_start``; see :mod:`drivetrain.airflow.run_window`).
    Clearing a failed DAG run starts the next attempt, which resumes from the failed phase.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        facts = DagRunFacts.from_context(context)
        with self.open_pipeline() as pipeline, airflow_errors():
            window, rule = window_for_run(pipeline, facts)
            self.log.info("DAG run %s (%s) loads window %s: %s", facts.run_id, facts.run_type, window, rule)
            record = self.run_window(pipeline, window, facts, rule)
            if record.phase_failed:
                raise AirflowFailException(_failure(record))
            self.check_freshness(pipeline)
        return run_summary(record)


class PipelineCatchUpOperator(_WholeRunTask):
    """Run the due windows in order, up to the end of the DAG run's window; at most ``max_windows``.

    Which windows are due is what a plain ``drivetrain run`` would take one after another: the
    oldest failed window first (so a failure is resumed before anything newer loads), then the
    oldest window that no run has completed. It stops at the first failed run and fails the
    task. Returns ``{"windows": n, "first": ..., "last": ..., "more_due": bool}``.

    :param max_windows: the most windows one task runs; the next DAG run goes on from there.
    """

    def __init__(self, *, max_windows: int = DEFAULT_MAX_WINDOWS, **kwargs: Any) -> None:
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, not {max_windows}")
        super().__init__(**kwargs)
        self.max_windows = max_windows

    def execute(self, context: Context) -> dict[str, Any]:
        facts = DagRunFacts.from_context(context)
        done: list[RunRecord] = []
        with self.open_pipeline() as pipeline, airflow_errors():
            upto, _ = window_for_run(pipeline, facts)
            rule = f"catch-up: the due windows up to {upto.end.isoformat()}, at most {self.max_windows} per task"
            self.log.info("DAG run %s (%s): %s", facts.run_id, facts.run_type, rule)
            runner = pipeline.runner()
            while len(done) < self.max_windows:
                window = runner.next_window(min(upto.end, runner.clock()))
                if window is None:
                    break
                record = self.run_window(pipeline, window, facts, rule)
                done.append(record)
                if record.phase_failed:
                    raise AirflowFailException(
                        f"{_failure(record)}; {len(done) - 1} window(s) before it loaded in this task"
                    )
            more_due = runner.next_window(min(upto.end, runner.clock())) is not None
            if more_due:
                self.log.info("ran %d windows, the most one task runs; the next DAG run goes on", len(done))
            self.check_freshness(pipeline)
        return {
            "windows": len(done),
            "first": done[0].query_window_start_timestamp.isoformat() if done else None,
            "last": done[-1].query_window_start_timestamp.isoformat() if done else None,
            "more_due": more_due,
        }
