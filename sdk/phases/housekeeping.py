"""The two phases every attempt runs: stale handling and pre-validation.

Pre-validation decides whether this run is fresh or continues a failed attempt at the same
window, and which phases the failed attempt already completed. Those are skipped and their
results carried forward, after a check that what they produced is still there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from drivetrain.drive import is_partial
from drivetrain.errors import ConnectorError
from drivetrain.phase_names import ALWAYS_RUN, PHASE_NAMES
from drivetrain.record import PhaseState, PhaseStatus, RunStatus
from drivetrain.transitions import reference_attempt

from ..results import PhaseResult  # relative: mypy run on sdk/ then knows the attrs fields it adds
from .base import BasePhase, PhaseContext
from .prechecks import structure_checks


class StalePipelineHandling(BasePhase):
    """Close runs of this pipeline whose process died, whatever their window.

    At once where the drive store can tell (DuckDB: the window's file lock is free; leases
    released, taken over or expired), otherwise once they sent no heartbeat for
    ``timeout_minutes``.
    """

    name = "stale_pipeline_handling"

    def run(self, ctx: PhaseContext) -> PhaseResult:
        minutes = float(self.settings.timeout_minutes or 120)
        limit = datetime.now(UTC) - timedelta(minutes=minutes)
        found = []
        for record in ctx.drive.history(ctx.pipeline.name, status=[RunStatus.RUNNING]) if ctx.drive else []:
            if record.pipeline_id == ctx.run_id:
                continue
            last = record.heartbeat_at or record.pipeline_start_timestamp
            dead = ctx.drive.dead_reason(record) if ctx.drive else None
            if dead is not None:
                reason = f"its process stopped before finishing: {dead}"
            elif last < limit:
                reason = f"stale: no heartbeat since {last.isoformat()} (timeout {minutes:g} minutes); the process running it is gone"
            else:
                continue
            if ctx.close_run(record, reason):
                found.append(record.pipeline_id)
        ctx.log.info("stale runs closed: %d", len(found))
        return PhaseResult(details={
            "stale_records_found": len(found),
            "records_resolved": len(found),
            "resolved_runs": found,
            "timeout_minutes": minutes,
        })


@attrs.frozen(kw_only=True)
class PreValidationResult(PhaseResult):
    """Pre-validation's verdict: fresh or continuation, and what to skip."""

    is_fresh_run: bool = True
    carried: dict[str, PhaseState] = attrs.field(factory=dict)
    """Phase name -> the completed state carried forward (``carried_from`` set)."""

    def phase_details(self) -> dict[str, Any]:
        return {
            **self.details,
            "is_fresh_run": self.is_fresh_run,
            "previous_phases_completed": list(self.carried),
            "phases_to_skip": list(self.carried),
        }


def _done(state: PhaseState) -> bool:
    return state.status is PhaseStatus.COMPLETED or (state.status is PhaseStatus.SKIPPED and state.carried_from is not None)


class PreValidation(BasePhase):
    """Decide fresh run or continuation; check every configured system is reachable."""

    name = "pre_validation"

    def run(self, ctx: PhaseContext) -> PhaseResult:
        checks = self.check_systems(ctx) + structure_checks(ctx)
        carried, notes = self.plan_continuation(ctx)
        for note in notes:
            ctx.log.info("%s", note)
        return PreValidationResult(
            is_fresh_run=not carried,
            carried=carried,
            details={"validation_checks": checks, "continuation_notes": notes},
        )

    def carried_phases(self, result: PhaseResult) -> Mapping[str, PhaseState]:
        """The phases :meth:`plan_continuation` carried, as :meth:`run` reported them."""
        return result.carried if isinstance(result, PreValidationResult) else {}

    def check_systems(self, ctx: PhaseContext) -> list[dict[str, Any]]:
        """Run each system's check(); the first failure raises with the system named."""
        pipeline = ctx.pipeline
        systems: list[tuple[str, Any]] = [
            ("source_system", pipeline.source),
            ("stage_system", pipeline.stage),
            ("target_system", pipeline.target),
        ]
        cleaning = pipeline.config.phases.stage_cleaning
        if cleaning.enabled and cleaning.archive_before_delete:
            systems.append(("phases.stage_cleaning.archive_location", pipeline.archive))
        results = []
        for label, get in systems:
            try:
                lines = get().check()
            except ConnectorError as exc:
                raise type(exc)(f"pre-validation: {label}: {exc}") from exc
            results.append({"check": label, "status": "PASSED", "detail": lines})
        return results

    def plan_continuation(self, ctx: PhaseContext) -> tuple[dict[str, PhaseState], list[str]]:
        """Which phases a failed attempt completed and can be skipped now, and why (notes)."""
        reference = reference_attempt(ctx.previous_attempts)
        if reference is None:
            return {}, ["fresh run: no unfinished earlier attempt at this window"]
        if is_partial(reference):
            return {}, [f"fresh run: {reference.pipeline_id} ran before the window ended (partial), so none of its work is carried"]
        if reference.config_hash != ctx.record.config_hash:
            return {}, [f"fresh run: the config changed since {reference.pipeline_id}, so every phase runs again"]
        carried: dict[str, PhaseState] = {}
        notes = [f"continuing {reference.pipeline_id} (failed at {reference.phase_failed or 'an unknown point'})"]
        phases = {p.name: p for p in ctx.pipeline.phases()}
        for name in PHASE_NAMES:
            if name in ALWAYS_RUN:
                continue
            state = reference.phases[name]
            if state.status is PhaseStatus.SKIPPED and state.carried_from is None:
                continue  # disabled, or skipped on purpose: nothing to carry, nothing missing
            if not _done(state):
                break
            problem = phases[name].still_valid(ctx, state)
            if problem:
                notes.append(f"{name} runs again: {problem}")
                break
            carried[name] = attrs.evolve(
                state,
                status=PhaseStatus.SKIPPED,
                skip_reason=f"completed by {state.carried_from or reference.pipeline_id}",
                carried_from=state.carried_from or reference.pipeline_id,
            )
        for name in list(carried):
            again = [p for p in phases[name].carried_only_with if p not in carried and ctx.config.phases.get(p).enabled]
            if again:
                del carried[name]
                notes.append(f"{name} runs again: {', '.join(again)} runs again in this attempt and is compared with it")
        if carried:
            notes.append("skipping " + ", ".join(carried))
        return carried, notes
