"""The retry loop of one phase: transient errors are tried again with backoff, the rest end it.

:class:`PhaseAttempts` calls the phase's work until it returns, or an error ends it: a
:class:`~drivetrain.errors.TransientError` is retried after the configured delay (up to
``retry.max_retries`` times) unless the run was asked to stop meanwhile; a lost lease, a
timeout or any other error fails the phase at once. It returns an :class:`Outcome` and
never writes anything: the runner records it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from drivetrain.errors import DrivetrainError, LeaseError, PhaseTimeout, TransientError
from drivetrain.results import PhaseResult
from drivetrain.secrets import redact

if TYPE_CHECKING:
    from drivetrain.config import RetryConfig
    from drivetrain.phases import PhaseContext


@attrs.frozen
class Outcome:
    """How the attempts at one phase ended."""

    result: PhaseResult | None = None
    """What the phase returned, when it returned."""
    error: str | None = None
    """Why it failed, when it raised."""
    lease_lost: str | None = None
    """Set when the window's lease was lost (taken over or released): the run must stop."""


@attrs.define
class PhaseAttempts:
    """Runs one phase's work with the pipeline's retry policy.

    :param name: the phase, for log lines.
    :param policy: the pipeline's ``retry`` section.
    :param ctx: the run's context: its cancellation (which ends waiting) and its logger.
    """

    name: str
    policy: RetryConfig
    ctx: PhaseContext
    attempt: int = 0
    """Retries made so far (0 while the first attempt runs); the phase's ``retry_number``."""

    def run(self, work: Callable[[], PhaseResult]) -> Outcome:
        """Call ``work`` until it returns or an error ends it (see the module docstring).

        ``KeyboardInterrupt`` and ``SystemExit`` pass through; :attr:`attempt` then says how far
        it got.
        """
        ctx = self.ctx
        while True:
            try:
                return Outcome(result=work())
            except LeaseError as exc:  # the window was taken or released under us: stop, say why
                return Outcome(error=f"{type(exc).__name__}: {exc}", lease_lost=str(exc))
            except TransientError as exc:
                if ctx.cancel_event.is_set():  # stopped (SIGTERM, timeout, lost lease): say so, do not retry
                    return Outcome(error=f"{exc}; then {ctx.cancel_reason}")
                if self.attempt >= self.policy.max_retries:
                    return Outcome(error=f"{exc} (gave up after {self.attempt + 1} attempt(s))")
                self.attempt += 1
                delay = self.policy.delay(self.attempt)
                ctx.log.warning("transient error, retry %d of %d in %.1fs: %s", self.attempt, self.policy.max_retries, delay,
                                redact(str(exc)))
                if ctx.cancel_event.wait(delay):
                    return Outcome(error=f"{exc}; then {ctx.cancel_reason}")
            except PhaseTimeout as exc:
                return Outcome(error=str(exc))
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - a phase's bug fails the phase, not the runner
                if not isinstance(exc, DrivetrainError):  # our own errors say it all; a bug needs its traceback
                    ctx.log.exception("%s failed", self.name)
                return Outcome(error=f"{type(exc).__name__}: {exc}")

