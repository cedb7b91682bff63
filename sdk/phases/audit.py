"""The audit: counts from source to stage to target, against the configured tolerances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivetrain.results import AuditResult

from .base import BasePhase, PhaseContext

if TYPE_CHECKING:
    from drivetrain.config import AuditConfig


def loss_percent(before: int, after: int) -> float:
    """Share of ``before`` missing from ``after``, in percent; 0 when both are 0.

    Negative when ``after`` holds more than ``before`` (an empty ``before`` with rows after
    counts as -100%).
    """
    if before == 0:
        return 0.0 if after == 0 else -100.0
    return (before - after) * 100.0 / before


def within(loss: float, tolerance: float) -> bool:
    """Loss equal to the tolerance passes; rounding noise below 1e-9 % is ignored."""
    return round(loss, 9) <= tolerance


class Audit(BasePhase):
    """Compare source, stage and target counts; explain every gap; fail outside tolerance."""

    name = "audit"

    @property
    def settings(self) -> AuditConfig:
        """``phases.audit``: the settings with the tolerances, typed as such."""
        return self.pipeline.config.phases.audit

    def run(self, ctx: PhaseContext) -> AuditResult:
        source = ctx.count_of("source_count")
        stage = ctx.count_of("stage_count")
        target = ctx.count_of("target_count")
        s2s_tol = self.settings.source_to_stage_tolerance_percent
        s2t_tol = self.settings.stage_to_target_tolerance_percent
        problems: list[str] = []
        details: dict[str, Any] = {
            "source_count": source, "stage_count": stage, "target_count": target,
            "source_to_stage_tolerance_percent": s2s_tol, "stage_to_target_tolerance_percent": s2t_tol,
            "source_to_stage_loss_percent": None, "stage_to_target_loss_percent": None,
        }
        transfer_in = ctx.details("source_to_stage_transfer")
        transfer_out = ctx.details("stage_to_target_transfer")
        reasons = self.loss_reasons(transfer_in, transfer_out)
        if source is not None and stage is not None:
            loss = loss_percent(source, stage)
            details["source_to_stage_loss_percent"] = round(loss, 6)
            if stage > source:
                problems.append(
                    f"the stage holds {stage} rows but the source counted {source}: rows were loaded twice, "
                    "or the source gained rows between the count and the extract"
                )
            elif not within(loss, s2s_tol):
                problems.append(f"source -> stage lost {loss:.4g}% ({source - stage} of {source}), above the tolerance {s2s_tol:g}%")
            extracted, rejected = transfer_in.get("rows_read"), transfer_in.get("records_failed")
            if extracted is not None and extracted != source:
                problems.append(f"the source returned {extracted} records to the extract but counted {source}: it changed "
                                "in between; run the window again (the count and the extract run again together)")
            elif extracted is not None and rejected is not None and stage + rejected < source:
                problems.append(f"{source - stage - rejected} of {source} source records are neither in the stage ({stage}) "
                                f"nor rejected ({rejected})")
            elif extracted is not None and rejected is not None and stage + rejected > source and stage <= source:
                problems.append(f"the stage ({stage}) and the rejects ({rejected}) hold {stage + rejected - source} more "
                                f"records than the source's {source}: a record was both loaded and rejected, or counted twice")
        else:
            reasons.append("source -> stage not compared: a count phase did not run")
        if stage is not None and target is not None:
            loss = loss_percent(stage, target)
            details["stage_to_target_loss_percent"] = round(loss, 6)
            if target > stage and not ctx.config.target_keys.is_merge:
                problems.append(f"the target holds {target} rows for the window but the stage only {stage}: rows were loaded twice")
            elif not within(loss, s2t_tol):
                problems.append(f"stage -> target lost {loss:.4g}% ({stage - target} of {stage}), above the tolerance {s2t_tol:g}%")
        else:
            reasons.append("stage -> target not compared: a count phase did not run")
        if source == 0 and stage == 0 and target in (0, None):
            reasons.append("the window is empty at the source")
        details["loss_reasons"] = reasons
        if problems:
            return AuditResult(audit_passed=False, skip_dag_run=True, error_message="; ".join(problems), details=details)
        return AuditResult(audit_passed=True, details=details)

    @staticmethod
    def loss_reasons(transfer_in: Mapping[str, Any], transfer_out: Mapping[str, Any]) -> list[str]:
        reasons = []
        for reason, count in (transfer_in.get("reject_reasons") or {}).items():
            reasons.append(f"source -> stage: {count} rejected: {reason}")
        for reason, count in (transfer_out.get("reject_reasons") or {}).items():
            reasons.append(f"stage -> target: {count} dropped: {reason}")
        return reasons
