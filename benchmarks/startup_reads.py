"""Start-up of one pipeline's read commands on a fleet's drive table (issue 20's 0.3 s for ``history``).

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.startup_reads --workspace /tmp/fleet      # 7 interleaved rounds
    .venv/bin/python -m benchmarks.startup_reads --workspace /tmp/fleet --baseline /other/.venv/bin/python
    .venv/bin/python -m benchmarks.startup_reads --smoke                       # a 5-pipeline fleet, 1 round

``--workspace`` is a fleet built by ``python -m benchmarks.fleet --workspace PATH`` (500 pipelines
sharing one ``drive.sqlite``; it is built there when missing). The commands open its drive file,
so give a copy you may write to. Each round runs, each in a fresh process as a user's shell
would: ``drivetrain history``, ``show`` (one run, ``--pipeline`` given) and ``status`` of one
pipeline, and ``Pipeline.load(...).runner().next_window()`` (what every run asks first); next to
them ``python -c pass`` and a ``python -c`` running the hand-written history query with the
standard library's ``sqlite3`` (the floor for any Python command answering it). The child
running that query also times the query alone, in-process (the fleet benchmark's "SQL" side).
Wall and CPU time are taken around each child by this parent; the report gives medians and the
ratios to the stdlib process and to the query alone. ``--baseline PYTHON`` times another
installation of drivetrain in the same rounds, on the same workspace.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.startup import REPO, RESULTS, child_env, drivetrain_command, header, timed

TARGET_SECONDS = 0.3
ONE = "fleet_0001"
HISTORY_SQL = ("SELECT * FROM pipeline_execution_drive WHERE pipeline_name = ? "
               "ORDER BY pipeline_start_timestamp DESC, pipeline_id DESC LIMIT 20")
#: The hand-written history in a stdlib-only process; prints the query's own seconds.
_STDLIB = """
import sqlite3, sys, time
began = time.perf_counter()
conn = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
rows = conn.execute({sql!r}, [sys.argv[2]]).fetchall()
conn.close()
assert len(rows) == 20, len(rows)
print(time.perf_counter() - began)
"""
_NEXT_WINDOW = """
import sys
from drivetrain import Pipeline
with Pipeline.load(sys.argv[1]) as pipeline:
    pipeline.runner().next_window()
"""


def commands(workspace: Path, python: str, run_id: str, *, references: bool) -> dict[str, list[str]]:
    cli = drivetrain_command(python)
    found = {
        "python -c pass": [python, "-c", "pass"],
        "python -c (stdlib sqlite3: the history query)": [python, "-c", _STDLIB.format(sql=HISTORY_SQL),
                                                          str(workspace / "drive.sqlite"), ONE],
    } if references else {}
    return found | {
        "drivetrain history P": [*cli, "history", ONE],
        "drivetrain show RUN --pipeline P": [*cli, "show", run_id, "--pipeline", ONE],
        "drivetrain status P": [*cli, "status", ONE],
        "python -c (Pipeline.load(P).runner().next_window())": [python, "-c", _NEXT_WINDOW, ONE],
    }


def ensure_fleet(workspace: Path, *, smoke: bool) -> dict[str, Any]:
    """The workspace's fleet (built by benchmarks.fleet when it holds none)."""
    from benchmarks import fleet

    args = fleet.parse_args(["--workspace", str(workspace), *(["--smoke"] if smoke else [])])
    marker = workspace / "fleet.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    workspace.mkdir(parents=True, exist_ok=True)
    return fleet.build(args, workspace, lambda _text: None)


