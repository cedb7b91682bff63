"""The protocol between the runner and phases, declared on BasePhase, and phase registration checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus, hookimpl
from drivetrain.errors import ConfigError
from drivetrain.phases import BasePhase, PhaseContext, PreValidation, SourceCount, StageCount
from drivetrain.plugins import get_plugin_manager
from drivetrain.record import PhaseState, PhaseStatus
from drivetrain.results import PhaseResult

from .factory import make_pipeline_dir


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_pipeline_dir(tmp_path / "lab")


class BarePreValidation(BasePhase):
    """A pre-validation that only says it ran."""

    name = "pre_validation"

    def run(self, ctx: PhaseContext) -> PhaseResult:
        return PhaseResult(details={"checked": True})


class TestDefaults:
    def test_a_phase_plans_no_continuation_by_default(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            assert BarePreValidation(pipeline).plan_continuation(None) == ({}, [])  # type: ignore[arg-type]

    def test_a_phase_carries_nothing_by_default(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            assert BarePreValidation(pipeline).carried_phases(PhaseResult()) == {}

    def test_carried_work_is_valid_by_default(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            assert BarePreValidation(pipeline).still_valid(None, PhaseState()) is None  # type: ignore[arg-type]

    def test_a_pre_validation_without_planning_is_planned_as_a_fresh_run(self, folder: Path) -> None:
        pipeline = type("P", (Pipeline,), {"phase_classes": {"pre_validation": BarePreValidation}})(folder / "config.json")
        with pipeline:
            plan = pipeline.runner().plan(pipeline.grid.first())
        assert [p.phase for p in plan if p.action == "skip" and p.reason != "disabled in config"] == []
        assert plan[1].action == "run" and plan[1].reason == "A pre-validation that only says it ran."


class SkipsTheCounts(PreValidation):
    """A pre-validation that carries the source count through its own result type."""

    def run(self, ctx: PhaseContext) -> PhaseResult:
        return PhaseResult(details={"mine": True})

    def carried_phases(self, result: PhaseResult) -> Mapping[str, PhaseState]:
        return {"source_count": PhaseState(status=PhaseStatus.SKIPPED, skip_reason="counted elsewhere")}


class TestTheRunnerUsesTheDeclaredProtocol:
    def test_phases_a_custom_result_carries_are_recorded_as_skipped(self, folder: Path) -> None:
        pipeline = type("P", (Pipeline,), {"phase_classes": {"pre_validation": SkipsTheCounts}})(folder / "config.json")
        with pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        state = record.phases["source_count"]
        assert state.status is PhaseStatus.SKIPPED and state.skip_reason == "counted elsewhere"
        assert "source_count" in record.phases_skipped

    def test_a_failed_phase_carries_nothing(self, folder: Path) -> None:
        class Fails(SkipsTheCounts):
            def run(self, ctx: PhaseContext) -> PhaseResult:
                return PhaseResult(error_message="no")

        pipeline = type("P", (Pipeline,), {"phase_classes": {"pre_validation": Fails}})(folder / "config.json")
        with pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.FAILED and record.phase_failed == "pre_validation"
        assert record.phases["source_count"].status is not PhaseStatus.SKIPPED


class TestPhaseClassesAreChecked:
    def test_a_class_under_another_phase_s_key_is_refused_naming_both(self) -> None:
        with pytest.raises(ConfigError) as caught:
            type("Mixed", (Pipeline,), {"phase_classes": {"stage_count": SourceCount}})
        message = str(caught.value)
        assert "Mixed.phase_classes" in message and "'stage_count'" in message
        assert "SourceCount" in message and "'source_count'" in message

    def test_a_key_that_is_no_phase_is_refused_with_a_suggestion(self) -> None:
        with pytest.raises(ConfigError, match="'stage_cout' is not a phase name; did you mean 'stage_count'"):
            type("Typo", (Pipeline,), {"phase_classes": {"stage_cout": StageCount}})

    def test_a_value_that_is_no_phase_class_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="'stage_count' maps to .* not a BasePhase subclass"):
            type("Wrong", (Pipeline,), {"phase_classes": {"stage_count": StageCount(None)}})  # type: ignore[arg-type]

    def test_a_class_without_a_name_is_refused(self) -> None:
        class Nameless(BasePhase):
            def run(self, ctx: PhaseContext) -> None:
                return None

        with pytest.raises(ConfigError, match="whose name is ''"):
            type("P", (Pipeline,), {"phase_classes": {"audit": Nameless}})

    def test_matching_subclasses_are_accepted(self, folder: Path) -> None:
        class Mine(StageCount):
            pass

        pipeline = type("P", (Pipeline,), {"phase_classes": {"stage_count": Mine}})(folder / "config.json")
        assert type(pipeline.phase("stage_count")) is Mine

    def test_a_plugin_registering_a_class_under_another_name_is_refused_naming_the_plugin_hook(self, folder: Path) -> None:
        class Plugin:
            @hookimpl
            def drivetrain_register_phases(self) -> dict[str, Any]:
                return {"target_count": StageCount}

        get_plugin_manager().register(Plugin())
        with Pipeline.load(folder) as pipeline, pytest.raises(ConfigError) as caught:
            pipeline.phases()
        message = str(caught.value)
        assert "drivetrain_register_phases" in message and "'target_count'" in message and "'stage_count'" in message
