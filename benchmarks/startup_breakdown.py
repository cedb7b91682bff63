"""Where the time of ``drivetrain run`` of an empty window goes, part by part.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.startup_breakdown            # 5 runs, medians
    .venv/bin/python -m benchmarks.startup_breakdown --runs 9 --out benchmarks/results

It makes the demo pipeline (as ``benchmarks/startup.py`` does) and runs the empty hour in fresh
interpreters. Each child notes wall and CPU time at the seams of a run, by wrapping a few of
drivetrain's own functions (nothing else changes): the command's imports, loading the pipeline
(config, plugins), opening the drive table and taking the lease, each phase (with the imports it
makes first: DuckDB, pyarrow...), the drive-table writes inside them, and closing. What the
child cannot see (the interpreter's own start, and its exit) is the parent's wall time minus the
child's. A second set of runs with ``-X importtime`` gives the import time of each package (self
times summed; ``-X importtime`` adds its own overhead, so these are upper bounds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.startup import EMPTY_WINDOW, REPO, RESULTS, child_env, make_demo

#: Runs in the child: times the seams of one ``drivetrain run`` and prints them as JSON on stderr.
_CHILD = r"""
import functools, json, sys, time
marks = [("start", time.perf_counter(), time.process_time())]
spans = {}

def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))

def timed(owner, attr, label):
    inner = getattr(owner, attr)
    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            total = spans.setdefault(label, [0.0, 0.0, 0])
            total[0] += time.perf_counter() - wall
            total[1] += time.process_time() - cpu
            total[2] += 1
    setattr(owner, attr, wrapper)

import drivetrain.cli
mark("imports of the command line (click, drivetrain.cli)")
import drivetrain.pipeline as pipeline_module
mark("import drivetrain.pipeline")
load = pipeline_module.Pipeline.load.__func__

def loading(cls, *args, **kwargs):
    found = load(cls, *args, **kwargs)
    mark("load the pipeline (config, its checks)")
    runner_class = found.runner
    def runner(*a, **k):
        made = runner_class(*a, **k)
        mark("import the runner and the phases")
        execute, begin = made._execute, made._begin
        def _begin(window):
            ctx = begin(window)
            mark("open the drive table and the warehouses (imports DuckDB), take the lease, write the run's row")
            return ctx
        def _execute(phase, ctx):
            try:
                return execute(phase, ctx)
            finally:
                mark("phase " + phase.name)
        made._begin, made._execute = _begin, _execute
        store = found.drive_store()
        timed(store, "update", "of which drive-table writes")
        return made
    found.runner = runner
    return found

pipeline_module.Pipeline.load = classmethod(loading)
sys.argv = ["drivetrain", *json.loads(sys.argv[1])]
try:
    drivetrain.cli.main()
except SystemExit:
    pass