def query_seconds(python: str, workspace: Path, env: dict[str, str]) -> float:
    """The hand-written query alone, in-process (its connect, execute and fetch)."""
    done = subprocess.run([python, "-c", _STDLIB.format(sql=HISTORY_SQL), str(workspace / "drive.sqlite"), ONE],
                          env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return float(done.stdout.strip())


def measure(rounds: int, workspace: Path, pythons: dict[str, str], *, smoke: bool = False) -> dict[str, Any]:
    meta = ensure_fleet(workspace, smoke=smoke)
    now = datetime.fromisoformat(meta["now"]).astimezone(UTC)
    run_id = f"{ONE}_{now - timedelta(hours=1):%Y%m%dT%H%M%S}Z_run1"
    with tempfile.TemporaryDirectory(prefix="drivetrain-startup-reads-") as scratch:
        env = child_env(Path(scratch) / "pycache")
        env["DRIVETRAIN_PIPELINES_HOME"] = str(workspace / "pipelines")
        env["DRIVETRAIN_CACHE_DIR"] = str(Path(scratch) / "cache")  # remembered configs, as on a user's machine
        todo = {(label, name): argv for n, (label, python) in enumerate(pythons.items())
                for name, argv in commands(workspace, python, run_id, references=n == 0).items()}
        for argv in todo.values():  # warm-up: bytecode, the validated-config markers, the plugin list
            timed(argv, env)
        load_before = os.getloadavg()[0]
        walls: dict[tuple[str, str], list[float]] = {key: [] for key in todo}
        cpus: dict[tuple[str, str], list[float]] = {key: [] for key in todo}
        queries: list[float] = []
        first = next(iter(pythons.values()))
        for _ in range(rounds):
            for key, argv in todo.items():
                wall, cpu = timed(argv, env)
                walls[key].append(wall)
                cpus[key].append(cpu)
            queries.append(query_seconds(first, workspace, env))
        head = header(rounds, load_before)
    return {
        **head,
        "fleet": {k: meta.get(k) for k in ("pipelines", "days", "rows", "backend")},
        "installs": dict(pythons),
        "query_seconds": statistics.median(queries),
        "commands": [{"install": label, "command": name, "wall_median": statistics.median(walls[(label, name)]),
                      "wall_min": min(walls[(label, name)]), "cpu_median": statistics.median(cpus[(label, name)])}
                     for (label, name) in todo],
    }


def markdown(result: dict[str, Any]) -> str:
    rows = result["commands"]
    stdlib = next(r for r in rows if r["command"].startswith("python -c (stdlib"))["wall_median"]
    query = result["query_seconds"]
    fleet = result["fleet"]
    lines = [
        "# Start-up of one pipeline's read commands",
        "",
        f"{result['when']}, {result['machine']}; {result['rounds']} interleaved rounds after a warm-up round, medians; "
        f"load average {result['load_before']:.1f} before, {result['load_after']:.1f} after. Made by "
        "`python -m benchmarks.startup_reads`.",
        "",
        f"A fleet of {fleet['pipelines']} pipelines, {fleet['days']} days, {fleet['rows']} drive rows in one "
        f"`drive.sqlite`; the pipeline {ONE}. Each command is a fresh process (wall and CPU of the whole process). "
        f"The hand-written history query alone (connect, execute, fetch, in-process) takes {query * 1000:.1f} ms.",
        "",
        "| install | command | wall | min | CPU | / stdlib process | / the query alone |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        wall = row["wall_median"]
        lines.append(f"| {row['install']} | `{row['command']}` | {wall:.3f} s | {row['wall_min']:.3f} s | "
                     f"{row['cpu_median']:.3f} s | {wall / stdlib:.1f} | {wall / query:.0f} |")
    for label in result["installs"]:
        history = next(r for r in rows if r["install"] == label and r["command"] == "drivetrain history P")
        met = "met" if history["wall_median"] < TARGET_SECONDS else "missed"
        lines += ["", f"{label}: `history` {history['wall_median']:.3f} s against a target of {TARGET_SECONDS} s "
                      f"({met}); CPU {history['cpu_median']:.3f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, help="a fleet workspace (built there when missing); a temporary "
                                                       "5-pipeline fleet with --smoke")
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (medians are reported)")
    parser.add_argument("--baseline", help="the Python of another drivetrain installation, measured alongside")
    parser.add_argument("--label", default="this checkout", help="name of this installation in the report")
    parser.add_argument("--baseline-label", default="baseline", help="name of the baseline in the report")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the report")
    parser.add_argument("--name", default="startup-reads", help="report name: NAME.md and NAME.json")
    parser.add_argument("--smoke", action="store_true", help="5 pipelines x 3 days, one round")
    args = parser.parse_args(argv)
    if args.workspace is None and not args.smoke:
        parser.error("--workspace is required (or --smoke)")
    pythons = {args.label: sys.executable}
    if args.baseline:
        pythons[args.baseline_label] = args.baseline
    rounds = 1 if args.smoke else args.rounds
    if args.workspace is not None:
        result = measure(rounds, args.workspace, pythons, smoke=args.smoke)
    else:
        with tempfile.TemporaryDirectory(prefix="drivetrain-fleet-", ignore_cleanup_errors=True) as scratch:
            result = measure(rounds, Path(scratch), pythons, smoke=True)
    return report.publish(args.out, args.name, result, markdown(result))


if __name__ == "__main__":
    sys.exit(main())
