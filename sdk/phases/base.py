"""BasePhase and PhaseContext: what a phase is, and what it sees while it runs."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from drivetrain.errors import PhaseTimeout
from drivetrain.record import PhaseState, RunRecord
from drivetrain.results import PhaseResult

if TYPE_CHECKING:
    from drivetrain.config import PhaseConfig, PipelineConfig
    from drivetrain.drive import DriveStore
    from drivetrain.pipeline import Pipeline
    from drivetrain.warehouse import Fence
    from drivetrain.window import Window


@attrs.define
class PhaseContext:
    """Everything a phase may use. The runner builds one per run and updates it as it goes."""

    pipeline: Pipeline
    record: RunRecord
    """The current drive-table row (as of the start of this phase)."""
    window: Window
    log: logging.LoggerAdapter
    fence: Fence
    """Call before committing anything: raises LeaseError when another run took the window."""
    states: dict[str, PhaseState] = attrs.field(factory=dict)
    """Phase name -> state of earlier phases in this run, or carried from a failed run."""
    previous_attempts: list[RunRecord] = attrs.field(factory=list)
    """Earlier runs of this window, oldest first."""
    drive: DriveStore | None = None
    """The drive table, for reading; only the runner writes it."""
    cancel_event: threading.Event = attrs.field(factory=threading.Event)
    cancel_reason: str | None = None
    progress: Callable[[int], None] = lambda rows: None
    """Call with the number of rows just moved; drives progress bars."""
    phase_name: str | None = None
    abandoned: set[threading.Thread] = attrs.field(factory=set)
    """Worker threads of phases that ran past their timeout: whatever they still do, their
    fence and cancellation checks raise, so they cannot commit."""
    close_run: Callable[[RunRecord, str], bool] = lambda record, reason: False
    """Close another run's RUNNING row as FAILED with a reason (stale handling); the runner does
    the write. Returns False when it was left open (a live process holds it, or it finished)."""

    @property
    def config(self) -> PipelineConfig:
        return self.pipeline.config

    @property
    def run_id(self) -> str:
        return self.record.pipeline_id

    def details(self, phase: str) -> Mapping[str, Any]:
        """``phase_specific_details`` of an earlier (or carried) phase; empty if it did not run."""
        state = self.states.get(phase)
        return state.phase_specific_details if state is not None else {}

    def count_of(self, phase: str) -> int | None:
        """The ``count`` an earlier count phase reported, if any."""
        value = self.details(phase).get("count")
        return int(value) if value is not None else None

    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self.cancel_event.set()

    def abandon(self, worker: threading.Thread) -> None:
        """Give up on a phase's worker thread (past its timeout); see :attr:`abandoned`."""
        self.abandoned.add(worker)

    def check_abandoned(self) -> None:
        """Raise PhaseTimeout when called from a phase's worker thread that was given up on."""
        if threading.current_thread() in self.abandoned:
            raise PhaseTimeout(self.phase_name or "?", "this phase ran past its timeout and was abandoned; it may not commit")

    def check_cancelled(self) -> None:
        """Raise if the run was asked to stop (timeout, lost lease, SIGTERM). Call between batches."""
        self.check_abandoned()
        if self.cancel_event.is_set():
            raise PhaseTimeout(self.phase_name or "?", self.cancel_reason or "the run was cancelled")


class BasePhase(abc.ABC):
    """One step of a run. Subclass a default phase and override :meth:`run` to customise it."""

    #: The phase's name: one of drivetrain.phase_names.PHASE_NAMES.
    name: ClassVar[str] = ""
    #: Phases whose results are compared with this one's (by the audit). When a continuation
    #: runs one of them again, this phase runs again too instead of being carried forward, so
    #: both numbers come from the same attempt.
    carried_only_with: ClassVar[tuple[str, ...]] = ()

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    @property
    def settings(self) -> PhaseConfig:
        """This phase's section of the config (``phases.<name>``)."""
        return self.pipeline.config.phases.get(self.name)

    @abc.abstractmethod
    def run(self, ctx: PhaseContext) -> PhaseResult | Mapping[str, Any] | None:
        """Do the work for ``ctx.window``. Return a result (or the spec's dict); raise on error."""

    # -- the protocol the runner relies on (each has a default; override what applies) ------

    def plan_continuation(self, ctx: PhaseContext) -> tuple[dict[str, PhaseState], list[str]]:
        """Which phases a failed earlier attempt completed, to carry into this run, and why.

        Called by the runner on the ``pre_validation`` phase only (for a dry-run plan; the
        phase itself decides during :meth:`run` and says so through :meth:`carried_phases`).
        Returns phase name -> the state to record as SKIPPED (``carried_from`` set), and notes
        for the plan. The default carries nothing: every phase runs again.
        """
        return {}, []

    def carried_phases(self, result: PhaseResult) -> Mapping[str, PhaseState]:
        """The phases ``result`` (what this phase's :meth:`run` returned) says to skip now.

        The runner records each as SKIPPED with the given state once this phase completes;
        :class:`~drivetrain.phases.PreValidation` returns the work it carries from a failed
        attempt. The default skips nothing.
        """
        return {}

    def still_valid(self, ctx: PhaseContext, state: PhaseState) -> str | None:
        """Whether ``state``, completed by a failed attempt, can be carried into this one.

        Return None to carry it, or the reason it must run again (read before the phase would
        be skipped; e.g. what it wrote is no longer there). The default carries it.
        """
        return None

    def not_needed(self, ctx: PhaseContext) -> str | None:
        """Why this phase has nothing to do in this pipeline, or None to run it.

        The runner records a phase that returns a reason as SKIPPED with it, without running
        it (the publish phase of a pipeline that writes straight to its target). Default: None.
        """
        return None

    def describe(self) -> str:
        """One line for plans and docs."""
        return (type(self).__doc__ or self.name).strip().splitlines()[0]
