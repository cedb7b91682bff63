"""Pieces the runner uses: its logger, the heartbeat thread, phase timeouts, dry-run plan lines.

The rules for how a run's row changes are in :mod:`drivetrain.transitions`, the retry loop in
:mod:`drivetrain.retry`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.errors import LeaseError, PhaseTimeout
from drivetrain.secrets import RedactingFilter
from drivetrain.transitions import EARLY_END, closed_record

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from drivetrain.phases import BasePhase, PhaseContext
    from drivetrain.runner import Runner

log = logging.getLogger("drivetrain.run")
log.addFilter(RedactingFilter())  # records made here are redacted before any handler sees them

#: Re-exported: where the runner's record rules live now.
__all__ = ["EARLY_END", "Heartbeat", "PlannedPhase", "RunLogger", "closed_record", "log", "phase_timer", "run_with_timeout"]


def _now() -> datetime:
    return datetime.now(UTC)


class RunLogger(logging.LoggerAdapter):
    """Puts pipeline, run id, window and phase on every line (and in ``extra`` for JSON logs)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        phase = extra.get("phase")
        phase_part = f" {phase}" if phase else ""
        prefix = f"[{extra.get('pipeline')} {extra.get('run_id')} {extra.get('window')}{phase_part}]"
        return f"{prefix} {msg}", kwargs


@attrs.frozen
class PlannedPhase:
    """One line of a dry-run plan."""

    phase: str
    action: str
    """``run`` or ``skip``."""
    reason: str


class Heartbeat:
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
                runner.lease = store.renew_lease(runner.lease, runner._lease_ttl)
                store.heartbeat(self.run_id, _now())
            except LeaseError as exc:
                runner.cancel(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("heartbeat of %s failed: %s", self.run_id, exc)


@contextlib.contextmanager
def phase_timer(ctx: PhaseContext, name: str, minutes: float | None) -> Iterator[tuple[float | None, str]]:
    """A phase's time limit (``timeout_minutes``; None or 0: none): yields ``(deadline, why)``.

    ``deadline`` is on the ``time.monotonic()`` clock (None without a limit); when it passes,
    the run is cancelled with ``why``, which wakes retry waits and stops cooperative phases.
    """
    if not minutes:
        yield None, ""
        return
    why = (f"{name} ran past its timeout of {minutes:g} minutes (timeout_minutes) and was stopped; "
           "anything it had not committed is discarded")
    deadline = time.monotonic() + minutes * 60
    timer = threading.Timer(minutes * 60, ctx.cancel, args=(why,))
    timer.daemon = True
    timer.start()
    try:
        yield deadline, why
    finally:
        timer.cancel()


def run_with_timeout(phase: BasePhase, ctx: PhaseContext, seconds: float | None, hold: Callable[[], AbstractContextManager[object]],
                     why: str) -> Any:
    """``phase.run(ctx)``, given up on after ``seconds`` (None: no limit, run on this thread).

    With a limit the phase runs on a worker thread and this thread stops waiting when the time
    is up, whatever the phase does (sleeps, waits on a socket, runs a long query). Python cannot
    kill a thread, so the abandoned work may go on in this process until it ends (for the CLI,
    at the latest when the process exits), but it cannot commit: it is marked abandoned in
    ``ctx``, so its next ``ctx.fence()`` (which every commit calls first) and
    ``ctx.check_cancelled()`` raise. Work a user's code writes to other systems without the
    fence is that code's to bound.

    :param hold: keeps the worker thread's connections open for the phase (Pipeline.session).
    :param why: the PhaseTimeout message.
    :raises PhaseTimeout: the phase ran past ``seconds``.
    """
    if seconds is None:
        return phase.run(ctx)
    if seconds <= 0:
        raise PhaseTimeout(phase.name, why)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            with hold():
                box["result"] = phase.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc

    worker = threading.Thread(target=work, name=f"drivetrain-phase-{phase.name}", daemon=True)
    worker.start()
    try:
        worker.join(seconds)
    except BaseException:  # interrupted while waiting (second Ctrl-C): the worker is on its own
        ctx.abandon(worker)
        raise
    if worker.is_alive():
        ctx.abandon(worker)
        ctx.cancel(why)  # a phase that checks for cancellation stops at its next check
        raise PhaseTimeout(phase.name, why)
    if "error" in box:
        raise box["error"]
    return box["result"]

