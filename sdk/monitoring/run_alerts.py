"""Alerts about results rather than incidents: the success summary and the success rate.

* :func:`success_summary`: a SUCCESS run's summary (window, counts, load rate, duration) when
  ``monitoring.notify_on_success`` is on: the spec's optional success email.
* :func:`low_success_rate_alert`: when a failed run takes the pipeline's success rate over
  ``success_rate_period`` below ``success_rate_threshold`` (default 90%). It is sent once, as
  the rate crosses the threshold, not again for every failure while it stays below.
* :func:`check_success_rate` and :func:`fleet_success_alert`: the same question asked on demand
  (``drivetrain report --send-alerts``), for one pipeline and for all of them together.

The rate these alerts use is the **success rate after retries**: a failed run whose window a
later run completed counts as fine, because nothing is left to do about it. The report shows
the spec's plain rate beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.durations import LOAD_RATE
from drivetrain.monitoring.alert_text import _lines, _window
from drivetrain.monitoring.alert_text import recipients as _recipients
from drivetrain.monitoring.notify import LOW_SUCCESS_RATE, SUCCESS_SUMMARY, Alert
from drivetrain.monitoring.queries import Queries, rows_of
from drivetrain.record import RunRecord, RunStatus

if TYPE_CHECKING:
    from drivetrain.config import PipelineConfig
    from drivetrain.pipeline import Pipeline

__all__ = ["Rate", "check_success_rate", "fleet_success_alert", "low_success_rate_alert", "rate_of", "success_summary"]


@attrs.frozen
class Rate:
    """Runs that ended in a period and how many of them are fine."""

    ended: int
    fine: int
    """SUCCESS or SKIPPED, or FAILED with the window completed by a later run."""

    @property
    def percent(self) -> float | None:
        return None if not self.ended else self.fine * 100.0 / self.ended

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.ended + other.ended, self.fine + other.fine)


def rate_of(pipeline: Pipeline, since: datetime) -> Rate:
    """The pipeline's success rate after retries over the runs that started since ``since``."""
    store = pipeline.drive_store()
    q = Queries(store.dialect, store.table_sql, (pipeline.name,), since)
    rows = rows_of(store, q.run_outcomes())
    if not rows:
        return Rate(0, 0)
    row = rows[0]
    recovered = rows_of(store, q.recovered_failures())
    fixed = int(recovered[0]["recovered"] or 0) if recovered else 0
    ended = int(row["runs"] or 0) - int(row["running"] or 0)
    return Rate(ended, int(row["succeeded"] or 0) + int(row["skipped"] or 0) + fixed)


def success_summary(record: RunRecord, config: PipelineConfig) -> Alert | None:
    """The summary of a successful run, or None (not a success, or summaries are off)."""
    if record.pipeline_status is not RunStatus.SUCCESS or not config.monitoring.notify_on_success:
        return None

    def detail(phase: str, key: str) -> Any:
        return record.phases[phase].phase_specific_details.get(key)

    counts = {name: detail(name, "count") for name in ("source_count", "stage_count", "target_count")}
    rate = detail("source_to_stage_transfer", LOAD_RATE)
    carried = [n for n in record.phases_skipped if record.phases[n].carried_from]
    subject = (f"{record.pipeline_name} SUCCESS, window {_window(record)}: "
               f"{counts['target_count'] if counts['target_count'] is not None else '?'} records in the target")
    body = _lines([
        ("Pipeline", record.pipeline_name),
        ("Run", record.pipeline_id),
        ("Attempt", record.pipeline_retry_number + 1),
        ("Window", _window(record)),
        ("Source count", counts["source_count"]),
        ("Stage count", counts["stage_count"]),
        ("Target count", counts["target_count"]),
        ("Rejected", detail("source_to_stage_transfer", "records_failed")),
        ("Load rate", f"{rate:g} records/s" if isinstance(rate, (int, float)) else None),
        ("Run time", record.pipeline_run_duration),
        ("Carried from the failed attempt", ", ".join(carried)),
        ("Details", f"drivetrain show {record.pipeline_id}"),
    ])
    return Alert(
        kind=SUCCESS_SUMMARY, pipeline=record.pipeline_name, subject=subject, body=body, run_id=record.pipeline_id,
        details={"counts": counts, LOAD_RATE: rate, "duration": record.pipeline_run_duration,
                 "window_start": record.query_window_start_timestamp.isoformat(),
                 "window_end": record.query_window_end_timestamp.isoformat()},
        **_recipients(config),
    )


