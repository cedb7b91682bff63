"""Settling late data: loaded windows are re-counted until their records stop arriving.

A window that ran while its source was still filling keeps what it saw. Records that arrive
later with a timestamp inside it would never reach the target. With
``query_window.settle_horizon`` set (``"6h"``), every successful window that ended less than
that long ago is still *settling*: each plain run counts its records at the source again (a
``Source.count`` call, not an extract) and compares the count with the one its last successful
load recorded. Where the count is unchanged and the source can fingerprint its windows
(:meth:`Source.fingerprint`: which records the window holds), the fingerprints are compared
too, so a late record and a deleted one in the same window do not cancel out. A window whose
count or fingerprint changed has *drifted* and is loaded again, as a new attempt of that
window; its ``source_count`` phase records why (``reload``: ``source count 98 -> 103 since the
run of ...``). A source that fails a re-count only makes a note: the run and its own window go
on, and the next run counts again.

::

    from drivetrain.settle import settle

    outcome = settle(pipeline)          # re-count, then reload each drifted window
    outcome.drifts                      # what every re-count found
    outcome.records                     # the reload runs' drive-table rows
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from drivetrain.drive import holder_is_dead
from drivetrain.errors import LeaseError, TransientError
from drivetrain.phase_names import SOURCE_COUNT, SOURCE_TO_STAGE_TRANSFER
from drivetrain.record import RunRecord, RunStatus
from drivetrain.secrets import redact
from drivetrain.window import Window

if TYPE_CHECKING:
    from drivetrain.drive import DriveStore
    from drivetrain.pipeline import Pipeline

__all__ = ["Drift", "SettleOutcome", "check", "loaded_count", "loaded_fingerprint", "plan_reloads", "reload_details",
           "reload_reason", "settle", "settling_windows"]

log = logging.getLogger("drivetrain.settle")

T = TypeVar("T")

#: Run outcomes that count as a load of the window (SKIPPED: the window was empty).
SETTLED = (RunStatus.SUCCESS, RunStatus.SKIPPED)


def loaded_count(record: RunRecord) -> int | None:
    """The source count a run recorded for its window (its extract's, when it did not count)."""
    for phase, key in ((SOURCE_COUNT, "count"), (SOURCE_TO_STAGE_TRANSFER, "rows_read")):
        value = record.phases[phase].phase_specific_details.get(key)
        if isinstance(value, int | float):
            return int(value)
    return None


def loaded_fingerprint(record: RunRecord) -> str | None:
    """The source fingerprint a run recorded for its window (None: it recorded none)."""
    value = record.phases[SOURCE_COUNT].phase_specific_details.get("fingerprint")
    return value if isinstance(value, str) else None


def last_load(attempts: Sequence[RunRecord]) -> RunRecord | None:
    """The newest attempt (of one window, oldest first) that loaded it: SUCCESS or SKIPPED."""
    return next((r for r in reversed(attempts) if r.pipeline_status in SETTLED), None)


@attrs.frozen
class Drift:
    """What re-counting one settling window found."""

    window: Window
    loaded_by: str
    """The run id of the window's last successful load."""
    loaded: int | None
    """The source count that load recorded (None when it recorded none)."""
    count: int | None = None
    """The source count now (None when the re-count failed)."""
    error: str | None = None
    """Why the window could not be re-counted or compared."""
    loaded_fingerprint: str | None = None
    """The source fingerprint the load recorded (None when it recorded none)."""
    fingerprint: str | None = None
    """The source fingerprint now (None when not taken: the count changed, or the source has none)."""

    @property
    def records_changed(self) -> bool:
        """True when the count is the same but the window holds other records than at the load."""
        return _changed(self.loaded_fingerprint, self.fingerprint)

    @property
    def drifted(self) -> bool:
        """True when the source now holds a different number of records, or other records, for the window."""
        return self.error is None and (self.count != self.loaded or self.records_changed)

    @property
    def reason(self) -> str:
        """The reload reason (or what went wrong), as the drive table and the CLI say it."""
        if self.error is not None:
            return self.error
        return _reason(self.loaded, self.count, self.loaded_by, changed=self.records_changed)


def _changed(before: str | None, now: str | None) -> bool:
    return before is not None and now is not None and before != now


def _reason(before: int | None, count: int | None, run_id: str, *, changed: bool = False) -> str:
    if before != count:
        return f"source count {before} -> {count} since the run of {run_id}"
    if changed:
        return f"source count unchanged ({count}) but the window's records changed since the run of {run_id} (fingerprint)"
    return f"source count unchanged ({count}) since the run of {run_id}"


@attrs.frozen
class SettleOutcome:
    """What :func:`settle` did."""

    drifts: tuple[Drift, ...]
    """Every settling window re-counted, drifted or not."""
    records: tuple[RunRecord, ...] = ()
    """The reload runs, in order."""
    locked: tuple[str, ...] = ()
    """Drifted windows another process was running: they are counted again next time."""

    @property
    def reloaded(self) -> list[Window]:
        return [d.window for d in self.drifts if d.drifted]


def settling_windows(pipeline: Pipeline, now: datetime | None = None) -> list[tuple[Window, RunRecord]]:
    """Windows still settling, oldest first, each with its last successful load.

    A window settles while its end lies within ``settle_horizon`` before ``now``. A window a
    live process is running now is left to that run (a RUNNING row whose process died is not:
    the reload closes it, as any new attempt does).
    """
    horizon = pipeline.config.query_window.settle_horizon
    if horizon is None:
        return []
    now = now or datetime.now(UTC)
    store = pipeline.drive_store()
    if not store.exists():
        return []
    attempts: dict[tuple[datetime, datetime], list[RunRecord]] = {}
    for record in reversed(store.history(pipeline.name)):  # oldest first
        end = record.query_window_end_timestamp
        if now - horizon < end <= now:
            attempts.setdefault((record.query_window_start_timestamp, end), []).append(record)
    out = []
    for (start, end), runs in sorted(attempts.items()):
        loaded = last_load(runs)
        if loaded is None or (runs[-1].pipeline_status is RunStatus.RUNNING and _busy(store, pipeline.name, start)):
            continue
        out.append((Window(start, end, pipeline.grid.timezone), loaded))
    return out


def _busy(store: DriveStore, pipeline_name: str, start: datetime) -> bool:
    """True while a live process runs the window, or a run driven step by step (Airflow) holds it."""
    if store.is_held(pipeline_name, start):
        return True
    lease = store.current_lease(pipeline_name, start)
    return lease is not None and lease.expires_at > datetime.now(UTC) and not holder_is_dead(lease.holder)


def check(pipeline: Pipeline, now: datetime | None = None) -> list[Drift]:
    """Re-count the source for every settling window; never raises for a source's failure.

    Transient errors are retried as ``retry`` in config says. Once the source has failed that
    way, the later windows are not counted this time (the source is down; the next run counts
    them), so a dead source costs one window's retries, not every window's.
    """
    drifts = []
    down: str | None = None
    for window, loaded in settling_windows(pipeline, now):
        before = loaded_count(loaded)
        if before is None:
            drifts.append(Drift(window, loaded.pipeline_id, None, error=f"{loaded.pipeline_id} recorded no source count to compare with"))
            continue
        if down is not None:
            drifts.append(Drift(window, loaded.pipeline_id, before, error=f"not counted: the source failed for an earlier window ({down})"))
            continue
        before_fp = loaded_fingerprint(loaded)
        fingerprint = None
        try:
            count = _ask(pipeline, "re-count", pipeline.source().count, window)
            if count == before and before_fp is not None:  # the same count: the same records?
                fingerprint = _ask(pipeline, "fingerprint", pipeline.source().fingerprint, window)
        except Exception as exc:  # noqa: BLE001 - a failed re-count is reported, never fatal
            message = redact(str(exc))
            down = message if isinstance(exc, TransientError) else None
            drifts.append(Drift(window, loaded.pipeline_id, before, error=f"could not re-count the source: {message}"))
            continue
        drifts.append(Drift(window, loaded.pipeline_id, before, count, loaded_fingerprint=before_fp,
                            fingerprint=fingerprint))
    return drifts


def _ask(pipeline: Pipeline, what: str, call: Callable[[Window], T], window: Window) -> T:
    """``call(window)`` (a question to the source), retrying transient errors with the pipeline's backoff."""
    retry = pipeline.config.retry
    attempt = 0
    while True:
        try:
            return call(window)
        except TransientError as exc:
            if attempt >= retry.max_retries:
                raise
            attempt += 1
            log.warning("settle: %s of %s failed, retry %d of %d: %s", what, window, attempt, retry.max_retries,
                        redact(str(exc)))
            time.sleep(retry.delay(attempt))


def reload_details(attempts: Sequence[RunRecord], count: int, fingerprint: str | None = None) -> dict[str, Any]:
    """``{"reload": ...}`` for the source_count details of a run of an already loaded window.

    :param attempts: the window's earlier attempts, oldest first.
    :param count: the source count of this run.
    :param fingerprint: the source fingerprint of this run, when it took one.
    """
    loaded = last_load(attempts)
    before = loaded_count(loaded) if loaded is not None else None
    if loaded is None or before is None:
        return {}
    changed = count == before and _changed(loaded_fingerprint(loaded), fingerprint)
    details = {"previous_run": loaded.pipeline_id, "previous_count": before, "count": count, "drift": count - before,
               "reason": _reason(before, count, loaded.pipeline_id, changed=changed)}
    return {"reload": {**details, "records_changed": True} if changed else details}


def reload_reason(record: RunRecord) -> str | None:
    """The reason a run reloaded its window after its source records changed, if they did."""
    reload = record.phases[SOURCE_COUNT].phase_specific_details.get("reload") or {}
    return str(reload.get("reason")) if reload.get("drift") or reload.get("records_changed") else None


def plan_reloads(pipeline: Pipeline, planned: list[Window] | None, *, note: Callable[[str], None],
                 now: datetime | None = None) -> list[Window] | None:
    """A plain run's windows: ``planned`` (None: nothing due) then every drifted window.

    The run's own window goes first, so a reload that fails cannot hold back new data. Each
    finding is passed to ``note`` as one line.
    """
    drifts = check(pipeline, now)
    reloads = []
    for drift in drifts:
        label = f"settle: {drift.window}"
        if drift.error is not None:
            note(f"{label}: not checked for late records this time (the run goes on; the next plain run counts "
                 f"again): {drift.reason}")
        elif drift.drifted:
            note(f"{label}: {drift.reason}: reloading the window")
            if drift.window not in (planned or []):
                reloads.append(drift.window)
    if drifts and not any(d.drifted or d.error for d in drifts):
        note(f"settle: {len(drifts)} window(s) inside settle_horizon "
             f"{pipeline.config.query_window.settle_horizon_text} re-counted: no change")
    if planned is None and not reloads:
        return None
    return [*(planned or []), *reloads]


def settle(pipeline: Pipeline, *, now: datetime | None = None, runner: Any = None) -> SettleOutcome:
    """Re-count every settling window and reload each one that drifted, oldest first.

    Reloads that fail are recorded like any failed run and tried again by the next settle;
    a window another process holds is left for next time (see ``SettleOutcome.locked``).
    """
    drifts = tuple(check(pipeline, now))
    runner = runner or pipeline.runner()
    records, locked = [], []
    for drift in drifts:
        if not drift.drifted:
            continue
        try:
            records.append(runner.run(drift.window))
        except LeaseError as exc:
            locked.append(f"{drift.window}: {exc}")
    return SettleOutcome(drifts=drifts, records=tuple(records), locked=tuple(locked))
