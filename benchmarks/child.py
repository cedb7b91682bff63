"""Run one measured path in this process and print what it did as one JSON line.

Usage: ``python -m benchmarks.child PATH_NAME JOB_JSON_FILE``. The parent reads the child's
peak RSS from ``wait4``; the child reports the time its path took, imports and drivetrain's
once-per-process start-up (:func:`benchmarks.paths.warm_up`) excluded.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.paths import PATHS, warm_up  # noqa: E402

#: Modules each path needs, imported before the clock starts.
PRELOAD = ("pyarrow", "pyarrow.compute", "duckdb", "pymysql", "drivetrain", "drivetrain.phases")


def main(argv: list[str]) -> int:
    name, job_file = argv
    job = json.loads(Path(job_file).read_text())
    modules = list(PRELOAD)
    if name.startswith("dlt_"):
        modules += ["dlt", "dlt.sources.sql_database"]
    if "connectorx" in name or name.startswith("drivetrain"):
        modules.append("connectorx")
    for module in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    if name.startswith("drivetrain"):
        warm_up(job)
    began, cpu = time.perf_counter(), time.process_time()
    outcome = PATHS[name](job)
    outcome["seconds"] = time.perf_counter() - began
    outcome["cpu_seconds"] = time.process_time() - cpu  # this process, all its threads
    print("RESULT " + json.dumps(outcome, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
