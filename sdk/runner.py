"""The runner: the one place that writes the drive table.

For one pipeline and window it takes the lease, closes attempts whose process died, creates
the run's row, runs the phases in order with a heartbeat, records every phase's state, stops
at the first failure, and finalizes the row. Transient errors are retried inside a phase with
the configured backoff; anything else fails the phase at once. The CLI and the Airflow
operator both call this class.

What each event does to the run's row is in :mod:`drivetrain.transitions` (pure functions), the
retry loop in :mod:`drivetrain.retry`; the runner decides when, writes the rows and notifies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from drivetrain import plugins, transitions
from drivetrain.drive import PARTIAL_WINDOW, Lease, is_partial, new_holder_id
from drivetrain.durations import format_duration, with_load_rate
from drivetrain.errors import LeaseError, PermanentError, PhaseFailed, WindowNotEnded
from drivetrain.phase_names import PRE_VALIDATION, STALE_PIPELINE_HANDLING
from drivetrain.phases import BasePhase, PhaseContext
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from drivetrain.results import PhaseResult, to_result
from drivetrain.retry import PhaseAttempts
from drivetrain.window import Window

from ._run_support import Heartbeat as _Heartbeat
from ._run_support import PlannedPhase, RunLogger, log, phase_timer, run_with_timeout


def _now() -> datetime:
    return datetime.now(UTC)


class Runner:
    """Runs windows of one pipeline.

    :param pipeline: the pipeline to run.
    :param lease_seconds: how long the window's lease lasts without renewal.
    :param heartbeat_seconds: how often the lease is renewed and the row's heartbeat written.
    :param progress: called with rows moved, for progress bars.
    :param holder: who holds the leases this runner takes (default: ``host:pid:random``).
    :param clock: the current time, for the row's timestamps, window choice and whether a window
        has ended (default: the system clock; tests and simulations pass their own).
    """

    def __init__(
        self,
        pipeline: Any,
        *,
        lease_seconds: float = 60.0,
        heartbeat_seconds: float = 10.0,
        progress: Callable[[int], None] | None = None,
        holder: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.progress = progress or (lambda rows: None)
        self.holder = holder or new_holder_id()
        self.clock = clock or _now
        self.lease: Lease | None = None
        self._ctx: PhaseContext | None = None
        self._stop_reason: str | None = None
        self._lease_ttl = lease_seconds
        self._lease_lost: str | None = None
        self._unwritten: RunRecord | None = None
        self._written: RunRecord | None = None
        self._finished: list[tuple[RunRecord, str, PhaseState]] = []

    # -- choosing windows -----------------------------------------------------------------

    def next_window(self, now: datetime | None = None) -> Window | None:
        """The window a run without arguments takes, so that no window is ever skipped.

        The oldest failed window, else the oldest window since the pipeline's beginning
        (``start_date``, or see ``catchup``) that no run has completed; windows that have not
        ended by ``now`` are never chosen. None when every ended window is complete. See
        :mod:`drivetrain.window_choice`.
        """
        from drivetrain.window_choice import next_window

        return next_window(self.pipeline, now or self.clock())

    def plan(self, window: Window) -> list[PlannedPhase]:
        """What a run of ``window`` would do, phase by phase, without changing anything."""
        store = self.pipeline.drive_store()
        attempts = store.attempts(self.pipeline.name, window.start, window.end)
        probe = attrs.evolve(self._new_record(window, attempts), pipeline_id="(dry-run)")
        ctx = self._context(probe, window, attempts)
        pre = self.pipeline.phase(PRE_VALIDATION)
        carried, notes = pre.plan_continuation(ctx)
        out = []
        if store.is_held(self.pipeline.name, window.start):
            lease = store.current_lease(self.pipeline.name, window.start)
            out.append(PlannedPhase("(lease)", "wait", f"{lease.holder if lease else 'another process'} is running this window now"))
        for phase in self.pipeline.phases():
            settings = self.pipeline.config.phases.get(phase.name)
            if not settings.enabled:
                out.append(PlannedPhase(phase.name, "skip", transitions.DISABLED))
            elif phase.name in carried:
                out.append(PlannedPhase(phase.name, "skip", carried[phase.name].skip_reason or "completed earlier"))
            elif (unneeded := phase.not_needed(ctx)) is not None:
                out.append(PlannedPhase(phase.name, "skip", unneeded))
            else:
                reason = phase.describe()
                if phase.name == PRE_VALIDATION and notes:
                    reason = "; ".join(notes)
                out.append(PlannedPhase(phase.name, "run", reason))
        return out

    # -- the run --------------------------------------------------------------------------

    def cancel(self, reason: str) -> None:
        """Ask the run to stop at the next safe point (between batches); it ends FAILED."""
        self._stop_reason = reason
        if self._ctx is not None:
            self._ctx.cancel(reason)

    # -- one process runs the whole window ------------------------------------------------

    def run(self, window: Window, *, partial: bool = False) -> RunRecord:
        """Run one window to the end in this process; returns the final drive-table row.

        :param partial: allow a window that has not ended yet. The run loads what exists so
            far and is marked partial in its row (pre-validation's ``partial_window``); it does
            not complete the window, so a plain run runs it again once it has ended.
        :raises LeaseError: another run holds the window.
        :raises WindowNotEnded: the window has not ended and ``partial`` is not set.
        """
        self._check_ended(window, partial)
        with self.pipeline.keep_open():  # one connection for the run, not one per phase
            return self._run(window)

    def _check_ended(self, window: Window, partial: bool) -> None:
        now = self.clock()
        if window.end > now and not partial:
            raise WindowNotEnded(
                f"{self.pipeline.name}: the window [{window.start.isoformat()}, {window.end.isoformat()}) has not ended "
                f"yet (it ends in {format_duration(window.end - now)}); run it after {window.end.isoformat()}, or allow "
                "a partial run (drivetrain run --allow-partial), which a plain run completes once the window has ended"
            )

    def _run(self, window: Window) -> RunRecord:
        store = self.pipeline.drive_store()
        self._lease_ttl = self.lease_seconds
        self._lease_lost = None
        self.lease = store.acquire_lease(self.pipeline.name, window.start, window.end, self.holder, self._lease_ttl)
        try:
            with self.pipeline.session():
                ctx = self._begin(window)
            beat = _Heartbeat(self, ctx.record.pipeline_id)
            beat.start()
            try:
                for phase in self.pipeline.phases():
                    if ctx.record.phase_failed:
                        break
                    with self.pipeline.session():  # one connection per phase, not per statement
                        if self._stop_reason is not None and ctx.record.phases[phase.name].status is PhaseStatus.PENDING:
                            self._fail_unstarted(ctx, phase.name, f"not started: {self._stop_reason}")
                            break
                        self._step(ctx, phase)
                with self.pipeline.session():
                    return self._finalize(ctx)
            except BaseException:
                self._finalize(ctx)
                raise
            finally:
                beat.stop()
        finally:
            self._ctx = None
            self._release(window, keep_row=False)

    # -- one phase per call (Airflow: each task may run in another process) --------------

    def start(self, window: Window, *, partial: bool = False) -> RunRecord:
        """Create the run's row and take the window; the phases run later through run_phase().

        The lease outlives this call (for the stale timeout), naming the run, so a CLI run
        of the same window is refused until finish(). ``partial`` as for :meth:`run`.
        """
        self._check_ended(window, partial)
        store = self.pipeline.drive_store()
        self.holder = f"step:{new_holder_id()}"
        self._lease_ttl = self._step_lease_seconds()
        self._lease_lost = None
        self.lease = store.acquire_lease(self.pipeline.name, window.start, window.end, self.holder, self._lease_ttl)
        try:
            ctx = self._begin(window)
            return ctx.record
        finally:
            self._ctx = None
            self._release(window, keep_row=True)

    def run_phase(self, run_id: str, phase_name: str) -> PhaseState:
        """Run one phase of a started run (or record it as skipped); returns its state."""
        ctx = self._resume(run_id)
        try:
            if ctx.record.is_finished:
                raise PermanentError(f"run {run_id} is already {ctx.record.pipeline_status.value}")
            if ctx.record.phase_failed and ctx.record.phases[phase_name].status is PhaseStatus.PENDING:
                raise PhaseFailed(phase_name, f"{phase_name} not run: {ctx.record.phase_failed} failed earlier in {run_id}")
            beat = _Heartbeat(self, run_id)
            beat.start()
            try:
                with self.pipeline.session():
                    return self._step(ctx, self.pipeline.phase(phase_name))
            finally:
                self._flush()  # the task's process ends here: what it recorded must be durable first
                beat.stop()
        finally:
            self._ctx = None
            self._release(ctx.window, keep_row=True)

    def finish(self, run_id: str) -> RunRecord:
        """Close a started run: final status, end time, duration; gives the window back."""
        ctx = self._resume(run_id)
        try:
            if ctx.record.is_finished:
                return ctx.record
            return self._finalize(ctx)
        finally:
            self._ctx = None
            self._release(ctx.window, keep_row=False)

    def _step_lease_seconds(self) -> float:
        minutes = self.pipeline.config.phases.stale_pipeline_handling.timeout_minutes or 120
        return float(minutes) * 60

    def _resume(self, run_id: str) -> PhaseContext:
        store = self.pipeline.drive_store()
        record = store.get(run_id)
        if record is None:
            raise PermanentError(f"no run {run_id!r} in {store.location}")
        window = Window(record.query_window_start_timestamp, record.query_window_end_timestamp, self.pipeline.grid.timezone)
        self.holder = record.lease_holder or self.holder
        self._lease_ttl = self._step_lease_seconds()
        self._lease_lost = None
        self.lease = store.acquire_lease(self.pipeline.name, window.start, window.end, self.holder, self._lease_ttl)
        attempts = store.attempts(self.pipeline.name, window.start, window.end)
        self._unwritten, self._written, self._finished = None, record, []
        ctx = self._context(record, window, attempts)
        ctx.states.update({n: s for n, s in record.phases.items() if s.status is not PhaseStatus.PENDING})
        self._ctx = ctx
        return ctx

    def _release(self, window: Window, *, keep_row: bool) -> None:
        if self.lease is None:
            return
        try:
            self.pipeline.drive_store().release_lease(self.lease, keep_row=keep_row)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself
            log.warning("could not release the lease of %s: %s", window, exc)

    # -- shared steps ---------------------------------------------------------------------

    def _begin(self, window: Window) -> PhaseContext:
        """Close dead attempts of the window, insert this run's row, build its context."""
        store = self.pipeline.drive_store()
        attempts = []
        for record in store.attempts(self.pipeline.name, window.start, window.end):
            if record.pipeline_status is RunStatus.RUNNING:  # this run holds the lease: that process is gone
                record = self._close(record, "its process stopped before finishing (crash or kill); this run took over the window's lease")
            attempts.append(record)
        record = self._new_record(window, attempts)
        disabled = transitions.disabled([p.name for p in self.pipeline.phases() if not self.pipeline.config.phases.get(p.name).enabled])
        if disabled:  # recorded in the row as it is inserted: one write, not two
            record = transitions.skipped(record, disabled)
        store.insert(record, fence=self.lease)
        self._unwritten, self._written, self._finished = None, record, []
        ctx = self._context(record, window, attempts)
        ctx.states.update({name: record.phases[name] for name in disabled})
        self._ctx = ctx
        plugins.notify("drivetrain_run_started", record=record, pipeline=self.pipeline)
        for name in disabled:
            plugins.notify("drivetrain_phase_finished", record=record, phase=name, state=record.phases[name], pipeline=self.pipeline)
        return ctx

    def _new_record(self, window: Window, attempts: list[RunRecord]) -> RunRecord:
        config = self.pipeline.config
        start = self.clock()
        number = len(attempts) + 1
        phases = {}
        for phase in self.pipeline.phases():
            settings = config.phases.get(phase.name)
            phases[phase.name] = PhaseState(expected_run_duration=settings.expected_run_duration_text)
        pending = tuple(p.name for p in self.pipeline.phases() if config.phases.get(p.name).enabled)
        return RunRecord(
            pipeline_id=f"{self.pipeline.name}_{window.key}_run{number}",
            pipeline_name=self.pipeline.name,
            pipeline_retry_number=number - 1,
            pipeline_start_timestamp=start,
            query_window_start_timestamp=window.start,
            query_window_end_timestamp=window.end,
            target_date=window.target_date,
            query_window_duration=format_duration(window.duration),
            phases=phases,
            phases_pending=pending,
            heartbeat_at=start,
            lease_holder=self.holder,
            config_hash=config.config_hash,
            config_snapshot=config.snapshot(),
        )

    def _context(self, record: RunRecord, window: Window, attempts: list[RunRecord]) -> PhaseContext:
        store = self.pipeline.drive_store()
        logger = RunLogger(log, {"pipeline": self.pipeline.name, "run_id": record.pipeline_id, "window": str(window), "phase": None})

        lease = self.lease

        def fence() -> None:
            ctx.check_abandoned()  # a phase given up on after its timeout never commits
            store.verify_lease(lease)
            self.pipeline_hook("drivetrain_before_commit", record=ctx.record, phase=ctx.phase_name, pipeline=self.pipeline)

        ctx = PhaseContext(
            pipeline=self.pipeline,
            record=record,
            window=window,
            log=logger,
            fence=fence,
            previous_attempts=[a for a in attempts if a.pipeline_id != record.pipeline_id],
            drive=store,
            progress=self.progress,
            close_run=self._close_if_dead,
        )
        return ctx

    def _step(self, ctx: PhaseContext, phase: BasePhase) -> PhaseState:
        """Run one phase, or record why it is skipped; marks what its result implies."""
        name = phase.name
        state = ctx.record.phases[name]
        if state.status in (PhaseStatus.COMPLETED, PhaseStatus.SKIPPED):
            return state
        settings = self.pipeline.config.phases.get(name)
        if not settings.enabled:
            self._mark_skipped(ctx, transitions.disabled([name]))
            return ctx.record.phases[name]
        unneeded = phase.not_needed(ctx)
        if unneeded is not None:
            self._mark_skipped(ctx, {name: PhaseState(status=PhaseStatus.SKIPPED, skip_reason=unneeded)})
            return ctx.record.phases[name]
        result, state = self._execute(phase, ctx)
        if result is not None and state.status is PhaseStatus.COMPLETED:
            carried = phase.carried_phases(result)
            if carried:
                self._mark_skipped(ctx, carried)
            later = transitions.ended_early(ctx.record, name, result)
            if later:
                self._mark_skipped(ctx, later)
        if state.status is PhaseStatus.FAILED and settings.continue_on_failure:
            ctx.log.warning("%s failed but continue_on_failure is set: %s", name, state.error_message)
        return state

    def _mark_skipped(self, ctx: PhaseContext, states: Mapping[str, PhaseState]) -> None:
        ctx.record = transitions.skipped(ctx.record, states)
        ctx.states.update({name: ctx.record.phases[name] for name in states})
        self._finished.extend((ctx.record, name, ctx.record.phases[name]) for name in states)
        self._write(ctx.record, later=True)

    def _fail_unstarted(self, ctx: PhaseContext, name: str, reason: str) -> None:
        self._finish_phase(ctx, name, ctx.record.phases[name], None, reason, 0)

    def _execute(self, phase: BasePhase, ctx: PhaseContext) -> tuple[PhaseResult | None, PhaseState]:
        """Run one phase with its retries and time limit; record how it ended."""
        name = phase.name
        settings = self.pipeline.config.phases.get(name)
        ctx.record = transitions.running(ctx.record, name, self.clock())
        started = ctx.record.phases[name]
        self._write(ctx.record)
        ctx.phase_name = name
        ctx.log = RunLogger(log, {**(ctx.log.extra or {}), "phase": name})
        plugins.notify("drivetrain_phase_started", record=ctx.record, phase=name, pipeline=self.pipeline)
        attempts = PhaseAttempts(name, self.pipeline.config.retry, ctx)
        limit = settings.timeout_minutes if name != STALE_PIPELINE_HANDLING else None
        with phase_timer(ctx, name, limit) as (deadline, why):

            def work() -> PhaseResult:
                left = None if deadline is None else deadline - time.monotonic()
                return to_result(run_with_timeout(phase, ctx, left, self.pipeline.session, why), phase=name)

            try:
                outcome = attempts.run(work)
            except (KeyboardInterrupt, SystemExit) as exc:
                self._stop_reason = self._stop_reason or f"interrupted ({type(exc).__name__})"
                self._finish_phase(ctx, name, started, None, self._stop_reason, attempts.attempt)
                raise
        if outcome.lease_lost is not None:
            self._lease_lost = self._lease_lost or outcome.lease_lost
        if self._stop_reason is None and ctx.cancel_event.is_set():
            ctx.cancel_event.clear()  # a phase timeout ends with its phase
            ctx.cancel_reason = None
        state = self._finish_phase(ctx, name, started, outcome.result, outcome.error, attempts.attempt)
        return outcome.result, state

    def _finish_phase(self, ctx: PhaseContext, name: str, started: PhaseState, result: PhaseResult | None, error: str | None,
                      attempt: int) -> PhaseState:
        error = transitions.failure(result, error)
        now = self.clock()
        ctx.record = transitions.finished(
            ctx.record, name, started, error=error, now=now, attempt=attempt,
            details=with_load_rate(self._details(ctx.record, name, result), now - (started.start_timestamp or now)),
            continue_on_failure=self.pipeline.config.phases.get(name).continue_on_failure,
        )
        state = ctx.record.phases[name]
        ctx.states[name] = state
        self._finished.append((ctx.record, name, state))
        self._write(ctx.record, later=True)
        ctx.log.log(logging.ERROR if error else logging.INFO, "%s %s in %s%s", name, state.status.value, state.actual_run_duration,
                    f": {state.error_message}" if error else "")
        return state

    def _write(self, record: RunRecord, *, later: bool = False) -> None:
        """Write this run's row, fenced by its lease.

        ``later``: the row only records how something ended (a phase finished or skipped), which
        guards no side effect; it is written with the next write, which every path makes before
        its next side effect (a phase's start, the run's close, the end of an Airflow task; see
        :meth:`_flush`). A phase's end and the next phase's start are thus one write, and a crash
        between them is a crash before the end was recorded: the phase is found RUNNING and run
        again, as after a crash just after its commit. A row equal to the last one written is
        not written again.

        Once the lease is lost (the fence refused a write), the run stops, and what it still
        writes is only how it ended: written unfenced, and only while the row is still RUNNING
        (a run that took the window over may already have closed it).

        ``drivetrain_phase_finished`` goes out once the phase's end is written, so a plugin
        still sees in the drive table what the hook tells it.
        """
        if later:
            self._unwritten = record
            return
        self._unwritten = None
        if record != self._written:
            self._store_row(record)
            self._written = record
        finished, self._finished = self._finished, []
        for done, name, state in finished:
            plugins.notify("drivetrain_phase_finished", record=done, phase=name, state=state, pipeline=self.pipeline)

    def _store_row(self, record: RunRecord) -> None:
        store = self.pipeline.drive_store()
        if self._lease_lost is None:
            try:
                store.update(record, fence=self.lease)
                return
            except LeaseError as exc:
                self._lease_lost = str(exc)
                if self._ctx is not None:
                    self._ctx.cancel(str(exc))
        current = store.get(record.pipeline_id)
        if current is not None and current.pipeline_status is RunStatus.RUNNING:
            store.update(record)

    def _flush(self) -> None:
        """Write the row if a deferred state (see :meth:`_write`) is not written yet."""
        if self._unwritten is not None:
            self._write(self._unwritten)

    @staticmethod
    def _details(record: RunRecord, name: str, result: PhaseResult | None) -> dict[str, Any]:
        details = result.phase_details() if result is not None else {}
        if name == PRE_VALIDATION and is_partial(record):
            details = {**details, PARTIAL_WINDOW: True,
                       "partial_note": f"started before the window ended ({record.query_window_end_timestamp.isoformat()}): "
                                       "a plain run loads the window again once it has ended"}
        return details

    def _finalize(self, ctx: PhaseContext) -> RunRecord:
        """End what is still open (a phase RUNNING, phases never started), then close the row."""
        for name in transitions.still_running(ctx.record):
            why = self._lease_lost or self._stop_reason or "its process stopped"
            state = ctx.record.phases[name]
            self._finish_phase(ctx, name, state, None, f"the phase was still running when the run was closed: {why}", state.retry_number)
        if ctx.record.phase_failed is None and ctx.record.phases_pending:
            why = self._stop_reason if self._stop_reason is not None else "the run was closed before this phase ran"
            self._fail_unstarted(ctx, ctx.record.phases_pending[0], f"not started: {why}")
        record = transitions.closed(ctx.record, self.clock())
        self._write(record)
        ctx.record = record
        ctx.log.log(logging.ERROR if record.phase_failed else logging.INFO, "run %s in %s%s", record.pipeline_status.value,
                    record.pipeline_run_duration, f" (failed at {record.phase_failed})" if record.phase_failed else "")
        plugins.notify("drivetrain_run_finished", record=record, pipeline=self.pipeline)
        return record

    @staticmethod
    def pipeline_hook(name: str, **kwargs: Any) -> None:
        """Call a hook whose exceptions must reach the caller (unlike lifecycle notifications)."""
        getattr(plugins.get_plugin_manager().hook, name)(**kwargs)

    # -- other runs -----------------------------------------------------------------------

    def _close(self, record: RunRecord, reason: str) -> RunRecord:
        """Mark a dead attempt FAILED, with ``reason`` on the phase it stopped in (see transitions.closed_record)."""
        closed = transitions.closed_record(record, reason, self.clock())
        self.pipeline.drive_store().update(closed)
        log.warning("closed %s as FAILED: %s", record.pipeline_id, reason)
        return closed

    def _close_if_dead(self, record: RunRecord, reason: str) -> bool:
        """Close another window's RUNNING row, unless a live process still holds its lease.

        Returns whether it was closed (a row that finished meanwhile is left as it is).
        """
        store = self.pipeline.drive_store()
        if store.is_held(record.pipeline_name, record.query_window_start_timestamp):
            log.warning("%s has no recent heartbeat but a live process still holds its lease; leaving it", record.pipeline_id)
            return False
        fresh = store.get(record.pipeline_id)  # read again: it may have finished since it was listed
        if fresh is None or fresh.pipeline_status is not RunStatus.RUNNING:
            return False
        self._close(fresh, reason)
        return True
