"""Paired A/B runs: the same paths, one data set, two (or more) drivetrain checkouts alternating.

Usage (from the repository root; each interpreter has drivetrain installed from its own
checkout, e.g. a copy of the code a branch started from with its own ``benchmarks/.venv``)::

    benchmarks/.venv/bin/python -m benchmarks.ab --shape wide --windows 10 --rounds 5 \\
        --python before=/tmp/base/benchmarks/.venv/bin/python \\
        --python after=benchmarks/.venv/bin/python \\
        --paths limit,connectorx_duckdb_load,drivetrain_s2s_fast,drivetrain_pipeline,duckdb_delete_insert_qualify

A machine shared with other work moves from minute to minute, so a number from an hour ago
says little next to one from now: here every round runs each path once per interpreter, the
interpreters' order alternating from round to round (A B, B A, ...), and the medians are
compared. Paths that do not run drivetrain (``limit``, ``connectorx_*``, ``duckdb_*``) run once
a round, with the first interpreter. Each interpreter gets its own work folder (its own DuckDB
files); the hand-written ``duckdb_*`` paths read the first one's stage. Besides the process's
wall and CPU time, each run reports the CPU the MariaDB server spent meanwhile (from
``/proc``), and the 1-minute load average when it started.

``--hold`` builds the data set, writes the job files and waits (SIGINT or SIGTERM ends it): for
profiling one path by hand, ``python -m benchmarks.child PATH JOB_FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import dataset  # noqa: E402
from benchmarks.run import measure  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", default=[], metavar="LABEL=EXECUTABLE",
                        help="an interpreter to compare (repeat; the first also runs the paths without drivetrain)")
    parser.add_argument("--paths", default="limit,connectorx_duckdb_load,drivetrain_s2s_fast",
                        help="paths to run, comma-separated, in order")
    parser.add_argument("--windows", default="10", help="window sizes in days, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--shape", choices=sorted(dataset.SHAPES), default="wide")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="drivetrain's batch_size (default: 10,000 wide, 50,000 narrow)")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="skip the unmeasured first round")
    parser.add_argument("--duckdb-memory-limit", default="",
                        help="DuckDB memory_limit for drivetrain and the hand-written SQL (default: none set)")
    parser.add_argument("--hold", action="store_true", help="build the data set, print the job files, wait")
    parser.add_argument("--out", type=Path, default=None, help="also write every run as JSON here")
    args = parser.parse_args(argv)
    if not args.python:
        args.python = [f"this={sys.executable}"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pythons = dict(item.split("=", 1) for item in args.python)
    paths = [p for p in args.paths.split(",") if p]
    root = Path(tempfile.mkdtemp(prefix="dt-ab-"))
    server = dataset.start_server(root)
    try:
        shape = dataset.SHAPES[args.shape]
        data = dataset.build(server, args.rows, args.days, log=print, shape=shape)
        dataset.warm(data)
        batch_size = args.batch_size or (10_000 if args.shape == "wide" else 50_000)
        jobs: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
        for days in (int(d) for d in args.windows.split(",")):
            start, end = data.window(days)
            for label in pythons:
                job = {"source": data.to_json(), "start": start.isoformat(), "end": end.isoformat(),
                       "work": str(root / f"work_{label}_{days}d"), "scratch": str(root / f"scratch_{label}_{days}d"),
                       "expected_rows": data.rows_in(days), "batch_size": batch_size,
                       "duckdb": {"memory_limit": args.duckdb_memory_limit} if args.duckdb_memory_limit else {}}
                job_file = root / f"job_{label}_{days}d.json"
                job_file.write_text(json.dumps(job))
                jobs[(f"{days}d", label)] = (job_file, job)
        if args.hold:
            for (size, label), (job_file, _) in jobs.items():
                print(f"{size} {label}: {job_file}")
            print(f"server pid {server.process.pid}; SIGINT or SIGTERM (pid {os.getpid()}) ends it", flush=True)
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # the server is stopped either way
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job starts with SIGINT ignored
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        logs = root / "logs"
        logs.mkdir()
        runs: list[dict[str, Any]] = []
        labels = list(pythons)
        for rnd in range(-1 if args.warm_up else 0, args.rounds):
            order = labels if rnd % 2 == 0 else labels[::-1]
            for size in dict.fromkeys(s for s, _ in jobs):
                for name in paths:
                    mine = order if name.startswith("drivetrain") else labels[:1]
                    for label in mine:
                        job_file, job = jobs[(size, label)]
                        load = os.getloadavg()[0]
                        before = server_cpu(server.process.pid)
                        outcome = measure(name, job_file, job, pythons[label], logs)
                        outcome["server_cpu"] = server_cpu(server.process.pid) - before
                        outcome.update(round=rnd, size=size, path=name, label=label if name.startswith("drivetrain") else "-",
                                       load=load)
                        state = outcome.get("error") or (
                            f"{outcome['seconds']:.2f}s cpu {outcome.get('cpu_seconds', 0):.2f} "
                            f"server {outcome['server_cpu']:.2f} {outcome['rss_mb']:.0f}MB")
                        print(f"{'warm-up' if rnd < 0 else f'round {rnd + 1}'} {size} {name} {outcome['label']}: "
                              f"{state} (load {load:.2f})", flush=True)
                        if rnd >= 0:
                            runs.append(outcome)
        print(summary(runs))
        if args.out is not None:
            args.out.write_text(json.dumps(runs, indent=1, default=str))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def summary(runs: list[dict[str, Any]]) -> str:
    """Medians per (window, path, interpreter): wall, process CPU, server CPU, peak RSS."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        if "error" not in run:
            groups.setdefault((run["size"], run["path"], run["label"]), []).append(run)
    lines = ["| window | path | checkout | n | wall s | CPU s | server CPU s | RSS MB | load |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for (size, name, label), group in groups.items():
        def med(key: str, group: list[dict[str, Any]] = group) -> float:
            return statistics.median(r.get(key, 0.0) for r in group)
        loads = [r["load"] for r in group]
        lines.append(f"| {size} | {name} | {label} | {len(group)} | {med('seconds'):.2f} | {med('cpu_seconds'):.2f} | "
                     f"{med('server_cpu'):.2f} | {max(r['rss_mb'] for r in group):.0f} | {min(loads):.1f}-{max(loads):.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
