"""One drive-table row, typed: :class:`RunRecord`, and one phase's state: :class:`PhaseState`.

The runner is the only writer of these rows. Values are immutable; the runner derives a new
record with :func:`attrs.evolve` at each step and hands it to the drive store. ``to_row`` /
``from_row`` convert to and from the column dictionary the stores read and write, keyed by the
spec's column names.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import attrs

from drivetrain._row_codec import Fields, report_damage, shown, unreadable
from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN


class RunStatus(enum.StrEnum):
    """``pipeline_status`` of a run."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class PhaseStatus(enum.StrEnum):
    """``status`` inside a phase's VARIANT column."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


@attrs.frozen(kw_only=True)
class PhaseState:
    """What the drive table holds about one phase of one run."""

    status: PhaseStatus = PhaseStatus.PENDING
    """PENDING until the phase starts; then RUNNING, COMPLETED, FAILED or SKIPPED."""
    start_timestamp: datetime | None = None
    end_timestamp: datetime | None = None
    actual_run_duration: str | None = None
    """Human duration, like ``"5m 23s"``."""
    expected_run_duration: str | None = None
    """From config, for duration alerts."""
    retry_number: int = 0
    """Retries used inside this phase for transient errors (0 = first attempt succeeded)."""
    error_message: str | None = None
    skip_reason: str | None = None
    """Why a SKIPPED phase was skipped (disabled, completed by an earlier run...)."""
    carried_from: str | None = None
    """Run id whose completed result this skipped phase carries forward."""
    phase_specific_details: dict[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "start_timestamp": _iso(self.start_timestamp),
            "end_timestamp": _iso(self.end_timestamp),
            "actual_run_duration": self.actual_run_duration,
            "retry_number": self.retry_number,
            "error_message": self.error_message,
            "status": self.status.value,
            "expected_run_duration": self.expected_run_duration,
            "skip_reason": self.skip_reason,
            "carried_from": self.carried_from,
            "phase_specific_details": self.phase_specific_details,
        }

    @classmethod
    def from_json(cls, data: Any, *, damage: list[str] | None = None, column: str = "phase") -> PhaseState:
        """The state stored in a phase column.

        A value of the wrong shape never raises: what cannot be read is left at its default
        (an unreadable status reads as PENDING, so the phase runs again) and described in
        ``damage`` as ``"column.key: what is wrong"``. An unreadable whole value is kept in
        ``phase_specific_details["unreadable"]``, so writing the state back loses nothing.
        """
        found = damage if damage is not None else []
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            found.append(f"{column}: expected a JSON object, found {shown(data)}")
            return cls(phase_specific_details={"unreadable": data})
        read = Fields(data, column, found)
        details = data.get("phase_specific_details")
        if details is not None and not isinstance(details, Mapping):
            found.append(f"{column}.phase_specific_details: expected a JSON object, found {shown(details)}")
            details = {"unreadable": details}
        return cls(
            status=read.choice("status", PhaseStatus, PhaseStatus.PENDING),
            start_timestamp=read.timestamp("start_timestamp"),
            end_timestamp=read.timestamp("end_timestamp"),
            actual_run_duration=read.text("actual_run_duration"),
            expected_run_duration=read.text("expected_run_duration"),
            retry_number=read.count("retry_number"),
            error_message=read.text("error_message"),
            skip_reason=read.text("skip_reason"),
            carried_from=read.text("carried_from"),
            phase_specific_details=dict(details or {}),
        )


def _empty_phases() -> dict[str, PhaseState]:
    return {name: PhaseState() for name in PHASE_NAMES}


@attrs.frozen(kw_only=True)
class RunRecord:
    """One row of the drive table: one attempt at one window of one pipeline."""

    pipeline_id: str
    """Unique run id, e.g. ``genetic_tests_20251115T100000Z_run2``."""
    pipeline_name: str
    pipeline_status: RunStatus = RunStatus.RUNNING
    pipeline_retry_number: int = 0
    """0 for the first attempt at this window, 1 for the next, and so on."""
    pipeline_start_timestamp: datetime
    pipeline_end_timestamp: datetime | None = None
    pipeline_run_duration: str | None = None
    query_window_start_timestamp: datetime
    query_window_end_timestamp: datetime
    target_date: date
    query_window_duration: str
    phases: dict[str, PhaseState] = attrs.field(factory=_empty_phases)
    """Phase name -> state; every name in PHASE_NAMES is present."""
    phases_completed: tuple[str, ...] = ()
    phases_skipped: tuple[str, ...] = ()
    phase_failed: str | None = None
    phases_pending: tuple[str, ...] = ()
    heartbeat_at: datetime | None = None
    """Last sign of life of the process running this row."""
    lease_holder: str | None = None
    """host:pid:token of the process that runs this row."""
    config_hash: str | None = None
    config_snapshot: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    damage: tuple[str, ...] = ()
    """What the stored row held that could not be read, one ``"column: what is wrong"`` each;
    empty for a sound row. Not a column: see :meth:`from_row`."""

    @property
    def is_finished(self) -> bool:
        return self.pipeline_status is not RunStatus.RUNNING

    def phase(self, name: str) -> PhaseState:
        return self.phases[name]

    def with_phase(self, name: str, state: PhaseState, **changes: Any) -> RunRecord:
        """A copy with one phase's state replaced (and any other fields changed)."""
        return attrs.evolve(self, phases={**self.phases, name: state}, **changes)

    def to_row(self) -> dict[str, Any]:
        """Columns as the spec names them; phase columns as JSON-able dicts."""
        row: dict[str, Any] = {
            "pipeline_id": self.pipeline_id,
            "pipeline_name": self.pipeline_name,
            "pipeline_status": self.pipeline_status.value,
            "pipeline_retry_number": self.pipeline_retry_number,
            "pipeline_start_timestamp": self.pipeline_start_timestamp,
            "pipeline_end_timestamp": self.pipeline_end_timestamp,
            "pipeline_run_duration": self.pipeline_run_duration,
            "query_window_start_timestamp": self.query_window_start_timestamp,
            "query_window_end_timestamp": self.query_window_end_timestamp,
            "target_date": self.target_date,
            "query_window_duration": self.query_window_duration,
        }
        for name in PHASE_NAMES:
            row[VARIANT_COLUMN[name]] = self.phases[name].to_json()
        row.update(
            phases_completed=list(self.phases_completed),
            phases_skipped=list(self.phases_skipped),
            phase_failed=self.phase_failed,
            phases_pending=list(self.phases_pending),
            heartbeat_at=self.heartbeat_at,
            lease_holder=self.lease_holder,
            config_hash=self.config_hash,
            config_snapshot=self.config_snapshot,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
        return row

    def to_json(self) -> dict[str, Any]:
        """The row with timestamps as ISO strings: for ``--json`` output and notifications."""
        out: dict[str, Any] = {}
        for key, value in self.to_row().items():
            if isinstance(value, datetime):
                out[key] = _iso(value)
            elif isinstance(value, date):
                out[key] = value.isoformat()
            else:
                out[key] = value
        if self.damage:
            out["damage"] = list(self.damage)
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, where: str | None = None) -> RunRecord:
        """The record a store read, tolerating damaged values (see :attr:`damage`).

        Only a row without a usable id, pipeline name or window cannot be read: that raises
        :class:`~drivetrain.errors.PermanentError` naming the row and the column. ``where``
        (the store's location) goes into the warning logged for a damaged row.
        """
        damage: list[str] = []
        read = Fields(row, None, damage)
        phases = {
            name: PhaseState.from_json(row.get(VARIANT_COLUMN[name]), damage=damage, column=VARIANT_COLUMN[name])
            for name in PHASE_NAMES
        }
        run_id = read.required("pipeline_id", where)
        window_start = read.required_timestamp("query_window_start_timestamp", run_id, where)
        window_end = read.required_timestamp("query_window_end_timestamp", run_id, where)
        if window_end <= window_start:
            raise unreadable(where, run_id, "query_window_end_timestamp", window_end,
                             f"a window that ends ({window_end.isoformat()}) before it starts ({window_start.isoformat()})")
        created_at = read.timestamp("created_at")
        target = read.day("target_date") or window_start.date()
        snapshot = row.get("config_snapshot")
        if snapshot is not None and not isinstance(snapshot, Mapping):
            damage.append(f"config_snapshot: expected a JSON object, found {shown(snapshot)}")
            snapshot = {"unreadable": snapshot}
        phase_failed = read.text("phase_failed")
        if phase_failed is not None and phase_failed not in PHASE_NAMES and phase_failed != "unknown":
            damage.append(f"phase_failed: {phase_failed!r} is not a phase name")
        record = cls(
            pipeline_id=run_id,
            pipeline_name=read.required("pipeline_name", where, run_id),
            pipeline_status=read.choice("pipeline_status", RunStatus, RunStatus.FAILED),
            pipeline_retry_number=read.count("pipeline_retry_number"),
            # unreadable start: when the row was written, else the window end (not to look partial)
            pipeline_start_timestamp=read.timestamp("pipeline_start_timestamp") or created_at or window_end,
            pipeline_end_timestamp=read.timestamp("pipeline_end_timestamp"),
            pipeline_run_duration=read.text("pipeline_run_duration"),
            query_window_start_timestamp=window_start,
            query_window_end_timestamp=window_end,
            target_date=target,
            query_window_duration=read.text("query_window_duration") or "",
            phases=phases,
            phases_completed=read.phase_list("phases_completed"),
            phases_skipped=read.phase_list("phases_skipped"),
            phase_failed=phase_failed,
            phases_pending=read.phase_list("phases_pending"),
            heartbeat_at=read.timestamp("heartbeat_at"),
            lease_holder=read.text("lease_holder"),
            config_hash=read.text("config_hash"),
            config_snapshot=dict(snapshot) if snapshot is not None else None,
            created_at=created_at,
            updated_at=read.timestamp("updated_at"),
            damage=tuple(damage),
        )
        if damage:
            report_damage(record.pipeline_id, record.damage, where)
        return record


