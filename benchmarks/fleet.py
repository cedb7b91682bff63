"""Fleet benchmark: the drive-table reads of 500 pipelines with a year of hourly history each.

Usage, from the repository root::

    python -m benchmarks.fleet                          # 500 pipelines x 365 days (4.4M drive rows)
    python -m benchmarks.fleet --pipelines 50 --days 30 # smaller
    python -m benchmarks.fleet --smoke                  # seconds: checks that everything runs
    python -m benchmarks.fleet --backend duckdb         # a pinned drive.duckdb instead of the default drive.sqlite
    python -m benchmarks.fleet --backend snowflake      # the drive table on fakesnow (see below)

It builds a workspace (:mod:`benchmarks.fleet_history`), then measures each command, each in a
child process of its own (time around the work, imports excluded; peak RSS of the child), next
to a hand-written SQL query returning the same answer from the same table. Targets: each command
within 2x its query; the whole fleet's ``status`` under 2 s; one pipeline's ``history`` under
0.3 s. The report goes to ``benchmarks/results/<name>.md`` and ``.json``.

On Snowflake the table lives in fakesnow (DuckDB behind Snowflake's HTTP API): it shows the
queries run there and how many round trips a command makes, not Snowflake's speed (no
micro-partitions, no warehouse start-up, no result cache, JSON result transfer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import fleet_history, fleet_measures  # noqa: E402

TARGET_RATIO = 2.0
LIMITS = {"status": 2.0, "history": 0.3, "report_browser": 3.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--backend", choices=["sqlite", "duckdb", "snowflake"], default="sqlite",
                        help="sqlite: the default layout (drive.sqlite beside the warehouse); duckdb: a pinned drive.duckdb")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--workspace", type=Path, help="Keep the workspace here (reused when it holds a fleet of the same size).")
    parser.add_argument("--measures", help="Comma-separated measures (default: all): " + ", ".join(fleet_measures.MEASURES))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="fleet")
    parser.add_argument("--smoke", action="store_true", help="5 pipelines x 3 days, one round.")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    if args.smoke:
        args.pipelines, args.days, args.repetitions = 5, 3, 1
    return args


def build(args: argparse.Namespace, workspace: Path, say: Any) -> dict[str, Any]:
    """The fleet's folders and its history, unless ``workspace`` holds this very fleet already."""
    marker = workspace / "fleet.json"
    wanted = {"pipelines": args.pipelines, "days": args.days, "backend": args.backend}
    if marker.exists():
        meta = json.loads(marker.read_text())
        if {k: meta.get(k) for k in wanted} == wanted:
            return upgrade(workspace, meta, say)
    now = fleet_history.fleet_now()
    drive = fleet_measures.drive_section(args.backend, workspace)
    folders = fleet_history.write_fleet(workspace, args.pipelines, args.days, now, drive)
    from drivetrain import Pipeline

    began = time.perf_counter()
    with Pipeline.load(folders[0]) as pipeline:
        rows = pipeline.drive_store().insert_many(  # type: ignore[attr-defined]
            fleet_history.fleet_history(args.pipelines, args.days, now), chunk=20_000)
    from drivetrain.drive import SCHEMA_VERSION

    meta = {**wanted, "now": now.isoformat(), "rows": rows, "build_seconds": round(time.perf_counter() - began, 1),
            "layout": SCHEMA_VERSION}
    marker.write_text(json.dumps(meta))
    say(f"built {rows:,} drive rows for {args.pipelines} pipelines in {meta['build_seconds']}s")
    return meta


def upgrade(workspace: Path, meta: dict[str, Any], say: Any) -> dict[str, Any]:
    """A kept fleet written by an older drivetrain gets this version's drive layout, as the first
    run of this version gives it (its summaries built); how long that took is kept in the meta."""
    from drivetrain import Pipeline
    from drivetrain.drive import SCHEMA_VERSION

    if meta.get("layout") == SCHEMA_VERSION:
        return meta
    began = time.perf_counter()
    with Pipeline.load(sorted((workspace / "pipelines").iterdir())[0]) as pipeline:
        pipeline.drive_store().ensure()  # type: ignore[attr-defined]
    meta = {**meta, "layout": SCHEMA_VERSION, "upgrade_seconds": round(time.perf_counter() - began, 1)}
    (workspace / "fleet.json").write_text(json.dumps(meta))
    say(f"drive table brought to layout {SCHEMA_VERSION} in {meta['upgrade_seconds']}s")
    return meta


LOADS: list[float] = []


