"""Plugins: built-ins register like third parties; hooks fire; broken plugins warn."""

from __future__ import annotations

from pathlib import Path

import pytest

import drivetrain.contrib
from drivetrain import Pipeline, RunStatus, hookimpl
from drivetrain.connectors.files import FilesSource
from drivetrain.errors import ConfigError, PipelineNotFound
from drivetrain.phases import Audit
from drivetrain.plugins import connector_class, get_plugin_manager, registered_pipelines
from drivetrain.results import AuditResult

from .factory import make_pipeline_dir


class TestRegistry:
    def test_builtin_connectors_are_found_by_type(self):
        assert connector_class("source", "files", json_path="source_system") is FilesSource

    def test_unknown_type_suggests_the_closest(self):
        with pytest.raises(ConfigError, match=r"source_system.type: unknown source type 'file'; did you mean 'files'\?"):
            connector_class("source", "file", json_path="source_system")

    def test_a_warehouse_type_is_not_a_source(self):
        with pytest.raises(ConfigError, match="unknown source type 'duckdb'"):
            connector_class("source", "duckdb", json_path="source_system")

    def test_contrib_pipelines_are_registered_by_folder(self):
        shipped = Path(drivetrain.contrib.__file__).parent
        folders = {p.name: p for p in shipped.iterdir() if (p / "config.json").is_file()}
        assert {"demo", "lab_results", "genetic_tests", "incidents"} <= set(folders)
        registered = registered_pipelines()
        assert {name: registered.get(name) for name in folders} == folders

    def test_unknown_pipeline_names_what_exists(self):
        with pytest.raises(PipelineNotFound, match="no pipeline 'nope'"):
            Pipeline.load("nope")


class RecordingPlugin:
    def __init__(self):
        self.events = []

    @hookimpl
    def drivetrain_run_started(self, record):
        self.events.append(("run", record.pipeline_status.value))

    @hookimpl
    def drivetrain_phase_finished(self, phase, state):
        self.events.append((phase, state.status.value))

    @hookimpl
    def drivetrain_run_finished(self, record):
        self.events.append(("run", record.pipeline_status.value))


class StrictAudit(Audit):
    def run(self, ctx):
        return AuditResult(audit_passed=False, error_message="org-wide rule: no rejects allowed")


class OrgPlugin:
    @hookimpl
    def drivetrain_register_phases(self):
        return {"audit": StrictAudit}


class TestHooks:
    def test_lifecycle_hooks_see_every_phase(self, tmp_path):
        plugin = RecordingPlugin()
        get_plugin_manager().register(plugin)
        with Pipeline.load(make_pipeline_dir(tmp_path / "p")) as pipeline:
            pipeline.runner().run(pipeline.grid.first())
        assert plugin.events[0] == ("run", "RUNNING") and plugin.events[-1] == ("run", "SUCCESS")
        assert ("audit", "COMPLETED") in plugin.events and ("target_cleaning", "SKIPPED") in plugin.events

    def test_a_plugin_can_replace_a_default_phase_for_every_pipeline(self, tmp_path):
        get_plugin_manager().register(OrgPlugin())
        with Pipeline.load(make_pipeline_dir(tmp_path / "p")) as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phase_failed == "audit" and "org-wide rule" in record.phases["audit"].error_message

    def test_a_failing_lifecycle_hook_warns_and_the_run_goes_on(self, tmp_path):
        class Broken:
            @hookimpl
            def drivetrain_run_started(self, record):
                raise RuntimeError("plugin bug")

        get_plugin_manager().register(Broken())
        with Pipeline.load(make_pipeline_dir(tmp_path / "p")) as pipeline, pytest.warns(UserWarning, match="plugin bug"):
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS


class TestUserScripts:
    def test_spec_style_scripts_run_unchanged(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p")
        scripts = folder / "user_scripts"
        scripts.mkdir()
        (scripts / "target_count.py").write_text(
            "def target_count(config, record):\n"
            "    assert config['pipeline_metadata']['pipeline_name'] == 'lab'\n"
            "    assert record['query_window_start_timestamp'].startswith('2025-11-15T00:00')\n"
            "    return {'skip_dag_run': False, 'error_message': None, 'count': 0}\n"
        )
        (scripts / "audit.py").write_text(
            "def audit(config, record):\n"
            "    return {'skip_dag_run': True, 'error_message': 'target empty', 'audit_passed': False}\n"
        )
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phases["target_count"].phase_specific_details["count"] == 0
        assert record.phase_failed == "audit" and record.phases["audit"].error_message == "target empty"

    def test_a_script_named_after_no_phase_is_a_config_error(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p")
        (folder / "user_scripts").mkdir()
        (folder / "user_scripts" / "tranform.py").write_text("def tranform(config, record): pass\n")
        with pytest.raises(ConfigError, match="not a phase name"):
            Pipeline.load(folder)

    def test_pipeline_py_subclass_is_used(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p")
        (folder / "pipeline.py").write_text(
            "from drivetrain import Pipeline, TargetCleaning, CleaningResult\n"
            "class Clean(TargetCleaning):\n"
            "    def run(self, ctx):\n"
            "        return CleaningResult(details={'cleaning_type': 'custom', 'records_affected': 7})\n"
            "class Lab(Pipeline):\n"
            "    phase_classes = {'target_cleaning': Clean}\n"
        )
        with Pipeline.load(folder, overrides={"phases.target_cleaning.enabled": True}) as pipeline:
            assert type(pipeline).__name__ == "Lab"
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phases["target_cleaning"].phase_specific_details["records_affected"] == 7
