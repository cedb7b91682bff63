"""``drivetrain new``: the scaffold, and that what it writes runs as generated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Cli


class TestNew:
    def test_new_writes_the_pipeline_folder(self, cli: Cli) -> None:
        result = cli("new", "orders")
        assert result.returncode == 0, result
        folder = cli.cwd / "orders"
        for name in ("config.json", "pipeline.py", "test_pipeline.py", "README.md", ".gitignore", "data/sample.jsonl"):
            assert (folder / name).is_file(), name
        config = json.loads((folder / "config.json").read_text())
        assert config["pipeline_metadata"]["pipeline_name"] == "orders"
        assert config["stage_system"]["type"] == config["target_system"]["type"] == "duckdb"
        assert "class OrdersPipeline(Pipeline)" in (folder / "pipeline.py").read_text()
        assert "drivetrain validate" in result.stdout

    def test_the_files_scaffold_runs_as_generated(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop")
        assert result.returncode == 0, result
        assert "source 4, stage 4, target 4" in result.stdout
        shown = cli("show", "shop_20250101T000000Z_run1", "--pipeline", "./shop", "--json").json()
        assert "ShopStageToTarget.select_columns" not in json.dumps(shown)  # push-down SQL, not transform()
        assert shown["stage_to_target_transfer_phase"]["phase_specific_details"]["method"] == "push-down SQL"

    def test_the_files_scaffold_test_passes(self, cli: Cli, shop: Path) -> None:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(shop)],
                              cwd=cli.cwd, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 passed" in done.stdout  # test_pipeline.py (2) and test_dag.py

    @pytest.mark.parametrize("kind, ref", [("mysql", "mysql"), ("elasticsearch", "es"), ("servicenow", "snow")])
    def test_other_sources_get_a_valid_skeleton_with_a_credentials_ref(self, cli: Cli, kind: str, ref: str) -> None:
        result = cli("new", "feed", "--source", kind)
        assert result.returncode == 0, result
        config = json.loads((cli.cwd / "feed" / "config.json").read_text())
        assert config["source_system"]["type"] == kind
        assert config["source_system"]["credentials_ref"] == f"feed_{ref}"
        assert not (cli.cwd / "feed" / "data").exists()
        planned = cli("run", "./feed", "--dry-run")  # loads and validates the config, reaches no server
        assert planned.returncode == 0, planned
        assert "pre_validation            run     fresh run" in planned.stdout

    def test_a_skeleton_test_passes_on_memory_rows_in_place_of_the_source(self, cli: Cli) -> None:
        assert cli("new", "lims", "--source", "mysql").returncode == 0
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(cli.cwd / "lims")],
                              cwd=cli.cwd, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 passed" in done.stdout  # test_pipeline.py (2) and test_dag.py

    @pytest.mark.parametrize("name", ["Orders", "1orders", "orders-eu", "a" * 64])
    def test_an_invalid_name_exits_2(self, cli: Cli, name: str) -> None:
        result = cli("new", name)
        assert result.returncode == 2, result
        assert "not a valid pipeline name" in result.stderr
        assert not (cli.cwd / name).exists()

    def test_an_existing_folder_is_not_overwritten(self, cli: Cli, shop: Path) -> None:
        before = (shop / "config.json").read_text()
        result = cli("new", "shop")
        assert result.returncode == 2, result
        assert "already exists" in result.stderr
        assert (shop / "config.json").read_text() == before

    def test_dir_chooses_the_parent_folder(self, cli: Cli) -> None:
        result = cli("new", "orders", "--dir", "pipelines")
        assert result.returncode == 0, result
        assert (cli.cwd / "pipelines" / "orders" / "config.json").is_file()

    def test_an_unknown_source_type_is_a_usage_error(self, cli: Cli) -> None:
        result = cli("new", "orders", "--source", "oracle")
        assert result.returncode == 2, result
        assert "'oracle' is not one of" in result.stderr
