"""Command-line pieces for operating many pipelines: ``drivetrain report`` and gap helpers.

``report_command`` is a click command the CLI group adds as ``drivetrain report``.
:func:`gap_lines` and :func:`drift_lines` give ``drivetrain status`` its gap and late-data
summaries, and :func:`only_gaps` lets
``drivetrain run --from/--to`` run only the windows that still need a successful run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drivetrain.durations import format_duration
from drivetrain.errors import DrivetrainError
from drivetrain.monitoring import fleet
from drivetrain.monitoring import gaps as gap_mod
from drivetrain.monitoring import metrics as metrics_mod
from drivetrain.monitoring._values import ALERT, WARNING, Metrics

if TYPE_CHECKING:
    from drivetrain.pipeline import Pipeline
    from drivetrain.window import Window

__all__ = ["build_metrics", "drift_lines", "gap_lines", "only_gaps", "report_command"]

#: How many gap ranges ``gap_lines`` lists before summing up the rest.
GAP_RANGES_SHOWN = 10
#: How many late-data reloads ``drift_lines`` lists.
RELOADS_SHOWN = 10

#: The longest period ``report --days`` accepts: a century, far from datetime's limits.
MAX_DAYS = 36500


def _finite(value: float) -> float:
    """``--days`` must be a real number: FloatRange lets NaN through (it compares false)."""
    if value != value:  # NaN
        raise click.BadParameter("nan is not a number of days; give one like 7 or 0.5")
    return value


def _html_target(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """``--html FILE`` must go into an existing folder: checked before any work is done."""
    if value is not None and not value.parent.is_dir():
        raise click.BadParameter(f"the folder {value.parent} does not exist; create it or write the file elsewhere")
    return value


def _window_text(pipeline: Pipeline, start: datetime, end: datetime) -> str:
    from drivetrain.cli._pipelines import window_text

    return window_text(start, end, pipeline.config.schedule.timezone)


def gap_lines(pipeline: Pipeline, *, now: datetime | None = None, limit: int = GAP_RANGES_SHOWN) -> list[str]:
    """Lines for ``drivetrain status PIPELINE``: windows that never ran or never succeeded.

    Each range of consecutive gaps comes with the command that fills it.
    """
    moment = now or datetime.now(UTC)
    found = gap_mod.find_gaps(pipeline, now=moment)
    begin = gap_mod.gaps_begin(pipeline, moment)
    since = pipeline.config.schedule.start_date.isoformat()
    if begin is not None and begin != pipeline.grid.first().start:
        since = f"{_iso_utc(begin)} (catchup: false: from the first window it ran)"
    if not found:
        return [f"gaps: none: every window since {since} has a successful run"]
    summary = gap_mod.summarize(pipeline.name, found)
    running = sum(1 for g in found if g.kind == gap_mod.RUNNING)
    parts = [f"{summary.missing} never ran", f"{summary.failed} failed"] + ([f"{running} running"] if running else [])
    lines = [f"gaps since {since}: {', '.join(parts)}"]
    ranges = gap_mod.group_gaps(pipeline.name, found)
    for item in ranges[:limit]:
        what = f"{item.windows} window{'s' if item.windows != 1 else ''}"
        if item.attempts:
            what += f", {item.attempts} attempt{'s' if item.attempts != 1 else ''}"
        fill = "" if item.kind == gap_mod.RUNNING else f": {item.fill_command()}"
        lines.append(f"  {item.kind:<7} {_window_text(pipeline, item.start, item.end)} ({what}){fill}")
    if len(ranges) > limit:
        lines.append(f"  ... and {len(ranges) - limit} more range(s)")
    return lines


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def only_gaps(pipeline: Pipeline, windows: Sequence[Window], *, now: datetime | None = None) -> list[Window]:
    """The windows of ``windows`` that still need a successful run (for ``run --from/--to``).

    Windows that succeeded, or are being run now, are left out; order is kept.
    """
    if not windows:
        return []
    start, end = min(w.start for w in windows), max(w.end for w in windows)
    wanted = {(w.start, w.end) for w in gap_mod.fill_windows(pipeline, start, end, now=max(now or datetime.now(UTC), end))}
    return [w for w in windows if (w.start, w.end) in wanted]


def build_metrics(pipelines: Sequence[Pipeline], *, days: float = 7, now: datetime | None = None) -> Metrics:
    """Metrics for pipelines that may live in different drive tables, gaps included.

    Pipelines sharing a drive table are computed in one pass over it.
    """
    from drivetrain.cli._pipelines import drive_exists

    now = now or datetime.now(UTC)
    groups: dict[str, tuple[Any, list[str]]] = {}
    present = []
    for pipe in pipelines:
        if not drive_exists(pipe):
            continue
        present.append(pipe)
        store = pipe.drive_store()
        key = store.location or str(id(store))
        groups.setdefault(key, (store, []))[1].append(pipe.name)
    gap_summaries = gap_mod.gap_summaries(present, now=now)
    parts = [metrics_mod.compute(store, names, days=days, now=now) for store, names in groups.values()]
    if not parts:
        return Metrics(generated_at=now, since=now, sources=()).with_gaps(gap_summaries)
    return parts[0].merge(*parts[1:]).with_gaps(gap_summaries)


def _readable_metrics(pipelines: Sequence[Pipeline], *, days: float) -> tuple[Metrics, list[tuple[Pipeline, Exception]]]:
    """:func:`build_metrics` of the pipelines whose drive tables can be read, and the others with why.

    A drive table can open cleanly and fail only when a query reaches a damaged page: then each
    drive table is read on its own to find which, and the report covers the rest (the usual path
    reads them all in one pass per drive table).
    """
    try:
        return build_metrics(pipelines, days=days), []
    except DrivetrainError:
        pass
    groups: dict[str, list[Pipeline]] = {}
    for pipe in pipelines:
        groups.setdefault(pipe.drive_store().location or str(id(pipe)), []).append(pipe)
    readable: list[Pipeline] = []
    failing: list[tuple[Pipeline, Exception]] = []
    for group in groups.values():
        try:
            build_metrics(group, days=days)
        except DrivetrainError as exc:
            failing.extend((pipe, exc) for pipe in group)
        else:
            readable.extend(group)
    return build_metrics(readable, days=days), failing


def _window_text_utc(start: datetime | None, end: datetime | None) -> str:
    from drivetrain.cli._pipelines import window_text

    return window_text(start, end, "UTC") if start is not None and end is not None else ""


def drift_lines(pipeline: Pipeline, *, now: datetime | None = None, limit: int = RELOADS_SHOWN) -> list[str]:
    """Lines for ``drivetrain status PIPELINE``: late data, the windows still settling and the reloads.

    Nothing when the pipeline neither settles nor ever reloaded a window after drift.
    """
    from drivetrain.settle import settling_windows

    total, reloads = _reloads(pipeline, limit)
    horizon = pipeline.config.query_window.settle_horizon_text
    lines = []
    if horizon:
        settling = len(settling_windows(pipeline, now))
        lines.append(f"late data: settle_horizon {horizon}: {settling} loaded window(s) still settling; "
                     "each plain run re-counts them and reloads those whose source records changed")
    if reloads:
        lines.append(f"reloaded after their source records changed: {total} run(s), newest first")
        for run in reloads:
            lines.append(f"  {_window_text(pipeline, run.window_start, run.window_end)} "  # type: ignore[arg-type]
                         f"{run.status:<7} {run.run_id}: {run.reason}")
        if total > limit:
            lines.append(f"  ... and {total - limit} more")
    elif horizon:
        lines.append("reloaded after their source records changed: none")
    return lines


def _reloads(pipeline: Pipeline, limit: int) -> tuple[int, list[Any]]:
    """How many runs of ``pipeline`` reloaded their window after drift, and the newest ``limit``
    of them: asked of the drive table, which keeps them (a year of hourly runs read into Python
    to pick them took 4 s)."""
    from drivetrain.monitoring.queries import Queries, rows_of

    store = pipeline.drive_store()
    q = Queries(store.dialect, store.table_sql, (pipeline.name,))
    total = rows_of(store, q.reload_count())
    found = [metrics_mod.reload_of(r) for r in rows_of(store, q.reloads(limit))]
    return (int(total[0]["reloads"] or 0) if total else 0), found


def _pct(value: float | None) -> str:
    return f"{value:.1f}%" if value is not None else ""


def _secs(value: float | None) -> str:
    return format_duration(max(value, 0.0)) if value is not None else ""


def _print_tables(m: Metrics, out: Any) -> None:
    health = m.health()
    out.table(
        ["pipeline", "health", "latest run", "status", "failed at", "last success", "age", "success rate", "runs", "gaps", "notes"],
        [[h.pipeline, h.level.upper(), h.latest.run_id if h.latest else "", h.latest.status if h.latest else "",
          (h.latest.phase_failed or "") if h.latest else "", h.last_success_at.strftime("%Y-%m-%d %H:%MZ") if h.last_success_at else "",
          _secs(h.age_seconds), _pct(h.success_rate), str(h.runs), str(h.gaps), "; ".join(h.notes)] for h in health],
        title=f"pipeline health since {m.since:%Y-%m-%d %H:%MZ}",
    )
    if m.failed_runs:
        out.table(["pipeline", "run", "failed phase", "error", "fixed by retry"],
                  [[r.pipeline, r.run_id, r.phase_failed or "", (r.error_message or "")[:120], "yes" if r.recovered else "no"]
                   for r in m.failed_runs[:10]], title="failed runs, newest first")
    slow = [d for d in m.durations if d.over_threshold]
    if slow:
        out.table(["pipeline", "phase", "average", "longest", "expected", "runs over threshold"],
                  [[d.pipeline, d.phase, _secs(d.avg_seconds), _secs(d.max_seconds), d.expected or "", f"{d.over_threshold} of {d.runs}"]
                   for d in slow], title="phases over their expected duration")
    if m.reloads:
        out.table(["pipeline", "window", "reload run", "status", "why"],
                  [[r.pipeline, _window_text_utc(r.window_start, r.window_end), r.run_id, r.status, r.reason or ""]
                   for r in m.reloads[:10]], title="windows reloaded for late data, newest first")
    if m.count_mismatches:
        out.table(["pipeline", "audits", "passed", "source->stage loss", "stage->target loss", "rejected", "dropped",
                   "in no window", "published"],
                  [[c.pipeline, str(c.audits), _pct(c.audit_pass_rate), _pct(c.source_to_stage_loss_percent),
                    _pct(c.stage_to_target_loss_percent), str(c.rejected), str(c.dropped), str(c.unplaceable), str(c.published)]
                   for c in m.count_mismatches],
                  title="data quality")


def _send_alerts(usable: Sequence[Pipeline], out: Any, *, fleet_threshold: float, days: float) -> None:
    """``report --send-alerts``: freshness and success rate per pipeline, then the fleet's rate."""
    from datetime import timedelta

    from drivetrain.monitoring import notify
    from drivetrain.monitoring.plugin import check_freshness
    from drivetrain.monitoring.run_alerts import check_success_rate, fleet_success_alert

    for pipe in usable:
        try:
            if (alert := check_freshness(pipe)) is not None:
                out.note(f"sent: {alert.subject}")
        except DrivetrainError as exc:
            out.note(f"{pipe.name}: freshness not checked: {exc}")
        try:
            if (alert := check_success_rate(pipe)) is not None:
                notify.send(alert)
                out.note(f"sent: {alert.subject}")
        except DrivetrainError as exc:
            out.note(f"{pipe.name}: success rate not checked: {exc}")
    try:
        if len(usable) > 1 and (alert := fleet_success_alert(usable, threshold=fleet_threshold, period=timedelta(days=days))):
            notify.send(alert)
            out.note(f"sent: {alert.subject}")
    except DrivetrainError as exc:
        out.note(f"fleet success rate not checked: {exc}")


