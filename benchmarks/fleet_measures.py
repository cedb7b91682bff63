"""What the fleet benchmark measures, and the hand-written SQL each is compared with.

Usage (by :mod:`benchmarks.fleet`, one process per measurement)::

    python -m benchmarks.fleet_measures NAME drivetrain|sql WORKSPACE

prints ``RESULT {"seconds": ..., "rss_mb": ..., "answer": ...}``. ``answer`` is a small digest of
what was found (row counts, a window), so the report shows both sides answered the same.
The commands run in-process through the CLI's click entry point with their output discarded;
the SQL runs on a connection of its own (opened inside the timed region, as the command opens
its own).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Measure = Callable[[Path, dict[str, Any]], Any]
MEASURES: dict[str, Measure] = {}
BASELINES: dict[str, Measure] = {}
SF_ENV = {"SF_FLEET_USER": "fake", "SF_FLEET_PASSWORD": "fleet-Pa55word"}
ONE = "fleet_0001"
NOTES = [
    "What the hand-written SQL answers: `status` the newest run and the open failed windows of every pipeline;",
    "`history` the newest 20 runs of one pipeline; `show` one run by id; `gaps` every hourly window since",
    "`start_date` without a SUCCESS/SKIPPED run, for every pipeline (drivetrain: the gap counts `report` shows);",
    "`gaps_one` the same for one pipeline (drivetrain: its gaps window by window, as `status PIPELINE` lists them);",
    "`metrics` and `report*` every figure of the six metrics, per-phase ones included, over the 7-day period",
    "(`benchmarks/fleet_metrics_sql.py`; the reports also read their dashboards' rows): both sides' figures are",
    "digested alike and compared round by round (\"same figures\"), and the benchmark fails when they differ.",
    "The first rounds' baseline (runs by outcome and failed windows only, no phase data) is kept beside `metrics`.",
    "`next_window` the oldest failed-or-never-completed window of one pipeline.",
    "`report_browser` is headless Chromium loading and rendering the 500-pipeline HTML report (`--dump-dom`, start-up",
    "included), next to the same browser opening an empty page; the report is written first, not timed.",
    "Configs that passed validation are remembered in the workspace's cache folder: the first round fills it.",
    "On the default layout (`sqlite`) the drive table is `drive.sqlite` and the hand-written SQL runs through the",
    "standard library's `sqlite3` over the drive table itself (SQLite's bare columns beside `MAX()` for the newest",
    "rows, a recursive CTE for the hourly grid); drivetrain reads the window summary it keeps beside it where it can.",
    "",
    "On Snowflake (fakesnow) the numbers show the queries' shape and round trips only: fakesnow is DuckDB behind",
    "an HTTP emulation of Snowflake's API, without micro-partition pruning, clustering, warehouse start-up or",
    "the result cache.",
]


def measure(name: str, *, baseline: bool = False) -> Callable[[Measure], Measure]:
    def register(fn: Measure) -> Measure:
        (BASELINES if baseline else MEASURES)[name] = fn
        return fn
    return register


def has_baseline(name: str, backend: str) -> bool:
    return name in BASELINES and backend in ("sqlite", "duckdb")


# -- backends ------------------------------------------------------------------------------

def drive_section(backend: str, workspace: Path) -> dict[str, Any]:
    """How the fleet's pipelines name their one drive table. ``sqlite``, the default layout: no
    drive setting at all, every pipeline's warehouse in ``<workspace>/warehouse.duckdb``, so
    the drive table is the ``drive.sqlite`` beside it."""
    if backend == "sqlite":
        return {"type": "sqlite", "warehouse": str(workspace / "warehouse.duckdb")}
    if backend == "duckdb":
        return {"type": "duckdb", "drive_path": str(workspace / "drive.duckdb")}
    port = json.loads((workspace / "fakesnow.json").read_text())["port"]
    return {"type": "snowflake", "account": "fakesnow", "host": "127.0.0.1", "port": port, "protocol": "http",
            "database": "FLEET", "schema": "PUBLIC", "credentials_ref": "sf_fleet", "network_timeout": 30}


def start_backend(backend: str, workspace: Path) -> Any:
    if backend != "snowflake":
        return None
    import os

    from tests.servers.fakesnow_server import FakeSnowServer

    os.environ.update(SF_ENV)
    server = FakeSnowServer().start()
    (workspace / "fakesnow.json").write_text(json.dumps({"port": server.port}))
    (workspace / "fleet.json").unlink(missing_ok=True)  # fakesnow keeps nothing between runs: build again
    return server


def stop_backend(server: Any) -> None:
    if server is not None:
        server.stop()


# -- drivetrain ----------------------------------------------------------------------------

def cli(*args: str) -> str:
    from drivetrain.cli import cli as group

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(SystemExit):
        group.main(list(args), standalone_mode=False)
    return out.getvalue()


def listed(items: Any) -> dict[str, Any]:
    """A digest of what a status answered (each pipeline with its newest run, or the pipelines
    listed), the same for drivetrain's JSON and the SQL's rows, so the report compares them."""
    import hashlib

    rows = sorted(tuple(str(v) for v in item) for item in items)
    return {"sha": hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16], "pipelines": len(rows)}


@measure("status")
def status(workspace: Path, meta: dict[str, Any]) -> Any:
    return listed((r["pipeline_name"], r["pipeline_id"]) for r in json.loads(cli("status", "--json")))


@measure("status_failed")
def status_failed(workspace: Path, meta: dict[str, Any]) -> Any:
    return listed((r["pipeline_name"],) for r in json.loads(cli("status", "--failed", "--json")))


@measure("status_table")
def status_table(workspace: Path, meta: dict[str, Any]) -> Any:
    """The terminal form: each pipeline's next window too (no SQL baseline: the SQL of the next
    windows is the islands', see drivetrain.monitoring.fleet_windows)."""
    return len(cli("status").splitlines())


