"""The values the metrics and dashboards are made of: frozen, JSON-able attrs classes.

Import them from :mod:`drivetrain.monitoring.metrics`. Percentages are 0-100 and None when
there was nothing to divide by; durations and ages are seconds; instants are aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import attrs

#: Success rate below which a pipeline is shown red (the spec's alert threshold), in percent;
#: a pipeline's ``monitoring.success_rate_threshold`` replaces it.
SUCCESS_ALERT_BELOW = 90.0
#: Success rate below which a pipeline is shown yellow (the spec's target), in percent.
SUCCESS_TARGET = 95.0

OK, WARNING, ALERT = "ok", "warning", "alert"


@attrs.frozen(kw_only=True)
class SuccessRate:
    """Metric 1 for one pipeline."""

    pipeline: str
    runs: int
    succeeded: int
    skipped: int
    """Ended early with nothing to do (an empty window): counted as not failing."""
    failed: int
    running: int
    success_rate: float | None
    """(succeeded + skipped) / (runs - running), in percent: the spec's metric."""
    avg_run_seconds: float | None
    """Average length of the runs that did not fail."""
    recovered: int = 0
    """Failed runs whose window a later run completed (a retry fixed them)."""
    success_rate_after_retries: float | None = None
    """(succeeded + skipped + recovered) / (runs - running), in percent: what health and the
    low-success-rate alert look at, so a failure a retry already fixed is not an alert."""


@attrs.frozen(kw_only=True)
class PhaseFailureRate:
    """Metric 2 for one pipeline and phase."""

    pipeline: str
    phase: str
    ran: int
    """Executions that COMPLETED or FAILED."""
    failed: int
    failure_rate: float | None


@attrs.frozen(kw_only=True)
class PhaseDuration:
    """Metric 3 for one pipeline, phase and expected duration."""

    pipeline: str
    phase: str
    runs: int
    avg_seconds: float | None
    max_seconds: float | None
    expected: str | None
    """``expected_run_duration`` as configured (None when not set)."""
    expected_seconds: float | None
    avg_ratio: float | None
    """Average duration divided by the expected one."""
    max_ratio: float | None
    threshold: float
    """The pipeline's duration_multiplier_threshold."""
    over_threshold: int
    """Executions longer than threshold x expected."""


@attrs.frozen(kw_only=True)
class CountMismatch:
    """Metric 4 (and the data-quality dashboard) for one pipeline, over its audits."""

    pipeline: str
    audits: int
    audits_passed: int
    audits_failed: int
    audit_pass_rate: float | None
    source_rows: int | None
    stage_rows: int | None
    target_rows: int | None
    source_to_stage_loss_percent: float | None
    """Over every audited row: (source - stage) / source * 100."""
    stage_to_target_loss_percent: float | None
    avg_source_to_stage_loss_percent: float | None
    max_source_to_stage_loss_percent: float | None
    avg_stage_to_target_loss_percent: float | None
    max_stage_to_target_loss_percent: float | None
    rejected: int
    """Rows that failed validation on the way into stage."""
    dropped: int
    """Rows removed on purpose on the way into target (duplicates, filters)."""
    unplaceable: int = 0
    """The most records in no window (no readable query field) a run's source count found."""
    published: int = 0
    """Rows the publish phase made visible in the target (after their audit passed)."""


@attrs.frozen(kw_only=True)
class Freshness:
    """Metric 5 for one pipeline."""

    pipeline: str
    last_success_at: datetime | None
    """When the newest run that did not fail ended."""
    data_through: datetime | None
    """End of the newest window such a run loaded."""
    age_seconds: float | None
    threshold: str | None
    """monitoring.freshness_threshold as configured."""
    threshold_seconds: float | None
    stale: bool
    alert_on_stale_data: bool


@attrs.frozen(kw_only=True)
class RetryOutcome:
    """Metric 6 for one pipeline."""

    pipeline: str
    failed_windows: int
    recovered_windows: int
    """Failed windows that a later run completed."""
    still_failing: int
    retry_success_rate: float | None
    phase_retries: int
    """Phase executions that retried transient errors."""
    phase_retries_recovered: int
    phase_retry_success_rate: float | None


@attrs.frozen(kw_only=True)
class LatestRun:
    """A pipeline's newest run, and the alert settings of its config."""

    pipeline: str
    run_id: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    phase_failed: str | None
    error_message: str | None
    duration_multiplier: float
    freshness_threshold: str | None
    alert_on_stale_data: bool
    success_rate_threshold: float = SUCCESS_ALERT_BELOW
    """``monitoring.success_rate_threshold`` of the newest run's config."""


@attrs.frozen(kw_only=True)
class FailedRun:
    """One failed run, for the failure-analysis dashboard."""

    pipeline: str
    run_id: str
    started_at: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    attempt: int
    """1 for the window's first attempt."""
    phase_failed: str | None
    error_message: str | None
    recovered: bool
    """A later run of the same window did not fail."""


