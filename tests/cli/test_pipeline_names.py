"""The commands read a pipeline reference as the Python API does, and say what they looked at.

The reported case: in the parent of a folder ``demo`` (a copy of a pipeline with runs of its
own), ``drivetrain status demo`` said it looked at the registered ``demo`` but showed the
folder's runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sdk.factory import make_pipeline_dir

from .conftest import Cli

CONTRIB_DEMO = Path(__file__).resolve().parents[2] / "contrib_pipelines" / "demo"


@pytest.fixture
def demo_copy(cli: Cli) -> Path:
    """A folder ``demo`` in the working directory, with one successful run in its drive table."""
    folder = make_pipeline_dir(cli.cwd / "demo", pipeline_metadata__pipeline_name="demo")
    result = cli("run", "./demo", "--window-start", "2025-11-15T00:00:00Z")
    assert result.returncode == 0, result
    return folder


class TestStatus:
    def test_a_bare_name_shows_the_registered_pipeline_not_the_folder_here(self, cli: Cli, demo_copy: Path) -> None:
        result = cli("status", "demo", "--json")
        assert result.returncode == 0, result
        assert result.json() == []  # the registered demo has not run (its drive table is under HOME)
        assert "not the folder" in result.stderr and "write ./demo" in result.stderr

    def test_the_folder_is_named_as_a_path(self, cli: Cli, demo_copy: Path) -> None:
        rows = cli("status", "./demo", "--json").json()
        assert [row["pipeline_id"] for row in rows] == ["demo_20251115T000000Z_run1"]

    def test_without_a_name_status_says_it_looked_at_both_and_shows_each_once(self, cli: Cli, demo_copy: Path, monkeypatch) -> None:
        monkeypatch.setenv("DRIVETRAIN_CONTRIB_PIPELINES", "all")  # the registered demo is listed only when enabled
        result = cli("status", "--dir", "demo")
        assert result.returncode == 0, result
        assert f"the folder {demo_copy}" in result.stderr and "registered pipeline(s) (demo," in result.stderr
        lines = [line.split() for line in result.stdout.splitlines()]
        assert next(line for line in lines if line[:1] == ["demo"])[:4] == ["demo", "no", "runs", "yet"]
        assert any(line[:3] == ["demo", "(./demo)", "demo_20251115T000000Z_run1"] for line in lines), result.stdout

    def test_pipelines_under_the_home_are_looked_at_and_named(self, cli: Cli, tmp_path: Path, monkeypatch) -> None:
        home = tmp_path / "pipelines"
        make_pipeline_dir(home / "orders", pipeline_metadata__pipeline_name="orders")
        monkeypatch.setenv("DRIVETRAIN_PIPELINES_HOME", str(home))
        assert cli("run", "orders", "--window-start", "2025-11-15T00:00:00Z").returncode == 0
        result = cli("status")
        assert f"DRIVETRAIN_PIPELINES_HOME {home} (orders)" in result.stderr
        assert any(line.split()[:2] == ["orders", "orders_20251115T000000Z_run1"] for line in result.stdout.splitlines())


class TestErrors:
    def test_a_folder_given_as_a_bare_name_exits_2_saying_how_to_write_it(self, cli: Cli, demo_copy: Path) -> None:
        make_pipeline_dir(cli.cwd / "orders", pipeline_metadata__pipeline_name="orders")
        result = cli("run", "orders")
        assert result.returncode == 2
        assert "no pipeline 'orders'" in result.stderr and "write ./orders" in result.stderr

    def test_an_ambiguous_name_exits_2_naming_both(self, cli: Cli, tmp_path: Path, monkeypatch) -> None:
        home = tmp_path / "pipelines"
        make_pipeline_dir(home / "demo", pipeline_metadata__pipeline_name="demo")
        monkeypatch.setenv("DRIVETRAIN_PIPELINES_HOME", str(home))
        result = cli("history", "demo")
        assert result.returncode == 2, result
        assert "ambiguous" in result.stderr and str(home / "demo") in result.stderr
        assert str(CONTRIB_DEMO) in result.stderr
