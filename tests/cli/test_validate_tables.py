"""``drivetrain validate`` on what tables are for: role collisions, owners, risky load strategies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Cli, edit_config


def old_scaffold_target(config: dict) -> None:
    """What ``drivetrain new`` wrote before merging: keys, the default replace_window."""
    target = config["target_system"]
    target.pop("load_strategy")
    target["dedup_keys"] = target.pop("merge_keys")


class TestValidateTables:
    def test_the_scaffold_validates_without_notes(self, cli: Cli, shop: Path) -> None:
        result = cli("validate", "./shop")
        assert result.returncode == 0, result
        assert "note:" not in result.stdout

    def test_replace_window_on_an_update_time_is_explained(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, old_scaffold_target)
        result = cli("validate", "./shop")
        assert result.returncode == 0, result
        assert "note: target_system.load_strategy is 'replace_window' but the query field 'updated_at' looks like an update time" in result.stdout
        assert "set load_strategy 'merge' with merge_keys ['order_id']" in result.stdout

    @pytest.mark.parametrize("key, value", [("merge_keys", ["order_id"]), ("delete_missing", True), ("version_column", "updated_at")])
    def test_merge_only_keys_without_merge_exit_2(self, cli: Cli, shop: Path, key: str, value: object) -> None:
        def replace_with(config: dict[str, Any]) -> None:
            target = config["target_system"]
            target.pop("merge_keys", None)
            target.update({"load_strategy": "replace_window", key: value})

        edit_config(shop, replace_with)
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert f"target_system.{key}: is only used with load_strategy 'merge'" in result.stderr

    def test_merge_without_keys_is_a_config_error(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].pop("merge_keys"))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "target_system: 'merge_keys' is required when load_strategy is 'merge'" in result.stderr

    def test_a_stage_equal_to_the_target_exits_2_naming_the_key(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].update(table=c["stage_system"]["table"]))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "target_system.table: the target table would be main.stg_shop, which is already the stage table" in result.stderr

    def test_a_target_another_pipeline_owns_fails_the_target_check(self, cli: Cli, shop: Path, scaffold_template: Path) -> None:
        import shutil

        assert cli("run", "./shop").returncode == 0
        other = cli.cwd / "other"
        shutil.copytree(scaffold_template, other)

        def same_target(config: dict) -> None:
            config["pipeline_metadata"]["pipeline_name"] = "other"
            config["stage_system"]["table"] = "stg_other"
            for section in ("stage_system", "target_system"):
                config[section]["path"] = "../shop/warehouse.duckdb"

        edit_config(other, same_target)
        result = cli("validate", "./other")
        assert result.returncode == 1, result
        assert "FAILED  target_system" in result.stdout and "belongs to pipeline 'shop'" in result.stdout
        assert "target_system.shared: true" in result.stdout
