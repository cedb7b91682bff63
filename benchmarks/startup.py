"""Start-up: how long the ``drivetrain`` command takes when there is nothing to load.

Usage (from the repository root, with any virtualenv that has drivetrain installed)::

    .venv/bin/python -m benchmarks.startup                  # 7 interleaved rounds
    .venv/bin/python -m benchmarks.startup --baseline /other/checkout/.venv/bin/python

It makes the demo pipeline in a temporary folder (``drivetrain demo``: JSONL files into
DuckDB), then times each command below in a fresh interpreter, round after round, next to two
references: ``python -c pass`` (the interpreter alone) and ``python -c "import duckdb"``. Wall
time and CPU time (user + system, from ``wait4``) are taken by this parent around the whole
child process; the report gives medians. The run of an empty window is the target of issue 22
(under 0.5 s). Python's bytecode cache is on (in a folder of its own, filled by a warm-up
round), as it is for an installed package. Each command's heavy imports (pyarrow.compute,
DuckDB, jsonschema, the client libraries...) are listed from its ``sys.modules``, and
``-X importtime`` gives the import time of ``import drivetrain``.

``--baseline PYTHON`` runs the same commands with another installation of drivetrain (say, a
checkout of the main branch) in the same rounds, so a before/after comparison shares the
machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import report

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
#: An hour after the demo's day: a window on the grid that holds no record.
EMPTY_WINDOW = "2025-11-17T03:00:00Z"
TARGET_SECONDS = 0.5
RUN = "drivetrain run DEMO --window-start (empty)"
#: Modules listed when a command loads them (top-level names, or a dotted name for a part of a
#: package); tests/test_startup_imports.py checks which paths may load them.
HEAVY = ("pyarrow", "pyarrow.compute", "duckdb", "jsonschema", "pandas", "numpy", "snowflake", "elasticsearch",
         "pysnow", "boto3", "botocore", "psycopg", "adbc_driver_postgresql", "adbc_driver_manager", "connectorx",
         "pymysql", "openlineage", "airflow", "hypothesis", "rich", "smtplib")


def drivetrain_command(python: str) -> list[str]:
    """The ``drivetrain`` console script next to ``python``, else ``python -m drivetrain``."""
    script = Path(python).parent / "drivetrain"
    return [str(script)] if script.exists() else [python, "-m", "drivetrain"]


def commands(folder: Path, python: str, *, references: bool) -> dict[str, list[str]]:
    cli = drivetrain_command(python)
    found = {
        "python -c pass": [python, "-c", "pass"],
        'python -c "import duckdb"': [python, "-c", "import duckdb"],
    } if references else {}
    return found | {
        'python -c "import drivetrain"': [python, "-c", "import drivetrain"],
        "drivetrain --help": [*cli, "--help"],
        "drivetrain validate DEMO": [*cli, "validate", str(folder)],
        "drivetrain status DEMO": [*cli, "status", str(folder)],
        RUN: [*cli, "run", str(folder), "--window-start", EMPTY_WINDOW],
    }


def child_env(pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["NO_COLOR"] = "1"
    return env


def header(rounds: int, load_before: float) -> dict[str, Any]:
    """The head of a start-up report: when, on what, how many rounds, the load before and now."""
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores",
        "rounds": rounds,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process (its output dropped; a failure stops the benchmark)."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stderr is not None
    errors = proc.stderr.read()  # the child can block on a full pipe before it exits
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}:\n{errors.decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime


_PROBE = """
import json, runpy, sys
sys.argv = ["drivetrain", *json.loads(sys.argv[1])]
try:
    runpy.run_module("drivetrain", run_name="__main__")
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted(h for h in {heavy!r} if h in sys.modules)) + "\\n")
"""


def heavy_modules(argv: list[str], python: str, env: dict[str, str]) -> list[str]:
    """The heavy modules a command leaves in ``sys.modules``."""
    if argv[:2] == [python, "-c"]:  # a reference or ``import drivetrain``
        listing = f"sorted(h for h in {HEAVY!r} if h in sys.modules)"
        code = f"{argv[2]}\nimport json, sys\nsys.stderr.write('\\nMODULES ' + json.dumps({listing}) + '\\n')"
        probe = [python, "-c", code]
    else:
        args = argv[len(drivetrain_command(python)):]
        probe = [python, "-c", _PROBE.format(heavy=HEAVY), json.dumps(args)]
    done = subprocess.run(probe, env=env, capture_output=True, text=True, cwd=REPO, check=False)
    found = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    return json.loads(found[-1][8:]) if found else ["(probe failed)"]


def _top_level_ms(python: str, statement: str, env: dict[str, str]) -> float:
    done = subprocess.run([python, "-X", "importtime", "-c", statement], env=env, capture_output=True,
                          text=True, cwd=REPO, check=True)
    # a top-level import has exactly one space between the bar and its name
    return sum(int(m[1]) for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| \S", done.stderr, re.M)) / 1000


def import_ms(python: str, statement: str, env: dict[str, str]) -> float:
    """Milliseconds ``-X importtime`` gives ``statement``'s imports, the interpreter's own subtracted."""
    return _top_level_ms(python, statement, env) - _top_level_ms(python, "pass", env)


#: The demo's folder without loading its day (``--quick``: the tables are made by the warm-up run).
_QUICK_DEMO = """
import sys
from pathlib import Path
from drivetrain.demo import demo_overrides, demo_paths, generate_source, write_folder_config
from drivetrain.pipeline import Pipeline
folder = Path(sys.argv[1])
generate_source(demo_paths(folder)["source"])
write_folder_config(Pipeline.load("demo", overrides=demo_overrides(folder)), folder)
"""


def make_demo(python: str, folder: Path, env: dict[str, str], *, quick: bool = False) -> None:
    """``drivetrain demo`` in ``folder`` (its day loaded), or with ``quick`` only its files and config."""
    make = [python, "-c", _QUICK_DEMO, str(folder)] if quick else [*drivetrain_command(python), "demo", "--dir", str(folder)]
    subprocess.run(make, env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(rounds: int, work: Path, pythons: dict[str, str], *, quick: bool = False) -> dict[str, Any]:
    env = child_env(work / "pycache")
    env["DRIVETRAIN_CACHE_DIR"] = str(work / "cache")  # remembered configs and plugins, as on a user's machine
    folder = work / "demo"
    make_demo(next(iter(pythons.values())), folder, env, quick=quick)
    todo = {(label, name): (python, argv) for n, (label, python) in enumerate(pythons.items())
            for name, argv in commands(folder, python, references=n == 0).items()}
    for _, argv in todo.values():  # warm-up: fills the bytecode cache and the OS's file cache
        timed(argv, env)
    load_before = os.getloadavg()[0]
    walls: dict[tuple[str, str], list[float]] = {key: [] for key in todo}
    cpus: dict[tuple[str, str], list[float]] = {key: [] for key in todo}
    for _ in range(rounds):
        for key, (_, argv) in todo.items():
            wall, cpu = timed(argv, env)
            walls[key].append(wall)
            cpus[key].append(cpu)
    return {
        **header(rounds, load_before),
        "installs": {label: python for label, python in pythons.items()},
        "commands": [
            {
                "install": label,
                "command": name,
                "wall_median": statistics.median(walls[(label, name)]),
                "wall_min": min(walls[(label, name)]),
                "cpu_median": statistics.median(cpus[(label, name)]),
                "heavy_modules": heavy_modules(argv, python, env),
            }
            for (label, name), (python, argv) in todo.items()
        ],
        "import_drivetrain_ms": {
            label: statistics.median(import_ms(python, "import drivetrain", env) for _ in range(rounds))
            for label, python in pythons.items()
        },
    }


def markdown(result: dict[str, Any]) -> str:
    rows = result["commands"]
    by = {(row["install"], row["command"]): row for row in rows}
    labels = list(result["installs"])
    bare = next(row for row in rows if row["command"] == "python -c pass")["wall_median"]
    duck = next(row for row in rows if row["command"] == 'python -c "import duckdb"')["wall_median"]
    lines = [
        "# Start-up of the drivetrain command",
        "",
        f"{result['when']}, {result['machine']}; {result['rounds']} interleaved rounds after a warm-up round, "
        f"medians; load average {result['load_before']:.1f} before, {result['load_after']:.1f} after. "
        "Made by `python -m benchmarks.startup`.",
        "",
        "The demo pipeline (JSONL files into DuckDB); the run is of an hour with no record. Wall and CPU time "
        "of the whole process; the bytecode cache is on, as for an installed package.",
        "",
    ]
    for label in labels:
        lines += [
            f"## {label} ({result['installs'][label]})" if len(labels) > 1 else "## Commands",
            "",
            "| command | wall | min | CPU | / `python -c pass` | / `import duckdb` | heavy modules loaded |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for row in rows:
            if row["install"] != label and not row["command"].startswith("python -c pass") \
                    and row["command"] != 'python -c "import duckdb"':
                continue
            wall = row["wall_median"]
            lines.append(
                f"| `{row['command']}` | {wall:.3f} s | {row['wall_min']:.3f} s | {row['cpu_median']:.3f} s | "
                f"{wall / bare:.1f} | {wall / duck:.2f} | {', '.join(row['heavy_modules']) or 'none'} |"
            )
        run = by[(label, RUN)]["wall_median"]
        met = "met" if run < TARGET_SECONDS else "missed"
        lines += [
            "",
            f"Run of an empty window: {run:.3f} s against a target of {TARGET_SECONDS} s ({met}). "
            f"`-X importtime` of `import drivetrain`: {result['import_drivetrain_ms'][label]:.0f} ms.",
            "",
        ]
    if len(labels) == 2:
        new, old = labels
        lines += [f"## {new} against {old}", "", f"| command | {old} | {new} | {new} / {old} |", "|---|---:|---:|---:|"]
        for row in rows:
            if row["install"] == new and (old, row["command"]) in by:
                before = by[(old, row["command"])]["wall_median"]
                lines.append(f"| `{row['command']}` | {before:.3f} s | {row['wall_median']:.3f} s | "
                             f"{row['wall_median'] / before:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (medians are reported)")
    parser.add_argument("--baseline", help="the Python of another drivetrain installation, measured alongside")
    parser.add_argument("--label", default="this checkout", help="name of this installation in the report")
    parser.add_argument("--baseline-label", default="baseline", help="name of the baseline in the report")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the report")
    parser.add_argument("--name", default="startup", help="report name: NAME.md and NAME.json")
    parser.add_argument("--quick", action="store_true",
                        help="make the demo folder without loading its day (a smoke test; the tables start empty)")
    args = parser.parse_args(argv)
    pythons = {args.label: sys.executable}
    if args.baseline:
        pythons[args.baseline_label] = args.baseline
    with tempfile.TemporaryDirectory(prefix="drivetrain-startup-", ignore_cleanup_errors=True) as scratch:
        work = Path(scratch)
        result = measure(args.rounds, work, pythons, quick=args.quick)
    return report.publish(args.out, args.name, result, markdown(result))


if __name__ == "__main__":
    sys.exit(main())