@measure("status_one")
def status_one(workspace: Path, meta: dict[str, Any]) -> Any:
    """One pipeline's status: its row, its gaps and its late-data reloads."""
    return len(cli("status", ONE).splitlines())


@measure("history")
def history(workspace: Path, meta: dict[str, Any]) -> Any:
    return len(json.loads(cli("history", ONE, "--json")))


@measure("show")
def show(workspace: Path, meta: dict[str, Any]) -> Any:
    return json.loads(cli("show", _newest_id(meta), "--pipeline", ONE, "--json"))["pipeline_id"]


@measure("gaps")
def gaps(workspace: Path, meta: dict[str, Any]) -> Any:
    """Every pipeline's gap counts, as ``report`` asks them (one set of queries for the fleet)."""
    from drivetrain import Pipeline
    from drivetrain.monitoring.gaps import gap_summaries

    now = datetime.fromisoformat(meta["now"])
    pipelines = [Pipeline.load(folder) for folder in sorted((workspace / "pipelines").iterdir())]
    try:
        return sum(s.missing + s.failed for s in gap_summaries(pipelines, now=now))
    finally:
        for pipeline in pipelines:
            pipeline.close()


@measure("gaps_one")
def gaps_one(workspace: Path, meta: dict[str, Any]) -> Any:
    """One pipeline's gaps, window by window (``status PIPELINE``, ``run --from/--to``)."""
    from drivetrain import Pipeline
    from drivetrain.monitoring.gaps import find_gaps

    with Pipeline.load(ONE) as pipeline:
        return len(find_gaps(pipeline, now=datetime.fromisoformat(meta["now"])))


@measure("metrics")
def metrics(workspace: Path, meta: dict[str, Any]) -> Any:
    from benchmarks import fleet_metrics_sql
    from drivetrain import Pipeline
    from drivetrain.monitoring import metrics as m

    with Pipeline.load(ONE) as pipeline:
        computed = m.compute(pipeline.drive_store(), days=7, now=datetime.fromisoformat(meta["now"]))
    return fleet_metrics_sql.digest(fleet_metrics_sql.from_metrics(computed.to_json()))


@measure("report")
def report(workspace: Path, meta: dict[str, Any]) -> Any:
    return len(cli("report").splitlines())


@measure("report_json")
def report_json(workspace: Path, meta: dict[str, Any]) -> Any:
    from benchmarks import fleet_metrics_sql

    return fleet_metrics_sql.digest(fleet_metrics_sql.from_metrics(json.loads(cli("report", "--json"))))


