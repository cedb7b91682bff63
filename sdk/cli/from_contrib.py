"""``drivetrain new NAME --from-contrib PIPELINE``: a ready pipeline copied into a folder of your own.

The contrib folder (config.json, pipeline.py, dag.py, README, data...) is copied, the pipeline
renamed to NAME, and the config annotated with what to fill in: every placeholder host or
account, and the environment variables each ``credentials_ref`` reads. With ``--warehouse
duckdb`` the stage, target and archive move to a DuckDB file and a folder next to the config,
so only the source remains to be reached.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from drivetrain.errors import PipelineNotFound

#: Values in contrib configs that stand for the user's own systems.
PLACEHOLDER = re.compile(r"example\.com|myorg-myaccount|TODO|company-archive", re.IGNORECASE)
#: Keys of a warehouse section that only make sense for the warehouse it names.
WAREHOUSE_KEYS = frozenset({"type", "credentials_ref", "account", "warehouse", "role", "database", "schema", "host",
                            "port", "path", "authenticator", "protocol"})


def contrib_folder(name: str) -> Path:
    """The folder of the contrib pipeline ``name``; PipelineNotFound listing the others."""
    from drivetrain import contrib

    root = Path(contrib.__file__).parent
    folders = sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())
    if name not in folders:
        raise PipelineNotFound(f"no contrib pipeline {name!r}; the contrib pipelines are: {', '.join(folders)}")
    return root / name


def copy_contrib(contrib: str, folder: Path, name: str, *, warehouse: str) -> list[Path]:
    """Copy ``contrib`` into ``folder`` as pipeline ``name``; returns the files written."""
    source = contrib_folder(contrib)
    shutil.copytree(source, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.duckdb*"))
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config = adapt(config, contrib, name, warehouse=warehouse)
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    dag = folder / "dag.py"
    if dag.is_file():
        dag.write_text(DAG_PY.format(name=name), encoding="utf-8")
    return sorted(p for p in folder.rglob("*") if p.is_file())


DAG_PY = '''"""The {name} pipeline as an Airflow DAG: copy or link this file into your dags folder.

build_dag takes the absolute folder holding config.json (and pipeline.py), which is this one.
"""

from pathlib import Path

from drivetrain.airflow import build_dag

dag = build_dag(str(Path(__file__).resolve().parent))
'''


def _to_duckdb(section: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in section.items() if k not in WAREHOUSE_KEYS and not k.startswith("_")}
    if "table" in kept:
        kept["table"] = str(kept["table"]).lower()
    return {"type": "duckdb", "path": "warehouse.duckdb", **kept}


def fill_in(config: dict[str, Any]) -> list[str]:
    """What a user must set before the copied pipeline runs, one sentence each."""
    todo = []
    for section, values in config.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if isinstance(value, str) and not key.startswith("_") and PLACEHOLDER.search(value):
                todo.append(f"{section}.{key}: {value!r} is a placeholder; put your own value (or a ${{VARIABLE}})")
        ref = values.get("credentials_ref")
        if isinstance(ref, str):
            prefix = ref.upper()
            todo.append(f"{section}.credentials_ref {ref!r}: set {prefix}_USER and {prefix}_PASSWORD in the "
                        "environment (or an Airflow connection of that name)")
    for key, value in (config.get("phases", {}).get("stage_cleaning") or {}).items():
        if isinstance(value, str) and PLACEHOLDER.search(value):
            todo.append(f"phases.stage_cleaning.{key}: {value!r} is a placeholder archive location")
    return list(dict.fromkeys(todo))


def adapt(config: dict[str, Any], contrib: str, name: str, *, warehouse: str) -> dict[str, Any]:
    """The contrib config renamed to ``name`` (and moved to DuckDB), with what to fill in."""
    out = dict(config)
    meta = dict(out.get("pipeline_metadata", {}))
    meta["pipeline_name"] = name
    meta["tags"] = [t for t in meta.get("tags", []) if t != "contrib"]
    out["pipeline_metadata"] = meta
    if warehouse == "duckdb":
        for role in ("stage_system", "target_system", "drive_table"):
            if isinstance(out.get(role), dict):
                out[role] = _to_duckdb(out[role])
        phases = dict(out.get("phases", {}))
        cleaning = dict(phases.get("stage_cleaning") or {})
        if cleaning.get("archive_location"):
            cleaning["archive_location"] = "archive"
            phases["stage_cleaning"] = cleaning
        out["phases"] = phases
    todo = fill_in(out)
    note = {"_comment": f"Copied from the contrib pipeline {contrib!r} and renamed {name!r}. "
                        "Every key is described in docs/configuration.md.",
            "_comment_fill_in": todo or ["nothing: the pipeline runs as copied"]}
    return {**note, **{k: v for k, v in out.items() if k != "_comment"}}