@attrs.frozen(kw_only=True)
class Reload:
    """Late data: a run that loaded its window again because the source count had changed."""

    pipeline: str
    run_id: str
    status: str
    """How the reload ended (RUNNING while it goes on)."""
    started_at: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    previous_run: str | None
    """The window's last successful load before it."""
    previous_count: int | None
    """The source count that load recorded."""
    source_count: int | None
    """The source count the reload found."""
    reason: str | None


@attrs.frozen(kw_only=True)
class FailurePoint:
    """How many failed runs stopped at one phase."""

    pipeline: str
    phase: str
    failures: int


@attrs.frozen(kw_only=True)
class DailyRuns:
    """Runs of one target date, by outcome."""

    day: date
    succeeded: int
    skipped: int
    failed: int
    running: int


@attrs.frozen(kw_only=True)
class GapSummary:
    """Windows of a pipeline that never ran or never succeeded (see drivetrain.monitoring.gaps)."""

    pipeline: str
    missing: int
    failed: int
    first: datetime | None
    """Start of the oldest gap."""


@attrs.frozen(kw_only=True)
class PipelineHealth:
    """One line of the pipeline-health dashboard."""

    pipeline: str
    level: str
    """``ok``, ``warning`` (yellow) or ``alert`` (red)."""
    notes: tuple[str, ...]
    """Why the level is not ok."""
    latest: LatestRun | None
    last_success_at: datetime | None
    age_seconds: float | None
    success_rate: float | None
    runs: int
    open_failures: int
    gaps: int


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_json(x) for x in value]
    if isinstance(value, dict):
        return {k: _json(x) for k, x in value.items()}
    return value


def _by(items: Iterable[Any]) -> dict[str, Any]:
    return {item.pipeline: item for item in items}


def metric_order(item: Any) -> tuple[str, str, bool, str]:
    """The order of a metric's rows: pipeline, phase, then (durations) expected duration, none
    first -- an engine's GROUP BY returns a phase's rows for different expected durations in any
    order, and two reads of one table must print the same."""
    expected = getattr(item, "expected", None)
    return item.pipeline, getattr(item, "phase", ""), expected is not None, str(expected or "")


