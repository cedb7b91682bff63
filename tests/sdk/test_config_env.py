"""``${VAR}`` and ``${VAR:-default}`` in config values: resolved before validation, never for secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivetrain import Pipeline
from drivetrain.config import load_config
from drivetrain.config.env import resolve, substitutions
from drivetrain.config.loader import Problems
from drivetrain.errors import ConfigError
from tests.sdk.factory import make_pipeline_dir, make_rows


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_pipeline_dir(tmp_path / "lab", make_rows(20, hours=1, invalid_every=0, duplicates=0))


def _set(folder: Path, **values: str) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for dotted, value in values.items():
        section, key = dotted.split("__")
        config[section][key] = value
    path.write_text(json.dumps(config))


class TestResolving:
    def test_a_set_variable_fills_hosts_tables_and_paths(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LAB_TARGET", "tests_prod")
        monkeypatch.setenv("LAB_DATA", "data")
        _set(folder, target_system__table="${LAB_TARGET}", source_system__path="${LAB_DATA}/records.jsonl")
        config = load_config(folder)
        assert config.target.options["table"] == "tests_prod"
        assert config.source.path("path") == folder / "data/records.jsonl"

    def test_the_default_is_used_when_the_variable_is_unset(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("LAB_ENV", raising=False)
        _set(folder, target_system__table="tests_${LAB_ENV:-dev}")
        assert load_config(folder).target.options["table"] == "tests_dev"
        monkeypatch.setenv("LAB_ENV", "prod")
        assert load_config(folder).target.options["table"] == "tests_prod"

    def test_an_unset_variable_without_default_names_the_path_and_the_variable(
            self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("LAB_TARGET", raising=False)
        _set(folder, target_system__table="${LAB_TARGET}")
        with pytest.raises(ConfigError) as caught:
            load_config(folder)
        lines = str(caught.value).splitlines()
        assert [line for line in lines if "target_system.table" in line] == [
            f"{folder / 'config.json'}: target_system.table: environment variable LAB_TARGET is not set "
            "(used as ${LAB_TARGET}); set it, or give a default with ${LAB_TARGET:-default}"]

    def test_the_resolved_value_is_validated_like_a_written_one(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LAB_TARGET", "not a table!")
        _set(folder, target_system__table="${LAB_TARGET}")
        with pytest.raises(ConfigError, match="target_system.table: table name 'not a table!' is not a valid identifier"):
            load_config(folder)

    def test_comment_keys_are_left_alone(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
        _set(folder, target_system___comment="set ${NOT_SET_ANYWHERE} in production")
        load_config(folder)

    def test_a_double_dollar_writes_a_literal_reference(self) -> None:
        problems = Problems("c.json")
        assert resolve({"a": "cost $${X}"}, problems, {}) == {"a": "cost ${X}"}
        assert not problems

    def test_the_drive_tables_snapshot_holds_the_resolved_value(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LAB_TARGET", "tests_prod")
        _set(folder, target_system__table="${LAB_TARGET}")
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())
        assert record.pipeline_status.value == "SUCCESS"
        assert record.config_snapshot is not None
        assert record.config_snapshot["target_system"]["table"] == "tests_prod"


class TestSecrets:
    @pytest.mark.parametrize("key", ["password", "api_key", "db_password", "token"])
    def test_a_reference_in_a_secret_field_is_refused_pointing_at_credentials_ref(
            self, folder: Path, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
        monkeypatch.setenv("LAB_SECRET", "hunter2")
        path = folder / "config.json"
        config = json.loads(path.read_text())
        config["source_system"][key] = "${LAB_SECRET}"
        path.write_text(json.dumps(config))
        with pytest.raises(ConfigError) as caught:
            load_config(folder)
        text = str(caught.value)
        assert f"source_system.{key}: a ${{...}} reference cannot fill a secret" in text
        assert "credentials_ref" in text
        assert "hunter2" not in text


names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
plain = st.text(alphabet=st.characters(exclude_characters="$"), max_size=20)


class TestProperties:
    @given(value=st.text(max_size=30).filter(lambda s: "${" not in s))
    def test_a_value_without_a_reference_is_unchanged(self, value: str) -> None:
        problems = Problems("c.json")
        assert resolve({"k": [value]}, problems, {}) == {"k": [value]}
        assert not problems

    @given(name=names, value=plain, default=plain.filter(lambda s: "}" not in s), before=plain, after=plain)
    def test_a_set_variable_wins_over_its_default(self, name: str, value: str, default: str, before: str, after: str) -> None:
        problems = Problems("c.json")
        written = f"{before}${{{name}:-{default}}}{after}"
        assert resolve({"k": written}, problems, {name: value}) == {"k": before + value + after}
        assert resolve({"k": written}, problems, {}) == {"k": before + default + after}
        assert not problems


class TestValidateShowsThem:
    def test_substitutions_list_the_written_and_resolved_values(self) -> None:
        subs = substitutions({"target_system": {"table": "t_${ENV:-dev}", "path": "${DIR}/x"}}, {"DIR": "/srv"})
        assert [(s.path, s.written, s.resolved, s.defaulted) for s in subs] == [
            ("target_system.table", "t_${ENV:-dev}", "t_dev", ("ENV",)),
            ("target_system.path", "${DIR}/x", "/srv/x", ()),
        ]


class TestPackagedPipelines:
    def test_relative_paths_resolve_against_the_config_file_not_the_working_folder(
            self, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        config = load_config(folder / "config.json")
        assert config.source.path("path") == folder / "data/records.jsonl"
        assert config.stage.path("path") == folder / "warehouse.duckdb"
