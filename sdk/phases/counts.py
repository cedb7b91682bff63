"""The three count phases: records in the window at source, stage and target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivetrain.phase_names import SOURCE_TO_STAGE_TRANSFER
from drivetrain.results import CountResult
from drivetrain.settle import reload_details

from .base import BasePhase, PhaseContext

if TYPE_CHECKING:
    from drivetrain.config import SourceCountConfig
    from drivetrain.record import PhaseState


class SourceCount(BasePhase):
    """Count the source's records in the window (the baseline for the audit)."""

    name = "source_count"
    #: The audit compares this count with what the extract read: when the extract runs again,
    #: so does the count (a count carried from an earlier attempt would describe other data).
    carried_only_with = (SOURCE_TO_STAGE_TRANSFER,)

    @property
    def settings(self) -> SourceCountConfig:
        """``phases.source_count``, typed as this phase's settings."""
        return self.pipeline.config.phases.source_count

    def run(self, ctx: PhaseContext) -> CountResult:
        source = ctx.pipeline.source()
        count = source.count(ctx.window)
        ctx.log.info("source count: %d", count)
        lost = source.unplaceable()  # of this count (before another question to the source)
        # Settling compares later fingerprints with this one: which records the window held when it was loaded.
        fingerprint = source.fingerprint(ctx.window) if ctx.pipeline.config.query_window.settle_horizon else None
        details = reload_details(ctx.previous_attempts, count, fingerprint)  # a loaded window again: how its source changed
        if details:
            ctx.log.info("reloading a loaded window: %s", details["reload"]["reason"])
        if fingerprint is not None:
            details["fingerprint"] = fingerprint
        if lost is not None and lost.records:  # records of no window: counted, never silent
            ctx.log.warning("source: %s", lost.summary())
            if ctx.config.source.get("on_unplaceable", "warn") == "fail":
                return CountResult(count=count, details={**lost.details(), **details},
                                   error_message=f"{lost.summary()} (on_unplaceable: fail); fix or remove them, "
                                                 "or set source_system.on_unplaceable to warn")
            return self._counted(ctx, count, {**lost.details(), **details})
        return self._counted(ctx, count, details)

    def still_valid(self, ctx: PhaseContext, state: PhaseState) -> str | None:
        """A carried count holds only while the source still counts the same: after a fix at the
        source (or a change in how the window is read) it runs again, and every phase after it."""
        counted = state.phase_specific_details.get("count")
        if counted is None:
            return None
        now = ctx.pipeline.source().count(ctx.window)
        if now != counted:
            return f"the source now counts {now} records in the window, not the {counted} counted before"
        return None

    def _counted(self, ctx: PhaseContext, count: int, details: dict[str, object]) -> CountResult:
        if count == 0:
            mode = self.settings.on_empty_window
            if mode == "fail":
                return CountResult(count=0, details=details,
                                   error_message=f"the source has no records in {ctx.window} (on_empty_window: fail)")
            if mode == "skip":
                return CountResult(count=0, skip_remaining=True,
                                   details={**details, "note": "empty window skipped (on_empty_window: skip)"})
        return CountResult(count=count, details=details)


class StageCount(BasePhase):
    """Count the stage table's rows in the window."""

    name = "stage_count"

    def run(self, ctx: PhaseContext) -> CountResult:
        count = ctx.pipeline.stage().count(ctx.window)
        ctx.log.info("stage count: %d", count)
        return CountResult(count=count)


class TargetCount(BasePhase):
    """Count the window's rows the transfer wrote: pending until published (or in the target, with publish: direct)."""

    name = "target_count"

    def run(self, ctx: PhaseContext) -> CountResult:
        from .merge_audit import merged_target_count

        merged = merged_target_count(ctx)  # a merge is counted by key against the stage window
        if merged is not None:
            ctx.log.info("target count: %d (merge: %s)", merged[0], merged[1])
            return CountResult(count=merged[0], details=merged[1])
        from .publish import written_table

        table = written_table(ctx)  # the pending rows the audit decides on, unless publish is direct
        count = table.count(ctx.window)
        ctx.log.info("target count: %d (in %s)", count, table.ref)
        return CountResult(count=count, details={"counted_in": str(table.ref)})