@click.command("report")
@click.argument("pipelines", nargs=-1)
@click.option("--days", type=click.FloatRange(min=0, max=MAX_DAYS, min_open=True), default=7.0, show_default=True,
              callback=lambda _ctx, _param, value: _finite(value),
              help=f"The period: runs that started in the last N days (at most {MAX_DAYS}).")
@click.option("--json", "as_json", is_flag=True, help="Print every metric and dashboard as JSON.")
@click.option("--html", "html_file", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              callback=_html_target, help="Write the four dashboards as one self-contained HTML file.")
@click.option("--dir", "folder", metavar="PATH", help="Also look at the pipeline folder PATH (default: the working folder).")
@click.option("--send-alerts", is_flag=True,
              help="Send stale-data alerts (monitoring.alert_on_stale_data), low-success-rate alerts per pipeline "
                   "(monitoring.alert_on_low_success_rate) and for the pipelines together (--fleet-threshold).")
@click.option("--fleet-threshold", type=click.FloatRange(min=0, max=100), default=90.0, show_default=True,
              help="With --send-alerts: alert when the success rate of all the pipelines together, over --days, is below this percent.")
def report_command(pipelines: tuple[str, ...], days: float, as_json: bool, html_file: Path | None,
                   folder: str | None, send_alerts: bool, fleet_threshold: float) -> None:
    """Health of PIPELINES (default: every pipeline found): success rate, failures,
    durations against expected, count mismatches, freshness, retries and gaps.

    Without PIPELINE: every registered pipeline, plus the folder given by --dir (or the
    working folder) when it holds config.json.
    """
    from drivetrain.cli._output import output
    from drivetrain.cli._pipelines import Candidate, candidates, drive_exists, load
    from drivetrain.monitoring.pipeline_view import SharedStores, load_folder

    out = output()
    shared = SharedStores()
    if pipelines:
        found = [Candidate(label=name, pipeline=load(name)) for name in pipelines]
    else:  # alerts need each pipeline's own notification settings: loaded in full
        found, where = candidates(folder, None if send_alerts else lambda path: load_folder(path, shared))
        out.note("looked at: " + "; ".join(where))
    for item in found:
        if item.pipeline is None:
            out.note(f"{item.label}: skipped: {item.problem}")
    usable, unreadable = [], []
    labels: dict[int, str] = {}
    for item in found:
        if item.pipeline is None:
            continue
        try:
            drive_exists(item.pipeline)  # builds the drive store: a config it cannot use says so here
        except DrivetrainError as exc:
            out.note(f"{item.label}: skipped: cannot read its drive table: {exc}")
            unreadable.append(item.label)
            item.pipeline.close()
            continue
        usable.append(item.pipeline)
        labels[id(item.pipeline)] = item.label
    try:
        with fleet.reading(usable):  # one opening of each drive file for the whole report
            metrics, failing = _readable_metrics(usable, days=days)
        for pipe, problem in failing:
            out.note(f"{labels[id(pipe)]}: skipped: cannot read its drive table: {problem}")
            unreadable.append(labels[id(pipe)])
        usable_now = [pipe for pipe in usable if all(pipe is not bad for bad, _ in failing)]
        if send_alerts:
            _send_alerts(usable_now, out, fleet_threshold=fleet_threshold, days=days)
    finally:
        for pipe in usable:
            pipe.close()
        shared.close()
    if html_file is not None:
        # imported here: `status` of one pipeline uses this module's gap lines, not the HTML page
        from drivetrain.monitoring import report_html

        report_html.write(metrics, html_file)
        out.note(f"wrote {html_file}")
    failed = bool(unreadable) and bool(pipelines or send_alerts)  # named, or alerts depend on it: not a success
    if as_json and not failed:
        out.json(metrics.to_json())
    elif not as_json and not metrics.pipelines:
        out.note("no runs recorded for any pipeline found")
    elif not as_json:
        _print_tables(metrics, out)
        levels = [h.level for h in metrics.health()]
        out.note(f"{levels.count(ALERT)} pipeline(s) need attention, {levels.count(WARNING)} with warnings")
    if failed:
        from drivetrain.cli._output import CliError

        raise CliError(f"cannot read the drive table of {', '.join(unreadable)} (why: above); the report covers "
                       "the other pipelines", extra={"unreadable": unreadable, "report": metrics.to_json()})