@attrs.frozen(kw_only=True)
class Metrics:
    """Every metric over a period, for one or more drive tables; the dashboards derive from it."""

    generated_at: datetime
    since: datetime
    sources: tuple[str, ...]
    """Where the drive tables are."""
    success_rates: tuple[SuccessRate, ...] = ()
    phase_failures: tuple[PhaseFailureRate, ...] = ()
    durations: tuple[PhaseDuration, ...] = ()
    count_mismatches: tuple[CountMismatch, ...] = ()
    freshness: tuple[Freshness, ...] = ()
    retries: tuple[RetryOutcome, ...] = ()
    latest_runs: tuple[LatestRun, ...] = ()
    failed_runs: tuple[FailedRun, ...] = ()
    failure_points: tuple[FailurePoint, ...] = ()
    daily: tuple[DailyRuns, ...] = ()
    gaps: tuple[GapSummary, ...] = ()
    reloads: tuple[Reload, ...] = ()
    """Windows reloaded in the period because their source count drifted (late data), newest first."""

    @property
    def pipelines(self) -> list[str]:
        """Every pipeline that has a run, sorted."""
        return sorted({r.pipeline for r in self.latest_runs} | {g.pipeline for g in self.gaps})

    def merge(self, *others: Metrics) -> Metrics:
        """One Metrics for several drive tables (pipelines are assumed distinct)."""
        parts = (self, *others)

        def cat(name: str) -> tuple[Any, ...]:
            items = [x for m in parts for x in getattr(m, name)]
            return tuple(sorted(items, key=metric_order))

        days: dict[date, list[int]] = {}
        for m in parts:
            for d in m.daily:
                acc = days.setdefault(d.day, [0, 0, 0, 0])
                for i, n in enumerate((d.succeeded, d.skipped, d.failed, d.running)):
                    acc[i] += n
        failed = sorted((r for m in parts for r in m.failed_runs), key=lambda r: r.started_at or self.since, reverse=True)
        reloads = sorted((r for m in parts for r in m.reloads), key=lambda r: r.started_at or self.since, reverse=True)
        names = ("success_rates", "phase_failures", "durations", "count_mismatches", "freshness", "retries",
                 "latest_runs", "failure_points", "gaps")
        return attrs.evolve(
            self, sources=tuple(s for m in parts for s in m.sources), failed_runs=tuple(failed), reloads=tuple(reloads),
            daily=tuple(DailyRuns(day=k, succeeded=a[0], skipped=a[1], failed=a[2], running=a[3]) for k, a in sorted(days.items())),
            **{name: cat(name) for name in names},  # type: ignore[arg-type]
        )

    def with_gaps(self, gaps: Iterable[GapSummary]) -> Metrics:
        """A copy that also knows each pipeline's gaps (the report adds them from the configs)."""
        return attrs.evolve(self, gaps=tuple(sorted(gaps, key=lambda g: g.pipeline)))

    # -- the four dashboards --------------------------------------------------------------

    def health(self) -> list[PipelineHealth]:
        """Dashboard 1: each pipeline's newest run, last success, and a traffic light."""
        latest, success, fresh = _by(self.latest_runs), _by(self.success_rates), _by(self.freshness)
        retries, gaps = _by(self.retries), _by(self.gaps)
        slow = {d.pipeline for d in self.durations if d.over_threshold}
        out = []
        for name in self.pipelines:
            run, rate, age, retry, gap = latest.get(name), success.get(name), fresh.get(name), retries.get(name), gaps.get(name)
            red, yellow = [], []
            if run is not None and run.status == "FAILED":
                red.append(f"latest run failed at {run.phase_failed or 'an unknown phase'}")
            if age is not None and age.stale:
                red.append(f"data older than {age.threshold}")
            if age is None and run is not None:
                yellow.append("no successful run yet")
            effective = rate.success_rate_after_retries if rate is not None else None
            if rate is not None and effective is not None:
                below = run.success_rate_threshold if run is not None else SUCCESS_ALERT_BELOW
                fixed = f" ({rate.recovered} more failed but a retry completed their window)" if rate.recovered else ""
                if effective < below:
                    red.append(f"success rate {effective:.1f}% below {below:g}%{fixed}")
                elif effective < max(SUCCESS_TARGET, below):
                    yellow.append(f"success rate {effective:.1f}% below {max(SUCCESS_TARGET, below):g}%{fixed}")
            if rate is None:
                yellow.append("no runs in the period")
            if retry is not None and retry.still_failing and not (run and run.status == "FAILED"):
                yellow.append(f"{retry.still_failing} failed window(s) not yet recovered")
            if name in slow:
                yellow.append("phases ran past their expected duration")
            if gap is not None and (gap.missing or gap.failed):
                yellow.append(f"{gap.missing + gap.failed} window(s) never ran or never succeeded")
            out.append(PipelineHealth(
                pipeline=name, level=ALERT if red else WARNING if yellow else OK, notes=tuple(red + yellow),
                latest=run, last_success_at=age.last_success_at if age else None,
                age_seconds=age.age_seconds if age else None,
                success_rate=rate.success_rate if rate else None, runs=rate.runs if rate else 0,
                open_failures=retry.still_failing if retry else 0,
                gaps=(gap.missing + gap.failed) if gap else 0,
            ))
        return out

    def failure_analysis(self) -> dict[str, Any]:
        """Dashboard 2: failed runs and errors, where runs stop, whether retries fixed them."""
        by_phase: dict[str, int] = {}
        for point in self.failure_points:
            by_phase[point.phase] = by_phase.get(point.phase, 0) + point.failures
        return {
            "failed_runs": list(self.failed_runs),
            "failures_by_phase": dict(sorted(by_phase.items(), key=lambda kv: (-kv[1], kv[0]))),
            "failure_points": list(self.failure_points),
            "phase_failure_rates": [p for p in self.phase_failures if p.failed],
            "retries": list(self.retries),
        }

    def performance(self) -> dict[str, Any]:
        """Dashboard 3: durations against expected, slowest phases, SLA breaches, freshness."""
        timed = [d for d in self.durations if d.avg_seconds is not None]
        return {
            "durations": list(self.durations),
            # to the microsecond: an average's last bits depend on the order the engine summed in
            "slowest": sorted(timed, key=lambda d: (-round(d.avg_seconds or 0.0, 6), metric_order(d)))[:10],
            "over_threshold": [d for d in self.durations if d.over_threshold],
            "freshness": list(self.freshness),
            "run_durations": {s.pipeline: s.avg_run_seconds for s in self.success_rates},
        }

    def data_quality(self) -> dict[str, Any]:
        """Dashboard 4: count mismatches, audit pass/fail, rejected rows, late-data reloads."""
        return {"count_mismatches": list(self.count_mismatches), "reloads": list(self.reloads)}

    def to_json(self) -> dict[str, Any]:
        """Everything as plain JSON types: the metrics and the four dashboards."""
        data = _json(attrs.asdict(self, recurse=True))
        data["dashboards"] = _json({
            "pipeline_health": [attrs.asdict(h) for h in self.health()],
            "failure_analysis": _asdicts(self.failure_analysis()),
            "performance": _asdicts(self.performance()),
            "data_quality": _asdicts(self.data_quality()),
        })
        return data  # type: ignore[no-any-return]


def _asdicts(section: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, list):
            out[key] = [attrs.asdict(x) if attrs.has(type(x)) else x for x in value]
        else:
            out[key] = value
    return out
