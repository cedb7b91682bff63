"""Time windows: the half-open slice of time ``[start, end)`` that one pipeline run processes.

A :class:`Window` holds two UTC instants and the name of the schedule's time zone, which is
used only to show the window and to give its ``target_date`` (the local date of its start).

A :class:`WindowGrid` says how a pipeline's windows tile time. It is built from the config's
``query_window.duration``, ``schedule.timezone`` and ``schedule.start_date`` (the anchor),
and reads the duration in one of two ways:

Calendar durations (only ``d`` and ``w`` units, in whole days: ``"1d"``, ``"2d"``, ``"1w"``)
    Windows run from local midnight to local midnight N days later, in the grid's zone,
    counted from the anchor date. A ``"1d"`` window is therefore 23 hours long on the day
    clocks spring forward and 25 hours on the day they fall back (23.5 and 24.5 hours in
    Australia/Lord_Howe), and ``"1w"`` windows start on the anchor's weekday. The
    ``target_date`` of a daily window is the local day it covers. A day a zone skipped
    entirely (Pacific/Apia went from 2011-12-29 to 2011-12-31) has no window of its own: the
    window before it runs until the next day begins.

Exact durations (anything else: ``"1h"``, ``"15m"``, ``"24h"``, ``"1d 6h"``)
    Windows are exactly that many seconds long, on a UTC grid whose origin is local midnight
    of the anchor date. DST never stretches, shrinks, overlaps or skips an exact window, so
    hourly windows stay one hour each across every clock change; what moves is where their
    edges fall on the local clock (in Asia/Kolkata hourly windows start at hh:30 UTC,
    on the local hour).

Either way the grid extends in both directions from the anchor, consecutive windows share an
edge (``grid.next(w).start == w.end``) and every instant lies in exactly one window. Grid
durations must be positive and a whole number of seconds.

Local times that do not name exactly one instant are read by one rule, here and in
:func:`parse_timestamp`:

* an ambiguous local time (the repeated hour when clocks fall back) is the *earlier* of its
  two instants (``fold=0``);
* a nonexistent local time (skipped when clocks spring forward) is the instant the clocks
  jumped, the first one after the gap: ``2025-03-09T02:30`` in America/Chicago is
  ``03:00`` CDT. So a local midnight that does not exist (America/Sao_Paulo until 2019)
  becomes the first instant of that day, and a day window still starts on its own date.

Sources whose query field holds wall-clock time (a MySQL ``DATETIME``, a file timestamp written
without an offset, a ServiceNow display value) read their values by that same rule, and select
a window's rows with :func:`wall_clock_bounds`: the wall-clock range ``[a, b)`` holding exactly
the readings whose instant lies in the window. So every reading belongs to exactly one window,
and count, extract and validation agree on it. In the repeated hour the readings go to the
window of the earlier pass; the window of the later pass selects none of them (an empty,
successful window). Arrow reads text the same way with :data:`ARROW_LOCAL_RULES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from .durations import is_calendar_duration, parse_duration

__all__ = [
    "ARROW_LOCAL_RULES",
    "EARLIEST_WINDOW",
    "LATEST_WINDOW",
    "Window",
    "WindowGrid",
    "local_instant",
    "parse_timestamp",
    "wall_clock_bounds",
    "wall_clock_kind",
]

#: Windows are built and run between these instants only: far enough out for any real data,
#: and clear of datetime's limits (years 1 and 9999), where window ends, target dates and the
#: stage-cleaning cutoff would overflow.
EARLIEST_WINDOW = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_WINDOW = datetime(3000, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_TICK = timedelta(microseconds=1)  # the resolution of datetime
#: Keyword arguments of ``pyarrow.compute.assume_timezone`` that read wall-clock values by the
#: module's rules: the repeated hour as its earlier instant, a skipped time as the jump instant.
ARROW_LOCAL_RULES: dict[str, str] = {"ambiguous": "earliest", "nonexistent": "latest"}
_SEARCH = timedelta(days=3)  # wider than any clock change (Pacific/Apia skipped one day)


def _zone(name: str) -> ZoneInfo:
    """The zone called ``name``, with an error that says what a valid name looks like."""
    if not isinstance(name, str):
        raise TypeError(f"a time zone must be an IANA name like 'Europe/Paris', not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"{name!r} is not a known IANA time zone: use a name like 'UTC', "
            "'Europe/Paris' or 'America/Chicago'"
        ) from None


def _check_zone(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    _zone(value)


def _require_aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise TypeError(
            f"{what} {value.isoformat()} has no time zone: pass an aware datetime "
            "(for example with tzinfo=datetime.UTC), or read text with parse_timestamp()"
        )
    return value


def _as_utc(value: datetime) -> datetime:
    return _require_aware(value, "a window bound").astimezone(UTC)


def _iso(instant: datetime) -> str:
    """``2025-11-15T10:00:00Z`` for a UTC instant (microseconds shown only when present)."""
    return instant.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


def _epoch_seconds(instant: datetime, *, up: bool) -> int:
    micros = (instant - _EPOCH) // _TICK
    return -(-micros // 1_000_000) if up else micros // 1_000_000


def _jump_instant(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The instant in ``(before, after]`` where ``zone`` changes to its offset at ``after``.

    Zone transitions fall on whole seconds, so a bisection over seconds finds it exactly.
    """
    target = after.astimezone(zone).utcoffset()
    low, high = _epoch_seconds(before, up=False), _epoch_seconds(after, up=True)
    while high - low > 1:
        middle = (low + high) // 2
        if (_EPOCH + middle * _SECOND).astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return _EPOCH + high * _SECOND


