"""How a run's drive-table row changes, as pure functions: a row and an event in, the new row out.

The runner decides when each event happens and writes each row it gets back; these functions
decide what the row then says, and keep its parts consistent: a phase's state, and the
``phases_completed`` / ``phases_skipped`` / ``phases_pending`` / ``phase_failed`` summaries
beside it. Nothing here reads a clock, a config or the drive table, so each rule can be tested
alone (tests/sdk/test_transitions.py runs random sequences of phase outcomes through them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import attrs

from drivetrain.durations import format_duration
from drivetrain.phase_names import PHASE_NAMES, PRE_VALIDATION
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from drivetrain.results import PhaseResult
from drivetrain.secrets import redact

#: skip_reason of phases skipped because an earlier phase ended the run early (run SKIPPED).
EARLY_END = "the run ended early: "
#: skip_reason of phases turned off in the config.
DISABLED = "disabled in config"


def running(record: RunRecord, name: str, now: datetime) -> RunRecord:
    """``name`` has started at ``now``."""
    return record.with_phase(name, attrs.evolve(record.phases[name], status=PhaseStatus.RUNNING, start_timestamp=now))


def skipped(record: RunRecord, states: Mapping[str, PhaseState]) -> RunRecord:
    """Each phase of ``states`` recorded as skipped with that state (its expected duration kept).

    It leaves ``phases_pending`` and joins ``phases_skipped``, which stays in run order.
    """
    names = list(record.phases_skipped)
    pending = list(record.phases_pending)
    phases = dict(record.phases)
    for name, state in states.items():
        phases[name] = attrs.evolve(state, expected_run_duration=record.phases[name].expected_run_duration)
        if name not in names:
            names.append(name)
        if name in pending:
            pending.remove(name)
    return attrs.evolve(record, phases=phases, phases_skipped=tuple(p for p in PHASE_NAMES if p in names),
                        phases_pending=tuple(pending))


def disabled(names: list[str]) -> dict[str, PhaseState]:
    """The states of phases turned off in the config, for :func:`skipped`."""
    return {name: PhaseState(status=PhaseStatus.SKIPPED, skip_reason=DISABLED) for name in names}


def ended_early(record: RunRecord, name: str, result: PhaseResult) -> dict[str, PhaseState]:
    """The states of the phases after ``name`` still pending, when ``result`` ends the run early.

    Empty unless ``result.skip_remaining``; for :func:`skipped`. A run with such a phase ends
    SKIPPED (see :func:`final_status`).
    """
    if not result.skip_remaining:
        return {}
    reason = EARLY_END + str(result.details.get("note", f"{name} found nothing to do"))
    later = [p for p in PHASE_NAMES[PHASE_NAMES.index(name) + 1:] if record.phases[p].status is PhaseStatus.PENDING]
    return {p: PhaseState(status=PhaseStatus.SKIPPED, skip_reason=reason) for p in later}


def failure(result: PhaseResult | None, error: str | None) -> str | None:
    """Why a phase that returned ``result`` (None: it returned nothing usable) or raised
    ``error`` failed, or None when it completed."""
    if error is not None:
        return error
    if result is None or result.failed:
        return (result.error_message if result else None) or "the phase reported failure (skip_dag_run) without a message"
    return None


def took(start: datetime, now: datetime) -> str:
    """The time from ``start`` to ``now`` as the drive table writes it, never negative: the start
    may come from another process's clock (a run closed by the one that took over its window),
    and clocks differ between machines or step back."""
    return format_duration(max(now - start, timedelta(0)))


def finished(record: RunRecord, name: str, started: PhaseState, *, error: str | None, now: datetime, attempt: int,
             details: Mapping[str, object], continue_on_failure: bool) -> RunRecord:
    """``name`` (whose state was ``started``) ended at ``now``: COMPLETED, or FAILED with ``error``.

    A failure stops the run (``phase_failed``, the first one only) unless ``continue_on_failure``.
    The error is redacted before it is stored.
    """
    start = started.start_timestamp or now
    failed = error is not None
    state = attrs.evolve(
        started,
        status=PhaseStatus.FAILED if failed else PhaseStatus.COMPLETED,
        start_timestamp=start,
        end_timestamp=now,
        actual_run_duration=took(start, now),
        retry_number=attempt,
        error_message=redact(error) if error else None,
        phase_specific_details=dict(details),
    )
    stops = failed and not continue_on_failure
    return record.with_phase(
        name, state,
        phases_completed=record.phases_completed if failed else (*record.phases_completed, name),
        phases_pending=tuple(p for p in record.phases_pending if p != name),
        phase_failed=name if stops and record.phase_failed is None else record.phase_failed,
    )


def still_running(record: RunRecord) -> list[str]:
    """Phases the row shows RUNNING, in run order (a run being closed must end them)."""
    return [name for name in PHASE_NAMES if record.phases[name].status is PhaseStatus.RUNNING]


def final_status(record: RunRecord) -> RunStatus:
    """FAILED with a failed phase, SKIPPED when a phase ended the run early, else SUCCESS."""
    if record.phase_failed:
        return RunStatus.FAILED
    early = any((s.skip_reason or "").startswith(EARLY_END) for s in record.phases.values())
    return RunStatus.SKIPPED if early else RunStatus.SUCCESS


def closed(record: RunRecord, now: datetime) -> RunRecord:
    """The run's final row: its status, end time and duration."""
    return attrs.evolve(
        record,
        pipeline_status=final_status(record),
        pipeline_end_timestamp=now,
        pipeline_run_duration=took(record.pipeline_start_timestamp, now),
    )


def closed_record(record: RunRecord, reason: str, now: datetime) -> RunRecord:
    """``record`` (a RUNNING row whose process is gone) as FAILED, ``reason`` on the phase it stopped in.

    That is the phase still RUNNING, else the next one it would have run (stopped between
    phases), else its last phase (stopped while being finalized): never "unknown".
    """
    running_now = still_running(record)
    pending = [n for n in PHASE_NAMES if n in record.phases_pending and record.phases[n].status is PhaseStatus.PENDING]
    ran = [n for n in PHASE_NAMES if record.phases[n].status is not PhaseStatus.SKIPPED]
    failed_phase = record.phase_failed or next(iter(running_now or pending or ran[-1:]), PHASE_NAMES[-1])
    old = record.phases[failed_phase]
    state = attrs.evolve(old, status=PhaseStatus.FAILED, start_timestamp=old.start_timestamp or now, end_timestamp=now,
                         error_message=old.error_message or f"closed as FAILED by a later run: {reason}")
    record = record.with_phase(
        failed_phase, state,
        phases_pending=tuple(p for p in record.phases_pending if p != failed_phase),
        phases_completed=tuple(p for p in record.phases_completed if p != failed_phase),
    )
    return attrs.evolve(
        record,
        pipeline_status=RunStatus.FAILED,
        pipeline_end_timestamp=now,
        pipeline_run_duration=took(record.pipeline_start_timestamp, now),
        phase_failed=failed_phase,
    )


def reference_attempt(attempts: list[RunRecord]) -> RunRecord | None:
    """The newest attempt since the last success that got past pre-validation."""
    relevant: list[RunRecord] = []
    for record in attempts:
        if record.pipeline_status in (RunStatus.SUCCESS, RunStatus.SKIPPED):
            relevant = []
        else:
            relevant.append(record)
    for record in reversed(relevant):
        if record.phases[PRE_VALIDATION].status is PhaseStatus.COMPLETED:
            return record
    return None
