"""The health report as one self-contained HTML file: the spec's four dashboards.

Everything is inline (stylesheet, SVG charts, a few lines of script that sort tables when a
header is clicked), so the file reads the same offline, attached to an email or archived.
Every value from the drive table is escaped.

At fleet size (500 pipelines: thousands of table rows) the page stays quick to open: the fleet
summary comes first, and the dashboards below it are laid out only when scrolled to
(``content-visibility: auto``; they still print and are found by the browser's search).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from string import Template
from typing import Any

from drivetrain.durations import format_duration
from drivetrain.monitoring import _svg
from drivetrain.monitoring._values import (
    ALERT,
    OK,
    SUCCESS_TARGET,
    WARNING,
    Metrics,
    PipelineHealth,
)

__all__ = ["render", "write"]

LEVEL_TEXT = {OK: "OK", WARNING: "Warning", ALERT: "Alert"}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "–"


def _window(start: datetime | None, end: datetime | None) -> str:
    """``2025-11-15 10:00 → 11:00``; the end shows its date for windows of a day or more."""
    if start is None or end is None:
        return "–"
    end_text = end.strftime("%H:%M") if (end - start).total_seconds() < 86400 else end.strftime("%Y-%m-%d %H:%M")
    return f"{start:%Y-%m-%d %H:%M} → {end_text}"


def _secs(value: float | None) -> str:
    return format_duration(max(value, 0.0)) if value is not None else "–"


def _pct(value: float | None, digits: int = 1) -> str:
    return f"{value:.{digits}f}%" if value is not None else "–"


def _ratio(value: float | None) -> str:
    return f"{value:.2f}×" if value is not None else "–"


def _status(text: str | None) -> str:
    if not text:
        return "–"
    return f'<span class="badge s-{escape(text.lower())}">{escape(text)}</span>'


def _table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str,
           row_ids: Sequence[str] = ()) -> str:
    """A sortable table; cells are HTML already escaped by the caller; ``row_ids`` anchor rows."""
    ids = [f' id="{escape(i, quote=True)}"' for i in row_ids]
    body = "".join(f"<tr{ids[n] if n < len(ids) else ''}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                   for n, row in enumerate(rows))
    if not body:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    return f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


#: Charts draw one bar per pipeline up to this many; past it, the worst ones (the table has all).
CHART_PIPELINES = 30


def _anchor(pipeline: str) -> str:
    """The id of a pipeline's row in the health table (the fleet summary links to it)."""
    return f"pipeline-{pipeline}"


def _link(pipeline: str) -> str:
    return f'<a href="#{escape(_anchor(pipeline), quote=True)}">{escape(pipeline)}</a>'


def _worst(bars: list[_svg.Bar], key: Any, what: str) -> tuple[list[_svg.Bar], str]:
    """At most CHART_PIPELINES bars, the worst by ``key`` (smallest first), and a caption note."""
    if len(bars) <= CHART_PIPELINES:
        return bars, ""
    return sorted(bars, key=key)[:CHART_PIPELINES], f" ({what} {CHART_PIPELINES} of {len(bars)} pipelines; the table lists all)"


def _fleet(health: list[PipelineHealth]) -> str:
    """The fleet summary: what needs attention, then every pipeline one click from its row."""
    def items(level: str) -> str:
        return "".join(
            f'<li><span class="light {h.level}" title="{LEVEL_TEXT[h.level]}"></span> {_link(h.pipeline)}: '
            f'{escape("; ".join(h.notes) or LEVEL_TEXT[h.level])}</li>'
            for h in sorted(health, key=lambda h: h.pipeline) if h.level == level)

    alerts, warnings = sum(1 for h in health if h.level == ALERT), sum(1 for h in health if h.level == WARNING)
    needs = f'<ul class="attention">{items(ALERT)}</ul>' if alerts else '<p class="empty">No alert.</p>'
    if warnings:  # listed open when few, one click away when many
        needs += (f'<details{" open" if warnings <= CHART_PIPELINES else ""}><summary>{warnings} pipeline(s) with a warning'
                  f'</summary><ul class="attention">{items(WARNING)}</ul></details>')
    index = "".join(f'<li><span class="light {h.level}" title="{LEVEL_TEXT[h.level]}"></span> {_link(h.pipeline)}</li>'
                    for h in sorted(health, key=lambda h: h.pipeline))
    return (f"<h3>Needs attention: {alerts} alert(s), {warnings} warning(s) among {len(health)} pipelines</h3>{needs}"
            f'<h3>Every pipeline ({len(health)})</h3><ul class="index">{index}</ul>')


