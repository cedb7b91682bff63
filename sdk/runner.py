"""The runner: the one place that writes the drive table.

For one pipeline and window it takes the lease, closes attempts whose process died, creates
the run's row, runs the phases in order with a heartbeat, records every phase's state, stops
at the first failure, and finalizes the row. Transient errors are retried inside a phase with
the configured backoff; anything else fails the phase at once. The CLI and the Airflow
operator both call this class.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs

from drivetrain import plugins
from drivetrain.drive import Lease, new_holder_id
from drivetrain.durations import format_duration
from drivetrain.errors import LeaseError, PhaseTimeout, TransientError
from drivetrain.phase_names import PRE_VALIDATION
from drivetrain.phases import BasePhase, PhaseContext, PreValidationResult
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from drivetrain.results import PhaseResult, to_result
from drivetrain.secrets import redact
from drivetrain.window import Window

UTC = timezone.utc
log = logging.getLogger("drivetrain.run")


def _now() -> datetime:
    return datetime.now(UTC)


class RunLogger(logging.LoggerAdapter):
    """Puts pipeline, run id, window and phase on every line (and in ``extra`` for JSON logs)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        phase = extra.get("phase")
        prefix = f"[{extra.get('pipeline')} {extra.get('run_id')} {extra.get('window')}{' ' + phase if phase else ''}]"
        return f"{prefix} {msg}", kwargs


@attrs.frozen
class PlannedPhase:
    """One line of a dry-run plan."""

    phase: str
    action: str
    """``run`` or ``skip``."""
    reason: str


