"""What ``drivetrain new`` writes: source sections, the sample data and the file templates."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: The day the sample data covers; the scaffold's schedule starts on it.
SAMPLE_DAY = "2025-01-01"


def _files(name: str) -> dict[str, Any]:
    return {"type": "files", "path": "data/*.jsonl", "query_field": "updated_at",
            "_comment": "A file, a folder or a glob, relative to this file; JSONL, CSV or Parquet."}


def _mysql(name: str) -> dict[str, Any]:
    return {
        "type": "mysql",
        "_comment": f"Credentials come from the environment: {name.upper()}_MYSQL_USER and {name.upper()}_MYSQL_PASSWORD.",
        "credentials_ref": f"{name}_mysql",
        "host": "mysql.example.com",
        "port": 3306,
        "database": "TODO_database",
        "table": "TODO_table",
        "query_field": "updated_at",
        "batch_size": 10000,
    }


def _postgres(name: str) -> dict[str, Any]:
    return {
        "type": "postgres",
        "_comment": (f"Credentials come from the environment: {name.upper()}_PG_USER and {name.upper()}_PG_PASSWORD. "
                     "query_field may be timestamptz, timestamp (read in source_timezone) or date."),
        "credentials_ref": f"{name}_pg",
        "host": "postgres.example.com",
        "port": 5432,
        "database": "TODO_database",
        "schema": "public",
        "table": "TODO_table",
        "query_field": "updated_at",
        "batch_size": 10000,
    }


def _elasticsearch(name: str) -> dict[str, Any]:
    return {
        "type": "elasticsearch",
        "_comment": (f"Credentials come from the environment: {name.upper()}_ES_USER and {name.upper()}_ES_PASSWORD, "
                     f"or {name.upper()}_ES_API_KEY."),
        "credentials_ref": f"{name}_es",
        "endpoint": "https://elasticsearch.example.com:9200",
        "index": "TODO_index",
        "query_field": "updated_at",
        "batch_size": 5000,
    }


def _servicenow(name: str) -> dict[str, Any]:
    return {
        "type": "servicenow",
        "_comment": f"Credentials come from the environment: {name.upper()}_SNOW_USER and {name.upper()}_SNOW_PASSWORD.",
        "credentials_ref": f"{name}_snow",
        "instance": "TODO-instance",
        "table": "incident",
        "query_field": "sys_updated_on",
        "batch_size": 1000,
    }


SOURCES: dict[str, Callable[[str], dict[str, Any]]] = {
    "files": _files,
    "mysql": _mysql,
    "postgres": _postgres,
    "elasticsearch": _elasticsearch,
    "servicenow": _servicenow,
}
def _duckdb_warehouse(name: str) -> dict[str, Any]:
    return {"type": "duckdb", "path": "warehouse.duckdb"}


def _postgres_warehouse(name: str) -> dict[str, Any]:
    return {
        "type": "postgres",
        "credentials_ref": f"{name}_dwh",
        "host": "postgres.example.com",
        "port": 5432,
        "database": "TODO_database",
        "schema": "public",
    }


#: Warehouses ``drivetrain new --target`` scaffolds stage and target (and so the drive table) in.
TARGETS: dict[str, Callable[[str], dict[str, Any]]] = {"duckdb": _duckdb_warehouse, "postgres": _postgres_warehouse}
#: Keys of a warehouse section that only name the server; the folder's test drops them for DuckDB.
SERVER_KEYS = ("credentials_ref", "host", "port", "database", "schema", "ssl", "connect_timeout", "lock_timeout_seconds")

KEY_COLUMN = {"files": "order_id", "mysql": "id", "postgres": "id", "elasticsearch": "id", "servicenow": "sys_id"}
#: Why the scaffold merges: its query field is an update time, so records move between windows.
TARGET_COMMENT = (
    "Mutable records: the query field is an update time, so an updated record shows up again in a later window. "
    "load_strategy merge keeps exactly one row per merge key, the newest version; running an older window again "
    "never overwrites it. For append-only events that never change, use load_strategy replace_window with "
    "dedup_keys instead. Records deleted at the source stay in the target: see the runbook."
)

SAMPLE_COLUMNS: list[dict[str, Any]] = [
    {"name": "order_id", "type": "integer", "required": True, "nullable": False, "min": 1},
    {"name": "customer", "type": "string", "required": True, "max_length": 100},
    {"name": "amount", "type": "float", "min": 0},
    {"name": "status", "type": "string"},
    {"name": "updated_at", "type": "timestamp", "required": True},
]


def sample_jsonl() -> str:
    """Twelve orders over the first three hours of SAMPLE_DAY."""
    start = datetime.fromisoformat(SAMPLE_DAY).replace(tzinfo=UTC)
    customers = ["acme", "globex", "initech", "umbrella"]
    statuses = ["new", "paid", "shipped", "paid"]
    lines = []
    for i in range(12):
        at = start + timedelta(minutes=15 * i + 5)
        lines.append(json.dumps({
            "order_id": 1000 + i,
            "customer": customers[i % 4],
            "amount": round(19.5 + 7.25 * i, 2),
            "status": statuses[i % 4],
            "updated_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }))
    return "\n".join(lines) + "\n"


PIPELINE_PY = '''"""The {name} pipeline: config.json plus the phases it customises.

