"""The six operating metrics, computed from the drive table.

::

    from drivetrain.monitoring import metrics

    m = metrics.compute(pipeline.drive_store(), pipelines=["lab"], days=7)
    m.success_rates[0].success_rate      # 97.6 (percent)
    m.to_json()                          # everything, JSON-able

What each metric counts (per pipeline, over runs that started in the period):

1. **success rate**: runs that ended without failing (SUCCESS, or SKIPPED because the window
   had nothing to do) out of the runs that ended. Runs still RUNNING are left out. Beside it,
   the **success rate after retries** also counts a failed run as fine once a later run
   completed its window; health and the low-success-rate alert use that one.
2. **phase failure rate**: per phase, the executions that FAILED out of those that ran
   (COMPLETED or FAILED; skipped and carried-over phases are not executions).
3. **duration against expected**: per phase, average and longest duration against the
   phase's ``expected_run_duration``, and how many executions took longer than
   ``duration_multiplier_threshold`` times that.
4. **count mismatch**: from each audit, the share of rows lost from source to stage and from
   stage to target (``(source - stage) / source * 100``), plus rows rejected and dropped.
5. **data freshness**: how long ago the newest successful run ended, and the end of the newest
   window it loaded. Not limited to the period. Stale when older than ``freshness_threshold``.
6. **retry success rate**: of the windows with a failed run, the share that a later run of the
   same window completed; and of the phase executions that needed in-phase retries for
   transient errors, the share that then completed.

Beside the six, the data-quality dashboard lists **late-data reloads**: runs that loaded a window
again because its source records changed after it was loaded: another count, or the same count
with another fingerprint (see :mod:`drivetrain.settle`).

Thresholds (multiplier, freshness) come from each pipeline's newest run's config snapshot,
so the report needs nothing but the drive table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from drivetrain.durations import parse_duration
from drivetrain.monitoring._values import (
    SUCCESS_ALERT_BELOW,
    CountMismatch,
    DailyRuns,
    FailedRun,
    FailurePoint,
    Freshness,
    GapSummary,
    LatestRun,
    Metrics,
    PhaseDuration,
    PhaseFailureRate,
    PipelineHealth,
    Reload,
    RetryOutcome,
    SuccessRate,
    metric_order,
)
from drivetrain.monitoring.fleet import phases_of, windows_of
from drivetrain.monitoring.queries import Queries, ReportSource, rows_of
from drivetrain.phase_names import PHASE_NAMES

#: How many failed runs the failure dashboard lists (newest first), per drive table.
FAILED_RUNS_LISTED = 50
#: How many late-data reloads the data-quality dashboard lists (newest first), per drive table.
RELOADS_LISTED = 50
#: Default duration_multiplier_threshold when a run's config snapshot has none.
DEFAULT_MULTIPLIER = 2.0

__all__ = [
    "CountMismatch",
    "DailyRuns",
    "FailedRun",
    "FailurePoint",
    "Freshness",
    "GapSummary",
    "LatestRun",
    "Metrics",
    "PhaseDuration",
    "PhaseFailureRate",
    "PipelineHealth",
    "Reload",
    "RetryOutcome",
    "SuccessRate",
    "compute",
]


def compute(
    store: ReportSource,
    pipelines: Sequence[str] | None = None,
    *,
    since: datetime | None = None,
    days: float = 7,
    now: datetime | None = None,
) -> Metrics:
    """Every metric and dashboard for the pipelines of one drive table.

    :param store: a drive store (anything with ``query``, ``dialect`` and ``table_sql``).
    :param pipelines: pipeline names; None or empty for every pipeline in the table.
    :param since: start of the period (default: ``days`` before ``now``).
    :param days: length of the period when ``since`` is not given.
    :param now: the instant ages are measured from (default: the current time).
    :returns: a :class:`Metrics`; combine several tables' with :meth:`Metrics.merge`.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    since = (since or now - timedelta(days=days)).astimezone(UTC)
    q = Queries(store.dialect, store.table_sql, tuple(pipelines or ()), since, windows=windows_of(store),
                phases=phases_of(store))

    latest = [_latest(r) for r in rows_of(store, q.latest_runs())]
    settings = {r.pipeline: r for r in latest}
    recovered = {r["pipeline_name"]: _int(r["recovered"]) for r in rows_of(store, q.recovered_failures())}
    success = [_success(r, recovered.get(r["pipeline_name"], 0)) for r in rows_of(store, q.run_outcomes())]
    stats = rows_of(store, q.phase_stats())  # one pass over the phases for metrics 2, 3 and 6
    phase_rows = _outcomes(stats, [r.pipeline for r in success] if q.phases else ())
    failures = [_phase_failure(r) for r in phase_rows]
    durations = _durations(store, q, settings, [r for r in stats if _int(r["runs"]) > 0])
    counts = [_counts(r) for r in rows_of(store, q.counts())]
    fresh = [_freshness(r, settings.get(r["pipeline_name"]), now) for r in rows_of(store, q.freshness())]
    retries = _retries(rows_of(store, q.window_recovery()), phase_rows)
    failed_runs = [_failed_run(r) for r in rows_of(store, q.failed_runs(FAILED_RUNS_LISTED))]
    reloads = [reload_of(r) for r in rows_of(store, q.reloads(RELOADS_LISTED))]
    points = [
        FailurePoint(pipeline=r["pipeline_name"], phase=r["phase_failed"] or "unknown", failures=_int(r["failures"]))
        for r in rows_of(store, q.failures_by_phase())
    ]
    daily = [
        DailyRuns(day=_day(r["target_date"]), succeeded=_int(r["succeeded"]), skipped=_int(r["skipped"]),
                    failed=_int(r["failed"]), running=_int(r["running"]))
        for r in rows_of(store, q.daily())
    ]
    return Metrics(
        generated_at=now, since=since, sources=(store.location,),
        success_rates=_sorted(success), phase_failures=_sorted(failures), durations=_sorted(durations),
        count_mismatches=_sorted(counts), freshness=_sorted(fresh), retries=_sorted(retries),
        latest_runs=_sorted(latest), failed_runs=tuple(failed_runs), failure_points=_sorted(points),
        daily=tuple(daily), reloads=tuple(reloads),
    )