class Runner:
    """Runs windows of one pipeline.

    :param pipeline: the pipeline to run.
    :param lease_seconds: how long the window's lease lasts without renewal.
    :param heartbeat_seconds: how often the lease is renewed and the row's heartbeat written.
    :param progress: called with rows moved, for progress bars.
    """

    def __init__(
        self,
        pipeline: Any,
        *,
        lease_seconds: float = 60.0,
        heartbeat_seconds: float = 10.0,
        progress: Callable[[int], None] | None = None,
        holder: str | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.progress = progress or (lambda rows: None)
        self.holder = holder or new_holder_id()
        self.lease: Lease | None = None
        self._ctx: PhaseContext | None = None
        self._stop_reason: str | None = None

    # -- choosing windows -----------------------------------------------------------------

    def next_window(self, now: datetime | None = None) -> Window | None:
        """The window a run without arguments takes: the oldest failed one, else the next new one.

        Returns None when the next window has not ended yet.
        """
        now = now or _now()
        grid = self.pipeline.grid
        store = self.pipeline.drive_store()
        latest: dict[tuple[datetime, datetime], RunRecord] = {}
        for record in reversed(store.history(self.pipeline.name)):
            latest[(record.query_window_start_timestamp, record.query_window_end_timestamp)] = record
        failed = sorted(k for k, r in latest.items() if r.pipeline_status is RunStatus.FAILED)
        if failed:
            return Window(failed[0][0], failed[0][1], grid.timezone)
        done = [k for k, r in latest.items() if r.pipeline_status in (RunStatus.SUCCESS, RunStatus.SKIPPED)]
        candidate = grid.next(grid.window_at(max(done)[0])) if done else grid.first()
        if candidate.end > now:
            return None
        if not self.pipeline.config.schedule.catchup:
            newest = grid.last_complete(now)
            if candidate.end <= newest.start and not done:
                candidate = newest
        return candidate

    def plan(self, window: Window) -> list[PlannedPhase]:
        """What a run of ``window`` would do, phase by phase, without changing anything."""
        store = self.pipeline.drive_store()
        store.ensure()
        attempts = store.attempts(self.pipeline.name, window.start, window.end)
        probe = attrs.evolve(self._new_record(window, attempts), pipeline_id="(dry-run)")
        ctx = self._context(probe, window, attempts)
        pre = self.pipeline.phase(PRE_VALIDATION)
        carried, notes = pre.plan_continuation(ctx) if hasattr(pre, "plan_continuation") else ({}, [])
        out = []
        if store.is_held(self.pipeline.name, window.start):
            lease = store.current_lease(self.pipeline.name, window.start)
            out.append(PlannedPhase("(lease)", "wait", f"{lease.holder if lease else 'another process'} is running this window now"))
        for phase in self.pipeline.phases():
            settings = self.pipeline.config.phases.get(phase.name)
            if not settings.enabled:
                out.append(PlannedPhase(phase.name, "skip", "disabled in config"))
            elif phase.name in carried:
                out.append(PlannedPhase(phase.name, "skip", carried[phase.name].skip_reason or "completed earlier"))
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

    def run(self, window: Window) -> RunRecord:
        """Run one window to the end; returns the final drive-table row.

        Raises LeaseError when another run holds the window.
        """
        pipeline = self.pipeline
        store = pipeline.drive_store()
        store.ensure()
        self.lease = store.acquire_lease(pipeline.name, window.start, window.end, self.holder, self.lease_seconds)
        try:
            attempts = store.attempts(pipeline.name, window.start, window.end)
            for record in attempts:
                if record.pipeline_status is RunStatus.RUNNING:
                    self._close(record, "the process running this attempt stopped before finishing (crash or kill); its lease was taken over")
            attempts = store.attempts(pipeline.name, window.start, window.end)
            record = self._new_record(window, attempts)
            store.insert(record, fence=self.lease)
            ctx = self._context(record, window, attempts)
            self._ctx = ctx
            plugins.notify("drivetrain_run_started", record=record, pipeline=pipeline)
            beat = _Heartbeat(self, record.pipeline_id)
            beat.start()
            try:
                record = self._run_phases(ctx)
            finally:
                beat.stop()
            plugins.notify("drivetrain_run_finished", record=record, pipeline=pipeline)
            return record
        finally:
            self._ctx = None
            try:
                store.release_lease(self.lease)
            except Exception as exc:  # noqa: BLE001 - the lease expires by itself
                log.warning("could not release the lease of %s: %s", window, exc)

    def _new_record(self, window: Window, attempts: list[RunRecord]) -> RunRecord:
        config = self.pipeline.config
        start = _now()
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
        def fence() -> None:
            store.verify_lease(self.lease)
            ctx_ref = self._ctx
            if ctx_ref is not None:
                self.pipeline_hook("drivetrain_before_commit", record=ctx_ref.record, phase=ctx_ref.phase_name, pipeline=self.pipeline)

        return PhaseContext(
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

    def _run_phases(self, ctx: PhaseContext) -> RunRecord:
        config = self.pipeline.config
        carried: dict[str, PhaseState] = {}
        skip_rest: str | None = None
        failed: str | None = None
        for phase in self.pipeline.phases():
            name = phase.name
            settings = config.phases.get(name)
            if not settings.enabled:
                self._skip(ctx, name, PhaseState(status=PhaseStatus.SKIPPED, skip_reason="disabled in config"), pending=False)
                continue
            if skip_rest is not None:
                self._skip(ctx, name, PhaseState(status=PhaseStatus.SKIPPED, skip_reason=skip_rest))
                continue
            if name in carried:
                self._skip(ctx, name, carried[name])
                continue
            if self._stop_reason is not None:
                failed = name
                self._finish_phase(ctx, name, ctx.record.phases[name], None, f"not started: {self._stop_reason}", 0)
                break
            result, state = self._execute(phase, ctx)
            if name == PRE_VALIDATION and isinstance(result, PreValidationResult):
                carried = dict(result.carried)
            if result is not None and result.skip_remaining:
                skip_rest = f"{name} ended the run early: {result.details.get('note', 'nothing to do')}"
            if state.status is PhaseStatus.FAILED:
                if settings.continue_on_failure:
                    ctx.log.warning("%s failed but continue_on_failure is set: %s", name, state.error_message)
                    continue
                failed = name
                break
        return self._finalize(ctx, failed, skipped=skip_rest is not None)

    def _skip(self, ctx: PhaseContext, name: str, state: PhaseState, *, pending: bool = True) -> None:
        record = ctx.record
        state = attrs.evolve(state, expected_run_duration=record.phases[name].expected_run_duration)
        ctx.states[name] = state
        ctx.record = record.with_phase(
            name, state,
            phases_skipped=(*record.phases_skipped, name),
            phases_pending=tuple(p for p in record.phases_pending if p != name),
        )
        self.pipeline.drive_store().update(ctx.record, fence=self.lease)
        plugins.notify("drivetrain_phase_finished", record=ctx.record, phase=name, state=state, pipeline=self.pipeline)

    def _execute(self, phase: BasePhase, ctx: PhaseContext) -> tuple[PhaseResult | None, PhaseState]:
        name = phase.name
        settings = self.pipeline.config.phases.get(name)
        store = self.pipeline.drive_store()
        started = _now()
        running = attrs.evolve(ctx.record.phases[name], status=PhaseStatus.RUNNING, start_timestamp=started)
        ctx.record = ctx.record.with_phase(name, running)
        store.update(ctx.record, fence=self.lease)
        ctx.phase_name = name
        ctx.log = RunLogger(log, {**ctx.log.extra, "phase": name})
        plugins.notify("drivetrain_phase_started", record=ctx.record, phase=name, pipeline=self.pipeline)
        timer = None
        if settings.timeout_minutes and name != "stale_pipeline_handling":
            minutes = settings.timeout_minutes
            timer = threading.Timer(minutes * 60, ctx.cancel, args=(f"{name} ran past its timeout of {minutes:g} minutes",))
            timer.daemon = True
            timer.start()
        retry = self.pipeline.config.retry
        attempt = 0
        result: PhaseResult | None = None
        error: str | None = None
        try:
            while True:
                try:
                    result = to_result(phase.run(ctx), phase=name)
                    break
                except LeaseError:
                    raise
                except TransientError as exc:
                    if attempt >= retry.max_retries or ctx.cancel_event.is_set():
                        error = f"{exc} (gave up after {attempt + 1} attempt(s))"
                        break
                    attempt += 1
                    delay = retry.delay(attempt)
                    ctx.log.warning("transient error, retry %d of %d in %.1fs: %s", attempt, retry.max_retries, delay, redact(str(exc)))
                    if ctx.cancel_event.wait(delay):
                        error = f"{exc}; then {ctx.cancel_reason}"
                        break
                except PhaseTimeout as exc:
                    error = str(exc)
                    break
                except (KeyboardInterrupt, SystemExit):
                    self._stop_reason = self._stop_reason or "interrupted"
                    self._finish_phase(ctx, name, running, None, "interrupted (KeyboardInterrupt/SystemExit)", attempt)
                    self._finalize(ctx, name, skipped=False)
                    raise
                except Exception as exc:  # noqa: BLE001 - a phase's bug fails the phase, not the runner
                    error = f"{type(exc).__name__}: {exc}"
                    ctx.log.exception("%s failed", name)
                    break
        finally:
            if timer is not None:
                timer.cancel()
        if self._stop_reason is None and ctx.cancel_event.is_set():
            ctx.cancel_event.clear()  # a phase timeout ends with its phase
            ctx.cancel_reason = None
        state = self._finish_phase(ctx, name, running, result, error, attempt)
        return result, state

    def _finish_phase(self, ctx: PhaseContext, name: str, running: PhaseState, result: PhaseResult | None, error: str | None, attempt: int) -> PhaseState:
        ended = _now()
        start = running.start_timestamp or ended
        failed = error is not None or result is None or result.failed
        if failed and error is None:
            error = (result.error_message if result else None) or "the phase reported failure (skip_dag_run) without a message"
        state = attrs.evolve(
            running,
            status=PhaseStatus.FAILED if failed else PhaseStatus.COMPLETED,
            start_timestamp=start,
            end_timestamp=ended,
            actual_run_duration=format_duration(ended - start),
            retry_number=attempt,
            error_message=redact(error) if error else None,
            phase_specific_details=result.phase_details() if result is not None else {},
        )
        record = ctx.record
        ctx.states[name] = state
        ctx.record = record.with_phase(
            name, state,
            phases_completed=record.phases_completed if failed else (*record.phases_completed, name),
            phases_pending=tuple(p for p in record.phases_pending if p != name),
        )
        self.pipeline.drive_store().update(ctx.record, fence=self.lease)
        level = logging.ERROR if failed else logging.INFO
        ctx.log.log(level, "%s %s in %s%s", name, state.status.value, state.actual_run_duration, f": {state.error_message}" if failed else "")
        plugins.notify("drivetrain_phase_finished", record=ctx.record, phase=name, state=state, pipeline=self.pipeline)
        return state

    def _finalize(self, ctx: PhaseContext, failed: str | None, *, skipped: bool) -> RunRecord:
        ended = _now()
        record = ctx.record
        status = RunStatus.FAILED if failed else (RunStatus.SKIPPED if skipped else RunStatus.SUCCESS)
        record = attrs.evolve(
            record,
            pipeline_status=status,
            pipeline_end_timestamp=ended,
            pipeline_run_duration=format_duration(ended - record.pipeline_start_timestamp),
            phase_failed=failed,
        )
        self.pipeline.drive_store().update(record, fence=self.lease)
        ctx.record = record
        ctx.log.log(logging.ERROR if failed else logging.INFO, "run %s in %s%s", status.value, record.pipeline_run_duration, f" (failed at {failed})" if failed else "")
        return record

    @staticmethod
    def pipeline_hook(name: str, **kwargs: Any) -> None:
        """Call a hook whose exceptions must reach the caller (unlike lifecycle notifications)."""
        getattr(plugins.get_plugin_manager().hook, name)(**kwargs)

    # -- other runs -----------------------------------------------------------------------

    def _close(self, record: RunRecord, reason: str) -> None:
        """Mark a dead attempt FAILED: its running phase failed with ``reason``."""
        now = _now()
        failed_phase = next((n for n, s in record.phases.items() if s.status is PhaseStatus.RUNNING), None)
        if failed_phase is not None:
            state = attrs.evolve(record.phases[failed_phase], status=PhaseStatus.FAILED, end_timestamp=now, error_message=reason)
            record = record.with_phase(failed_phase, state, phases_pending=tuple(p for p in record.phases_pending if p != failed_phase))
        record = attrs.evolve(
            record,
            pipeline_status=RunStatus.FAILED,
            pipeline_end_timestamp=now,
            pipeline_run_duration=format_duration(now - record.pipeline_start_timestamp),
            phase_failed=failed_phase or record.phase_failed or "unknown",
        )
        self.pipeline.drive_store().update(record)
        log.warning("closed %s as FAILED: %s", record.pipeline_id, reason)

    def _close_if_dead(self, record: RunRecord, reason: str) -> None:
        """Close another window's RUNNING row, unless a live process still holds its lease."""
        store = self.pipeline.drive_store()
        if store.is_held(record.pipeline_name, record.query_window_start_timestamp):
            log.warning("%s has no recent heartbeat but a live process still holds its lease; leaving it", record.pipeline_id)
            return
        self._close(record, reason)


class _Heartbeat:
    """Renews the lease and writes the row's heartbeat every ``heartbeat_seconds``."""

    def __init__(self, runner: Runner, run_id: str) -> None:
        self.runner = runner
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"drivetrain-heartbeat-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        runner = self.runner
        store = runner.pipeline.drive_store()
        while not self._stop.wait(runner.heartbeat_seconds):
            try:
                runner.lease = store.renew_lease(runner.lease, runner.lease_seconds)
                store.heartbeat(self.run_id, _now())
            except LeaseError as exc:
                runner.cancel(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("heartbeat of %s failed: %s", self.run_id, exc)