def measure(args: argparse.Namespace, workspace: Path, name: str, side: str) -> dict[str, Any]:
    """One run of one measure in a child process: seconds, peak RSS and what it answered (the
    1-minute load average before it is kept for the report)."""
    LOADS.append(os.getloadavg()[0])
    # validated configs are remembered in the workspace: the first round fills it, like a user's first command
    env = {**os.environ, "DRIVETRAIN_PIPELINES_HOME": str(workspace / "pipelines"), "PYTHONPATH": str(REPO),
           "DRIVETRAIN_CACHE_DIR": str(workspace / "cache")}
    # an installed drivetrain has its bytecode compiled (pip does it): without it every import
    # compiles its module again, which a shell's PYTHONDONTWRITEBYTECODE would add to each command
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run([args.python, "-m", "benchmarks.fleet_measures", name, side, str(workspace)],
                          capture_output=True, text=True, env=env, cwd=REPO, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no result"]}
    return json.loads(lines[-1][len("RESULT "):])


def run(args: argparse.Namespace, say: Any = print) -> dict[str, Any]:
    workspace_ctx = tempfile.TemporaryDirectory(prefix="drivetrain-fleet-") if args.workspace is None else None
    workspace = Path(workspace_ctx.name) if workspace_ctx else args.workspace
    workspace.mkdir(parents=True, exist_ok=True)
    server = fleet_measures.start_backend(args.backend, workspace)
    try:
        meta = build(args, workspace, say)
        names = args.measures.split(",") if args.measures else list(fleet_measures.MEASURES)
        results: dict[str, Any] = {}
        for name in names:
            runs: dict[str, list[dict[str, Any]]] = {"drivetrain": [], "sql": []}
            if name == "metrics" and fleet_measures.has_baseline(name, args.backend):
                runs["first_sql"] = []  # the first rounds' baseline, without the phase figures
            for _ in range(args.repetitions):  # the sides interleaved, round by round
                for side in runs:
                    if side != "drivetrain" and not fleet_measures.has_baseline(name, args.backend):
                        continue
                    if side == "first_sql":
                        runs[side].append(measure(args, workspace, "metrics_first_baseline", "sql"))
                    else:
                        runs[side].append(measure(args, workspace, name, side))
            results[name] = summarize(name, runs)
            say(f"{name:<16} { {k: v for k, v in results[name].items() if k != 'errors'} } errors={results[name]['errors']}")
    finally:
        fleet_measures.stop_backend(server)
        if workspace_ctx:
            workspace_ctx.cleanup()
    document = {"meta": {**meta, "smoke": args.smoke, "repetitions": args.repetitions, "cpus": os.cpu_count(),
                         "load": [min(LOADS, default=0.0), max(LOADS, default=0.0)],
                         "python": platform.python_version(), "measured_at": datetime.now(UTC).isoformat()},
                "results": results}
    write_report(args, document)
    differ = [name for name, r in results.items() if r.get("same_answer") is False]
    if differ:
        raise SystemExit(f"drivetrain and the hand-written SQL answered differently: {', '.join(differ)} "
                         f"(the figures are in {workspace / 'answers'}: diff the two files of each)")
    return document


def summarize(name: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": [r["error"] for side in runs.values() for r in side if "error" in r]}
    for side, items in runs.items():
        good = [r for r in items if "error" not in r]
        if good:
            out[side] = {"seconds": statistics.median(r["seconds"] for r in good),
                         "cpu_seconds": statistics.median(r.get("cpu_seconds", float("nan")) for r in good),
                         "rss_mb": max(r["rss_mb"] for r in good), "answer": good[-1].get("answer")}
    if "drivetrain" in out and "sql" in out and out["sql"]["seconds"] > 0:
        out["ratio"] = out["drivetrain"]["seconds"] / out["sql"]["seconds"]
    if "first_sql" in out and "drivetrain" in out and out["first_sql"]["seconds"] > 0:
        out["first_ratio"] = out["drivetrain"]["seconds"] / out["first_sql"]["seconds"]
    pairs = [(d.get("answer"), s.get("answer")) for d, s in zip(runs["drivetrain"], runs.get("sql", []), strict=False)
             if "error" not in d and "error" not in s]  # each round's two answers (the report's period ends "now")
    if pairs and all(isinstance(a, dict) and "sha" in a for pair in pairs for a in pair):
        out["same_answer"] = all(a["sha"] == b["sha"] for a, b in pairs)
    return out


def write_report(args: argparse.Namespace, document: dict[str, Any]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(document, indent=1, default=str) + "\n")
    meta = document["meta"]
    lines = [
        "# Fleet benchmark: drive-table reads at fleet size",
        "",
        f"{meta['pipelines']} hourly pipelines x {meta['days']} days = {meta['rows']:,} drive rows on "
        f"{meta['backend']}; {meta['cpus']} cores, Python {meta['python']}, {meta['measured_at'][:16]} UTC; "
        f"median of {meta['repetitions']} interleaved round(s) (drivetrain, then the SQL, round by round; 1-minute load "
        f"average {meta['load'][0]:.1f}-{meta['load'][1]:.1f}), each measure in a process of its own (imports excluded). "
        "Produced by `python -m benchmarks.fleet` (see benchmarks/README.md).",
        "",
        "| measure | drivetrain (s) | its CPU (s) | hand-written SQL (s) | ratio (target <= 2) | limit | peak RSS (MB) | same figures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in document["results"].items():
        ours, sql = r.get("drivetrain", {}), r.get("sql", {})
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        limit = f"< {LIMITS[name]} s" if name in LIMITS else ""
        same = {True: "yes", False: "**NO**"}.get(r.get("same_answer"), "")
        lines.append(f"| {name} | {ours.get('seconds', float('nan')):.3f} | {ours.get('cpu_seconds', float('nan')):.3f} | "
                     f"{sql.get('seconds', float('nan')):.3f} | {ratio} | {limit} | {ours.get('rss_mb', 0):.0f} | {same} |")
        if "first_ratio" in r:
            lines.append(f"| {name}, against the first baseline (no phase figures) | | | {r['first_sql']['seconds']:.3f} | "
                         f"{r['first_ratio']:.2f} | | | |")
        if r["errors"]:
            lines.append(f"| {name}: errors | {r['errors']} | | | | | | |")
    lines += ["", *fleet_measures.NOTES]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    run(parse_args())
