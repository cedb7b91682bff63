"""``drivetrain new``: a pipeline folder that runs as generated against the embedded DuckDB.

The folder holds ``config.json``, ``pipeline.py`` (a Pipeline subclass overriding one phase,
as an example to edit), ``test_pipeline.py`` (runs one window with pytest), a README and a
``.gitignore``, and for Airflow the DAG file ``NAME_dag.py`` (with ``test_dag.py`` checking
that Airflow parses it, and an ``.airflowignore`` for when the folder sits in the dags folder).
With ``--source files`` it also writes a small JSONL sample, so ``drivetrain run FOLDER``
works at once; other sources get a config skeleton with placeholders and a ``credentials_ref``,
and their test feeds the pipeline in-memory rows instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from . import _templates as t
from ._output import EXIT_USAGE, CliError, output
from ._pipelines import folder_for_writing, write_new_folder

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@click.command("new")
@click.argument("name")
@click.option("--source", "source_type", type=click.Choice(sorted(t.SOURCES)), default="files", show_default=True,
              help="The kind of source system to scaffold.")
@click.option("--dir", "parent", metavar="PATH", default=".", show_default=True, help="Create the folder NAME under PATH.")
@click.option("--from-contrib", "contrib", metavar="PIPELINE", default=None,
              help="Copy a ready contrib pipeline (lab_results, genetic_tests...) instead, renamed NAME.")
@click.option("--warehouse", type=click.Choice(["as-is", "duckdb"]), default="as-is", show_default=True,
              help="With --from-contrib: keep the contrib's warehouse, or put stage and target in a local DuckDB file.")
@click.option("--target", "target_type", type=click.Choice(sorted(t.TARGETS)), default="duckdb", show_default=True,
              help="Where stage, target and drive table go: the folder's DuckDB file, or a PostgreSQL database.")
def new_command(name: str, source_type: str, parent: str, contrib: str | None = None, warehouse: str = "as-is",
                target_type: str = "duckdb") -> None:
    """Create a pipeline folder NAME with config.json, pipeline.py and a test.

    NAME is the pipeline name: lower-case letters, digits and underscores, starting with
    a letter. Stage, target and drive table go to a DuckDB file in the folder (or, with
    --target postgres, to a PostgreSQL database; the folder's test still uses DuckDB). With the
    default files source the folder runs as generated: try
    `drivetrain run NAME` and `pytest NAME`.
    """
    out = output()
    if not NAME_PATTERN.match(name):
        raise CliError(f"{name!r} is not a valid pipeline name: use lower-case letters, digits and underscores, "
                       "starting with a letter, at most 63 characters", EXIT_USAGE)
    folder = folder_for_writing(Path(parent), "--dir") / name
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{folder} already exists and is a file; choose another name or --dir", EXIT_USAGE)
    if folder.exists() and any(folder.iterdir()):
        raise CliError(f"{folder} already exists and is not empty; choose another name or --dir", EXIT_USAGE)
    if contrib is not None:
        from .from_contrib import contrib_folder, copy_contrib

        contrib_folder(contrib)  # an unknown name fails before anything is written
        shown = write_new_folder(folder, parent, f"a copy of the contrib pipeline {contrib}",
                                 lambda: copy_contrib(contrib, folder, name, warehouse=warehouse))
        out.line(f"Fill in what config.json lists under _comment_fill_in, then: drivetrain validate {shown}")
        return
    write_new_folder(folder, parent, f"{source_type} source", lambda: scaffold(folder, name, source_type, target_type))
    for step in t.next_steps(folder, name, source_type, target_type):
        out.line(step)


def scaffold(folder: Path, name: str, source_type: str, target_type: str = "duckdb") -> list[Path]:
    """Write the pipeline folder; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    cls = "".join(part.capitalize() for part in name.split("_")) or "My"
    contents: dict[str, str] = {
        "config.json": json.dumps(config_for(name, source_type, target_type), indent=2) + "\n",
        "pipeline.py": t.PIPELINE_PY.format(name=name, cls=cls),
        "test_pipeline.py": t.test_py(name, source_type),
        "README.md": t.readme(name, source_type, target_type),
        ".gitignore": t.GITIGNORE,
        f"{name}_dag.py": t.DAG_PY.format(name=name),
        "test_dag.py": t.dag_test_py(name),
        ".airflowignore": t.airflowignore(name),
    }
    if source_type == "files":
        contents["data/sample.jsonl"] = t.sample_jsonl()
    for relative, text in contents.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def config_for(name: str, source_type: str, target_type: str = "duckdb") -> dict[str, Any]:
    """The scaffold's config.json as a dict."""
    source = t.SOURCES[source_type](name)
    stage: dict[str, Any] = {**t.TARGETS[target_type](name), "table": f"stg_{name}"}
    if source_type == "files":
        stage["_comment"] = "Records that do not match these columns go to the table stg_<name>__rejects with the reason."
        stage["columns"] = t.SAMPLE_COLUMNS
    else:
        stage["_comment"] = ("Declare 'columns' here to validate records (name, type, required, min, max...); "
                             "without them every column is kept and only the query field is checked.")
    return {
        "_comment": f"The {name} pipeline. Every key is described in docs/configuration.md.",
        "pipeline_metadata": {
            "pipeline_name": name,
            "pipeline_description": f"TODO: what {name} moves, from where to where.",
            "owner_name": "TODO",
            "tags": [],
        },
        "dag_schedule": {"frequency": "hourly", "timezone": "UTC", "start_date": t.SAMPLE_DAY, "catchup": True},
        "query_window": {"type": "hourly", "duration": "1h"},
        "source_system": source,
        "stage_system": stage,
        "target_system": {
            **t.TARGETS[target_type](name),
            "table": name,
            "_comment": t.TARGET_COMMENT,
            "load_strategy": "merge",
            "merge_keys": [t.KEY_COLUMN[source_type]],
        },
        "phases": {
            "audit": {"count_tolerances": {
                "_comment": "Percent of records allowed to go missing between systems (rejects, duplicates).",
                "source_to_stage_tolerance_percent": 0,
                "stage_to_target_tolerance_percent": 0,
            }},
            "stage_cleaning": {"archive_location": "archive", "delete_after_days": 7},
        },
        "retry": {"max_retries": 3, "backoff_strategy": "exponential", "backoff_seconds": 1},
    }
