"""Catch-up throughput on a real Airflow 3 scheduler (LocalExecutor) against the CLI.

The same backlog of hourly demo windows (the demo's synthetic genetic-test results, one day
of source file per day of windows) is loaded four ways, each into a fresh pipeline folder
(files -> DuckDB):

- ``cli``: ``drivetrain run FOLDER --from START --to END``, one process;
- ``catchup``: ``build_dag(..., shape="catchup")``: one DAG run, one task walks the windows;
- ``window``: ``build_dag(..., shape="window")``: Airflow's catchup makes a DAG run per window,
  one task each;
- ``phases``: the default shape, a task per phase (13 task processes per window); slow, so it
  runs on ``--phases-windows`` windows and its per-window time is scaled to the backlog.

An Airflow shape's time runs from ``airflow dags unpause`` until every DAG run has finished
(start-up, ``db migrate`` and ``dags reserialize`` are outside it, and reported apart). Every
drive-table row must be SUCCESS and every window must be there once, or the run is reported as
failed. Run it from the repository root::

    .venv/bin/python -m benchmarks.airflow_catchup                 # 200 windows, about an hour
    .venv/bin/python -m benchmarks.airflow_catchup --window-windows 40 --phases-windows 5
    .venv/bin/python -m benchmarks.airflow_catchup --windows 24 --shapes cli,catchup,window

The report goes to ``benchmarks/results/airflow-catchup.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

from drivetrain import Pipeline, RunStatus
from drivetrain.demo import DEMO_DAY, generate_source
from tests.airflow.deployment import airflow_env, deployed, finished

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "contrib_pipelines" / "demo" / "config.json"
START = datetime(DEMO_DAY.year, DEMO_DAY.month, DEMO_DAY.day, tzinfo=UTC)
HOUR = timedelta(hours=1)
SHAPES = ("cli", "catchup", "window", "phases")


@attrs.frozen
class Result:
    shape: str
    windows: int
    seconds: float
    ok: bool
    note: str = ""

    @property
    def per_window(self) -> float:
        return self.seconds / self.windows if self.windows else float("nan")


def pipeline_folder(root: Path, name: str, source: Path) -> Path:
    """The demo config under another name, reading ``source`` and writing into the folder."""
    config = json.loads(DEMO_CONFIG.read_text())
    config["pipeline_metadata"]["pipeline_name"] = name
    config["source_system"]["path"] = str(source / "*.jsonl")
    for section in ("stage_system", "target_system"):
        config[section]["path"] = "warehouse.duckdb"
    config["phases"]["stage_cleaning"]["archive_location"] = "archive"
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def source_files(root: Path, windows: int) -> Path:
    source = root / "source"
    for day in range((windows + 23) // 24):
        generate_source(source / f"day{day:02d}.jsonl", day=DEMO_DAY + timedelta(days=day), seed=20251115 + day)
    return source


def check(folder: Path, windows: int) -> tuple[bool, str]:
    """Every window of the backlog loaded once, every row SUCCESS."""
    with Pipeline.load(folder) as pipeline:
        rows = pipeline.drive_store().history(pipeline.name)
    starts = sorted(r.query_window_start_timestamp for r in rows)
    failed = [r.pipeline_id for r in rows if r.pipeline_status is not RunStatus.SUCCESS]
    expected = [START + i * HOUR for i in range(windows)]
    if starts != expected or failed:
        return False, f"{len(rows)} rows for {windows} windows; not SUCCESS: {failed[:5]}"
    return True, ""


def run_cli(root: Path, source: Path, windows: int) -> Result:
    folder = pipeline_folder(root, "bench_cli", source)
    end = START + windows * HOUR
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("drivetrain")), "run", str(folder), "--from",
                           START.isoformat(), "--to", end.isoformat()], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    ok, note = check(folder, windows)
    if done.returncode != 0:
        ok, note = False, f"exit {done.returncode}: {done.stderr[-500:]}"
    return Result("cli", windows, seconds, ok, note)


def dag_file(folder: Path, shape: str, windows: int) -> str:
    last = START + (windows - 1) * HOUR
    # The catch-up DAG gets no schedule here: one manual run (logical date: the last window) walks
    # the backlog, and no scheduled run of today's window adds windows beyond it.
    extra = {"catchup": f', shape="catchup", max_windows={windows}, schedule=None', "window": ', shape="window"',
             "phases": ""}[shape]
    return textwrap.dedent(f"""
        from datetime import datetime

        from drivetrain.airflow import build_dag

        dag = build_dag({str(folder)!r}{extra}, end_date=datetime.fromisoformat({last.isoformat()!r}))
    """)


def run_airflow(root: Path, source: Path, shape: str, windows: int, parallelism: int) -> Result:
    home = root / f"airflow-{shape}"
    (home / "dags").mkdir(parents=True)
    name = f"bench_{shape}"
    folder = pipeline_folder(root, name, source)
    (home / "dags" / f"{name}_dag.py").write_text(dag_file(folder, shape, windows))
    env = airflow_env(home, parallelism=parallelism,
                      AIRFLOW__SCHEDULER__MAX_DAGRUNS_TO_CREATE_PER_LOOP="50",
                      AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE="50")
    setup = time.perf_counter()
    with deployed(home, env) as deployment:
        setup = time.perf_counter() - setup
        expected_runs = 1 if shape == "catchup" else windows
        if shape == "catchup":
            last = START + (windows - 1) * HOUR
            deployment.airflow("dags", "trigger", f"pipeline_{name}", "--logical-date", last.isoformat())
        started = time.perf_counter()
        deployment.airflow("dags", "unpause", f"pipeline_{name}")
        deployment.wait_for(f"{shape}: {expected_runs} DAG runs", lambda runs: finished(runs, expected_runs),
                            dag_id=f"pipeline_{name}", timeout=6 * 3600)
        seconds = time.perf_counter() - started
        runs = deployment.dag_runs(f"pipeline_{name}")
    ok, note = check(folder, windows)
    if any(r["state"] != "success" for r in runs):
        ok, note = False, f"DAG runs not successful: {[r for r in runs if r['state'] != 'success'][:3]}"
    return Result(shape, windows, seconds, ok, note or f"set-up (db migrate, reserialize, start) {setup:.0f} s")


def report(results: list[Result], windows: int, parallelism: int) -> str:
    cli = next((r for r in results if r.shape == "cli"), None)
    lines = [
        "# Airflow catch-up throughput",
        "",
        f"{windows} hourly demo windows (files -> DuckDB), real Airflow 3 scheduler, LocalExecutor, "
        f"parallelism {parallelism}, `max_active_runs` 1 (DuckDB takes one writing process per file), "
        f"scheduler heartbeat 1 s. Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        "(2 cores shared with other work, so treat the numbers as rough).",
        "",
        "| shape | windows run | seconds | per window | vs CLI (per window) | ok | note |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        ratio = f"{r.per_window / cli.per_window:.1f}x" if cli and cli.per_window else "-"
        lines.append(f"| {r.shape} | {r.windows} | {r.seconds:.1f} | {r.per_window:.2f} s | {ratio} | "
                     f"{'yes' if r.ok else 'NO'} | {r.note} |")
    lines += [
        "",
        "Time for an Airflow shape runs from `airflow dags unpause` to the last DAG run finished. The "
        "`window` and `phases` shapes may run fewer windows (a DAG run each; 13 task processes each for "
        "`phases`), so compare the per-window times.",
        "",
        "Reproduce: `.venv/bin/python -m benchmarks.airflow_catchup` (see the module docstring).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--phases-windows", type=int, default=10,
                        help="windows for the default shape (13 task processes each)")
    parser.add_argument("--window-windows", type=int, default=None,
                        help="windows for the window shape (default: --windows)")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "airflow-catchup.md")
    args = parser.parse_args(argv)
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shapes {sorted(unknown)}; choose from {', '.join(SHAPES)}")
    root = Path(tempfile.mkdtemp(prefix="drivetrain-airflow-bench-"))
    source = source_files(root, args.windows)
    results = []
    for shape in shapes:
        if shape == "cli":
            result = run_cli(root, source, args.windows)
        else:
            count = {"phases": args.phases_windows, "window": args.window_windows or args.windows}.get(shape, args.windows)
            count = min(count, args.windows)
            result = run_airflow(root, source, shape, count, args.parallelism)
        print(f"{result.shape}: {result.windows} windows in {result.seconds:.1f} s "
              f"({result.per_window:.2f} s each) ok={result.ok} {result.note}", flush=True)
        results.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results, args.windows, args.parallelism))
    print(f"report: {args.out}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
