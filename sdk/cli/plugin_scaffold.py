"""``drivetrain new-plugin NAME``: a pip-installable plugin package, ready to grow.

The package has a source connector, a phase, a pipeline using both, the entry point that makes
drivetrain find them, and a test that passes as generated::

    NAME/
      pyproject.toml              entry point [project.entry-points.drivetrain]; extra "test"
      README.md
      src/NAME/__init__.py
      src/NAME/plugin.py          the hooks: drivetrain_register_connectors / _pipelines
      src/NAME/source.py          SequenceSource: count() and extract() of a window
      src/NAME/phase.py           a StageToTargetTransfer that adds a column
      src/NAME/pipeline.py        the example pipeline (a Pipeline subclass)
      src/NAME/pipelines/example/config.json
      tests/test_plugin.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from ._output import EXIT_USAGE, CliError, output
from ._pipelines import folder_for_writing, write_new_folder

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@click.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", metavar="PATH", default=".", show_default=True, help="Create the folder NAME under PATH.")
def new_plugin_command(name: str, parent: str) -> None:
    """Create NAME/, a plugin package: a source, a phase, a pipeline, its entry point and a test.

    NAME is the Python package name: lower-case letters, digits and underscores, starting with
    a letter. Install it with `pip install -e './NAME[test]'`, then `pytest NAME` and
    `drivetrain run NAME_example` work. docs/plugins.md explains each part.
    """
    out = output()
    if not NAME_PATTERN.match(name):
        raise CliError(f"{name!r} is not a valid plugin package name: use lower-case letters, digits and underscores, "
                       "starting with a letter, at most 41 characters", EXIT_USAGE)
    folder = folder_for_writing(Path(parent), "--dir") / name
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CliError(f"{folder} already exists and is not an empty folder; choose another name or --dir", EXIT_USAGE)
    shown = write_new_folder(folder, parent, f"plugin package {name}", lambda: write_plugin(folder, name))
    out.line(f"Next: pip install -e '{shown}[test]'")
    out.line(f"      pytest {shown}")
    out.line(f"      {name.upper()}_HOME=/tmp/{name} drivetrain run {name}_example")


def write_plugin(folder: Path, name: str) -> list[Path]:
    """Write the plugin package; returns the files written."""
    env = f"{name.upper()}_HOME"
    values = {"name": name, "dist": name.replace("_", "-"), "env": env}
    contents = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{name}/__init__.py": INIT,
        f"src/{name}/plugin.py": PLUGIN,
        f"src/{name}/source.py": SOURCE,
        f"src/{name}/phase.py": PHASE,
        f"src/{name}/pipeline.py": PIPELINE,
        "tests/test_plugin.py": TEST,
        ".gitignore": "__pycache__/\n*.egg-info/\nbuild/\ndist/\n",
    }
    written = []
    for relative, template in contents.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
        written.append(path)
    config = folder / "src" / name / "pipelines" / "example" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(example_config(name, env), indent=2) + "\n", encoding="utf-8")
    written.append(config)
    return written


def example_config(name: str, env: str) -> dict[str, Any]:
    """The example pipeline's config: the plugin's source into DuckDB under ${NAME_HOME}."""
    home = f"${{{env}:-~/.{name}}}"
    return {
        "_comment": f"Shipped inside the {name} package. Data goes under ${env} (default ~/.{name}), never into "
                    "the installed package; every key is described in drivetrain's docs/configuration.md.",
        "pipeline_metadata": {"pipeline_name": f"{name}_example", "owner_name": "TODO",
                              "pipeline_description": f"The {name} plugin's sequence source into DuckDB."},
        "dag_schedule": {"frequency": "hourly", "timezone": "UTC", "start_date": "2025-01-01", "catchup": True},
        "query_window": {"type": "hourly", "duration": "1h"},
        "source_system": {"type": f"{name}_sequence", "query_field": "event_time", "per_hour": 12, "batch_size": 5},
        "stage_system": {"type": "duckdb", "path": f"{home}/warehouse.duckdb", "table": f"stg_{name}_events"},
        "target_system": {"type": "duckdb", "path": f"{home}/warehouse.duckdb", "table": f"{name}_events",
                          "load_strategy": "merge", "merge_keys": ["event_id"]},
        "phases": {"stage_cleaning": {"archive_location": f"{home}/archive", "delete_after_days": 7}},
    }


PYPROJECT = '''[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "A drivetrain plugin: the {name} source, a phase and an example pipeline."
requires-python = ">=3.11"
dependencies = ["drivetrain"]

[project.optional-dependencies]
test = ["pytest>=8"]

# drivetrain loads every module named in this group at start-up and calls its hooks
[project.entry-points.drivetrain]
{name} = "{name}.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
{name} = ["pipelines/*/config.json"]
'''

README = '''# {name}: a drivetrain plugin

- `src/{name}/source.py`: `SequenceSource`, a source connector (config `"type": "{name}_sequence"`)
  that makes `per_hour` records an hour. Replace its body with reads from your system.
- `src/{name}/phase.py`: `WindowKeyTransfer`, the stage-to-target transfer plus a column.
- `src/{name}/pipeline.py` and `pipelines/example/config.json`: the pipeline `{name}_example`,
  shipped in the package.
- `src/{name}/plugin.py`: the hooks that register the source and the pipeline, found through
  the `drivetrain` entry point in `pyproject.toml`.

```bash
pip install -e '.[test]'
pytest
{env}=/tmp/{name} drivetrain run {name}_example
```

See drivetrain's docs/plugins.md (`drivetrain docs plugins`).
'''

INIT = '''"""The {name} drivetrain plugin."""
'''

PLUGIN = '''"""The hooks drivetrain calls; pyproject.toml names this module in the ``drivetrain`` entry points."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivetrain import hookimpl


