"""Reading drive-table values that may be damaged, for :mod:`drivetrain.record`.

A row edited by hand, written by a buggy tool or restored from a bad copy can hold a phase
column of the wrong shape, an unknown status or a list of unknown phase names. The record
codec reads such a row anyway: :class:`Fields` returns a safe default for each value it cannot
use and describes the problem, and :func:`report_damage` logs it (once per process) so that
someone can repair the row. The pipeline keeps running around it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import attrs

from drivetrain.errors import PermanentError
from drivetrain.phase_names import PHASE_NAMES

log = logging.getLogger("drivetrain.record")


def parse_iso(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def aware(value: Any) -> Any:
    value = parse_iso(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def shown(value: Any, limit: int = 60) -> str:
    """A stored value as a damage message shows it: its JSON type and a short excerpt."""
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) <= limit else text[: limit - 3] + '...'}"


@attrs.define
class Fields:
    """Reads the keys of one stored object, noting in ``damage`` each value it cannot use."""

    data: Mapping[str, Any]
    column: str | None
    damage: list[str]

    def _bad(self, key: str, value: Any, expected: str) -> None:
        name = f"{self.column}.{key}" if self.column else key
        self.damage.append(f"{name}: expected {expected}, found {shown(value)}")

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        self._bad(key, value, "a string")
        return str(value)

    def count(self, key: str) -> int:
        value = self.data.get(key)
        if value is None:
            return 0
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                number = int(value)
                if number >= 0 and number == float(value):
                    return number
            except (ValueError, OverflowError):
                pass
        self._bad(key, value, "a whole number of at least 0")
        return 0

    def timestamp(self, key: str) -> datetime | None:
        value = self.data.get(key)
        try:
            parsed = aware(value)
        except (ValueError, TypeError, OverflowError):
            parsed = None
        if value is None or isinstance(parsed, datetime):
            return parsed
        self._bad(key, value, "an ISO 8601 timestamp")
        return None

    def day(self, key: str) -> date | None:
        value = self.data.get(key)
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self._bad(key, value, "a date")
            return None

    def choice(self, key: str, kind: type[enum.StrEnum], default: Any) -> Any:
        value = self.data.get(key)
        if value is None and self.column is not None:
            return default
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return kind(value)
        except ValueError:
            self._bad(key, value, "one of " + ", ".join(m.value for m in kind))
            return default

    def phase_list(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self._bad(key, value, "a list of phase names")
            return ()
        known = tuple(v for v in value if v in PHASE_NAMES)
        if len(known) != len(value):
            self._bad(key, [v for v in value if v not in PHASE_NAMES], "phase names only")
        return known

    def required(self, key: str, where: str | None, run_id: str | None = None) -> str:
        value = self.data.get(key)
        if isinstance(value, str) and value:
            return value
        raise unreadable(where, run_id, key, value)

    def required_timestamp(self, key: str, run_id: str, where: str | None) -> datetime:
        value = self.data.get(key)
        found = len(self.damage)
        parsed = self.timestamp(key)
        if parsed is None:
            del self.damage[found:]
            raise unreadable(where, run_id, key, value)
        return parsed


def unreadable(where: str | None, run_id: str | None, key: str, value: Any, problem: str | None = None) -> Exception:
    """The error for a row that cannot be placed at all (no id, pipeline or window)."""
    row = f"row {run_id!r}" if run_id else "a row"
    return PermanentError(
        f"{where or 'the drive table'}: {row} has {problem or f'no usable {key} ({shown(value)})'}: it cannot be told "
        "which window it belongs to; fix or delete that row with SQL (see 'A damaged drive-table row' in docs/runbook.md)"
    )


#: Damaged rows already reported by this process: each is logged once, not at every read.
_REPORTED: set[tuple[str, str, tuple[str, ...]]] = set()


def report_damage(run_id: str, damage: tuple[str, ...], where: str | None) -> None:
    """Log a damaged row once per process (the runner and the commands read rows many times)."""
    key = (where or "", run_id, damage)
    if key in _REPORTED:
        return
    _REPORTED.add(key)
    log.warning(
        "drive-table row %s (%s) is damaged: %s; it is read without those values (an unreadable status as "
        "FAILED, an unreadable phase as not done, so that the window runs again); "
        "see 'A damaged drive-table row' in docs/runbook.md",
        run_id, where or "drive table", "; ".join(damage),
    )
