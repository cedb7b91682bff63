"""What a phase returns: typed results, and the spec's plain dicts converted on entry.

A phase returns a :class:`PhaseResult` (or a subclass). Code written to the spec's script
interface may return a dict instead (``{'skip_dag_run': False, 'error_message': None,
'count': 10000}``); :func:`to_result` turns it into the matching typed result, so both styles
run through one path. ``skip_dag_run=True`` or an ``error_message`` means the phase failed
and the run stops there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


def _details(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class PhaseResult:
    """The outcome of one phase."""

    skip_dag_run: bool = False
    """True stops the pipeline: the phase counts as failed."""
    error_message: str | None = None
    """Why the phase failed; stored in the drive table. Setting it also fails the phase."""
    details: dict[str, Any] = attrs.field(factory=dict, converter=_details)
    """Phase-specific details for the drive table's ``phase_specific_details``."""
    skip_remaining: bool = False
    """True ends the run early as SKIPPED (e.g. an empty window with ``on_empty_window: skip``)."""

    @property
    def failed(self) -> bool:
        return self.skip_dag_run or self.error_message is not None

    def phase_details(self) -> dict[str, Any]:
        """Everything worth storing in ``phase_specific_details``."""
        return dict(self.details)


@attrs.frozen(kw_only=True)
class CountResult(PhaseResult):
    """A count of records in the window (source, stage or target)."""

    count: int | None = None

    def phase_details(self) -> dict[str, Any]:
        return {**self.details, "count": self.count}


@attrs.frozen(kw_only=True)
class TransferResult(PhaseResult):
    """Rows moved from one system to the next."""

    transfer_completed: bool = True
    rows_read: int | None = None
    """Rows taken from the upstream system for this window."""
    rows_written: int | None = None
    """Rows now in the downstream table for this window."""
    rows_rejected: int = 0
    """Rows that failed validation (written to the rejects table)."""
    rows_dropped: int = 0
    """Rows removed on purpose: duplicates, filters."""
    reject_reasons: dict[str, int] = attrs.field(factory=dict)
    """How many rows were rejected or dropped, by reason."""

    @property
    def failed(self) -> bool:
        return super().failed or not self.transfer_completed

    def phase_details(self) -> dict[str, Any]:
        return {
            **self.details,
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "records_failed": self.rows_rejected,
            "rows_dropped": self.rows_dropped,
            "reject_reasons": dict(self.reject_reasons),
            "transfer_status": "FAILED" if self.failed else "SUCCESS",
        }


@attrs.frozen(kw_only=True)
class AuditResult(PhaseResult):
    """Counts compared against tolerances."""

    audit_passed: bool = True

    @property
    def failed(self) -> bool:
        return super().failed or not self.audit_passed

    def phase_details(self) -> dict[str, Any]:
        return {**self.details, "validation_status": "PASSED" if self.audit_passed else "FAILED"}


@attrs.frozen(kw_only=True)
class CleaningResult(PhaseResult):
    """What a cleaning phase archived, deleted or changed."""

    cleaning_completed: bool = True

    @property
    def failed(self) -> bool:
        return super().failed or not self.cleaning_completed


#: Keys of the spec's dict interface that select a result class.
_KIND_KEYS: list[tuple[str, type[PhaseResult]]] = [
    ("count", CountResult),
    ("transfer_completed", TransferResult),
    ("audit_passed", AuditResult),
    ("cleaning_completed", CleaningResult),
]
_COMMON = {"skip_dag_run", "error_message", "details", "skip_remaining"}


def to_result(value: PhaseResult | Mapping[str, Any] | None, *, phase: str) -> PhaseResult:
    """Convert what a phase returned into a :class:`PhaseResult`.

    ``None`` means success with nothing to report. A dict follows the spec's interface; keys
    it does not know go into ``details`` so nothing the user reported is lost.
    """
    if value is None:
        return PhaseResult()
    if isinstance(value, PhaseResult):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(
            f"phase {phase!r} returned {type(value).__name__}; "
            "return a PhaseResult, a dict with 'skip_dag_run' and 'error_message', or None"
        )
    data = dict(value)
    cls: type[PhaseResult] = PhaseResult
    for key, candidate in _KIND_KEYS:
        if key in data:
            cls = candidate
            break
    fields = {f.name for f in attrs.fields(cls)}
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = dict(data.pop("details", None) or {})
    for key, item in data.items():
        if key in fields:
            kwargs[key] = item
        else:
            extra[key] = item
    kwargs["skip_dag_run"] = bool(kwargs.get("skip_dag_run", False))
    if kwargs.get("error_message") is not None:
        kwargs["error_message"] = str(kwargs["error_message"])
    if cls is CountResult and kwargs.get("count") is not None:
        kwargs["count"] = int(kwargs["count"])
    return cls(details=extra, **kwargs)
