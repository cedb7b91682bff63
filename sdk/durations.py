"""Durations as people write them: ``"1h 30m 45s"``, ``"15m"``, ``"1d"``, ``"500ms"``.

drivetrain reads durations from config (``query_window.duration``, timeouts, retry delays) and
writes them into the drive table (``query_window_duration``, ``actual_run_duration``...).
Both directions use one small grammar:

* a duration is one or more parts ``<number><unit>``, spaces optional between parts
  (``"1h 30m"`` and ``"1h30m"`` are the same), upper or lower case;
* units, largest first, each at most once: ``w`` (7 days), ``d`` (24 hours), ``h``, ``m``
  (minutes, never months), ``s``, ``ms``;
* a number is a non-negative decimal (``"1.5s"``, ``"0.5h"``); there is no sign, so negative
  durations cannot be written. ``"0s"`` is zero: callers that need a positive value check it.

:func:`parse_duration` turns such text into a :class:`~datetime.timedelta`;
:func:`format_duration` writes a timedelta (or a number of seconds) back, dropping zero parts
and using ``d h m s``. :func:`is_calendar_duration` tells whole-day durations (``"1d"``,
``"1w"``) apart, because a window grid treats those as local calendar days rather than as a
fixed number of seconds (see :mod:`drivetrain.window`).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

__all__ = ["calculate_duration", "format_duration", "is_calendar_duration", "parse_duration", "records_per_second"]

_MICROS_PER_SECOND = 1_000_000

#: Units in the only order they may appear, with their length in microseconds.
_UNIT_MICROS: dict[str, int] = {
    "w": 7 * 86_400 * _MICROS_PER_SECOND,
    "d": 86_400 * _MICROS_PER_SECOND,
    "h": 3_600 * _MICROS_PER_SECOND,
    "m": 60 * _MICROS_PER_SECOND,
    "s": _MICROS_PER_SECOND,
    "ms": 1_000,
}
_UNIT_RANK = {unit: rank for rank, unit in enumerate(_UNIT_MICROS)}

# "ms" must be tried before "m" so that "500ms" is not read as 500 minutes and a stray "s".
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)", re.IGNORECASE)

_EXPECTED = 'use numbers with units w, d, h, m, s, ms, like "1h 30m"'


def _not_a_duration(text: str, why: str = _EXPECTED) -> ValueError:
    return ValueError(f"{text!r} is not a duration: {why}")


def _parts(text: str) -> list[tuple[str, Decimal]]:
    """Split duration text into ``(unit, amount)`` pairs, checking the grammar."""
    if not isinstance(text, str):
        raise TypeError(f"a duration must be text like '1h 30m', not {type(text).__name__}")
    body = text.strip()
    if body.startswith("-"):
        raise _not_a_duration(text, f"durations cannot be negative; {_EXPECTED}")
    parts: list[tuple[str, Decimal]] = []
    position = 0
    while position < len(body):
        match = _PART.match(body, position)
        if match is None:
            raise _not_a_duration(text)
        parts.append((match.group(2).lower(), Decimal(match.group(1))))
        position = match.end()
    if not parts:
        raise _not_a_duration(text)
    ranks = [_UNIT_RANK[unit] for unit, _ in parts]
    if any(later <= earlier for earlier, later in zip(ranks, ranks[1:], strict=False)):
        raise _not_a_duration(text, 'write each unit at most once, largest first, like "1d 6h"')
    return parts


def parse_duration(text: str) -> timedelta:
    """Read a duration such as ``"1h 30m 45s"``, ``"1d"``, ``"1.5s"`` or ``"500ms"``.

    :param text: the duration; see the module docstring for the grammar.
    :returns: the duration as a timedelta (``"1d"`` is exactly 24 hours here).
    :raises ValueError: when the text does not follow the grammar, is negative, is finer than
        a microsecond, or is too long for a timedelta. The message names the text.
    """
    total = sum((amount * _UNIT_MICROS[unit] for unit, amount in _parts(text)), Decimal(0))
    if total != total.to_integral_value():
        raise _not_a_duration(text, "the smallest step a duration can hold is one microsecond")
    try:
        return timedelta(microseconds=int(total))
    except OverflowError:
        raise _not_a_duration(text, "it is longer than a timedelta can hold") from None


def _to_micros(value: timedelta | float) -> int:
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"format_duration takes a timedelta or a number of seconds, not {type(value).__name__}"
        )
    if not math.isfinite(value):
        raise ValueError(f"cannot format {value!r} seconds as a duration")
    return int((Decimal(value) * _MICROS_PER_SECOND).to_integral_value(ROUND_HALF_EVEN))


def _round_half_up(micros: int, step: int) -> int:
    """``micros`` rounded to a whole number of ``step``, halves going up."""
    return (micros + step // 2) // step


def format_duration(value: timedelta | float) -> str:
    """Write a duration the way drive-table columns show it: ``"1h 30m 45s"``, ``"2h"``, ``"1d"``.

    Zero parts are left out and the units are ``d``, ``h``, ``m`` and ``s`` (no weeks).
    Below one minute up to three decimals of seconds are kept, with trailing zeros trimmed
    (``"0.25s"``, ``"4s"``, ``"12.5s"``); from one minute up the value is rounded to whole
    seconds, halves going up. Zero is ``"0s"``.

    :param value: a timedelta, or a number of seconds.
    :returns: text that :func:`parse_duration` reads back to the same value whenever the input
        already had the precision kept here (milliseconds below a minute, seconds above).
    :raises ValueError: for a negative, infinite or NaN value.
    """
    micros = _to_micros(value)
    if micros < 0:
        raise ValueError(f"cannot format a negative duration ({value!r})")
    if micros < 60 * _MICROS_PER_SECOND:
        millis = _round_half_up(micros, 1_000)
        if millis < 60_000:
            whole, fraction = divmod(millis, 1_000)
            if fraction:
                return f"{whole}.{fraction:03d}".rstrip("0") + "s"
            return f"{whole}s"
        # 59.9995s and above round up to a whole minute: fall through to the long form.
    seconds = _round_half_up(micros, _MICROS_PER_SECOND)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    amounts = ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
    return " ".join(f"{amount}{unit}" for amount, unit in amounts if amount)


def is_calendar_duration(text: str) -> bool:
    """Whether a duration counts whole days only (``"1d"``, ``"2d"``, ``"1w"``, ``"1w 2d"``).

    Such durations mean calendar days to a window grid: local midnight to local midnight, so
    23 or 25 hours across a DST change. Any other unit, or a fraction of a day (``"1.5d"``),
    makes the duration an exact number of seconds (``"24h"`` is always 86,400 s).

    :raises ValueError: when the text is not a duration at all.
    """
    return all(
        unit in ("w", "d") and amount == amount.to_integral_value() for unit, amount in _parts(text)
    )


def calculate_duration(start: datetime | str, end: datetime | str) -> timedelta:
    """The time from ``start`` to ``end`` (the spec's ``calculate_duration``).

    Either may be a timezone-aware datetime or ISO 8601 text, as in a drive-table row handed to
    a script (``record["pipeline_start_timestamp"]``); ``Z`` is read as UTC.

    :raises ValueError: a value is not a timestamp, has no time zone, or ``end`` is before ``start``.
    """
    begin, finish = _instant(start, "start"), _instant(end, "end")
    if finish < begin:
        raise ValueError(f"end {finish.isoformat()} is before start {begin.isoformat()}")
    return finish - begin


def _instant(value: datetime | str, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} {value!r} is not an ISO 8601 timestamp such as 2025-11-15T10:00:00Z") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime or ISO 8601 text, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} has no time zone; give one (Z or +00:00)")
    return value


def records_per_second(records: int | None, elapsed: timedelta) -> float | None:
    """The rate ``records`` moved in ``elapsed``, rounded to 0.1; None without a count or a duration."""
    seconds = elapsed.total_seconds()
    if records is None or seconds <= 0:
        return None
    return round(records / seconds, 1)


#: The key of a transfer's details that holds its load rate.
LOAD_RATE = "load_rate_records_per_second"


def with_load_rate(details: dict[str, object], elapsed: timedelta) -> dict[str, object]:
    """A transfer's details (they hold ``rows_written``) with its load rate added."""
    written = details.get("rows_written")
    if not isinstance(written, int) or LOAD_RATE in details:
        return details
    return {**details, LOAD_RATE: records_per_second(written, elapsed)}