drivetrain finds the Pipeline subclass in this file when it loads the folder. Override a
phase by subclassing the default one and naming it in ``phase_classes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from drivetrain import PhaseContext, Pipeline, StageToTargetTransfer


class {cls}StageToTarget(StageToTargetTransfer):
    """Stage to target, with ``status`` upper-cased on the way (pushed down as SQL)."""

    def select_columns(self, ctx: PhaseContext, stage_columns: Sequence[str]) -> list[tuple[str, str]]:
        columns = super().select_columns(ctx, stage_columns)
        return [(name, f"upper({{expr}})" if name == "status" else expr) for name, expr in columns]


class {cls}Pipeline(Pipeline):
    """The {name} pipeline."""

    config_path = Path(__file__).with_name("config.json")
    phase_classes = {{"stage_to_target_transfer": {cls}StageToTarget}}
'''

_TEST_PY = '''"""Runs the {name} pipeline over one window, in a copy of this folder under pytest's tmp_path.

The copy keeps tests away from real data: its relative paths (the DuckDB file, the archive)
resolve inside tmp_path. Run it with: pytest {name}
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from drivetrain import Pipeline, RunStatus
from drivetrain.testing import MemorySource

HERE = Path(__file__).parent
CONFIG = json.loads((HERE / "config.json").read_text(encoding="utf-8"))
HAS_SAMPLE_FILES = {has_samples}  # True when data/ holds sample files for the source to read


def sample_rows() -> list[dict[str, object]]:
    """Rows for an in-memory stand-in of the source, in the first hour of the schedule."""
    field = CONFIG["source_system"]["query_field"]
    key = CONFIG["target_system"]["merge_keys"][0]
    start = datetime.fromisoformat(CONFIG["dag_schedule"]["start_date"]).replace(tzinfo=timezone.utc)
    return [
        {{key: f"r{{i}}", "status": "open" if i % 2 else "closed", field: (start + timedelta(minutes=10 * i + 1)).isoformat()}}
        for i in range(5)
    ]


def load_copy(tmp_path: Path) -> Pipeline:
    """Copy this folder to tmp_path and load it; without sample files, the source becomes memory rows."""
    folder = tmp_path / "{name}"
    shutil.copytree(HERE, folder, ignore=shutil.ignore_patterns("warehouse.duckdb*", "archive", "__pycache__", ".pytest_cache"))
    config = dict(CONFIG)
    for section in ("stage_system", "target_system"):  # a server warehouse: the test uses a DuckDB file instead
        if config[section]["type"] != "duckdb":
            kept = {{k: v for k, v in config[section].items() if k not in {server_keys!r}}}
            config[section] = {{**kept, "type": "duckdb", "path": "warehouse.duckdb"}}
    if not HAS_SAMPLE_FILES:
        config["source_system"] = {{"type": "memory", "name": "{name}", "query_field": CONFIG["source_system"]["query_field"]}}
        MemorySource.registry["{name}"] = sample_rows()
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return Pipeline.load(folder)


def run_first_window(tmp_path: Path):
    with load_copy(tmp_path) as pipeline:
        return pipeline.runner().run(pipeline.grid.first())


def test_first_window_succeeds_and_loses_nothing(tmp_path: Path) -> None:
    record = run_first_window(tmp_path)
    failed = record.phases[record.phase_failed].error_message if record.phase_failed else None
    assert record.pipeline_status is RunStatus.SUCCESS, failed
    audit = record.phases["audit"].phase_specific_details
    assert audit["source_count"] == audit["stage_count"] == audit["target_count"] > 0


def test_status_is_upper_case_in_the_target(tmp_path: Path) -> None:
    run_first_window(tmp_path)
    table = CONFIG["target_system"]["table"]
    with duckdb.connect(str(tmp_path / "{name}" / "warehouse.duckdb")) as conn:
        statuses = {{row[0] for row in conn.execute(f'SELECT DISTINCT status FROM "{{table}}"').fetchall()}}
    assert statuses and all(s == s.upper() for s in statuses)
'''


def test_py(name: str, source_type: str) -> str:
    return _TEST_PY.format(name=name, has_samples=source_type == "files", server_keys=SERVER_KEYS)


GITIGNORE = ("warehouse.duckdb\nwarehouse.duckdb.wal\ndrive.sqlite\ndrive.sqlite-wal\ndrive.sqlite-shm\n"
             "drive.duckdb\ndrive.duckdb.wal\ndrive.duckdb.locks/\narchive/\n__pycache__/\n")


def readme(name: str, source_type: str, target_type: str = "duckdb") -> str:
    first = ("The sample in data/ covers the first hours of " + SAMPLE_DAY + ", so it runs as it is."
             if source_type == "files" else
             f"Fill in the TODO placeholders in config.json and set the credentials named by credentials_ref "
             f"(environment variables, see the _comment there). Install the client: pip install 'drivetrain[{source_type}]'.")
    where = {"duckdb": "DuckDB", "postgres": "PostgreSQL"}[target_type]
    if target_type == "postgres":
        first += (f" Stage, target and drive table are in PostgreSQL: fill in its database in stage_system and "
                  f"target_system and set {name.upper()}_DWH_USER and {name.upper()}_DWH_PASSWORD "
                  "(pip install 'drivetrain[postgres]').")
    return f"""# {name}

