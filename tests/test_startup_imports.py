"""Start-up paths load only the heavy modules they use.

Each check runs the path in a child interpreter and reads its ``sys.modules`` at the end: what
a command imported, not how long it took (the time is in ``benchmarks/startup.py``). A failure
names the modules; ``python -X importtime -c "..."`` shows who imported them. The cure is a
lazy import inside the function that needs the module (with a ``TYPE_CHECKING`` import for
annotations), or a lazy name in a package's ``__init__``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: Client libraries and extras that only a config naming them needs.
CONNECTOR_CLIENTS = (
    "snowflake", "elasticsearch", "pysnow", "boto3", "botocore", "psycopg", "adbc_driver_manager",
    "adbc_driver_postgresql", "connectorx", "pymysql", "openlineage",
)
#: Never needed to start drivetrain: Airflow (the operator's own import), test tools, pandas,
#: and the e-mail sender (loaded when an alert is sent).
NEVER_AT_START = ("airflow", "hypothesis", "pandas", "numpy", "smtplib")
#: What the demo pipeline (JSONL files into DuckDB) needs to validate or run.
DEMO_NEEDS = ("pyarrow", "pyarrow.compute", "duckdb", "jsonschema")

#: Runs drivetrain's command line with ``argv`` in this interpreter and prints ``sys.modules``.
_COMMAND = """
import json, runpy, sys
sys.argv = ["drivetrain", *json.loads(sys.argv[1])]
try:
    runpy.run_module("drivetrain", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stderr.write("\\nSTARTUP-PROBE " + json.dumps({"exit": code, "modules": sorted(sys.modules)}) + "\\n")
"""


def _probe(args: list[str], cwd: Path) -> tuple[int | str | None, set[str]]:
    done = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          check=False)
    lines = [line for line in done.stderr.splitlines() if line.startswith("STARTUP-PROBE ")]
    assert lines, f"the child interpreter failed:\n{done.stdout}\n{done.stderr}"
    found = json.loads(lines[-1].removeprefix("STARTUP-PROBE "))
    return found["exit"], set(found["modules"])


def modules_after_command(argv: list[str], cwd: Path) -> set[str]:
    """``sys.modules`` after ``drivetrain ARGV...`` ran to its end (it must succeed)."""
    code, modules = _probe([_COMMAND, json.dumps(argv)], cwd)
    assert code in (0, None), f"drivetrain {' '.join(argv)} exited {code}"
    return modules


def modules_after_import(statement: str, cwd: Path) -> set[str]:
    code = f"{statement}\nimport json, sys\nsys.stderr.write('\\nSTARTUP-PROBE ' + json.dumps({{'exit': 0, 'modules': sorted(sys.modules)}}) + '\\n')"
    return _probe([code], cwd)[1]


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The names (packages or dotted modules) present in ``modules``."""
    return sorted(name for name in names if name in modules)


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo pipeline's folder as ``drivetrain demo`` leaves it, without running its day."""
    from drivetrain.demo import demo_overrides, demo_paths, generate_source, write_folder_config
    from drivetrain.pipeline import Pipeline

    folder = tmp_path_factory.mktemp("startup-demo")
    generate_source(demo_paths(folder)["source"])
    write_folder_config(Pipeline.load("demo", overrides=demo_overrides(folder)), folder)
    return folder


class TestImportDrivetrain:
    def test_loads_nothing_heavy(self, tmp_path: Path) -> None:
        modules = modules_after_import("import drivetrain", tmp_path)
        assert loaded(modules, (*DEMO_NEEDS, *CONNECTOR_CLIENTS, *NEVER_AT_START)) == []

    def test_loads_no_phase_and_no_config_model(self, tmp_path: Path) -> None:
        modules = modules_after_import("import drivetrain", tmp_path)
        assert loaded(modules, ("drivetrain.phases", "drivetrain.config", "drivetrain.pipeline", "attrs")) == []

    def test_a_public_name_still_imports_on_use(self, tmp_path: Path) -> None:
        modules = modules_after_import("from drivetrain import Pipeline, Window, hookimpl", tmp_path)
        assert {"drivetrain.pipeline", "drivetrain.window", "drivetrain.plugins"} <= modules

    def test_dir_lists_the_public_names_before_they_are_used(self) -> None:
        import drivetrain

        names = [name for name in dir(drivetrain) if not name.startswith("_")]
        assert names == sorted(drivetrain.__all__)


class TestCommandLine:
    def test_help_loads_nothing_heavy(self, tmp_path: Path) -> None:
        modules = modules_after_command(["--help"], tmp_path)
        assert loaded(modules, (*DEMO_NEEDS, *CONNECTOR_CLIENTS, *NEVER_AT_START)) == []

    def test_help_imports_no_command(self, tmp_path: Path) -> None:
        """The list of commands comes from their summaries (drivetrain.cli.SUMMARIES)."""
        modules = modules_after_command(["--help"], tmp_path)
        commands = ("drivetrain.cli.run", "drivetrain.cli.status", "drivetrain.cli.inspect", "drivetrain.cli.validate",
                    "drivetrain.cli.demo", "drivetrain.cli.docs", "drivetrain.cli.scaffold", "drivetrain.monitoring.cli",
                    "drivetrain.config", "drivetrain.pipeline")
        assert loaded(modules, commands) == []

    def test_validate_of_the_demo_loads_only_what_files_and_duckdb_need(self, demo_folder: Path, tmp_path: Path) -> None:
        modules = modules_after_command(["validate", str(demo_folder)], tmp_path)
        assert loaded(modules, (*CONNECTOR_CLIENTS, *NEVER_AT_START)) == []

    def test_run_of_an_empty_window_loads_only_what_files_and_duckdb_need(
        self, demo_folder: Path, tmp_path: Path
    ) -> None:
        modules = modules_after_command(["run", str(demo_folder), "--window-start", "2025-11-17T03:00:00Z"], tmp_path)
        assert loaded(modules, (*CONNECTOR_CLIENTS, *NEVER_AT_START)) == []

    def test_run_loads_neither_the_report_nor_the_scaffolding(self, demo_folder: Path, tmp_path: Path) -> None:
        modules = modules_after_command(["run", str(demo_folder), "--window-start", "2025-11-17T04:00:00Z"], tmp_path)
        others = ("drivetrain.monitoring.cli", "drivetrain.monitoring.metrics", "drivetrain.monitoring.report_html",
                  "drivetrain.monitoring.gaps", "drivetrain.cli.scaffold", "drivetrain.cli._templates",
                  "drivetrain.cli.demo", "drivetrain.cli.plugin_scaffold", "pyarrow.parquet")
        assert loaded(modules, others) == []

    def test_status_of_the_demo_loads_no_arrow_compute(self, demo_folder: Path, tmp_path: Path) -> None:
        modules = modules_after_command(["status", str(demo_folder)], tmp_path)
        assert loaded(modules, ("pyarrow.compute", *CONNECTOR_CLIENTS, *NEVER_AT_START)) == []


@pytest.fixture(scope="module")
def demo_with_a_run(demo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo folder after ``drivetrain run`` of an hour with no record: the folder and the run id.

    The run also leaves the source files' ranges in the cache folder (connectors/files_ranges.py)."""
    cwd = tmp_path_factory.mktemp("startup-run")
    modules_after_command(["run", str(demo_folder), "--window-start", EMPTY_HOURS[0]], cwd)
    return demo_folder, "demo_20251117T030000Z_run1"


#: Hours after the demo's day: no record in them.
EMPTY_HOURS = ("2025-11-17T03:00:00Z", "2025-11-17T05:00:00Z", "2025-11-17T06:00:00Z")


class TestOnePipelineCommands:
    """Reading one pipeline's drive table (SQLite beside the DuckDB warehouse) opens no warehouse."""

    @pytest.mark.parametrize("command", ["history", "show", "status"])
    def test_loads_neither_duckdb_nor_arrow(self, demo_with_a_run: tuple[Path, str], tmp_path: Path,
                                            command: str) -> None:
        folder, run_id = demo_with_a_run
        argv = {"history": ["history", str(folder)], "show": ["show", run_id, "--pipeline", str(folder)],
                "status": ["status", str(folder)]}[command]
        modules = modules_after_command(argv, tmp_path)
        assert loaded(modules, ("duckdb", "pyarrow", "drivetrain.phases", "drivetrain.runner",
                                "drivetrain.monitoring.report_html", *CONNECTOR_CLIENTS, *NEVER_AT_START)) == []


class TestEmptyRun:
    def test_an_empty_window_parses_no_file_once_the_files_are_known(self, demo_with_a_run: tuple[Path, str],
                                                                     tmp_path: Path) -> None:
        """The files' query-field ranges, kept by the first run, say no record is in the next hour."""
        folder, _ = demo_with_a_run
        modules = modules_after_command(["run", str(folder), "--window-start", EMPTY_HOURS[1]], tmp_path)
        assert loaded(modules, ("pyarrow.json", "pyarrow.csv", "pyarrow.parquet")) == []

    def test_an_empty_window_imports_no_pyarrow(self, demo_with_a_run: tuple[Path, str], tmp_path: Path) -> None:
        """DuckDB empties the stage window and replaces the target's without Arrow: the validator,
        the lineage columns and the load's batches are made for the first record."""
        folder, _ = demo_with_a_run
        modules = modules_after_command(["run", str(folder), "--window-start", EMPTY_HOURS[2]], tmp_path)
        assert loaded(modules, ("pyarrow", "drivetrain.validation")) == []
        assert "duckdb" in modules


class TestPipelineModule:
    def test_importing_the_pipeline_and_its_phases_loads_no_arrow_compute(self, tmp_path: Path) -> None:
        modules = modules_after_import("from drivetrain.pipeline import Pipeline\nimport drivetrain.runner", tmp_path)
        assert loaded(modules, ("pyarrow.compute", "duckdb", *CONNECTOR_CLIENTS, *NEVER_AT_START)) == []

    def test_importing_the_pipeline_loads_neither_the_phases_nor_arrow(self, tmp_path: Path) -> None:
        """Commands that read (status, history, show) import drivetrain.pipeline: the phases and
        pyarrow come with the first phase a run needs, or with a folder's user_scripts."""
        modules = modules_after_import("from drivetrain.pipeline import Pipeline", tmp_path)
        assert loaded(modules, ("drivetrain.phases", "drivetrain.schema_types", *DEMO_NEEDS)) == []

    def test_loading_the_demo_pipeline_loads_neither_the_phases_nor_arrow(self, demo_folder: Path, tmp_path: Path) -> None:
        modules = modules_after_import(f"from drivetrain.pipeline import Pipeline\nPipeline.load({str(demo_folder)!r})",
                                       tmp_path)
        assert loaded(modules, ("drivetrain.phases", "pyarrow", "pyarrow.compute", "importlib.metadata")) == []


class TestConnectorModules:
    @pytest.mark.parametrize("module", [
        "drivetrain.connectors.mysql", "drivetrain.connectors.postgres", "drivetrain.connectors.snowflake",
        "drivetrain.connectors.elasticsearch", "drivetrain.connectors.servicenow", "drivetrain.connectors.s3",
        "drivetrain.connectors.files", "drivetrain.connectors.duckdb", "drivetrain.connectors.local_archive",
    ])
    def test_importing_a_connector_loads_no_client_library(self, module: str, tmp_path: Path) -> None:
        modules = modules_after_import(f"import {module}", tmp_path)
        assert loaded(modules, (*CONNECTOR_CLIENTS, *NEVER_AT_START)) == []

    def test_plugin_discovery_imports_no_connector_module(self, tmp_path: Path) -> None:
        statement = ("from drivetrain.plugins import connector_types\n"
                     "assert 'snowflake' in connector_types('warehouse') and 'mysql' in connector_types('source')")
        modules = modules_after_import(statement, tmp_path)
        assert sorted(m for m in modules if m.startswith("drivetrain.connectors.")) == []
        assert loaded(modules, (*DEMO_NEEDS, *CONNECTOR_CLIENTS, *NEVER_AT_START)) == []