def _health(m: Metrics, health: list[PipelineHealth]) -> str:
    rows = []
    for h in health:
        run = h.latest
        failure = ""
        if run is not None and run.status == "FAILED":
            failure = f'<b>{escape(run.phase_failed or "?")}</b>: <span class="error">{escape(run.error_message or "")}</span>'
        rows.append([
            f'<span class="light {h.level}" title="{LEVEL_TEXT[h.level]}"></span> {LEVEL_TEXT[h.level]}',
            f"<b>{escape(h.pipeline)}</b>",
            _status(run.status if run else None),
            escape(_window(run.window_start, run.window_end) if run else "–"),
            failure or "–",
            escape(_when(h.last_success_at)),
            escape(_secs(h.age_seconds)),
            escape(_pct(h.success_rate)),
            str(h.runs),
            str(h.open_failures),
            str(h.gaps),
            escape("; ".join(h.notes)) or "–",
        ])
    bars, rate_note = _worst([
        _svg.Bar(label=s.pipeline, segments=((s.success_rate or 0.0, "ok" if (s.success_rate or 0) >= SUCCESS_TARGET else "bad"),),
                 text=f"{_pct(s.success_rate)} of {s.runs - s.running}")
        for s in m.success_rates
    ], lambda b: b.segments[0][0], "the lowest")
    days = [d.day.isoformat() for d in m.daily]
    series = [
        ("succeeded", "ok", [d.succeeded for d in m.daily]),
        ("skipped (empty)", "muted", [d.skipped for d in m.daily]),
        ("failed", "bad", [d.failed for d in m.daily]),
        ("running", "warn", [d.running for d in m.daily]),
    ]
    headers = ["Health", "Pipeline", "Latest run", "Window", "Failed at", "Last success", "Age",
               "Success rate", "Runs", "Open failures", "Gaps", "Notes"]
    return (
        _table("health", headers, rows, empty="No pipeline has run yet.", row_ids=[_anchor(h.pipeline) for h in health])
        + '<div class="charts"><figure>' + _svg.hbars("Success rate per pipeline", bars, scale=100.0, guide=(SUCCESS_TARGET, f"target {SUCCESS_TARGET:g}%"))
        + f"<figcaption>Success rate per pipeline (runs that did not fail){escape(rate_note)}</figcaption></figure>"
        + "<figure>" + _svg.columns("Runs per target date", days, series) + "<figcaption>Runs per target date</figcaption></figure></div>"
    )


def _failures(m: Metrics) -> str:
    analysis = m.failure_analysis()
    by_phase = analysis["failures_by_phase"]
    bars = [_svg.Bar(label=phase, segments=((n, "bad"),), text=f"{n} run(s)") for phase, n in by_phase.items()]
    failed = [
        [escape(r.pipeline), f"<code>{escape(r.run_id)}</code>", escape(_when(r.started_at)), escape(_window(r.window_start, r.window_end)),
         str(r.attempt), f"<b>{escape(r.phase_failed or '?')}</b>", f'<span class="error">{escape(r.error_message or "")}</span>',
         '<span class="badge s-success">fixed by a retry</span>' if r.recovered else '<span class="badge s-failed">not yet</span>']
        for r in m.failed_runs
    ]
    retries = [
        [escape(r.pipeline), str(r.failed_windows), str(r.recovered_windows), str(r.still_failing), escape(_pct(r.retry_success_rate)),
         str(r.phase_retries), escape(_pct(r.phase_retry_success_rate))]
        for r in m.retries
    ]
    rates = [
        [escape(p.pipeline), escape(p.phase), str(p.ran), str(p.failed), escape(_pct(p.failure_rate))]
        for p in sorted(m.phase_failures, key=lambda p: -(p.failure_rate or 0.0)) if p.ran
    ]
    return (
        '<div class="charts"><figure>' + _svg.hbars("Failed runs by the phase that failed", bars)
        + "<figcaption>Where failed runs stopped (phase_failed)</figcaption></figure></div>"
        + "<h3>Failed runs, newest first</h3>"
        + _table("failed-runs", ["Pipeline", "Run", "Started", "Window", "Attempt", "Failed phase", "Error", "Retry result"],
                 failed, empty="No run failed in this period.")
        + "<h3>Did retries fix it?</h3>"
        + _table("retries", ["Pipeline", "Failed windows", "Recovered", "Still failing", "Retry success rate",
                             "Phases retried in-run", "In-run retry success"], retries, empty="Nothing to retry in this period.")
        + "<h3>Phase failure rate</h3>"
        + _table("phase-failures", ["Pipeline", "Phase", "Executions", "Failed", "Failure rate"], rates, empty="No phase ran.")
    )