@measure("report_html")
def report_html(workspace: Path, meta: dict[str, Any]) -> Any:
    target = workspace / "report.html"
    cli("report", "--html", str(target))
    return target.stat().st_size // 1024


def _chromium(page: Path) -> tuple[float, str]:
    """Seconds for headless Chromium to start, load and render ``page`` (``--dump-dom``), and the DOM."""
    import shutil
    import subprocess
    import tempfile

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    with tempfile.TemporaryDirectory() as profile:
        began = time.perf_counter()
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
                              "--dump-dom", page.as_uri()], capture_output=True, text=True, check=True, timeout=120).stdout
        return time.perf_counter() - began, dom


@measure("report_browser")
def report_browser(workspace: Path, meta: dict[str, Any]) -> Any:
    """Headless Chromium loading and rendering the fleet's HTML report (written first, not timed)."""
    page = workspace / "report-browser.html"
    cli("report", "--html", str(page))  # not timed: the measure gives the browser's seconds (see main)
    seconds, dom = _chromium(page)
    return {"seconds": seconds, "links": dom.count('href="#pipeline-'), "rows": dom.count('<tr id="pipeline-')}


@measure("report_browser", baseline=True)
def report_browser_empty(workspace: Path, meta: dict[str, Any]) -> Any:
    """The reference: the same browser opening an empty page (its own start-up)."""
    page = workspace / "empty.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>")
    seconds, _dom = _chromium(page)
    return {"seconds": seconds}


@measure("next_window")
def next_window(workspace: Path, meta: dict[str, Any]) -> Any:
    from drivetrain import Pipeline

    with Pipeline.load(ONE) as pipeline:
        window = pipeline.runner().next_window()
    return window.start.isoformat() if window else None


def _newest_id(meta: dict[str, Any]) -> str:
    now = datetime.fromisoformat(meta["now"])
    return f"{ONE}_{now - timedelta(hours=1):%Y%m%dT%H%M%S}Z_run1"


# -- hand-written SQL ------------------------------------------------------------------------