def _rate_alert(name: str, rate: Rate, threshold: float, period: str, config: PipelineConfig | None,
                recipients: dict[str, Any] | None = None) -> Alert:
    percent = rate.percent or 0.0
    subject = f"{name}: success rate {percent:.1f}% over the last {period}, below {threshold:g}%"
    body = _lines([
        ("Pipeline" if config is not None else "Pipelines", name),
        ("Success rate", f"{percent:.1f}% ({rate.fine} of {rate.ended} runs fine; a failed run whose window a retry "
                         "completed counts as fine)"),
        ("Threshold", f"{threshold:g}% (monitoring.success_rate_threshold)"),
        ("Period", f"runs started in the last {period}"),
        ("Check with", f"drivetrain report {name if config is not None else ''}".strip() + " (failed runs, where they stop)"),
    ])
    return Alert(kind=LOW_SUCCESS_RATE, pipeline=name, subject=subject, body=body,
                 details={"success_rate": round(percent, 4), "threshold": threshold, "runs": rate.ended, "fine": rate.fine},
                 **(recipients if recipients is not None else _recipients(config) if config is not None else {}))


def low_success_rate_alert(pipeline: Pipeline, record: RunRecord, *, now: datetime | None = None) -> Alert | None:
    """The alert for a failed run that took the success rate below the threshold, or None."""
    monitoring = pipeline.config.monitoring
    if not monitoring.alert_on_low_success_rate or record.pipeline_status is not RunStatus.FAILED:
        return None
    since = (now or datetime.now(UTC)) - monitoring.success_rate_period
    if record.pipeline_start_timestamp < since:
        return None
    after = rate_of(pipeline, since)
    before = Rate(after.ended - 1, after.fine)  # this failed run is not fine: the rate without it
    threshold = monitoring.success_rate_threshold
    if after.percent is None or after.percent >= threshold or before.percent is None or before.percent < threshold:
        return None
    return _rate_alert(pipeline.name, after, threshold, monitoring.success_rate_period_text, pipeline.config)


def check_success_rate(pipeline: Pipeline, *, now: datetime | None = None) -> Alert | None:
    """The low-success-rate alert when the rate is below the threshold now (for the report)."""
    monitoring = pipeline.config.monitoring
    if not monitoring.alert_on_low_success_rate:
        return None
    rate = rate_of(pipeline, (now or datetime.now(UTC)) - monitoring.success_rate_period)
    if rate.percent is None or rate.percent >= monitoring.success_rate_threshold:
        return None
    return _rate_alert(pipeline.name, rate, monitoring.success_rate_threshold, monitoring.success_rate_period_text, pipeline.config)


def fleet_success_alert(pipelines: Sequence[Pipeline], *, threshold: float = 90.0, period: timedelta = timedelta(days=7),
                        now: datetime | None = None) -> Alert | None:
    """One alert when all ``pipelines`` together fall below ``threshold``; to every owner."""
    since = (now or datetime.now(UTC)) - period
    total = Rate(0, 0)
    emails: list[str] = []
    channels: set[str | None] = set()
    for pipe in pipelines:
        total = total + rate_of(pipe, since)
        who = _recipients(pipe.config)
        emails += [e for e in who["emails"] if e not in emails]
        channels.add(who["slack_channel"])
    if total.percent is None or total.percent >= threshold:
        return None
    from drivetrain.durations import format_duration

    names = ", ".join(sorted(p.name for p in pipelines))
    channel = next(iter(channels)) if len(channels) == 1 else None
    return _rate_alert(f"all pipelines ({names})", total, threshold, format_duration(period), None,
                       {"emails": tuple(emails), "slack_channel": channel})
