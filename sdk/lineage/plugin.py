"""The lifecycle hooks that send OpenLineage events (registered under the ``drivetrain`` entry points)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivetrain.lineage import events
from drivetrain.plugins import hookimpl

if TYPE_CHECKING:
    from drivetrain.pipeline import Pipeline
    from drivetrain.record import PhaseState, RunRecord


@hookimpl
def drivetrain_run_started(record: RunRecord, pipeline: Pipeline) -> None:
    events.send_run(record, pipeline, finished=False)


@hookimpl
def drivetrain_phase_started(record: RunRecord, phase: str, pipeline: Pipeline) -> None:
    events.send_phase(record, phase, pipeline, None)


@hookimpl
def drivetrain_phase_finished(record: RunRecord, phase: str, state: PhaseState, pipeline: Pipeline) -> None:
    events.send_phase(record, phase, pipeline, state)


@hookimpl
def drivetrain_run_finished(record: RunRecord, pipeline: Pipeline) -> None:
    events.send_run(record, pipeline, finished=True)