def sql(workspace: Path, text: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """``text`` on the drive file: DuckDB SQL on ``drive.duckdb`` (SQLite SQL goes to :func:`lite`)."""
    import duckdb

    with duckdb.connect(str(workspace / "drive.duckdb"), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(text, params or []).fetchall()


NEWEST_PER_WINDOW = ("SELECT pipeline_name, query_window_start_timestamp AS ws, "
                     "arg_max(pipeline_status, pipeline_start_timestamp) AS newest FROM pipeline_execution_drive "
                     "GROUP BY pipeline_name, query_window_start_timestamp")


def status_sql(workspace: Path, meta: dict[str, Any]) -> Any:
    return listed(r[:2] for r in sql(workspace, (
        "SELECT d.pipeline_name, arg_max(pipeline_id, pipeline_start_timestamp), arg_max(pipeline_status, pipeline_start_timestamp), "
        f"any_value(f.failed) FROM pipeline_execution_drive d LEFT JOIN (SELECT pipeline_name, count(*) AS failed FROM ({NEWEST_PER_WINDOW}) "
        "WHERE newest = 'FAILED' GROUP BY 1) f USING (pipeline_name) GROUP BY d.pipeline_name")))


def status_failed_sql(workspace: Path, meta: dict[str, Any]) -> Any:
    """``status --failed``: the newest run failed, or a window's newest attempt did."""
    return listed(sql(workspace, (
        "SELECT pipeline_name FROM pipeline_execution_drive GROUP BY pipeline_name "
        "HAVING arg_max(pipeline_status, pipeline_start_timestamp) = 'FAILED' "
        f"UNION SELECT pipeline_name FROM ({NEWEST_PER_WINDOW}) WHERE newest = 'FAILED'")))


def history_sql(workspace: Path, meta: dict[str, Any]) -> Any:
    return len(sql(workspace, "SELECT * FROM pipeline_execution_drive WHERE pipeline_name = ? "
                              "ORDER BY pipeline_start_timestamp DESC, pipeline_id DESC LIMIT 20", [ONE]))


def show_sql(workspace: Path, meta: dict[str, Any]) -> Any:
    return sql(workspace, "SELECT * FROM pipeline_execution_drive WHERE pipeline_id = ?", [_newest_id(meta)])[0][0]


def _gap_sql(one: bool) -> str:
    names = "(SELECT ? AS pipeline_name)" if one else "(SELECT DISTINCT pipeline_name FROM pipeline_execution_drive)"
    return (f"SELECT n.pipeline_name, w.ws FROM {names} n, range(CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), INTERVAL 1 HOUR) w(ws) "
            "WHERE NOT EXISTS (SELECT 1 FROM pipeline_execution_drive d WHERE d.pipeline_name = n.pipeline_name "
            "AND d.query_window_start_timestamp = w.ws AND d.pipeline_status IN ('SUCCESS', 'SKIPPED'))")


def _bounds(meta: dict[str, Any]) -> tuple[datetime, datetime]:
    now = datetime.fromisoformat(meta["now"]).astimezone(UTC).replace(tzinfo=None)
    first = datetime.combine((now - timedelta(days=meta["days"])).date(), datetime.min.time())
    return first, now


def gaps_sql(workspace: Path, meta: dict[str, Any]) -> Any:
    first, now = _bounds(meta)
    return len(sql(workspace, _gap_sql(False) + " AND w.ws + INTERVAL 1 HOUR <= ?", [first, now, now]))


def gaps_one_sql(workspace: Path, meta: dict[str, Any]) -> Any:
    first, now = _bounds(meta)
    return len(sql(workspace, _gap_sql(True) + " AND w.ws + INTERVAL 1 HOUR <= ?", [ONE, first, now, now]))


def _metrics_sql(workspace: Path, meta: dict[str, Any]) -> int:
    since = datetime.fromisoformat(meta["now"]).astimezone(UTC).replace(tzinfo=None) - timedelta(days=7)
    rows = sql(workspace, (
        "SELECT pipeline_name, count(*), count(*) FILTER (pipeline_status IN ('SUCCESS', 'SKIPPED')), "
        "count(*) FILTER (pipeline_status = 'FAILED'), avg(epoch(pipeline_end_timestamp) - epoch(pipeline_start_timestamp)), "
        "max(pipeline_end_timestamp) FILTER (pipeline_status = 'SUCCESS') "
        "FROM pipeline_execution_drive WHERE pipeline_start_timestamp >= ? GROUP BY pipeline_name"), [since])
    sql(workspace, (
        "SELECT pipeline_name, count(*), count(*) FILTER (ok > failed_at) FROM (SELECT pipeline_name, query_window_start_timestamp, "
        "min(pipeline_start_timestamp) FILTER (pipeline_status = 'FAILED') AS failed_at, "
        "max(pipeline_start_timestamp) FILTER (pipeline_status = 'SUCCESS') AS ok FROM pipeline_execution_drive "
        "WHERE pipeline_start_timestamp >= ? GROUP BY ALL) WHERE failed_at IS NOT NULL GROUP BY ALL"), [since])
    return len(rows)


def next_window_sql(workspace: Path, meta: dict[str, Any]) -> Any:
    first, now = _bounds(meta)
    rows = sql(workspace, f"SELECT min(ws) FROM ({_gap_sql(True)} AND w.ws + INTERVAL 1 HOUR <= ?)", [ONE, first, now, now])
    return rows[0][0].replace(tzinfo=UTC).isoformat() if rows[0][0] else None


# -- hand-written SQL on SQLite (the default drive file), stdlib sqlite3 ----------------------

def lite(workspace: Path, text: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """``text`` on ``drive.sqlite``, read-only. Instants are stored as fixed-width ISO text in UTC."""
    import sqlite3

    conn = sqlite3.connect(f"file:{workspace / 'drive.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute(text, params or []).fetchall()
    finally:
        conn.close()


def _text(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


LITE_NEWEST_PER_WINDOW = (  # SQLite's bare columns: the row holding each group's MAX
    "SELECT pipeline_name, pipeline_status, MAX(pipeline_start_timestamp) FROM pipeline_execution_drive "
    "GROUP BY pipeline_name, query_window_start_timestamp")


def _lite_status(workspace: Path) -> Any:
    newest = lite(workspace, "SELECT pipeline_name, pipeline_id, pipeline_status, MAX(pipeline_start_timestamp) "
                             "FROM pipeline_execution_drive GROUP BY pipeline_name")
    lite(workspace, f"SELECT pipeline_name, count(*) FROM ({LITE_NEWEST_PER_WINDOW}) WHERE pipeline_status = 'FAILED' GROUP BY 1")
    return listed(r[:2] for r in newest)


def _lite_status_failed(workspace: Path) -> Any:
    """``status --failed``: the newest run failed, or a window's newest attempt did."""
    newest = lite(workspace, "SELECT pipeline_name, pipeline_status, MAX(pipeline_start_timestamp) "
                             "FROM pipeline_execution_drive GROUP BY pipeline_name")
    windows = lite(workspace, f"SELECT DISTINCT pipeline_name FROM ({LITE_NEWEST_PER_WINDOW}) WHERE pipeline_status = 'FAILED'")
    return listed({(r[0],) for r in newest if r[1] == "FAILED"} | {(r[0],) for r in windows})


def _lite_gap_sql(one: bool) -> str:
    names = "(SELECT ? AS pipeline_name)" if one else "(SELECT DISTINCT pipeline_name FROM pipeline_execution_drive)"
    return ("WITH RECURSIVE h(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM h WHERE i + 1 < ?), "
            "w(ws) AS (SELECT strftime('%Y-%m-%d %H:%M:%S', ?, '+' || i || ' hours') || '.000000+00:00' FROM h) "
            f"SELECT n.pipeline_name, w.ws FROM {names} n, w WHERE NOT EXISTS (SELECT 1 FROM pipeline_execution_drive d "
            "WHERE d.pipeline_name = n.pipeline_name AND d.query_window_start_timestamp = w.ws "
            "AND d.pipeline_status IN ('SUCCESS', 'SKIPPED'))")


def _lite_gaps(workspace: Path, meta: dict[str, Any], one: bool) -> list[tuple[Any, ...]]:
    first, now = _bounds(meta)
    hours = int((now - first).total_seconds() // 3600)
    start = first.strftime("%Y-%m-%d %H:%M:%S")
    return lite(workspace, _lite_gap_sql(one), [hours, start, ONE] if one else [hours, start])


def _lite_metrics_all(workspace: Path, now: datetime, *, dashboards: bool) -> dict[str, Any]:
    """Every figure of the six metrics (and the report's dashboards), by hand: see benchmarks.fleet_metrics_sql."""
    import sqlite3

    from benchmarks import fleet_metrics_sql

    conn = sqlite3.connect(f"file:{workspace / 'drive.sqlite'}?mode=ro", uri=True)
    try:
        since = _text(now.astimezone(UTC) - timedelta(days=7))
        return fleet_metrics_sql.digest(fleet_metrics_sql.answer(conn, since, dashboards=dashboards))
    finally:
        conn.close()


def _lite_metrics(workspace: Path, meta: dict[str, Any]) -> int:
    """The first baseline (kept for the record): runs by outcome and failed windows, no phase figures."""
    since = _text(datetime.fromisoformat(meta["now"]).astimezone(UTC) - timedelta(days=7))
    rows = lite(workspace, (
        "SELECT pipeline_name, count(*), count(*) FILTER (WHERE pipeline_status IN ('SUCCESS', 'SKIPPED')), "
        "count(*) FILTER (WHERE pipeline_status = 'FAILED'), "
        "avg((julianday(substr(pipeline_end_timestamp, 1, 26)) - julianday(substr(pipeline_start_timestamp, 1, 26))) * 86400), "
        "max(pipeline_end_timestamp) FILTER (WHERE pipeline_status = 'SUCCESS') "
        "FROM pipeline_execution_drive WHERE pipeline_start_timestamp >= ? GROUP BY pipeline_name"), [since])
    lite(workspace, (
        "SELECT pipeline_name, count(*), count(*) FILTER (WHERE ok > failed_at) FROM (SELECT pipeline_name, "
        "query_window_start_timestamp, min(pipeline_start_timestamp) FILTER (WHERE pipeline_status = 'FAILED') AS failed_at, "
        "max(pipeline_start_timestamp) FILTER (WHERE pipeline_status = 'SUCCESS') AS ok FROM pipeline_execution_drive "
        "WHERE pipeline_start_timestamp >= ? GROUP BY 1, 2) WHERE failed_at IS NOT NULL GROUP BY 1"), [since])
    return len(rows)


# -- the baselines, by backend -----------------------------------------------------------------

def _on(meta: dict[str, Any]) -> bool:
    """Whether the drive table is the SQLite file (the default layout)."""
    return meta.get("backend", "duckdb") == "sqlite"


@measure("status", baseline=True)
def status_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    return _lite_status(workspace) if _on(meta) else status_sql(workspace, meta)


@measure("status_failed", baseline=True)
def status_failed_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    return _lite_status_failed(workspace) if _on(meta) else status_failed_sql(workspace, meta)


@measure("history", baseline=True)
def history_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    if not _on(meta):
        return history_sql(workspace, meta)
    return len(lite(workspace, "SELECT * FROM pipeline_execution_drive WHERE pipeline_name = ? "
                               "ORDER BY pipeline_start_timestamp DESC, pipeline_id DESC LIMIT 20", [ONE]))


@measure("show", baseline=True)
def show_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    if not _on(meta):
        return show_sql(workspace, meta)
    return lite(workspace, "SELECT * FROM pipeline_execution_drive WHERE pipeline_id = ?", [_newest_id(meta)])[0][0]


@measure("gaps", baseline=True)
def gaps_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    return len(_lite_gaps(workspace, meta, False)) if _on(meta) else gaps_sql(workspace, meta)


@measure("gaps_one", baseline=True)
def gaps_one_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    return len(_lite_gaps(workspace, meta, True)) if _on(meta) else gaps_one_sql(workspace, meta)


@measure("metrics", baseline=True)
def metrics_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    if not _on(meta):
        return _metrics_sql(workspace, meta)
    return _lite_metrics_all(workspace, datetime.fromisoformat(meta["now"]), dashboards=False)


def _report_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    """The report's period ends now (the command takes no other end), as it does for drivetrain."""
    if not _on(meta):
        return _metrics_sql(workspace, meta)
    return _lite_metrics_all(workspace, datetime.now(UTC), dashboards=True)


for _name in ("report", "report_json", "report_html"):
    measure(_name, baseline=True)(_report_baseline)


@measure("metrics_first_baseline", baseline=True)
def first_metrics_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    """The baseline of the first fleet rounds: no phase figures (kept to compare with)."""
    return _lite_metrics(workspace, meta) if _on(meta) else _metrics_sql(workspace, meta)


@measure("next_window", baseline=True)
def next_window_baseline(workspace: Path, meta: dict[str, Any]) -> Any:
    if not _on(meta):
        return next_window_sql(workspace, meta)
    found = sorted(ws for _, ws in _lite_gaps(workspace, meta, True))
    return datetime.fromisoformat(found[0]).isoformat() if found else None

def peak_rss_mb() -> float | None:
    """This process's peak RSS (VmHWM, which, unlike ru_maxrss, does not carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main(argv: list[str]) -> int:
    import resource

    name, side, workspace = argv[0], argv[1], Path(argv[2])
    meta = json.loads((workspace / "fleet.json").read_text())
    import os

    os.environ.update(SF_ENV)
    import duckdb  # noqa: F401

    import drivetrain.cli  # noqa: F401 - imports outside the timed region
    import drivetrain.monitoring.metrics  # noqa: F401

    fn = (BASELINES if side == "sql" else MEASURES)[name]
    began, cpu = time.perf_counter(), time.process_time()
    answer = fn(workspace, meta)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    if isinstance(answer, dict) and "seconds" in answer:  # the measure timed its own part
        seconds = answer.pop("seconds")
    if isinstance(answer, dict) and "canonical" in answer:  # the figures themselves: to a file, for a diff
        folder = workspace / "answers"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}-{side}.json").write_text(json.dumps(answer.pop("canonical"), indent=0))
    rss = peak_rss_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rss_mb": rss, "answer": answer}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