def _performance(m: Metrics) -> str:
    perf = m.performance()
    slow = perf["slowest"]
    bars = [
        _svg.Bar(label=f"{d.pipeline} · {d.phase}", segments=((d.avg_seconds or 0.0, "bad" if d.over_threshold else "ok"),),
                 text=_secs(d.avg_seconds) + (f" / {d.expected}" if d.expected else ""), marker=d.expected_seconds)
        for d in slow
    ]
    rows = [
        [escape(d.pipeline), escape(d.phase), str(d.runs), escape(_secs(d.avg_seconds)), escape(_secs(d.max_seconds)),
         escape(d.expected or "–"), escape(_ratio(d.avg_ratio)), escape(_ratio(d.max_ratio)),
         f'<span class="{"bad-text" if d.over_threshold else ""}">{d.over_threshold}</span> (&gt; {d.threshold:g}×)']
        for d in perf["durations"]
    ]
    fresh = [
        [escape(f.pipeline), escape(_when(f.last_success_at)), escape(_when(f.data_through)), escape(_secs(f.age_seconds)),
         escape(f.threshold or "–"), '<span class="badge s-failed">stale</span>' if f.stale else '<span class="badge s-success">fresh</span>']
        for f in perf["freshness"]
    ]
    return (
        '<div class="charts"><figure>' + _svg.hbars("Slowest phases: average duration, expected marked", bars)
        + "<figcaption>Slowest phases by average duration; the black tick marks the expected duration (an arrow: expected is off the scale)</figcaption></figure></div>"
        + "<h3>Phase duration against expected</h3>"
        + _table("durations", ["Pipeline", "Phase", "Executions", "Average", "Longest", "Expected", "Avg / expected",
                               "Max / expected", "Over threshold"], rows, empty="No phase ran in this period.")
        + "<h3>Data freshness</h3>"
        + _table("freshness", ["Pipeline", "Last successful run", "Data loaded through", "Age", "Threshold", "State"],
                 fresh, empty="No pipeline has succeeded yet.")
    )


