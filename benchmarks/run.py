"""The benchmark command: build the data set, run every path interleaved, write the report.

Usage (from the repository root, with the benchmark's own virtualenv; see README.md)::

    benchmarks/.venv/bin/python -m benchmarks.run                 # the full benchmark
    benchmarks/.venv/bin/python -m benchmarks.run --smoke         # seconds: checks it all runs

Each measured path runs in a child process of its own (:mod:`benchmarks.child`); the parent
reads the child's peak RSS with ``wait4``. One repetition runs every path on every window
size, and repetitions follow each other, so a slow minute of the machine touches all paths
alike. A first, unmeasured round warms the server's buffer pool and creates the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import dataset, report  # noqa: E402
from benchmarks.paths import limit_command  # noqa: E402

#: Every path, in the order one repetition runs them (the stage must be loaded before the
#: push-down, the counts and the hand-written SQL read it).
ALL_PATHS = (
    "limit",
    "connectorx_fetch",
    "connectorx_duckdb_load",
    "pymysql_fetch",
    "drivetrain_s2s_fast",
    "drivetrain_s2s_pymysql",
    "dlt_connectorx",
    "dlt_pyarrow",
    "dlt_connectorx_merge",
    "dlt_pyarrow_merge",
    "drivetrain_push_down",
    "duckdb_delete_insert_qualify",
    "duckdb_delete_insert_qualify_bounded",
    "duckdb_keys_first_bounded",
    "duckdb_merge_named",
    "drivetrain_counts",
    "drivetrain_pipeline",
    "drivetrain_pipeline_direct",
    "drivetrain_pipeline_rows_pending",
    "drivetrain_pipeline_pymysql",
    "drivetrain_pipeline_1gb",
)
#: Paths that take minutes on the full data set: only with --slow, on the smallest window.
SLOW_PATHS = ("dlt_default", "duckdb_merge_star")
#: Python modules a path needs; a path whose module is missing is reported as not run.
NEEDS = {"dlt_": "dlt", "connectorx_": "connectorx", "drivetrain_s2s_fast": "connectorx",
         "drivetrain_pipeline": "connectorx", "drivetrain_counts": "connectorx",
         "drivetrain_push_down": "connectorx"}  # drivetrain_pipeline* by its prefix


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the data set")
    parser.add_argument("--days", type=int, default=10, help="days the rows are spread over")
    parser.add_argument("--windows", default="1,10", help="window sizes in days, comma-separated")
    parser.add_argument("--repetitions", type=int, default=3, help="measured runs of each path")
    parser.add_argument("--paths", default=",".join(ALL_PATHS), help="paths to run, comma-separated")
    parser.add_argument("--slow", action="store_true",
                        help=f"also run {', '.join(SLOW_PATHS)} (on the smallest window only)")
    parser.add_argument("--shape", choices=sorted(dataset.SHAPES), default="narrow",
                        help="the data set: narrow (7 columns) or wide (10 columns, issue 22)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="drivetrain's batch_size (default: 50,000 narrow, 10,000 wide, as scaffolded)")
    parser.add_argument("--duckdb-memory-limit", default="",
                        help="DuckDB memory_limit for drivetrain and the hand-written SQL (default: none set, "
                        "so drivetrain's own default applies)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="report folder")
    parser.add_argument("--name", default="latest", help="report file name, without extension")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the child processes")
    parser.add_argument("--quiet-load", type=float, default=1.5,
                        help="wait until the 1-minute load average is below this before measuring")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for a quiet machine")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="skip the unmeasured first round (the first measured round then creates the tables)")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report's notes (what changed, the machine's state...); repeatable")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny data set, one repetition, no waiting: checks that everything runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.days, args.windows, args.repetitions, args.max_wait = 20_000, 2, "1,2", 1, 0
    return args


def available(name: str, python: str) -> str | None:
    """None when the path can run with ``python``, else why not."""
    if name == "limit":
        return None if shutil.which("mariadb") else "the mariadb client is not installed"
    module = next((m for prefix, m in NEEDS.items() if name.startswith(prefix)), None)
    if module is None:
        return None
    done = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    return None if done.returncode == 0 else f"{module} is not installed for {python}"


def measure(name: str, job_file: Path, job: dict[str, Any], python: str, logs: Path) -> dict[str, Any]:
    """Run one path in a child process; returns seconds, rows, rss_mb (or error)."""
    log = logs / f"{name}.log"
    with log.open("ab") as err:
        if name == "limit":
            args, env = limit_command(job)
            began = time.perf_counter()
            limit = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(limit.pid, 0)
            seconds = time.perf_counter() - began
            limit.returncode = code = os.waitstatus_to_exitcode(status)
            outcome: dict[str, Any] = {"seconds": seconds, "rows": job["expected_rows"],
                                       "cpu_seconds": usage.ru_utime + usage.ru_stime}
            output = ""
        else:
            child = subprocess.Popen([python, "-m", "benchmarks.child", name, str(job_file)], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=err, text=True)
            assert child.stdout is not None
            output = child.stdout.read()
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = code = os.waitstatus_to_exitcode(status)
            lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
            outcome = json.loads(lines[-1][len("RESULT "):]) if lines else {}
    shutil.rmtree(job["scratch"], ignore_errors=True)  # every run starts from nothing there
    outcome["rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    if code != 0 or "seconds" not in outcome:
        lines = log.read_text(errors="replace").strip().splitlines()
        tail = [line for line in lines if "Error" in line or "error" in line][-2:] + lines[-2:]
        outcome["error"] = f"exit {code}: {' | '.join(tail) or output[-300:]}"
    elif name != "drivetrain_counts" and outcome.get("rows") != job["expected_rows"]:
        outcome["error"] = f"moved {outcome.get('rows')} rows, expected {job['expected_rows']}"
    return outcome


def wait_for_quiet(threshold: float, max_wait: float, say: Any) -> tuple[float, bool]:
    """Wait (up to ``max_wait`` s) for the 1-minute load average to drop below ``threshold``."""
    deadline = time.monotonic() + max_wait
    while True:
        load = os.getloadavg()[0]
        if load < threshold:
            return load, True
        if time.monotonic() >= deadline:
            say(f"load average still {load:.2f} after {max_wait:.0f}s: measuring anyway")
            return load, False
        say(f"load average {load:.2f} >= {threshold}: waiting")
        time.sleep(min(30.0, max(1.0, deadline - time.monotonic())))


def versions(python: str) -> dict[str, str]:
    """Versions of the moving parts, as the children see them."""
    script = (
        "import json\nfrom importlib import metadata\nout = {}\n"
        "for n in ('duckdb', 'pyarrow', 'connectorx', 'pymysql', 'dlt'):\n"
        "    try:\n        out[n] = metadata.version(n)\n    except metadata.PackageNotFoundError:\n"
        "        pass\nprint(json.dumps(out))"
    )
    done = subprocess.run([python, "-c", script], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def run(args: argparse.Namespace, say: Any = print) -> dict[str, Any]:
    """The whole benchmark; returns the report document (also written to ``args.out``)."""
    sizes = [int(d) for d in args.windows.split(",")]
    wanted = [p for p in args.paths.split(",") if p]
    if args.slow:
        wanted += [p for p in SLOW_PATHS if p not in wanted]
    skipped = {name: why for name in wanted if (why := available(name, args.python))}
    paths = [p for p in wanted if p not in skipped]
    notes = [*args.note, *(f"{name} not run: {why}" for name, why in skipped.items())]
    root = Path(tempfile.mkdtemp(prefix="dt-bench-"))
    load_before = os.getloadavg()[0]
    try:
        server = dataset.start_server(root, buffer_pool_mb=64 if args.smoke else 1024)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        data = dataset.build(server, args.rows, args.days, log=say, shape=dataset.SHAPES[args.shape])
        batch_size = args.batch_size or (10_000 if args.shape == "wide" else 50_000)
        dataset.warm(data)
        jobs: dict[str, tuple[Path, dict[str, Any]]] = {}
        for days in sizes:
            start, end = data.window(days)
            job = {"source": data.to_json(), "start": start.isoformat(), "end": end.isoformat(),
                   "work": str(root / f"work_{days}d"), "scratch": str(root / f"scratch_{days}d"),
                   "expected_rows": data.rows_in(days), "batch_size": batch_size,
                   "duckdb": {"memory_limit": args.duckdb_memory_limit} if args.duckdb_memory_limit else {}}
            job_file = root / f"job_{days}d.json"
            job_file.write_text(json.dumps(job))
            jobs[f"{days}d"] = (job_file, job)
        smallest = next(iter(jobs))
        measurements: dict[str, dict[str, list[dict[str, Any]]]] = {
            s: {p: [] for p in paths if p not in SLOW_PATHS or s == smallest} for s in jobs
        }
        logs = root / "logs"
        logs.mkdir()
        if args.warm_up and not args.smoke:  # the smoke run's one round creates the tables in order anyway
            say(f"warm-up round: {len(paths)} paths x {len(jobs)} windows")
            _round(paths, jobs, args.python, logs, None)
            load_quiet, was_quiet = wait_for_quiet(args.quiet_load, args.max_wait, say)
            if not was_quiet:
                notes.append(f"the machine never got quiet (load average {load_quiet:.2f}); measured anyway")
        load_start = os.getloadavg()[0]
        for rep in range(args.repetitions):
            say(f"repetition {rep + 1} of {args.repetitions} (load average {os.getloadavg()[0]:.2f})")
            _round(paths, jobs, args.python, logs, measurements, say)
        version_row = server.admin()
        try:
            with version_row.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                (server_version,) = cursor.fetchone()
        finally:
            version_row.close()
    finally:
        server.stop()
    summary = report.summarize(measurements)
    checks = report.targets(summary)
    meta = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "rows": args.rows, "days": args.days, "repetitions": args.repetitions,
        "shape": args.shape, "batch_size": batch_size,
        "server_version": server_version,
        "load_before": round(load_before, 2), "load_start": round(load_start, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "versions": {"drivetrain": _own_version(), **versions(args.python)},
        "duckdb": {"memory_limit": args.duckdb_memory_limit} if args.duckdb_memory_limit else None,
        "notes": notes, "smoke": args.smoke,
    }
    document = {"meta": meta, "summary": summary, "targets": checks, "runs": measurements}
    json_file, md_file = report.write(args.out, args.name, document, report.markdown(summary, checks, meta))
    shutil.rmtree(root, ignore_errors=True)
    say(f"wrote {json_file} and {md_file}")
    return document


def _round(paths: list[str], jobs: dict[str, tuple[Path, dict[str, Any]]], python: str, logs: Path,
           into: dict[str, dict[str, list[dict[str, Any]]]] | None, say: Any = None) -> None:
    smallest = next(iter(jobs))
    for size, (job_file, job) in jobs.items():
        for name in paths:
            if name in SLOW_PATHS and size != smallest:
                continue
            outcome = measure(name, job_file, job, python, logs)
            if into is not None:
                into[size][name].append(outcome)
                if say is not None:
                    state = outcome.get("error") or f"{outcome['seconds']:.2f}s {outcome['rss_mb']:.0f}MB"
                    say(f"  {size} {name}: {state}")


def _own_version() -> str:
    try:
        return metadata.version("drivetrain")
    except metadata.PackageNotFoundError:
        return "source"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--postgres" in argv:  # PostgreSQL -> DuckDB against psql's \copy: its own module
        from benchmarks import postgres

        return postgres.main([a for a in argv if a != "--postgres"])
    args = parse_args(argv)
    document = run(args, say=lambda text: print(text, flush=True))
    failed = [f"{s} {n}" for s, paths in document["summary"].items() for n, v in paths.items() if v["errors"]]
    if failed:
        print(f"failed runs: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