@hookimpl
def drivetrain_register_connectors() -> Mapping[str, Any]:
    # key "role:type": role source, warehouse or archive; type is what config.json's "type" says.
    # A "module:Class" string is imported only when a config uses it.
    return {{"source:{name}_sequence": "{name}.source:SequenceSource"}}


@hookimpl
def drivetrain_register_pipelines() -> Mapping[str, Any]:
    # pipeline name -> a Pipeline subclass (or a folder holding config.json)
    from {name}.pipeline import ExamplePipeline

    return {{"{name}_example": ExamplePipeline}}
'''

SOURCE = '''"""SequenceSource: ``per_hour`` records an hour, at fixed instants. Replace with your system's reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import pyarrow as pa

from drivetrain import Source, Window


class SequenceSource(Source):
    """Records at every multiple of ``3600 / per_hour`` seconds since the epoch."""

    type_name = "{name}_sequence"
    options_schema: ClassVar[Mapping[str, Any]] = {{
        "type": "object",
        "properties": {{
            "type": {{"const": "{name}_sequence"}},
            "query_field": {{"const": "event_time"}},
            "per_hour": {{"type": "integer", "minimum": 1, "maximum": 3600}},
            "batch_size": {{"type": "integer", "minimum": 1}},
        }},
        "required": ["type", "query_field"],
        "additionalProperties": False,
    }}

    def _instants(self, window: Window) -> list[datetime]:
        step = 3600 // int(self.config.get("per_hour", 12))
        first = -(-int(window.start.timestamp()) // step) * step  # the first multiple >= start
        end = window.end.timestamp()
        return [datetime.fromtimestamp(t, UTC) for t in range(first, int(end) + 1, step) if t < end]

    def count(self, window: Window) -> int:
        # the same half-open filter as extract: window.start <= event_time < window.end
        return len(self._instants(window))

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        size = int(self.config.get("batch_size", 1000))
        rows = [{{"event_id": f"E{{int(t.timestamp())}}", "event_time": t, "value": int(t.timestamp()) % 97}}
                for t in self._instants(window)]
        for i in range(0, len(rows), size):
            yield pa.RecordBatch.from_pylist(rows[i : i + size])

    def describe(self) -> str:
        return f"{name}_sequence ({{self.config.get('per_hour', 12)}} an hour)"
'''

PHASE = '''"""WindowKeyTransfer: the default stage-to-target copy, plus the window each row was loaded in."""

from __future__ import annotations

from collections.abc import Sequence

from drivetrain import PhaseContext, StageToTargetTransfer


class WindowKeyTransfer(StageToTargetTransfer):
    """Adds ``loaded_window``: the window's key, such as ``20250101T000000Z``."""

    def select_columns(self, ctx: PhaseContext, stage_columns: Sequence[str]) -> list[tuple[str, str]]:
        # ctx.window is the Window being loaded; ctx.pipeline.source() is the configured source
        # (a method: it builds the connector on first use).
        return [*super().select_columns(ctx, stage_columns), ("loaded_window", f"'{{ctx.window.key}}'")]
'''

PIPELINE = '''"""The example pipeline: config.json in pipelines/example, the plugin's phase for the load."""

from __future__ import annotations

from pathlib import Path

from drivetrain import Pipeline

from {name}.phase import WindowKeyTransfer


class ExamplePipeline(Pipeline):
    # relative paths in the config are read from its folder; the data goes under ${env}
    config_path = Path(__file__).parent / "pipelines" / "example" / "config.json"
    phase_classes = {{"stage_to_target_transfer": WindowKeyTransfer}}
'''

TEST = '''"""The plugin, as drivetrain sees it once the package is installed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from drivetrain import Pipeline, SystemConfig, Window
from drivetrain.plugins import registered_pipelines
from {name}.source import SequenceSource

HOUR = Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 1, tzinfo=UTC))


def test_the_source_counts_exactly_what_it_extracts() -> None:
    section = {{"type": "{name}_sequence", "query_field": "event_time", "per_hour": 12, "batch_size": 5}}
    source = SequenceSource(SystemConfig.from_section("source_system", section))
    batches = list(source.extract(HOUR))
    assert source.count(HOUR) == sum(b.num_rows for b in batches) == 12
    assert max(b.num_rows for b in batches) <= 5
    later = Window(HOUR.end, HOUR.end + timedelta(hours=1))
    assert source.count(later) == 12  # half-open windows: no record counted twice


def test_the_entry_point_registers_the_example_pipeline() -> None:
    assert "{name}_example" in registered_pipelines()


def test_the_example_pipeline_loads_a_window(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("{env}", str(tmp_path))
    with Pipeline.load("{name}_example") as pipeline:
        record = pipeline.runner().run(pipeline.grid.first())
    assert record.pipeline_status.value == "SUCCESS", record.phase_failed
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT count(*), min(loaded_window) FROM main.{name}_events").fetchone()
    assert rows == (12, "20250101T000000Z")
'''
