"""Airflow at fleet size: how long 500 pipelines take to parse as DAGs, and what ``build_dag`` costs.

Usage: ``python -m benchmarks.airflow_parse [--pipelines 500] [--samples 5]``.

Each pipeline is a folder (files source, DuckDB warehouse, as ``benchmarks.fleet_concurrency``
writes them). Measured with real Airflow 3, each measure in a fresh interpreter:

* ``one file per pipeline``: a DAG file per pipeline (``dag = build_dag("/abs/folder")``).
  Airflow's DAG processor parses each file in a process of its own that has Airflow imported
  already, so what one file costs there is importing ``drivetrain.airflow`` plus one
  ``build_dag``: timed in ``--samples`` fresh children. Then ``DagBag`` over the whole folder
  in one process (the per-file times it records; the first file pays the import).
* ``one file for all``: one DAG file that builds every pipeline's DAG in a loop, parsed by
  ``DagBag``: the whole fleet within one file's import timeout.
* ``build_dag``: the median of one call in a warm process, and its parts (loading and
  validating the config, building the operators).

Airflow's default ``dagbag_import_timeout`` is 30 s per file. Writes
``benchmarks/results/airflow-parse.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.fleet_concurrency import folder_for

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "airflow-parse.md"
TIMEOUT = 30.0

#: One DAG file per pipeline.
ONE_DAG = 'from drivetrain.airflow import build_dag\n\ndag = build_dag({folder!r})\n'
#: One DAG file for the whole fleet.
ALL_DAGS = textwrap.dedent('''\
    """Every pipeline under one folder, one DAG each."""
    from pathlib import Path

    from drivetrain.airflow import build_dag

    for folder in sorted(Path({root!r}).iterdir()):
        dag = build_dag(folder)
        globals()[dag.dag_id] = dag
    ''')

#: In a child: Airflow imported first (as the DAG processor has it), then one DAG file's work.
ONE_FILE_CHILD = textwrap.dedent('''\
    import json, sys, time
    import airflow.sdk  # the DAG processor has this already
    t0 = time.perf_counter()
    from drivetrain.airflow import build_dag
    t1 = time.perf_counter()
    build_dag(sys.argv[1])
    t2 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "build": t2 - t1}))
    ''')

#: In a child: DagBag over a folder; prints the DAG count, errors, total and per-file seconds.
DAGBAG_CHILD = textwrap.dedent('''\
    import json, sys, time
    from airflow.dag_processing.dagbag import DagBag
    t0, c0 = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=sys.argv[1])
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    files = [s.duration.total_seconds() if hasattr(s.duration, "total_seconds") else float(s.duration)
             for s in bag.dagbag_stats]
    print(json.dumps({"dags": len(bag.dags), "errors": {k: str(v)[:300] for k, v in bag.import_errors.items()},
                      "total": total, "cpu": cpu, "files": files}))
    ''')

#: In a child: build_dag over every folder in a warm process, and its parts.
BUILD_CHILD = textwrap.dedent('''\
    import json, sys, time
    from pathlib import Path
    from drivetrain import Pipeline
    from drivetrain.airflow import build_dag
    folders = sorted(Path(sys.argv[1]).iterdir())
    build_dag(folders[0])  # warm
    builds, loads, from_loaded = [], [], []
    for folder in folders:
        t0 = time.perf_counter(); build_dag(folder); t1 = time.perf_counter()
        pipeline = Pipeline.load(folder); t2 = time.perf_counter()
        build_dag(pipeline); t3 = time.perf_counter()
        builds.append(t1 - t0); loads.append(t2 - t1); from_loaded.append(t3 - t2)
    print(json.dumps({"build": builds, "load": loads, "operators": from_loaded}))
    ''')


def airflow_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "PYTHONPATH": str(REPO),
    })
    return env


def child(code: str, *args: str, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=1800,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(root: Path, pipelines: int) -> tuple[Path, Path, Path]:
    """Pipeline folders, a folder of one DAG file each, a folder with one file for all."""
    for index in range(pipelines):
        folder_for(root, index, "separate", hours=1, rows=1)
    folders = root / "separate"
    each, one = root / "dags_each", root / "dags_one"
    each.mkdir()
    one.mkdir()
    for folder in sorted(folders.iterdir()):
        (each / f"pipeline_{folder.name}.py").write_text(ONE_DAG.format(folder=str(folder)))
    (one / "fleet_dags.py").write_text(ALL_DAGS.format(root=str(folders)))
    return folders, each, one


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=500)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="drivetrain-airflow-parse-") as tmp:
        root = Path(tmp)
        home = root / "airflow"
        (home / "dags").mkdir(parents=True)
        env = airflow_env(home)
        folders, each, one = prepare(root, args.pipelines)
        first = sorted(folders.iterdir())[0]
        singles = [child(ONE_FILE_CHILD, str(first), env=env) for _ in range(args.samples)]
        bag_each = child(DAGBAG_CHILD, str(each), env=env)
        bag_one = child(DAGBAG_CHILD, str(one), env=env)
        builds = child(BUILD_CHILD, str(folders), env=env)
        drive_files = sorted(str(p.relative_to(root)) for p in root.rglob("*.duckdb"))
    for name, bag in (("one file per pipeline", bag_each), ("one file for all", bag_one)):
        if bag["dags"] != args.pipelines or bag["errors"]:
            raise SystemExit(f"{name}: {bag['dags']} DAGs of {args.pipelines}; errors: {bag['errors']}")
    one_import = statistics.median(s["import"] for s in singles)
    one_build = statistics.median(s["build"] for s in singles)
    each_files = sorted(bag_each["files"])
    rows = [
        ("one file per pipeline: one file in a fresh process (import + build_dag)", ms(one_import + one_build),
         f"{(one_import + one_build) / TIMEOUT:.1%}"),
        ("  of which importing drivetrain.airflow", ms(one_import), ""),
        ("  of which the first build_dag", ms(one_build), ""),
        (f"one file per pipeline: DagBag over {args.pipelines} files, one process",
         f"{bag_each['total']:.1f} s ({bag_each['cpu']:.1f} s CPU)", ""),
        ("  per file, median (after the first)", ms(statistics.median(each_files[:-1])), ""),
        ("  per file, slowest (the first: pays the import)", ms(each_files[-1]), f"{each_files[-1] / TIMEOUT:.1%}"),
        (f"one file for all {args.pipelines}: DagBag", f"{bag_one['total']:.1f} s ({bag_one['cpu']:.1f} s CPU)",
         f"{max(bag_one['files']) / TIMEOUT:.1%}"),
        ("build_dag in a warm process, median", ms(statistics.median(builds["build"])), ""),
        ("  loading and validating config.json, median", ms(statistics.median(builds["load"])), ""),
        ("  building the DAG and its operators, median", ms(statistics.median(builds["operators"])), ""),
    ]
    lines = [
        f"# Airflow at fleet size: {args.pipelines} pipelines as DAGs",
        "",
        f"Real Airflow 3 (`DagBag`), each measure in a fresh interpreter; {args.pipelines} pipelines (files source, "
        f"DuckDB warehouse); median of {args.samples} fresh processes for one file. Airflow's default "
        f"`dagbag_import_timeout` is {TIMEOUT:.0f} s per file (wall time; the CPU time shows what a less loaded "
        f"machine would take). Load average when it started: {load:.1f} on {os.cpu_count()} cores. "
        "Produced by `python -m benchmarks.airflow_parse`.",
        "",
        "| measure | time | of the 30 s timeout |",
        "|---|---|---|",
        *[f"| {what} | {value} | {share} |" for what, value, share in rows],
        "",
        f"Drive table files created by parsing: {len(drive_files)} (building a DAG reads only config.json).",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