mark("close the run and the connections")
sys.stderr.write("\nBREAKDOWN " + json.dumps({"marks": marks, "spans": spans}) + "\n")
getattr(drivetrain.cli, "exit_now", lambda code: None)(0)  # as the drivetrain script ends, where it can
"""


def one_run(python: str, folder: Path, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Part -> (wall, CPU) seconds of one run in a fresh interpreter."""
    args = json.dumps(["run", str(folder), "--window-start", EMPTY_WINDOW])
    began = time.perf_counter()
    proc = subprocess.Popen([python, "-c", _CHILD, args], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    errors = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall, cpu = time.perf_counter() - began, usage.ru_utime + usage.ru_stime
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    found = [line for line in errors.splitlines() if line.startswith("BREAKDOWN ")]
    if not found:
        raise SystemExit(f"the child failed:\n{errors}")
    result = json.loads(found[-1].removeprefix("BREAKDOWN "))
    marks = result["marks"]
    first, last = marks[0], marks[-1]
    parts = {"interpreter start and exit (the whole process less what the child timed)":
             (wall - (last[1] - first[1]), cpu - (last[2] - first[2]))}
    for (_, wall0, cpu0), (name, wall1, cpu1) in zip(marks, marks[1:], strict=False):
        parts[name] = (wall1 - wall0, cpu1 - cpu0)
    for name, (span_wall, span_cpu, calls) in result["spans"].items():
        parts[f"{name} ({calls})"] = (span_wall, span_cpu)
    parts["total"] = (wall, cpu)
    return parts


def import_times(python: str, folder: Path, env: dict[str, str]) -> dict[str, float]:
    """Milliseconds of import self time by package (drivetrain by subpackage)."""
    done = subprocess.run([python, "-X", "importtime", "-m", "drivetrain", "run", str(folder), "--window-start",
                           EMPTY_WINDOW], env=env, cwd=REPO, capture_output=True, text=True, check=False)
    totals: dict[str, float] = defaultdict(float)
    for m in re.finditer(r"^import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", done.stderr, re.M):
        parts = m[2].split(".")
        key = ".".join(parts[:2]) if parts[0] == "drivetrain" and len(parts) > 1 else parts[0].lstrip("_")
        totals[key] += int(m[1]) / 1000
    return dict(totals)


def measure(runs: int, work: Path, python: str, *, quick: bool = False) -> dict[str, Any]:
    env = child_env(work / "pycache")
    env["DRIVETRAIN_CACHE_DIR"] = str(work / "cache")
    folder = work / "demo"
    make_demo(python, folder, env, quick=quick)
    one_run(python, folder, env)  # warm-up: bytecode, the validated-config marker, the plugin list
    load_before = os.getloadavg()[0]
    samples = [one_run(python, folder, env) for _ in range(runs)]
    imports = [import_times(python, folder, env) for _ in range(runs)]
    load_after = os.getloadavg()[0]
    names = list(samples[0])
    packages = sorted({p for sample in imports for p in sample}, key=lambda p: -statistics.median(s.get(p, 0) for s in imports))
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": python,
        "runs": runs,
        "load_before": load_before,
        "load_after": load_after,
        "parts": [{"part": name, "wall_ms": 1000 * statistics.median(s[name][0] for s in samples if name in s),
                   "cpu_ms": 1000 * statistics.median(s[name][1] for s in samples if name in s)} for name in names],
        "imports_ms": {p: statistics.median(s.get(p, 0) for s in imports) for p in packages[:20]},
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Where `drivetrain run` of an empty window spends its time",
        "",
        f"{result['when']}, {result['runs']} runs, medians; load average {result['load_before']:.1f} before, "
        f"{result['load_after']:.1f} after. Made by `python -m benchmarks.startup_breakdown` ({result['python']}).",
        "",
        "The demo pipeline, the hour 2025-11-17T03:00Z (no record). Parts in the order they happen; each phase "
        "includes the imports it makes first. Lines starting with \"of which\" are inside the parts above them.",
        "",
        "| part | wall ms | CPU ms |",
        "|---|---:|---:|",
    ]
    for part in result["parts"]:
        lines.append(f"| {part['part']} | {part['wall_ms']:.0f} | {part['cpu_ms']:.0f} |")
    lines += ["", "Import self time by package (`-X importtime`, upper bounds):", "", "| package | ms |", "|---|---:|"]
    lines += [f"| {name} | {ms:.0f} |" for name, ms in result["imports_ms"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs measured (medians are reported)")
    parser.add_argument("--python", default=sys.executable, help="the Python of the drivetrain installation to measure")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the report")
    parser.add_argument("--name", default="startup-breakdown", help="report name: NAME.md and NAME.json")
    parser.add_argument("--quick", action="store_true",
                        help="make the demo folder without loading its day (a smoke test; the tables start empty)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="drivetrain-breakdown-", ignore_cleanup_errors=True) as scratch:
        work = Path(scratch)
        result = measure(args.runs, work, args.python, quick=args.quick)
    return report.publish(args.out, args.name, result, markdown(result))


if __name__ == "__main__":
    sys.exit(main())
