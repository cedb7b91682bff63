"""Pieces the runner uses: its logger, the heartbeat thread, and dry-run plan lines."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.errors import LeaseError
from drivetrain.secrets import RedactingFilter

if TYPE_CHECKING:
    from drivetrain.runner import Runner

log = logging.getLogger("drivetrain.run")
log.addFilter(RedactingFilter())  # records made here are redacted before any handler sees them

#: skip_reason of phases skipped because an earlier phase ended the run early (run SKIPPED).
EARLY_END = "the run ended early: "


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