def _quality(m: Metrics) -> str:
    counts = m.count_mismatches
    audit_bars, audit_note = _worst([
        _svg.Bar(label=c.pipeline, segments=((c.audits_passed, "ok"), (c.audits_failed, "bad")),
                 text=f"{c.audits_passed} passed, {c.audits_failed} failed")
        for c in counts if c.audits
    ], lambda b: -b.segments[1][0], "the most failed audits:")
    loss_bars, loss_note = _worst([
        _svg.Bar(label=c.pipeline, segments=((max(c.source_to_stage_loss_percent or 0.0, 0.0), "warn"),),
                 text=f"{_pct(c.source_to_stage_loss_percent, 2)} source→stage")
        for c in counts if c.audits
    ], lambda b: -b.segments[0][0], "the largest losses:")
    rows = [
        [escape(c.pipeline), str(c.audits), escape(_pct(c.audit_pass_rate)), str(c.source_rows if c.source_rows is not None else "–"),
         str(c.stage_rows if c.stage_rows is not None else "–"), str(c.target_rows if c.target_rows is not None else "–"),
         escape(_pct(c.source_to_stage_loss_percent, 2)), escape(_pct(c.max_source_to_stage_loss_percent, 2)),
         escape(_pct(c.stage_to_target_loss_percent, 2)), escape(_pct(c.max_stage_to_target_loss_percent, 2)),
         str(c.rejected), str(c.dropped), str(c.unplaceable), str(c.published)]
        for c in counts
    ]
    return (
        '<div class="charts"><figure>' + _svg.hbars("Audits passed and failed", audit_bars)
        + f"<figcaption>Audits passed (green) and failed (red){escape(audit_note)}</figcaption></figure><figure>"
        + _svg.hbars("Rows lost from source to stage", loss_bars,
                     scale=max([10.0] + [c.source_to_stage_loss_percent or 0.0 for c in counts]))
        + f"<figcaption>Rows lost from source to stage, over all audited windows{escape(loss_note)}</figcaption></figure></div>"
        + _table("quality", ["Pipeline", "Audits", "Pass rate", "Source rows", "Stage rows", "Target rows", "Source→stage loss",
                             "Worst window", "Stage→target loss", "Worst window", "Rejected", "Dropped",
                             "In no window", "Published"],
                 rows, empty="No audit ran in this period.")
        + "<h3>Windows reloaded for late data</h3>"
        + _table("reloads", ["Pipeline", "Window", "Reload run", "Status", "Source count before", "Source count now", "Why"],
                 [[escape(r.pipeline), escape(_window(r.window_start, r.window_end)), escape(r.run_id), _status(r.status),
                   str(r.previous_count if r.previous_count is not None else "–"),
                   str(r.source_count if r.source_count is not None else "–"), escape(r.reason or "")] for r in m.reloads],
                 empty="No window was reloaded for late data in this period.")
    )


def _cards(m: Metrics, health: list[PipelineHealth]) -> str:
    runs = sum(s.runs for s in m.success_rates)
    ended = sum(s.runs - s.running for s in m.success_rates)
    ok = sum(s.succeeded + s.skipped for s in m.success_rates)
    items = [
        ("Pipelines", str(len(health)), ""),
        ("Alerts", str(sum(1 for h in health if h.level == ALERT)), "bad" if any(h.level == ALERT for h in health) else ""),
        ("Warnings", str(sum(1 for h in health if h.level == WARNING)), "warn" if any(h.level == WARNING for h in health) else ""),
        ("Runs", str(runs), ""),
        ("Success rate", _pct(ok * 100.0 / ended if ended else None), ""),
        ("Failed runs", str(sum(s.failed for s in m.success_rates)), "bad" if any(s.failed for s in m.success_rates) else ""),
    ]
    return "".join(f'<div class="card {css}"><div class="n">{escape(v)}</div><div class="k">{escape(k)}</div></div>' for k, v, css in items)


def render(metrics: Metrics, *, title: str = "drivetrain pipeline report") -> str:
    """The whole report for ``metrics`` as one HTML document."""
    health = metrics.health()
    days = (metrics.generated_at - metrics.since).total_seconds() / 86400
    return _PAGE.substitute(
        title=escape(title),
        period=escape(f"{_when(metrics.since)} → {_when(metrics.generated_at)} ({days:g} days)"),
        sources=escape("; ".join(metrics.sources)),
        cards=_cards(metrics, health),
        fleet=_fleet(health),
        health=_health(metrics, health),
        failures=_failures(metrics),
        performance=_performance(metrics),
        quality=_quality(metrics),
        style=_STYLE,
        script=_SCRIPT,
    )


def write(metrics: Metrics, path: Any, **kwargs: Any) -> None:
    """Render ``metrics`` into the file ``path`` (UTF-8)."""
    from pathlib import Path

    Path(path).write_text(render(metrics, **kwargs), encoding="utf-8")


_PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title><style>$style</style></head>
<body>
<header><h1>$title</h1>
<p class="meta">Period: $period<br>Drive tables: $sources</p>
<nav><a href="#fleet">Fleet</a><a href="#health">Pipeline health</a><a href="#failures">Failure analysis</a>
<a href="#performance">Performance</a><a href="#quality">Data quality</a></nav></header>
<main>
<section class="cards">$cards</section>
<section id="fleet"><h2>Fleet summary</h2>$fleet</section>
<section id="health"><h2>1. Pipeline health</h2>$health</section>
<section id="failures"><h2>2. Failure analysis</h2>$failures</section>
<section id="performance"><h2>3. Performance</h2>$performance</section>
<section id="quality"><h2>4. Data quality</h2>$quality</section>
</main>
<footer>Generated by drivetrain report from the drive table. Click a column header to sort.</footer>
<script>$script</script>
</body></html>
""")

_STYLE = """
:root{--ok:#2e9d57;--bad:#d23c3c;--warn:#e0a100;--muted:#9aa3ad;--ink:#1d2733;--soft:#5b6673;--line:#e3e7ec;--bg:#f6f8fa}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header{background:#17212b;color:#fff;padding:18px 28px 10px}header h1{margin:0 0 4px;font-size:22px}
.meta{margin:0 0 10px;color:#c4ccd4;font-size:12px}nav a{color:#9fd0ff;margin-right:18px;text-decoration:none;font-weight:600}
main{padding:18px 28px}section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin-bottom:18px}
h2{margin:0 0 12px;font-size:18px}h3{font-size:15px;margin:18px 0 8px;color:var(--soft)}
.cards{display:flex;gap:12px;flex-wrap:wrap;background:none;border:none;padding:0}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:120px}
.card .n{font-size:24px;font-weight:700}.card .k{color:var(--soft);font-size:12px}
.card.bad .n{color:var(--bad)}.card.warn .n{color:var(--warn)}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef2f5;cursor:pointer;white-space:nowrap;user-select:none}th:hover{background:#e1e7ec}
td code{font-size:12px}.error{color:#8a1f1f}.empty{color:var(--soft);font-style:italic}
.light{display:inline-block;width:11px;height:11px;border-radius:50%;vertical-align:-1px}
.light.ok{background:var(--ok)}.light.warning{background:var(--warn)}.light.alert{background:var(--bad)}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;font-weight:600;background:#e8ecf0;white-space:nowrap}
.s-success,.s-completed{background:#dcf3e4;color:#1d6b3b}.s-failed{background:#fbe0e0;color:#9b1c1c}
.s-running{background:#fff1cc;color:#7a5800}.s-skipped{background:#eceff2;color:#5b6673}.bad-text{color:var(--bad);font-weight:700}
.charts{display:flex;flex-wrap:wrap;gap:18px;margin:12px 0}figure{margin:0}figcaption{color:var(--soft);font-size:12px;margin-top:4px}
svg.chart{max-width:100%;height:auto}svg .label,svg .value,svg .tick,svg .guide-label{font:12px system-ui,sans-serif;fill:var(--ink)}
svg .tick{font-size:10px;fill:var(--soft)}svg .track{fill:#f0f3f6}svg .ok{fill:var(--ok)}svg .bad{fill:var(--bad)}
svg .warn{fill:var(--warn)}svg .muted{fill:var(--muted)}svg .axis{stroke:#c9d0d7}svg .marker{stroke:var(--ink);stroke-width:2}svg .marker-off{fill:var(--ink)}
svg .guide{stroke:var(--soft);stroke-dasharray:4 3}svg .guide-label{fill:var(--soft);font-size:11px}
footer{color:var(--soft);font-size:12px;padding:0 28px 24px}
main>section:not(.cards):not(#fleet){content-visibility:auto;contain-intrinsic-size:auto 1200px}
ul.attention{margin:0;padding-left:18px}ul.index{list-style:none;margin:0;padding:0;columns:11em auto;column-gap:18px;font-size:13px}
ul.index li{break-inside:avoid}details summary{cursor:pointer;margin:8px 0;color:var(--soft);font-weight:600}#fleet a{color:#0b5cad;text-decoration:none}tr:target td{background:#fff3c4}
@media print{nav,footer{display:none}section{break-inside:avoid}}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, index) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var up = th.getAttribute('data-dir') !== 'up';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', up ? 'up' : 'down');
    function key(row) {
      var text = row.cells[index].textContent.trim();
      var num = parseFloat(text.replace(/[^0-9.\\-]/g, ''));
      return /^-?[0-9.]+/.test(text) && !isNaN(num) ? num : text.toLowerCase();
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""
