"""``drivetrain new-plugin NAME``: the package it writes, and that its parts work with drivetrain.

The installed, end-to-end check (pip install into a fresh venv, its own test, a run through
the entry point) is tests/packaging/test_plugin_package.py.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from drivetrain import Pipeline
from drivetrain.plugins import get_plugin_manager

from .conftest import Cli


@pytest.fixture
def acme(cli: Cli) -> Path:
    result = cli("new-plugin", "acme")
    assert result.returncode == 0, result
    return cli.cwd / "acme"


@pytest.fixture
def registered(acme: Path) -> Iterator[None]:
    """The generated plugin imported from its src folder and registered, as its entry point would."""
    sys.path.insert(0, str(acme / "src"))
    plugin = importlib.import_module("acme.plugin")
    get_plugin_manager().register(plugin)
    try:
        yield
    finally:
        get_plugin_manager().unregister(plugin)
        sys.path.remove(str(acme / "src"))
        for name in [m for m in sys.modules if m == "acme" or m.startswith("acme.")]:
            del sys.modules[name]


class TestPackage:
    def test_the_pyproject_names_the_plugin_in_the_drivetrain_entry_points(self, acme: Path) -> None:
        project = tomllib.loads((acme / "pyproject.toml").read_text())
        assert project["project"]["entry-points"]["drivetrain"] == {"acme": "acme.plugin"}
        assert project["project"]["dependencies"] == ["drivetrain"]
        assert project["project"]["optional-dependencies"]["test"] == ["pytest>=8"]
        assert project["tool"]["setuptools"]["package-data"] == {"acme": ["pipelines/*/config.json"]}

    def test_every_python_file_parses(self, acme: Path) -> None:
        files = sorted(acme.rglob("*.py"))
        assert {p.name for p in files} == {"__init__.py", "plugin.py", "source.py", "phase.py", "pipeline.py", "test_plugin.py"}
        for path in files:
            ast.parse(path.read_text(), str(path))

    def test_the_next_steps_are_printed(self, cli: Cli) -> None:
        result = cli("new-plugin", "acme")
        assert "pip install -e './acme[test]'" in result.stdout
        assert "ACME_HOME=/tmp/acme drivetrain run acme_example" in result.stdout

    @pytest.mark.parametrize("name", ["Acme", "1acme", "acme-plugin", ""])
    def test_an_invalid_name_exits_2(self, cli: Cli, name: str) -> None:
        result = cli("new-plugin", name)
        assert result.returncode == 2, result
        assert not (cli.cwd / name).exists() or name == ""

    def test_a_non_empty_folder_is_refused(self, cli: Cli) -> None:
        (cli.cwd / "acme").mkdir()
        (cli.cwd / "acme" / "x").write_text("mine")
        result = cli("new-plugin", "acme")
        assert result.returncode == 2 and "already exists" in result.stderr
        assert (cli.cwd / "acme" / "x").read_text() == "mine"


class TestPlugin:
    def test_the_example_pipeline_runs_with_the_plugins_source_and_phase(
            self, acme: Path, registered: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ACME_HOME", str(tmp_path / "home"))
        with Pipeline.load("acme_example") as pipeline:
            assert json.loads(json.dumps(pipeline.config.source.type)) == "acme_sequence"
            record = pipeline.runner(heartbeat_seconds=0.5).run(pipeline.grid.first())
        assert record.pipeline_status.value == "SUCCESS", record.phase_failed
        with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True) as conn:
            assert conn.execute("SELECT count(*), min(loaded_window) FROM main.acme_events").fetchone() == (12, "20250101T000000Z")
        assert not list((acme / "src" / "acme" / "pipelines" / "example").glob("*.duckdb"))  # nothing in the package