def _localize(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of the naive wall-clock time ``local`` in ``zone`` (see module rules)."""
    # fold=0 reads the time with the offset in force before a transition, fold=1 after it.
    # For a repeated time fold=0 is the earlier instant, which is the one we keep.
    readings = [local.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    for candidate in readings:
        if candidate.astimezone(zone).replace(tzinfo=None) == local:
            return candidate
    # Neither reading shows ``local`` on the clock: it lies in a gap. Take the jump.
    return _jump_instant(min(readings), max(readings), zone)


def local_instant(local: datetime, timezone: str) -> datetime:
    """The UTC instant of the naive wall-clock reading ``local`` in ``timezone``.

    Ambiguous readings are the earlier instant, skipped ones the instant the clocks jumped (see
    the module docstring). Never decreases as ``local`` increases.
    """
    if local.utcoffset() is not None:
        raise TypeError(f"{local.isoformat()} already has a time zone: pass a wall-clock reading")
    return _localize(local, _zone(timezone))


def wall_clock_kind(local: datetime, timezone: str) -> str:
    """Whether a naive reading names one instant (``"single"``), two (``"repeated"``: the hour
    when clocks go back) or none (``"skipped"``: the gap when they go forward) in ``timezone``."""
    zone = _zone(timezone)
    readings = {local.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    shown = [r for r in readings if r.astimezone(zone).replace(tzinfo=None) == local]
    return {0: "skipped", 1: "single"}.get(len(shown), "repeated")


def _wall_clock_at(instant: datetime, zone: ZoneInfo) -> datetime:
    """The first wall-clock reading whose instant (by :func:`_localize`) is ``instant`` or later."""
    local = instant.astimezone(zone).replace(tzinfo=None)
    if not datetime.min + _SEARCH < local < datetime.max - _SEARCH:
        return local  # the ends of time (an open-ended window): no clock changes there
    if _localize(local, zone) == instant and _localize(local - _TICK, zone) < instant:
        return local  # the usual case: one reading, one instant
    # Near a clock change: readings of a skipped time, or of the later pass of a repeated hour,
    # map elsewhere. _localize never decreases, so bisect on microseconds for the first one.
    low, high = local - _SEARCH, local + _SEARCH
    while high - low > _TICK:
        middle = low + (high - low) // 2
        if _localize(middle, zone) >= instant:
            high = middle
        else:
            low = middle
    return high


def wall_clock_bounds(start: datetime, end: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The wall-clock range ``[a, b)`` of ``timezone`` that holds a window ``[start, end)``.

    A naive reading ``r`` satisfies ``a <= r < b`` exactly when its instant
    (:func:`local_instant`) satisfies ``start <= instant < end``. This is the one translation of
    a window to a source's local clock: count, extract and validation all go through it. In
    the later pass of a repeated hour the range is empty, as all those readings belong to the
    earlier pass.

    :returns: two naive datetimes.
    """
    zone = _zone(timezone)
    return _wall_clock_at(_as_utc(start), zone), _wall_clock_at(_as_utc(end), zone)


def parse_timestamp(text: str, timezone: str = "UTC") -> datetime:
    """Read an ISO 8601 timestamp or date, as given on the command line or in config.

    ``2025-11-15T10:00:00Z`` and ``2025-11-15T11:00+01:00`` name an instant. A time without an
    offset (``2025-11-15T10:00``) or a plain date (``2025-11-15``, meaning midnight) is read as
    wall-clock time in ``timezone``; ambiguous and nonexistent local times follow the module's
    rules (earlier instant; first instant after the gap).

    :param text: the timestamp.
    :param timezone: IANA zone for timestamps without an offset.
    :returns: an aware datetime in UTC.
    :raises ValueError: naming the text when it is not ISO 8601, or when the zone is unknown.
    """
    zone = _zone(timezone)
    if not isinstance(text, str):
        raise TypeError(f"a timestamp must be text, not {type(text).__name__}")
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a timestamp: use ISO 8601 like 2025-11-15T10:00:00Z, "
            f"2025-11-15T11:00:00+01:00, or 2025-11-15 (midnight in {timezone})"
        ) from None
    if value.utcoffset() is None:
        return _localize(value, zone)
    return value.astimezone(UTC)


