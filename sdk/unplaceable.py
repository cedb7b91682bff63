"""Records a source read but could place in no window, counted so that none vanishes.

A record belongs to the window holding its query field. A line that is not a record (a JSONL
line cut off half-way), a record without the field, or a field that does not read as a time
(null, ``2025-13-45``, ``01/01/2025``, a number without ``timestamp_unit``) belongs to no
window: no count and no extract can include it, so the audit cannot miss it either. A source
that can meet such records counts them while it counts a window (:meth:`Source.unplaceable
<drivetrain.base.Source.unplaceable>`), and the ``source_count`` phase stores the tally in its
``phase_specific_details`` under :data:`KEY`::

    {"count": 120, "unplaceable": {"records": 2,
        "reasons": {"reported_at: not a timestamp": 1, "line is not valid JSON": 1},
        "sample": ["data/a.jsonl line 7: reported_at: not a timestamp ('2025-13-45')", ...]}}

``source_system.on_unplaceable`` says what then happens: ``warn`` (the default) records the
tally and goes on; ``fail`` fails the ``source_count`` phase with the tally in its message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["KEY", "MODES", "SAMPLE_SIZE", "Unplaceable", "from_details"]

#: The key of ``source_count``'s ``phase_specific_details`` holding the tally.
KEY = "unplaceable"
#: Values of ``source_system.on_unplaceable``.
MODES = ("warn", "fail")
#: How many examples the tally keeps.
SAMPLE_SIZE = 5


@attrs.define
class Unplaceable:
    """A tally of records that belong to no window: how many, why, and a few examples."""

    reasons: Counter[str] = attrs.field(factory=Counter)
    """Reason -> how many records it applies to."""
    sample: list[str] = attrs.field(factory=list)
    """Up to :data:`SAMPLE_SIZE` examples, each saying where the record is and why."""

    @property
    def records(self) -> int:
        """How many records belong to no window."""
        return sum(self.reasons.values())

    def add(self, reason: str, where: str, value: Any = None, n: int = 1) -> None:
        """Count ``n`` records for ``reason``; keep ``where`` (and the value) as an example."""
        if n <= 0:
            return
        self.reasons[reason] += n
        if len(self.sample) < SAMPLE_SIZE:
            shown = f" ({_short(value)})" if value is not None else ""
            self.sample.append(f"{where}: {reason}{shown}")

    def tally(self, reason: str, n: int) -> None:
        """Count ``n`` more records for ``reason`` without keeping an example."""
        if n > 0:
            self.reasons[reason] += n

    @property
    def room(self) -> int:
        """How many more examples the sample keeps."""
        return SAMPLE_SIZE - len(self.sample)

    def details(self) -> dict[str, Any]:
        """The tally as stored in the drive table (empty when every record was placed)."""
        if not self.records:
            return {}
        return {KEY: {"records": self.records, "reasons": dict(self.reasons.most_common()),
                      "sample": list(self.sample)}}

    def summary(self) -> str:
        """One line for logs and error messages."""
        top = "; ".join(f"{reason} ({n})" for reason, n in self.reasons.most_common(3))
        return f"{self.records} record(s) belong to no window: {top}"


def from_details(details: Mapping[str, Any] | None) -> Unplaceable | None:
    """The tally stored in a ``source_count`` phase's details, if any."""
    stored = (details or {}).get(KEY)
    if not isinstance(stored, Mapping) or not stored.get("records"):
        return None
    return Unplaceable(Counter({str(k): int(v) for k, v in (stored.get("reasons") or {}).items()}),
                       [str(s) for s in stored.get("sample") or []])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
