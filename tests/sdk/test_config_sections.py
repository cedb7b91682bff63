"""Typed views of the core keys of the connector sections (config.source_keys, target_keys...)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pytest

from drivetrain import Pipeline
from drivetrain.config import PipelineConfig, SourceKeys, StageKeys, TargetKeys
from drivetrain.validation import RecordValidator

from .factory import BASE_CONFIG, make_pipeline_dir


def config(**sections: dict[str, Any]) -> PipelineConfig:
    data = copy.deepcopy(BASE_CONFIG)
    for name, changes in sections.items():
        data[name].update(changes)
    return PipelineConfig.from_dict(data)


class TestDefaults:
    def test_a_plain_config_gets_the_core_defaults(self) -> None:
        cfg = config()
        assert cfg.source_keys == SourceKeys(query_field="reported_at", batch_size=50)
        assert cfg.stage_keys == StageKeys(shared=False)
        assert cfg.target_keys == TargetKeys(dedup_keys=("test_id",))
        assert cfg.target_keys.load_strategy == "replace_window" and not cfg.target_keys.is_merge

    def test_the_source_batch_size_defaults_to_ten_thousand(self) -> None:
        data = copy.deepcopy(BASE_CONFIG)
        del data["source_system"]["batch_size"]
        assert PipelineConfig.from_dict(data).source_keys.batch_size == 10_000


class TestTargetKeys:
    def test_a_merge_reads_its_keys_version_column_and_deletes(self) -> None:
        keys = config(target_system={"load_strategy": "merge", "merge_keys": ["test_id"], "version_column": "reported_at",
                                     "delete_missing": True}).target_keys
        assert keys.is_merge and keys.merge_keys == ("test_id",) and keys.active_merge_keys == ("test_id",)
        assert keys.version_column == "reported_at" and keys.delete_missing is True

    def test_merge_keys_count_only_when_merging(self) -> None:
        assert TargetKeys(merge_keys=["id"]).active_merge_keys == ()  # type: ignore[arg-type]

    def test_the_query_column_follows_a_rename_of_the_source_field(self) -> None:
        keys = config(target_system={"rename": {"reported_at": "reported"}}).target_keys
        assert keys.rename == {"reported_at": "reported"}
        assert keys.query_field_for("reported_at") == "reported"
        assert keys.query_field_for(None) is None

    def test_an_explicit_target_query_field_wins_over_the_rename(self) -> None:
        keys = TargetKeys(query_field="loaded_at", rename={"reported_at": "reported"})  # type: ignore[arg-type]
        assert keys.query_field_for("reported_at") == "loaded_at"

    def test_the_typed_values_are_read_only(self) -> None:
        keys = config(target_system={"rename": {"reported_at": "reported"}}).target_keys
        with pytest.raises(TypeError):
            keys.rename["x"] = "y"  # type: ignore[index]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            keys.load_strategy = "merge"  # type: ignore[misc]


class TestUsedByTheCore:
    def test_the_target_table_is_cut_on_the_renamed_query_field(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", target_system__rename={"reported_at": "reported"})
        with Pipeline.load(folder) as pipeline:
            assert pipeline.target().ref.query_field == "reported"
            assert pipeline.stage().ref.query_field == "reported_at"

    def test_shared_tables_are_marked_shared(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", target_system__shared=True, stage_system__shared=True)
        with Pipeline.load(folder) as pipeline:
            assert pipeline.target().ref.shared and pipeline.stage().ref.shared

    def test_the_record_validator_is_built_from_the_typed_config(self) -> None:
        cfg = config(source_system={"timestamp_unit": "ms"})
        validator = RecordValidator.for_config(cfg)
        assert validator.query_field == "reported_at" and validator.timestamp_unit == "ms"
        assert [c.name for c in validator.columns] == ["test_id", "age", "result", "reported_at"]
        batch = pa.RecordBatch.from_pylist([{"test_id": "T1", "age": 200, "result": "x", "reported_at": 1_763_164_800_000}])
        checked = validator.validate(batch)
        assert checked.rejected == 1
