"""Eight pipelines running at once: one shared drive file versus eight separate layouts.

Usage: ``python -m benchmarks.fleet_concurrency [--pipelines 8] [--hours 6] [--rows 20000]
[--layouts "shared drive" separate ...] [--drivetrain LABEL=EXECUTABLE ...]``.

Each pipeline has its own files source (``rows`` records over ``hours`` hourly windows) and its
own warehouse file, and runs its windows with ``drivetrain run FOLDER --from .. --to ..`` in a
process of its own; all start together. Layouts:

* ``shared drive``: every pipeline names one ``drive_path``, a file of the default kind
  (``drive.sqlite``: SQLite in WAL mode, writes are short transactions, no hand-over);
* ``separate``: each pipeline has the default drive file (no ``drive_path``) beside its
  warehouse file;
* ``shared duckdb``: every pipeline names one ``drive_path`` ending in ``.duckdb`` (a DuckDB
  drive file handed over between processes for each write; the default before ``drive.sqlite``);
* ``shared sqlite``: every pipeline names one ``drive_table: {"type": "sqlite", "path": ...}``
  (the same store as the default, named by a section of its own);
* ``one warehouse``: one warehouse file for all eight, and the default drive file beside it;
* ``one file (0.1)``: the drive table inside one warehouse file that all eight share, the
  layout of drivetrain 0.1, for reference (every phase takes its turn on that file).

Wall time from the first start to the last exit, median of the rounds; target: shared within
1.3x of separate. ``--drivetrain`` compares checkouts (each layout run by each executable,
interleaved); without it, this checkout's ``drivetrain``. Writes ``benchmarks/results/fleet-concurrency.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START = datetime(2025, 11, 15, tzinfo=UTC)
LAYOUTS = ("shared drive", "separate", "shared duckdb", "shared sqlite", "one warehouse", "one file (0.1)")


def folder_for(root: Path, index: int, layout: str, hours: int, rows: int) -> Path:
    name = f"conc_{index}"
    folder = root / layout.split()[0] / name
    (folder / "data").mkdir(parents=True, exist_ok=True)
    with open(folder / "data" / "records.jsonl", "w", encoding="utf-8") as fh:
        for i in range(rows):
            at = START + timedelta(seconds=(i * hours * 3600) // rows)
            fh.write(json.dumps({"id": f"{name}-{i}", "value": i, "at": at.isoformat().replace("+00:00", "Z")}) + "\n")
    shared_file = layout in ("one warehouse", "one file (0.1)")
    warehouse = str(root / layout.split()[0] / "warehouse.duckdb") if shared_file else "warehouse.duckdb"
    drive = {"shared drive": str(root / "shared" / "drive.sqlite"), "separate": None,
             "shared duckdb": str(root / "shared" / "drive.duckdb"), "shared sqlite": None,
             "one warehouse": None, "one file (0.1)": warehouse}[layout]
    system = {"type": "duckdb", "path": warehouse, **({"drive_path": drive} if drive else {})}  # None: the default
    config = {
        "pipeline_metadata": {"pipeline_name": name, "owner_name": "Bench", "owner_email": "bench@example.com"},
        "dag_schedule": {"frequency": "hourly", "timezone": "UTC", "start_date": START.date().isoformat()},
        "query_window": {"type": "hourly", "duration": "1h"},
        "source_system": {"type": "files", "path": "data/records.jsonl", "query_field": "at", "batch_size": 10_000},
        "stage_system": {**system, "table": f"stg_{name}", "columns": [
            {"name": "id", "type": "string"}, {"name": "value", "type": "integer"}, {"name": "at", "type": "timestamp"}]},
        "target_system": {**system, "table": name, "dedup_keys": ["id"]},
        "phases": {"stage_cleaning": {"archive_location": "archive", "delete_after_days": 1}},
    }
    if layout == "shared sqlite":
        config["drive_table"] = {"type": "sqlite", "path": str(root / "shared" / "drive.sqlite")}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


def run_layout(root: Path, layout: str, pipelines: int, hours: int, rows: int, executable: str | None = None) -> float:
    folders = [folder_for(root, i, layout, hours, rows) for i in range(pipelines)]
    until = (START + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
    began = time.perf_counter()
    drivetrain = executable or str(Path(sys.executable).with_name("drivetrain"))
    procs = [subprocess.Popen([drivetrain, "run", str(f), "--from",
                               START.isoformat().replace("+00:00", "Z"), "--to", until], cwd=f,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for f in folders]
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    seconds = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{layout}: {len(errors)} run(s) failed: {errors[0][-500:]}")
    return seconds


def main(argv: list[str] | None = None) -> dict[tuple[str, str], float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_concurrency")
    parser.add_argument("--pipelines", type=int, default=8)
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument("--drivetrain", action="append", default=[], metavar="LABEL=EXECUTABLE",
                        help="a checkout's drivetrain to measure (repeat to compare); default: this checkout's")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    layouts = [layout for layout in LAYOUTS if layout in args.layouts]
    if "separate" not in layouts:
        layouts.insert(1, "separate")  # the denominator
    runs: list[tuple[str, str | None]] = [tuple(d.split("=", 1)) for d in args.drivetrain] or [("", None)]  # type: ignore[misc]
    times: dict[tuple[str, str], list[float]] = {(label, layout): [] for label, _ in runs for layout in layouts}
    load = os.getloadavg()
    for _ in range(args.rounds):
        for layout in layouts:  # interleaved, so a busier minute hurts every layout alike
            for label, executable in runs:
                with tempfile.TemporaryDirectory(prefix="drivetrain-conc-") as root:
                    times[label, layout].append(run_layout(Path(root), layout, args.pipelines, args.hours, args.rows,
                                                           executable))
    medians = {key: statistics.median(t) for key, t in times.items()}
    lines = ["# Eight pipelines at once: shared drive file vs separate layouts", "",
             f"Load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores. "
             f"{args.pipelines} pipelines, each {args.rows:,} records over {args.hours} hourly windows (files source, "
             f"own warehouse file), all started together; wall time to the last exit, median of {args.rounds} rounds "
             f"(interleaved). Produced by `python -m benchmarks.fleet_concurrency`.", "",
             "| drivetrain | layout | seconds | vs separate |" if args.drivetrain else "| layout | seconds | vs separate |",
             "|---|---|---|---|" if args.drivetrain else "|---|---|---|"]
    for (label, layout), seconds in medians.items():
        first = f"| {label} " if args.drivetrain else ""
        lines.append(f"{first}| {layout} | {seconds:.1f} | {seconds / medians[label, 'separate']:.2f}x |")
    lines += ["", "Target: a shared drive table within 1.3x of separate layouts."]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet-concurrency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return medians


if __name__ == "__main__":
    main()