@attrs.frozen(order=True)
class Window:
    """One half-open time window ``[start, end)``: what a single pipeline run processes.

    Bounds must be timezone-aware and are stored in UTC; windows order by start, then end.
    """

    start: datetime = attrs.field(converter=_as_utc)
    """First instant inside the window, in UTC."""

    end: datetime = attrs.field(converter=_as_utc)
    """First instant after the window, in UTC. Always later than ``start``."""

    timezone: str = attrs.field(default="UTC", validator=_check_zone)
    """IANA name of the schedule's zone: gives ``target_date`` and the local view."""

    @end.validator
    def _end_after_start(self, _attribute: attrs.Attribute[datetime], value: datetime) -> None:
        if value <= self.start:
            raise ValueError(
                f"a window must end after it starts: got start {_iso(self.start)}, "
                f"end {_iso(value)}"
            )

    @property
    def duration(self) -> timedelta:
        """How long the window is (23 or 25 hours for a daily window across a DST change)."""
        return self.end - self.start

    @property
    def local_start(self) -> datetime:
        """``start`` on the clock of ``timezone``."""
        return self.start.astimezone(_zone(self.timezone))

    @property
    def local_end(self) -> datetime:
        """``end`` on the clock of ``timezone``."""
        return self.end.astimezone(_zone(self.timezone))

    @property
    def target_date(self) -> date:
        """The business date: the local date of ``start`` in ``timezone``."""
        return self.local_start.date()

    @property
    def key(self) -> str:
        """A short id that sorts like the windows, such as ``20251115T100000Z`` (UTC start)."""
        s = self.start
        return f"{s.year:04d}{s.month:02d}{s.day:02d}T{s.hour:02d}{s.minute:02d}{s.second:02d}Z"

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` is inside the window: ``start <= instant < end``."""
        return self.start <= _require_aware(instant, "the instant") < self.end

    def __str__(self) -> str:
        return f"[{_iso(self.start)}, {_iso(self.end)})"


def _check_grid_duration(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    length = parse_duration(value)
    if length <= timedelta(0):
        raise ValueError(f"window duration {value!r} must be longer than zero")
    if length % _SECOND:
        raise ValueError(f"window duration {value!r} must be a whole number of seconds")


def _check_anchor(_instance: object, _attribute: attrs.Attribute[date], value: date) -> None:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(
            f"the grid's anchor must be a date (the schedule's start_date), not {value!r}"
        )


@attrs.frozen
class WindowGrid:
    """How a pipeline's windows tile time: duration, zone and anchor (see the module docstring).

    Build it with :meth:`from_config`; the methods find, check and step through windows.
    Every method taking an instant needs an aware datetime.
    """

    duration: str = attrs.field(validator=_check_grid_duration)
    """The config's ``query_window.duration`` text, such as ``"1h"``, ``"15m"`` or ``"1d"``."""

    timezone: str = attrs.field(validator=_check_zone)
    """IANA zone of the schedule: where calendar days begin, and the windows' display zone."""

    anchor: date = attrs.field(validator=_check_anchor)
    """The schedule's ``start_date``: the first window starts at its local midnight."""

    _zone: ZoneInfo = attrs.field(init=False, repr=False, eq=False)
    _days: int = attrs.field(init=False, repr=False, eq=False)  # 0 for exact grids
    _step: timedelta = attrs.field(init=False, repr=False, eq=False)
    _origin: datetime = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        zone = _zone(self.timezone)
        step = parse_duration(self.duration)
        days = step.days if is_calendar_duration(self.duration) else 0
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_days", days)
        object.__setattr__(self, "_step", step)
        object.__setattr__(self, "_origin", _localize(datetime.combine(self.anchor, time()), zone))

    @classmethod
    def from_config(
        cls, query_window_duration: str, timezone: str, start_date: date | str
    ) -> WindowGrid:
        """The grid for a pipeline's ``query_window.duration`` and schedule.

        :param query_window_duration: e.g. ``"1h"``, ``"1d"``.
        :param timezone: the schedule's IANA zone.
        :param start_date: the schedule's start date (a ``date`` or ISO text ``"2025-11-15"``).
        """
        if isinstance(start_date, str):
            try:
                start_date = date.fromisoformat(start_date.strip())
            except ValueError:
                raise ValueError(
                    f"{start_date!r} is not a start date: use ISO 8601 like 2025-11-15"
                ) from None
        return cls(duration=query_window_duration, timezone=timezone, anchor=start_date)

    @property
    def is_calendar(self) -> bool:
        """Whether windows are local calendar days (``"1d"``, ``"1w"``) rather than exact."""
        return self._days > 0

    # Windows are numbered from the anchor: window 0 starts at the anchor's local midnight.

    def _start_of(self, index: int) -> datetime:
        if self._days:
            day = self.anchor + timedelta(days=index * self._days)
            return _localize(datetime.combine(day, time()), self._zone)
        return self._origin + index * self._step

    def _index_of(self, instant: datetime) -> int:
        if not self._days:
            return (instant - self._origin) // self._step
        local_day = instant.astimezone(self._zone).date()
        index = (local_day - self.anchor).days // self._days
        # A clock set back across midnight can give an instant the previous local date;
        # walk to the window that really holds it.
        while instant < self._start_of(index):
            index -= 1
        while instant >= self._start_of(index + 1):
            index += 1
        return index

    def _window(self, index: int) -> Window:
        # Only called with indices from _index_of. A calendar day a zone skipped entirely
        # (Pacific/Apia had no 2011-12-30) starts where the next day does; _index_of always
        # lands on the later of two equal starts, so this window is never empty.
        return Window(self._start_of(index), self._start_of(index + 1), self.timezone)

    def _aligned_index(self, window: Window) -> int:
        index = self._index_of(window.start)
        if window.start != self._start_of(index) or window.end != self._start_of(index + 1):
            raise ValueError(f"{window} is not a window of {self!r}")
        return index

    def window_at(self, instant: datetime) -> Window:
        """The window that contains ``instant`` (before the anchor too: the grid has no edge)."""
        return self._window(self._index_of(_require_aware(instant, "the instant")))

    def is_aligned(self, window: Window) -> bool:
        """Whether ``window`` has the start and end of one of this grid's windows.

        Only the instants count, not the window's ``timezone`` label.
        """
        try:
            self._aligned_index(window)
        except ValueError:
            return False
        return True

    def window_starting(self, start: datetime) -> Window:
        """The grid window that starts exactly at ``start``.

        :raises ValueError: when no window starts there; the message gives the nearest starts.
        """
        index = self._index_of(_require_aware(start, "the window start"))
        if self._start_of(index) == start:
            return self._window(index)
        raise ValueError(
            f"{_iso(start)} is not the start of a {self.duration!r} window in {self.timezone}: "
            f"the nearest window starts are {_iso(self._start_of(index))} and "
            f"{_iso(self._start_of(index + 1))}"
        )

    def next(self, window: Window) -> Window:
        """The window right after ``window`` (which must be on this grid)."""
        self._aligned_index(window)
        return self.window_at(window.end)

    def previous(self, window: Window) -> Window:
        """The window right before ``window`` (which must be on this grid)."""
        self._aligned_index(window)
        return self.window_at(window.start - _TICK)

    def first(self) -> Window:
        """The window starting at the anchor's local midnight."""
        return self.window_at(self._origin)

    def last_complete(self, now: datetime) -> Window:
        """The latest window that has ended by ``now`` (its ``end <= now``)."""
        return self.window_at(self.window_at(now).start - _TICK)

    def windows_between(self, start: datetime, end: datetime) -> Iterator[Window]:
        """The windows of a range, in order, as a backfill runs them.

        Both bounds snap down to the start of the window holding them: a ``start`` inside a
        window begins at that window, and the window holding ``end`` is left out unless
        ``end`` is its start (it is not complete within the range). So the result is every
        window ``w`` with ``w.start >= snapped start`` and ``w.end <= snapped end``, tiling
        that range exactly. Equal bounds give nothing.

        :raises ValueError: when ``end`` is before ``start``.
        """
        first = self.window_at(_require_aware(start, "the range start"))
        stop = self.window_at(_require_aware(end, "the range end")).start
        if end < start:
            raise ValueError(f"the range ends ({_iso(end)}) before it starts ({_iso(start)})")
        return self._walk(first, stop)

    def _walk(self, window: Window, stop: datetime) -> Iterator[Window]:
        while window.start < stop:
            yield window
            window = self.window_at(window.end)
