"""The built-in alerting plugin: turns lifecycle hooks into alerts for the notifiers.

* ``drivetrain_run_finished`` calls :func:`notify_result`: a FAILED run alerts when
  ``monitoring.alert_on_failure`` (and when it took the success rate below
  ``success_rate_threshold``); a SUCCESS run sends its summary when ``notify_on_success``;
* ``drivetrain_phase_finished``: a phase that ran longer than
  ``duration_multiplier_threshold`` x its ``expected_run_duration`` alerts when
  ``monitoring.alert_on_duration_exceed``;
* :func:`check_freshness` (called by ``drivetrain report --send-alerts`` or an Airflow task):
  data older than ``freshness_threshold`` alerts when ``monitoring.alert_on_stale_data``.

Recipients come from ``pipeline_metadata``: ``owner_email`` and ``notification_emails`` by
email, ``slack_channel`` on Slack. Sending never raises: see :func:`drivetrain.monitoring.notify.send`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drivetrain.durations import format_duration, parse_duration
from drivetrain.monitoring import notify
from drivetrain.monitoring.alert_text import _lines, _when, _window, recipients
from drivetrain.monitoring.notify import DURATION, FAILURE, STALE, Alert
from drivetrain.monitoring.queries import Queries, rows_of
from drivetrain.plugins import hookimpl
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from drivetrain.secrets import redact

if TYPE_CHECKING:
    from drivetrain.config import PipelineConfig
    from drivetrain.pipeline import Pipeline

log = logging.getLogger("drivetrain.alerts")


@hookimpl
def drivetrain_register_notifiers() -> Mapping[str, type[Any]]:
    return dict(notify.BUILTIN_NOTIFIERS)


@hookimpl
def drivetrain_phase_finished(record: RunRecord, phase: str, state: PhaseState, pipeline: Pipeline) -> None:
    alert = duration_alert(record, phase, state, pipeline.config)
    if alert is not None:
        notify.send(alert)


@hookimpl
def drivetrain_run_finished(record: RunRecord, pipeline: Pipeline) -> None:
    notify_result(record, pipeline)


def notify_result(record: RunRecord, pipeline: Pipeline, *, send: bool = True) -> list[Alert]:
    """What the spec's ``notify_result`` task sends for a finished run, through every notifier.

    A failed run: the failure alert (``alert_on_failure``) and, when this failure took the
    success rate below ``success_rate_threshold``, the low-success-rate alert. A successful
    run: its summary, when ``notify_on_success`` is on. Called when a run is finalized (CLI
    and Airflow alike), so each result is sent once.

    :param send: hand the alerts to the notifiers (else only return them).
    :returns: the alerts, in the order sent.
    """
    from drivetrain.monitoring.run_alerts import low_success_rate_alert, success_summary

    config = pipeline.config
    alerts = [a for a in (failure_alert(record, config), success_summary(record, config)) if a is not None]
    try:
        rate = low_success_rate_alert(pipeline, record)
    except Exception as exc:  # noqa: BLE001 - the rate is read from the drive table; never lose the other alerts
        log.warning("could not compute the success rate of %s: %s", pipeline.name, redact(str(exc)))
        rate = None
    if rate is not None:
        alerts.append(rate)
    if send:
        for alert in alerts:
            notify.send(alert)
    return alerts


# -- building alerts ------------------------------------------------------------------------


def _resume(record: RunRecord) -> str:
    start = record.query_window_start_timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"drivetrain run {record.pipeline_name} --window-start {start}"


def failure_alert(record: RunRecord, config: PipelineConfig) -> Alert | None:
    """The alert for a finished run, or None (it did not fail, or alerts are off)."""
    if record.pipeline_status is not RunStatus.FAILED or not config.monitoring.alert_on_failure:
        return None
    phase = record.phase_failed or "unknown"
    state = record.phases.get(phase)
    error = redact(state.error_message) if state is not None and state.error_message else "(no message)"
    subject = f"{record.pipeline_name} FAILED at {phase}, window {_window(record)}"
    body = _lines([
        ("Pipeline", record.pipeline_name),
        ("Owner", config.metadata.owner_name),
        ("Run", record.pipeline_id),
        ("Attempt", record.pipeline_retry_number + 1),
        ("Window", _window(record)),
        ("Failed phase", phase),
        ("Error", error),
        ("Completed", ", ".join(record.phases_completed) or "nothing"),
        ("Run time", record.pipeline_run_duration),
        ("Resume with", f"{_resume(record)}  (phases already completed are skipped)"),
        ("Details", f"drivetrain show {record.pipeline_id}"),
    ])
    return Alert(
        kind=FAILURE, pipeline=record.pipeline_name, subject=subject, body=body, run_id=record.pipeline_id,
        details={"phase": phase, "error_message": error, "window_start": record.query_window_start_timestamp.isoformat(),
                 "window_end": record.query_window_end_timestamp.isoformat(), "attempt": record.pipeline_retry_number + 1},
        **recipients(config),
    )


def phase_seconds(state: PhaseState) -> float | None:
    """How long a phase ran: from its timestamps, else from its duration text."""
    if state.start_timestamp is not None and state.end_timestamp is not None:
        return (state.end_timestamp - state.start_timestamp).total_seconds()
    if state.actual_run_duration:
        try:
            return parse_duration(state.actual_run_duration).total_seconds()
        except ValueError:
            return None
    return None


def duration_alert(record: RunRecord, phase: str, state: PhaseState, config: PipelineConfig) -> Alert | None:
    """The alert for a phase that ran past threshold x expected, or None."""
    monitoring = config.monitoring
    if not monitoring.alert_on_duration_exceed or state.status not in (PhaseStatus.COMPLETED, PhaseStatus.FAILED):
        return None
    expected_text = state.expected_run_duration or config.phases.get(phase).expected_run_duration_text
    if not expected_text:
        return None
    try:
        expected = parse_duration(expected_text).total_seconds()
    except ValueError:
        return None
    actual = phase_seconds(state)
    limit = expected * monitoring.duration_multiplier_threshold
    if actual is None or expected <= 0 or actual <= limit:
        return None
    ratio = actual / expected
    subject = f"{record.pipeline_name}: {phase} took {format_duration(actual)}, {ratio:.1f}x its expected {expected_text}"
    body = _lines([
        ("Pipeline", record.pipeline_name),
        ("Run", record.pipeline_id),
        ("Window", _window(record)),
        ("Phase", f"{phase} ({state.status.value})"),
        ("Took", format_duration(actual)),
        ("Expected", f"{expected_text} (alert above {monitoring.duration_multiplier_threshold:g}x: {format_duration(limit)})"),
        ("Possible causes", "more data than usual, a slow source or warehouse, contention for resources"),
        ("Details", f"drivetrain show {record.pipeline_id}"),
    ])
    return Alert(
        kind=DURATION, pipeline=record.pipeline_name, subject=subject, body=body, run_id=record.pipeline_id,
        details={"phase": phase, "seconds": round(actual, 3), "expected_seconds": expected,
                 "multiplier": monitoring.duration_multiplier_threshold},
        **recipients(config),
    )


def check_freshness(pipeline: Pipeline, *, now: datetime | None = None, send: bool = True) -> Alert | None:
    """Alert when the pipeline's newest successful run is older than ``freshness_threshold``.

    A pipeline that never succeeded is stale once its first window ended more than the
    threshold ago. Nothing happens unless ``monitoring.alert_on_stale_data`` is on and a
    threshold is set.

    :param send: hand the alert to the notifiers (else only return it).
    :returns: the alert, or None when the data is fresh enough (or the check is off).
    """
    monitoring = pipeline.config.monitoring
    if not monitoring.alert_on_stale_data or monitoring.freshness_threshold is None:
        return None
    now = (now or datetime.now(UTC)).astimezone(UTC)
    store = pipeline.drive_store()
    rows = rows_of(store, Queries(store.dialect, store.table_sql, (pipeline.name,)).freshness())
    last = rows[0]["last_success_at"] if rows else None
    through = rows[0]["data_through"] if rows else None
    reference = _utc(last) if last is not None else pipeline.grid.first().end
    age = now - reference
    if age <= monitoring.freshness_threshold:
        return None
    threshold = monitoring.freshness_threshold_text or format_duration(monitoring.freshness_threshold)
    subject = (f"{pipeline.name}: data is stale, last successful run {format_duration(age)} ago (threshold {threshold})"
               if last is not None else f"{pipeline.name}: data is stale, no successful run yet (threshold {threshold})")
    body = _lines([
        ("Pipeline", pipeline.name),
        ("Last successful run ended", _when(_utc(last)) if last is not None else "never"),
        ("Data loaded through", _when(_utc(through)) if through is not None else "nothing loaded"),
        ("Threshold", threshold),
        ("Possible causes", "the schedule stopped, runs keep failing, or the source is down"),
        ("Check with", f"drivetrain status {pipeline.name}; drivetrain history {pipeline.name}"),
    ])
    alert = Alert(
        kind=STALE, pipeline=pipeline.name, subject=subject, body=body,
        details={"age_seconds": round(age.total_seconds(), 3), "threshold_seconds": monitoring.freshness_threshold.total_seconds()},
        **recipients(pipeline.config),
    )
    if send:
        notify.send(alert)
    return alert


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)  # type: ignore[no-any-return]
