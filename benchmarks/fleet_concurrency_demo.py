"""What one pipeline pays for its drive file: ``drivetrain demo`` end to end, and one window's run.

Usage: ``python -m benchmarks.fleet_concurrency_demo [--rounds 3] [--drivetrain LABEL=EXECUTABLE ...]``.

Runs ``drivetrain demo --dir <tmp>`` (24 hourly windows, files -> DuckDB, one deliberate failure
and its retry) with each executable given, interleaved round by round so that a busier minute
hurts them alike, and reads each demo's drive table afterwards: the median run duration of its
windows is one window's run as the drive row records it. Without ``--drivetrain`` it measures
this checkout's ``drivetrain``; give another checkout's (``main=/path/to/.venv/bin/drivetrain``)
to compare. Writes ``benchmarks/results/fleet-concurrency-demo.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from drivetrain.durations import parse_duration

REPO = Path(__file__).resolve().parent.parent


def window_runs(folder: Path) -> list[float]:
    """Run durations (seconds) of every attempt in a demo folder's drive table, wherever it lives."""
    if (folder / "drive.sqlite").exists():  # the default drive file
        with contextlib.closing(sqlite3.connect(f"file:{folder / 'drive.sqlite'}?mode=ro", uri=True)) as drive:
            rows = drive.execute("SELECT pipeline_run_duration FROM pipeline_execution_drive "
                                 "WHERE pipeline_status = 'SUCCESS'").fetchall()
        return [parse_duration(r[0]).total_seconds() for r in rows if r[0]]
    for name in ("drive.duckdb", "warehouse.duckdb"):
        path = folder / name
        if not path.exists():
            continue
        with duckdb.connect(str(path), read_only=True) as conn:
            found = conn.execute("SELECT count(*) FROM information_schema.tables "
                                 "WHERE table_name = 'pipeline_execution_drive'").fetchone()
            if found and found[0]:
                rows = conn.execute("SELECT pipeline_run_duration FROM pipeline_execution_drive "
                                    "WHERE pipeline_status = 'SUCCESS'").fetchall()
                return [parse_duration(r[0]).total_seconds() for r in rows if r[0]]
    raise RuntimeError(f"{folder}: no drive table found")


def demo_once(executable: str) -> tuple[float, float]:
    """(wall seconds of ``drivetrain demo``, median seconds of one window's run)."""
    with tempfile.TemporaryDirectory(prefix="drivetrain-demo-bench-") as root:
        folder = Path(root) / "demo"
        began = time.perf_counter()
        done = subprocess.run([executable, "demo", "--dir", str(folder)], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"{executable} demo failed: {done.stderr[-500:]}")
        return wall, statistics.median(window_runs(folder))


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_concurrency_demo")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--drivetrain", action="append", default=[], metavar="LABEL=EXECUTABLE")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    runs = dict(item.split("=", 1) for item in args.drivetrain) or {
        "this checkout": str(Path(sys.executable).with_name("drivetrain"))}
    walls: dict[str, list[float]] = {label: [] for label in runs}
    windows: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(args.rounds):
        for label, executable in runs.items():
            wall, window = demo_once(executable)
            walls[label].append(wall)
            windows[label].append(window)
    first = next(iter(runs))
    base = statistics.median(walls[first])
    lines = ["# What one pipeline pays for its drive file: the demo", "",
             f"`drivetrain demo` (24 hourly windows, files -> DuckDB), median of {args.rounds} rounds interleaved; "
             "one window's run is the median run duration its drive rows record. Produced by "
             "`python -m benchmarks.fleet_concurrency_demo`.", "",
             f"| drivetrain | demo seconds | vs {first} | one window's run (s) |", "|---|---|---|---|"]
    out: dict[str, tuple[float, float]] = {}
    for label in runs:
        wall, window = statistics.median(walls[label]), statistics.median(windows[label])
        out[label] = (wall, window)
        lines.append(f"| {label} | {wall:.1f} | {wall / base:.2f}x | {window:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet-concurrency-demo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main()
