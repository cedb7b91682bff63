"""The three count phases: records in the window at source, stage and target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivetrain.results import CountResult
from drivetrain.settle import reload_details

from .base import BasePhase, PhaseContext

if TYPE_CHECKING:
    from drivetrain.config import SourceCountConfig


class SourceCount(BasePhase):
    """Count the source's records in the window (the baseline for the audit)."""

    name = "source_count"

    @property
    def settings(self) -> SourceCountConfig:
        """``phases.source_count``, typed as this phase's settings."""
        return self.pipeline.config.phases.source_count

    def run(self, ctx: PhaseContext) -> CountResult:
        count = ctx.pipeline.source().count(ctx.window)
        ctx.log.info("source count: %d", count)
        reload = reload_details(ctx.previous_attempts, count)  # a loaded window again: how its source changed
        if reload:
            ctx.log.info("reloading a loaded window: %s", reload["reload"]["reason"])
        if count == 0:
            mode = self.settings.on_empty_window
            if mode == "fail":
                return CountResult(count=0, error_message=f"the source has no records in {ctx.window} (on_empty_window: fail)",
                                   details=reload)
            if mode == "skip":
                return CountResult(count=0, skip_remaining=True, details={"note": "empty window skipped (on_empty_window: skip)", **reload})
        return CountResult(count=count, details=reload)


class StageCount(BasePhase):
    """Count the stage table's rows in the window."""

    name = "stage_count"

    def run(self, ctx: PhaseContext) -> CountResult:
        count = ctx.pipeline.stage().count(ctx.window)
        ctx.log.info("stage count: %d", count)
        return CountResult(count=count)


class TargetCount(BasePhase):
    """Count the target table's rows in the window."""

    name = "target_count"

    def run(self, ctx: PhaseContext) -> CountResult:
        count = ctx.pipeline.target().count(ctx.window)
        ctx.log.info("target count: %d", count)
        return CountResult(count=count)
