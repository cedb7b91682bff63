"""Start-up: how long the ``drivetrain`` command takes when there is nothing to load.

Usage (from the repository root, with any virtualenv that has drivetrain installed)::

    .venv/bin/python -m benchmarks.startup                  # 7 interleaved rounds
    .venv/bin/python -m benchmarks.startup --rounds 3 --name startup-smoke

It makes the demo pipeline in a temporary folder (``drivetrain demo``: JSONL files into
DuckDB), then times each command below in a fresh interpreter, round after round, next to two
references: ``python -c pass`` (the interpreter alone) and ``python -c "import duckdb"``. Wall
time and CPU time (user + system, from ``wait4``) are taken by this parent around the whole
child process; the report gives medians. The run of an empty window is the target of issue 22
(under 0.5 s). Python's bytecode cache is on (in a folder of its own, filled by a warm-up
round), as it is for an installed package. Each command's heavy imports (pyarrow.compute,
DuckDB, jsonschema, the client libraries, Airflow...) are listed from its ``sys.modules``,
and ``-X importtime`` gives the import time of ``import drivetrain`` and of the CLI's module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
#: An hour after the demo's day: a window on the grid that holds no record.
EMPTY_WINDOW = "2025-11-17T03:00:00Z"
TARGET_SECONDS = 0.5
#: Modules a start-up path should not load unless its config names them (top-level names, or
#: a dotted name for a part of a package). tests/test_startup_imports.py checks the same list.
HEAVY = ("pyarrow.compute", "pyarrow", "duckdb", "jsonschema", "pandas", "numpy", "snowflake", "elasticsearch",
         "pysnow", "boto3", "botocore", "psycopg", "adbc_driver_postgresql", "adbc_driver_manager", "connectorx",
         "pymysql", "openlineage", "airflow", "hypothesis", "rich", "smtplib")


def drivetrain_command() -> list[str]:
    """The ``drivetrain`` console script next to this interpreter, else ``python -m drivetrain``."""
    script = Path(sys.executable).parent / "drivetrain"
    return [str(script)] if script.exists() else [sys.executable, "-m", "drivetrain"]


def commands(folder: Path) -> dict[str, list[str]]:
    cli = drivetrain_command()
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        'python -c "import duckdb"': [py, "-c", "import duckdb"],
        'python -c "import drivetrain"': [py, "-c", "import drivetrain"],
        "drivetrain --help": [*cli, "--help"],
        "drivetrain validate DEMO": [*cli, "validate", str(folder)],
        "drivetrain status DEMO": [*cli, "status", str(folder)],
        "drivetrain run DEMO --window-start (empty)": [*cli, "run", str(folder), "--window-start", EMPTY_WINDOW],
    }


def child_env(pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["NO_COLOR"] = "1"
    return env


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process (stdout and stderr dropped)."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    errors = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{errors}")
    return wall, usage.ru_utime + usage.ru_stime


_PROBE = """
import runpy, sys, json
heavy = {heavy!r}
sys.argv = {argv!r}
try:
    runpy.run_module("drivetrain", run_name="__main__")
except SystemExit:
    pass
sys.stderr.write("MODULES " + json.dumps(sorted(h for h in heavy if h in sys.modules)) + "\\n")
"""


def heavy_modules(argv: list[str], env: dict[str, str]) -> list[str]:
    """The heavy modules a drivetrain command leaves in ``sys.modules``."""
    if argv[:2] == [sys.executable, "-c"]:  # a reference or ``import drivetrain``
        listing = f"sorted(h for h in {HEAVY!r} if h in sys.modules)"
        probe = [sys.executable, "-c", f"{argv[2]}\nimport json, sys\nsys.stderr.write('MODULES ' + json.dumps({listing}) + '\\n')"]
    else:
        args = argv[len(drivetrain_command()):]
        probe = [sys.executable, "-c", _PROBE.format(heavy=HEAVY, argv=["drivetrain", *args])]
    done = subprocess.run(probe, env=env, capture_output=True, text=True, cwd=REPO, check=False)
    found = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    return json.loads(found[-1][8:]) if found else ["(probe failed)"]


def import_ms(statement: str, env: dict[str, str]) -> float:
    """Milliseconds ``-X importtime`` gives the top-level imports of ``statement`` (the interpreter's own excluded)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], env=env, capture_output=True,
                          text=True, cwd=REPO, check=True)
    total = 0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)  # depth 0: one space after the bar
        if match:
            total += int(match[1])
    baseline = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], env=env, capture_output=True,
                              text=True, cwd=REPO, check=True)
    for line in baseline.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match:
            total -= int(match[1])
    return total / 1000


def make_demo(folder: Path, env: dict[str, str]) -> None:
    subprocess.run([*drivetrain_command(), "demo", "--dir", str(folder)], env=env, check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(rounds: int, work: Path) -> dict[str, Any]:
    pycache = work / "pycache"
    env = child_env(pycache)
    folder = work / "demo"
    make_demo(folder, env)
    todo = commands(folder)
    for argv in todo.values():  # warm-up: fills the bytecode cache and the OS's file cache
        timed(argv, env)
    load_before = os.getloadavg()[0]
    walls: dict[str, list[float]] = {name: [] for name in todo}
    cpus: dict[str, list[float]] = {name: [] for name in todo}
    for _ in range(rounds):
        for name, argv in todo.items():
            wall, cpu = timed(argv, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    imports = {
        "import drivetrain": statistics.median(import_ms("import drivetrain", env) for _ in range(rounds)),
        "import drivetrain.cli": statistics.median(import_ms("import drivetrain.cli", env) for _ in range(rounds)),
    }
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores",
        "rounds": rounds,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "commands": {
            name: {
                "wall_median": statistics.median(walls[name]),
                "wall_min": min(walls[name]),
                "cpu_median": statistics.median(cpus[name]),
                "heavy_modules": heavy_modules(argv, env),
            }
            for name, argv in todo.items()
        },
        "import_ms": imports,
    }


def markdown(result: dict[str, Any]) -> str:
    rows = result["commands"]
    bare = rows["python -c pass"]["wall_median"]
    duck = rows['python -c "import duckdb"']["wall_median"]
    run = rows["drivetrain run DEMO --window-start (empty)"]["wall_median"]
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
        "| command | wall | min | CPU | wall / `python -c pass` | wall / `import duckdb` | heavy modules loaded |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in rows.items():
        wall = row["wall_median"]
        lines.append(
            f"| `{name}` | {wall:.3f} s | {row['wall_min']:.3f} s | {row['cpu_median']:.3f} s | "
            f"{wall / bare:.1f} | {wall / duck:.2f} | {', '.join(row['heavy_modules']) or 'none'} |"
        )
    met = "met" if run < TARGET_SECONDS else "missed"
    lines += [
        "",
        f"Run of an empty window: {run:.3f} s against a target of {TARGET_SECONDS} s ({met}); "
        f"{run - duck:.3f} s more than importing DuckDB alone.",
        "",
        "`-X importtime` (the interpreter's own imports subtracted, medians):",
        "",
    ]
    for statement, ms in result["import_ms"].items():
        lines.append(f"- `{statement}`: {ms:.0f} ms")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (medians are reported)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the report")
    parser.add_argument("--name", default="startup", help="report name: NAME.md and NAME.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="drivetrain-startup-"))
    try:
        result = measure(args.rounds, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