# -- row conversion -------------------------------------------------------------------------


def _int(value: Any) -> int:
    return int(value or 0)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _pct(part: float, whole: float) -> float | None:
    return None if not whole else round(part * 100.0 / whole, 4)


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value  # type: ignore[no-any-return]


def _seconds(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return parse_duration(text).total_seconds()
    except (ValueError, TypeError):
        return None


def _sorted(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(sorted(items, key=metric_order))


def _latest(r: dict[str, Any]) -> LatestRun:
    stale_flag = str(r.get("alert_on_stale_data") or "").lower() == "true"
    return LatestRun(
        pipeline=r["pipeline_name"], run_id=r["pipeline_id"], status=r["pipeline_status"],
        started_at=_aware(r["pipeline_start_timestamp"]), ended_at=_aware(r["pipeline_end_timestamp"]),
        window_start=_aware(r["query_window_start_timestamp"]), window_end=_aware(r["query_window_end_timestamp"]),
        phase_failed=r["phase_failed"], error_message=r["error_message"],
        duration_multiplier=_float(r["duration_multiplier"]) or DEFAULT_MULTIPLIER,
        freshness_threshold=r["freshness_threshold"], alert_on_stale_data=stale_flag,
        success_rate_threshold=_threshold(r.get("success_rate_threshold")),
    )


def _threshold(value: Any) -> float:
    """A config's success_rate_threshold; the spec's 90% where the snapshot has none."""
    return SUCCESS_ALERT_BELOW if value is None else float(value)


def reload_of(r: dict[str, Any]) -> Reload:
    """A row of :meth:`Queries.reloads` as a Reload."""
    def count(key: str) -> int | None:
        return None if r[key] is None else int(r[key])

    return Reload(
        pipeline=r["pipeline_name"], run_id=r["pipeline_id"], status=r["pipeline_status"],
        started_at=_aware(r["pipeline_start_timestamp"]), window_start=_aware(r["query_window_start_timestamp"]),
        window_end=_aware(r["query_window_end_timestamp"]), previous_run=r["previous_run"],
        previous_count=count("previous_count"), source_count=count("source_count"), reason=r["reason"],
    )


def _success(r: dict[str, Any], recovered: int = 0) -> SuccessRate:
    runs, ok, skipped, failed, running = (_int(r[k]) for k in ("runs", "succeeded", "skipped", "failed", "running"))
    return SuccessRate(
        pipeline=r["pipeline_name"], runs=runs, succeeded=ok, skipped=skipped, failed=failed, running=running,
        success_rate=_pct(ok + skipped, runs - running), avg_run_seconds=_float(r["avg_run_seconds"]),
        recovered=recovered, success_rate_after_retries=_pct(ok + skipped + recovered, runs - running),
    )


def _phase_failure(r: dict[str, Any]) -> PhaseFailureRate:
    ran, failed = _int(r["ran"]), _int(r["failed"])
    return PhaseFailureRate(pipeline=r["pipeline_name"], phase=r["phase"], ran=ran, failed=failed,
                              failure_rate=_pct(failed, ran))


def _outcomes(stats: list[dict[str, Any]], every: Sequence[str] = ()) -> list[dict[str, Any]]:
    """:meth:`Queries.phase_outcomes`' rows from :meth:`Queries.phase_stats`': summed over
    ``expected``; each pipeline of ``every`` (those with runs in the period) has a row for every
    phase, zeros where the phase summary has none (it keeps only the phases that did something)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def row_of(name: str, phase: str) -> dict[str, Any]:
        return out.setdefault((name, phase), {"pipeline_name": name, "phase": phase,
                                              "ran": 0, "failed": 0, "retried": 0, "retried_ok": 0})
    for name in every:
        for phase in PHASE_NAMES:
            row_of(name, phase)
    for r in stats:
        row = row_of(r["pipeline_name"], r["phase"])
        for key in ("ran", "failed", "retried", "retried_ok"):
            row[key] += _int(r[key])
    return list(out.values())


def _durations(store: ReportSource, q: Queries, settings: dict[str, LatestRun], rows: list[dict[str, Any]]) -> list[PhaseDuration]:
    """Metric 3 from :meth:`Queries.phase_stats`' timed rows (those of :meth:`Queries.phase_durations`)."""
    limits = []
    for r in rows:
        expected = _seconds(r["expected"])
        latest = settings.get(r["pipeline_name"])
        multiplier = latest.duration_multiplier if latest else DEFAULT_MULTIPLIER
        r["expected_seconds"], r["threshold"] = expected, multiplier
        if expected is not None and (_float(r["max_seconds"]) or 0.0) > expected * multiplier:
            limits.append((r["pipeline_name"], r["phase"], r["expected"], expected * multiplier))
    over: dict[tuple[str, str, str], int] = {}
    if limits:
        for r in rows_of(store, q.runs_over(limits)):
            over[(r["pipeline_name"], r["phase"], r["expected"])] = _int(r["over_limit"])
    out = []
    for r in rows:
        expected, avg, top = r["expected_seconds"], _float(r["avg_seconds"]), _float(r["max_seconds"])
        out.append(PhaseDuration(
            pipeline=r["pipeline_name"], phase=r["phase"], runs=_int(r["runs"]), avg_seconds=avg, max_seconds=top,
            expected=r["expected"], expected_seconds=expected,
            avg_ratio=round(avg / expected, 4) if expected and avg is not None else None,
            max_ratio=round(top / expected, 4) if expected and top is not None else None,
            threshold=r["threshold"], over_threshold=over.get((r["pipeline_name"], r["phase"], r["expected"]), 0),
        ))
    return out


def _counts(r: dict[str, Any]) -> CountMismatch:
    source, stage, target = _float(r["source_rows"]), _float(r["stage_rows"]), _float(r["target_rows"])
    audits = _int(r["audits"])
    return CountMismatch(
        pipeline=r["pipeline_name"], audits=audits, audits_passed=_int(r["audits_passed"]),
        audits_failed=_int(r["audits_failed"]), audit_pass_rate=_pct(_int(r["audits_passed"]), audits),
        source_rows=int(source) if source is not None else None, stage_rows=int(stage) if stage is not None else None,
        target_rows=int(target) if target is not None else None,
        source_to_stage_loss_percent=_pct(source - stage, source) if source and stage is not None else None,
        stage_to_target_loss_percent=_pct(stage - target, stage) if stage and target is not None else None,
        avg_source_to_stage_loss_percent=_float(r["avg_s2s_loss"]), max_source_to_stage_loss_percent=_float(r["max_s2s_loss"]),
        avg_stage_to_target_loss_percent=_float(r["avg_s2t_loss"]), max_stage_to_target_loss_percent=_float(r["max_s2t_loss"]),
        rejected=_int(r["rejected"]), dropped=_int(r["dropped"]), unplaceable=_int(r.get("unplaceable")),
        published=_int(r.get("published")),
    )


def _freshness(r: dict[str, Any], latest: LatestRun | None, now: datetime) -> Freshness:
    last = _aware(r["last_success_at"])
    threshold = latest.freshness_threshold if latest else None
    limit = _seconds(threshold)
    age = (now - last).total_seconds() if last is not None else None
    return Freshness(
        pipeline=r["pipeline_name"], last_success_at=last, data_through=_aware(r["data_through"]),
        age_seconds=age, threshold=threshold, threshold_seconds=limit,
        stale=bool(limit is not None and age is not None and age > limit),
        alert_on_stale_data=bool(latest and latest.alert_on_stale_data),
    )


def _retries(windows: list[dict[str, Any]], phases: list[dict[str, Any]]) -> list[RetryOutcome]:
    per: dict[str, dict[str, int]] = {}
    for r in windows:
        d = per.setdefault(r["pipeline_name"], {"failed": 0, "recovered": 0, "retried": 0, "retried_ok": 0})
        d["failed"] += _int(r["failed_windows"])
        d["recovered"] += _int(r["recovered"])
    for r in phases:
        d = per.setdefault(r["pipeline_name"], {"failed": 0, "recovered": 0, "retried": 0, "retried_ok": 0})
        d["retried"] += _int(r["retried"])
        d["retried_ok"] += _int(r["retried_ok"])
    return [
        RetryOutcome(
            pipeline=name, failed_windows=d["failed"], recovered_windows=d["recovered"],
            still_failing=d["failed"] - d["recovered"], retry_success_rate=_pct(d["recovered"], d["failed"]),
            phase_retries=d["retried"], phase_retries_recovered=d["retried_ok"],
            phase_retry_success_rate=_pct(d["retried_ok"], d["retried"]),
        )
        for name, d in per.items()
    ]


def _failed_run(r: dict[str, Any]) -> FailedRun:
    return FailedRun(
        pipeline=r["pipeline_name"], run_id=r["pipeline_id"], started_at=_aware(r["pipeline_start_timestamp"]),
        window_start=_aware(r["query_window_start_timestamp"]), window_end=_aware(r["query_window_end_timestamp"]),
        attempt=_int(r["pipeline_retry_number"]) + 1, phase_failed=r["phase_failed"], error_message=r["error_message"],
        recovered=bool(_int(r["recovered"])),
    )
