"""Two roles of one pipeline naming the same table (or the archive inside the source) is a config error."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.config import PipelineConfig
from drivetrain.errors import ConfigError

from .factory import BASE_CONFIG, DAY, make_pipeline_dir


def config(**sections: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(BASE_CONFIG)
    for name, changes in sections.items():
        data.setdefault(name, {}).update(changes)
    return data


def problems_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        PipelineConfig.from_dict(data)
    return str(caught.value)


class TestRoleCollisions:
    def test_the_base_config_has_no_collision(self) -> None:
        PipelineConfig.from_dict(config())

    def test_a_stage_that_is_the_target_is_refused_at_the_target_table_key(self) -> None:
        message = problems_of(config(target_system={"table": "stg_tests"}))
        assert "target_system.table: the target table would be main.stg_tests, which is already the stage table (stage_system.table)" in message

    def test_names_differing_only_by_case_are_one_table(self) -> None:
        assert "target_system.table" in problems_of(config(target_system={"table": "STG_Tests"}))

    def test_a_drive_table_that_is_the_target_is_refused_at_the_drive_table_key(self) -> None:
        data = config(drive_table={"type": "duckdb", "path": "warehouse.duckdb", "table": "tests"})
        message = problems_of(data)
        assert "drive_table.table" in message or "target_system.table" in message
        assert "the drive table" in message and "the target table" in message

    def test_a_target_named_like_the_default_drive_table_is_refused(self) -> None:
        message = problems_of(config(target_system={"table": "pipeline_execution_drive"}))
        assert "target_system.table: the target table would be main.pipeline_execution_drive, which is already the drive table" in message

    def test_a_target_that_is_the_stages_rejects_table_is_refused(self) -> None:
        message = problems_of(config(target_system={"table": "stg_tests__rejects"}))
        assert "target_system.table" in message and "the stage's rejects table" in message

    def test_a_stage_that_is_the_targets_scratch_table_is_refused(self) -> None:
        message = problems_of(config(stage_system={"table": "tests__drivetrain_transfer"}))
        assert "stage_system.table" in message and "scratch" in message

    def test_a_target_named_like_a_bookkeeping_table_is_refused(self) -> None:
        assert "drivetrain_leases" in problems_of(config(target_system={"table": "drivetrain_leases"}))

    def test_the_same_name_in_another_schema_or_file_is_fine(self) -> None:
        PipelineConfig.from_dict(config(target_system={"table": "stg_tests", "schema": "mart"}))
        PipelineConfig.from_dict(config(target_system={"table": "stg_tests", "path": "target.duckdb"}))

    def test_an_archive_inside_the_folder_the_source_reads_is_refused(self) -> None:
        data = config(source_system={"path": "data"})
        data["phases"]["stage_cleaning"]["archive_location"] = "data/archive"
        assert "phases.stage_cleaning.archive_location: 'data/archive' is inside the folder" in problems_of(data)

    def test_an_archive_beside_a_jsonl_glob_is_fine(self) -> None:
        data = config(source_system={"path": "data/*.jsonl"})
        data["phases"]["stage_cleaning"]["archive_location"] = "data/archive"
        PipelineConfig.from_dict(data)


class TestBeforeTheFix:
    """What the collision did when validate let it through: the run emptied its own window."""

    def test_a_pipeline_whose_stage_is_its_target_never_reaches_a_run(self, tmp_path: Path) -> None:
        root = make_pipeline_dir(tmp_path / "p")
        data = json.loads((root / "config.json").read_text())
        data["target_system"]["table"] = data["stage_system"]["table"]
        (root / "config.json").write_text(json.dumps(data))
        with pytest.raises(ConfigError, match="target_system.table"):
            Pipeline.load(root)

    def test_the_base_pipeline_still_runs(self, tmp_path: Path) -> None:
        root = make_pipeline_dir(tmp_path / "p")
        with Pipeline.load(root) as pipeline:
            record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
        assert record.pipeline_status is RunStatus.SUCCESS
