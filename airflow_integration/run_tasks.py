"""The tasks after the phases: close the run, report it, and fail the DAG run if a phase failed.

Airflow decides a DAG run's state from its leaf tasks. The finalize and notify tasks run
whatever happened upstream (trigger rule ``all_done``), so on their own they would leave a
DAG run SUCCESS after a failed phase. :class:`PipelineFailureWatcher` is the extra leaf that
fails as soon as any upstream task failed (trigger rule ``one_failed``) and is skipped
otherwise, so the DAG run ends FAILED exactly when the pipeline run did.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from airflow.sdk import Context, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from drivetrain.record import RunRecord

from .operators import RunTask, airflow_errors

__all__ = ["PipelineFailureWatcher", "PipelineFinishOperator", "PipelineNotifyOperator", "run_summary"]


def run_summary(record: RunRecord) -> dict[str, Any]:
    """The facts of a run as plain JSON types (for XCom and messages)."""
    failed = record.phase_failed
    counts = {
        name: record.phases[name].phase_specific_details.get("count")
        for name in ("source_count", "stage_count", "target_count")
        if record.phases[name].phase_specific_details.get("count") is not None
    }
    return {
        "run_id": record.pipeline_id,
        "pipeline": record.pipeline_name,
        "status": record.pipeline_status.value,
        "window_start": record.query_window_start_timestamp.isoformat(),
        "window_end": record.query_window_end_timestamp.isoformat(),
        "attempt": record.pipeline_retry_number + 1,
        "duration": record.pipeline_run_duration,
        "phases_completed": list(record.phases_completed),
        "phases_skipped": list(record.phases_skipped),
        "phase_failed": failed,
        "error_message": record.phases[failed].error_message if failed in record.phases else None,
        "counts": counts,
    }


def summary_line(summary: dict[str, Any]) -> str:
    """One log line for a run summary."""
    text = (
        f"{summary['pipeline']} {summary['run_id']} [{summary['window_start']}, {summary['window_end']}): "
        f"{summary['status']} in {summary['duration']}, attempt {summary['attempt']}; "
        f"completed {len(summary['phases_completed'])}, skipped {len(summary['phases_skipped'])}"
    )
    if summary["counts"]:
        text += "; counts " + ", ".join(f"{k}={v}" for k, v in summary["counts"].items())
    if summary["phase_failed"]:
        text += f"; failed at {summary['phase_failed']}: {summary['error_message']}"
    return text


class PipelineFinishOperator(RunTask):
    """Close the run: final status, end time and duration in the drive table; frees the window.

    Runs whatever happened upstream (trigger rule ``all_done`` by default). A phase still
    marked RUNNING (its worker died) is closed as failed. Pushes the run summary to XCom.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        run_id = self.current_run_id(context)
        if run_id is None:
            raise AirflowSkipException(f"no run to close: {self.start_task_id} did not start one")
        with self.open_pipeline() as pipeline, airflow_errors():
            record = pipeline.runner().finish(run_id)
        summary = run_summary(record)
        self.log.info("finished %s", summary_line(summary))
        return summary


class PipelineNotifyOperator(RunTask):
    """Report the finished run: logs its summary, pushes it to XCom, checks data freshness.

    Failure and duration alerts have already gone out when the finalize task closed the run
    (drivetrain's notifiers listen to the ``drivetrain_run_finished`` and
    ``drivetrain_phase_finished`` hooks); sending them again here would double them. What this
    task adds is the stale-data check of :mod:`drivetrain.monitoring` (which alerts only when
    ``monitoring.alert_on_stale_data`` is on), once per DAG run.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        run_id = self.current_run_id(context)
        if run_id is None:
            raise AirflowSkipException(f"nothing to report: {self.start_task_id} did not start a run")
        with self.open_pipeline() as pipeline, airflow_errors():
            record = pipeline.drive_store().get(run_id)
            if record is None:
                raise AirflowFailException(f"run {run_id} is not in the drive table")
            summary = run_summary(record)
            self.log.info("%s", summary_line(summary))
            check = _freshness_check()
            if check is not None:
                check(pipeline)
        return summary


def _freshness_check() -> Any:
    """``drivetrain.monitoring.plugin.check_freshness``, when the monitoring package is there."""
    if importlib.util.find_spec("drivetrain.monitoring") is None:
        return None
    return getattr(importlib.import_module("drivetrain.monitoring.plugin"), "check_freshness", None)


class PipelineFailureWatcher(RunTask):
    """Fails when any upstream task failed, so the DAG run ends FAILED; skipped otherwise.

    Its message names the failed phase and error from the drive table when it can.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ONE_FAILED)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> None:
        message = "a task of this DAG run failed; see the failed task's log"
        run_id = self.current_run_id(context)
        if run_id is None:
            message = f"{self.start_task_id} failed, so no run was started; see its log"
        else:
            try:
                with self.open_pipeline() as pipeline:
                    record = pipeline.drive_store().get(run_id)
            except Exception as exc:  # noqa: BLE001 - the DAG run must fail either way
                self.log.warning("could not read run %s from the drive table: %s", run_id, exc)
                record = None
            if record is not None and record.phase_failed:
                error = record.phases[record.phase_failed].error_message
                message = f"run {run_id} failed at {record.phase_failed}: {error}"
        raise AirflowFailException(message)