A drivetrain pipeline: {source_type} source -> {where} stage -> {where} target, one hour at a time.

{first}

- `config.json`: where data comes from and goes to, the schedule, and each phase's settings.
- `pipeline.py`: the Pipeline subclass; it overrides stage-to-target to upper-case `status`.
- The target merges on its key (`load_strategy: merge`): a record updated later is loaded again
  by the later window and replaces its older version, so it is in the target once.
- `test_pipeline.py`: runs one window into a throwaway DuckDB file (`pytest {name}`).
- `{name}_dag.py`: the pipeline's Airflow DAG; link it into Airflow's dags folder (see
  docs/airflow.md). `test_dag.py` checks that Airflow parses it (needs `drivetrain[airflow]`).

```
drivetrain validate ./{name}    # config, then every system it names
drivetrain run ./{name}         # the next window due (a failed one first)
drivetrain history ./{name}     # what ran, newest first
```
"""


def next_steps(folder: Path, name: str, source_type: str, target_type: str = "duckdb") -> list[str]:
    steps = ["next:"]
    if source_type != "files" or target_type != "duckdb":
        steps.append(f"  edit {folder}/config.json (the TODO placeholders) and set the credentials it names")
    # A folder is written as a path (./orders): a bare name means a registered pipeline.
    shown = str(folder) if folder.is_absolute() or str(folder).startswith(".") else f"./{folder}"
    steps += [
        f"  drivetrain validate {shown}",
        f"  drivetrain run {shown}",
        f"  python -m pytest {folder}",
    ]
    return steps


DAG_PY = '''"""The Airflow DAG of the {name} pipeline (needs: pip install 'drivetrain[airflow]').

Deploy it by linking this file into Airflow's dags folder, or by putting this whole folder
there; the pipeline is the folder this file really lives in (a link is followed):

    ln -s "$PWD/{name}/{name}_dag.py" "$AIRFLOW_HOME/dags/"

Each DAG run loads one window; its logical date is the window's start. For a backlog, pass
shape="window" (one task per window) or shape="catchup" (one task walks the due windows).
"""

from pathlib import Path

from drivetrain.airflow import build_dag

dag = build_dag(Path(__file__).resolve().parent)
'''

_DAG_TEST_PY = '''"""Checks that Airflow parses {name}_dag.py without import errors (needs the airflow extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# Parsed in a fresh process with its own AIRFLOW_HOME, as Airflow's DAG processor would.
PARSE = (
    "import json, sys\\n"
    "from airflow.dag_processing.dagbag import DagBag\\n"
    "bag = DagBag(dag_folder=sys.argv[1])\\n"
    "print(json.dumps({{'errors': {{k: str(v) for k, v in bag.import_errors.items()}}, 'dags': sorted(bag.dag_ids)}}))\\n"
)


def test_airflow_parses_the_dag_file(tmp_path: Path) -> None:
    pytest.importorskip("airflow", reason="Airflow is not installed: pip install 'drivetrain[airflow]'")
    env = {{**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(HERE)}}
    done = subprocess.run([sys.executable, "-c", PARSE, str(HERE / "{name}_dag.py")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed == {{"errors": {{}}, "dags": ["pipeline_{name}"]}}, parsed
'''


def dag_test_py(name: str) -> str:
    return _DAG_TEST_PY.format(name=name)


def airflowignore(name: str) -> str:
    """Keeps Airflow's DAG processor to the DAG file when the folder sits in the dags folder."""
    return f"# Airflow parses only {name}_dag.py in this folder.\npipeline.py\ntest_*.py\ndata/\narchive/\n"
