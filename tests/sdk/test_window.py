"""Tests for drivetrain.window: windows, window grids across DST, and timestamp parsing."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain.durations import parse_duration
from drivetrain.window import Window, WindowGrid, parse_timestamp

PROPERTY = settings(max_examples=200, deadline=None)

DST_ZONES = [
    "America/Chicago",
    "Europe/Berlin",
    "Europe/Paris",
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Sao_Paulo",  # until 2019 clocks sprang forward at midnight
    "Asia/Kolkata",  # +05:30, no DST
    "UTC",
]
GRID_DURATIONS = ["15m", "1h", "2h", "1d", "24h", "1w", "2d", "90m", "1d 6h"]
SPAN_START = datetime(1995, 1, 1, tzinfo=UTC)
SPAN_END = datetime(2035, 12, 31, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@functools.cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """Every instant between SPAN_START and SPAN_END where the zone's UTC offset changes."""
    zone = ZoneInfo(zone_name)

    def offset(instant: datetime) -> timedelta | None:
        return instant.astimezone(zone).utcoffset()

    found = []
    day = SPAN_START
    while day < SPAN_END:
        following = day + timedelta(days=1)
        if offset(day) != offset(following):
            low, high = day, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if offset(middle) == offset(day):
                    low = middle
                else:
                    high = middle
            found.append(high)
        day = following
    return tuple(found)


@st.composite
def instants(draw: st.DrawFn, zone_name: str) -> datetime:
    """Instants spread over decades, half of them within a few days of a clock change."""
    changes = transitions(zone_name)
    near_a_change: bool = draw(st.booleans())
    if changes and near_a_change:
        change = draw(st.sampled_from(changes))
        shift = draw(
            st.one_of(
                st.integers(-2, 2),
                st.integers(-3 * 86_400 * 10**6, 3 * 86_400 * 10**6),
            )
        )
        return change + timedelta(microseconds=shift)
    return draw(
        st.datetimes(
            min_value=SPAN_START.replace(tzinfo=None),
            max_value=SPAN_END.replace(tzinfo=None),
            timezones=st.just(UTC),
        )
    )


@st.composite
def grids_and_instants(draw: st.DrawFn) -> tuple[WindowGrid, datetime]:
    zone_name = draw(st.sampled_from(DST_ZONES))
    grid = WindowGrid.from_config(
        draw(st.sampled_from(GRID_DURATIONS)),
        zone_name,
        draw(st.dates(min_value=date(1995, 1, 1), max_value=date(2035, 12, 31))),
    )
    return grid, draw(instants(zone_name))


def grid(duration: str, zone: str = "UTC", anchor: date = date(2025, 1, 1)) -> WindowGrid:
    return WindowGrid.from_config(duration, zone, anchor)


class TestWindow:
    def test_stores_its_bounds_in_utc(self) -> None:
        paris = ZoneInfo("Europe/Paris")
        window = Window(
            datetime(2025, 11, 15, 11, tzinfo=paris), datetime(2025, 11, 15, 12, tzinfo=paris)
        )
        assert window.start == utc(2025, 11, 15, 10)
        assert window.start.tzinfo is UTC
        assert window.end.tzinfo is UTC

    def test_timezone_defaults_to_utc(self) -> None:
        assert Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11)).timezone == "UTC"

    def test_rejects_a_naive_bound(self) -> None:
        with pytest.raises(TypeError, match="has no time zone"):
            Window(datetime(2025, 11, 15, 10), utc(2025, 11, 15, 11))

    def test_rejects_a_bound_that_is_not_a_datetime(self) -> None:
        with pytest.raises(TypeError, match="must be a datetime"):
            Window(date(2025, 11, 15), utc(2025, 11, 16))  # type: ignore[arg-type]

    def test_rejects_an_end_before_the_start(self) -> None:
        with pytest.raises(ValueError, match="must end after it starts"):
            Window(utc(2025, 11, 15, 11), utc(2025, 11, 15, 10))

    def test_rejects_an_empty_window(self) -> None:
        with pytest.raises(ValueError, match="must end after it starts"):
            Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 10))

    def test_rejects_an_unknown_time_zone(self) -> None:
        with pytest.raises(ValueError, match="not a known IANA time zone"):
            Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11), "Mars/Olympus_Mons")

    def test_is_immutable(self) -> None:
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            window.start = utc(2025, 11, 15, 9)  # type: ignore[misc]

    def test_duration_is_end_minus_start(self) -> None:
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11, 30))
        assert window.duration == timedelta(minutes=90)

    def test_target_date_is_the_local_date_of_the_start(self) -> None:
        window = Window(utc(2025, 11, 14, 23), utc(2025, 11, 15, 23), "Europe/Paris")
        assert window.target_date == date(2025, 11, 15)

    def test_target_date_in_utc_is_the_utc_date(self) -> None:
        window = Window(utc(2025, 11, 14, 23), utc(2025, 11, 15, 23))
        assert window.target_date == date(2025, 11, 14)

    def test_local_bounds_are_on_the_zone_clock(self) -> None:
        window = Window(utc(2025, 11, 14, 23), utc(2025, 11, 15, 23), "Europe/Paris")
        assert window.local_start == datetime(2025, 11, 15, tzinfo=ZoneInfo("Europe/Paris"))
        assert window.local_end.replace(tzinfo=None) == datetime(2025, 11, 16)

    def test_contains_its_start(self) -> None:
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))
        assert window.contains(utc(2025, 11, 15, 10))

    def test_does_not_contain_its_end(self) -> None:
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))
        assert not window.contains(utc(2025, 11, 15, 11))
        assert window.contains(utc(2025, 11, 15, 11) - timedelta(microseconds=1))

    def test_contains_compares_instants_in_any_zone(self) -> None:
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))
        assert window.contains(datetime(2025, 11, 15, 11, 30, tzinfo=ZoneInfo("Europe/Paris")))

    def test_contains_rejects_a_naive_instant(self) -> None:
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))
        with pytest.raises(TypeError, match="has no time zone"):
            window.contains(datetime(2025, 11, 15, 10, 30))

    def test_str_shows_the_half_open_range_in_utc(self) -> None:
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11), "Europe/Paris")
        assert str(window) == "[2025-11-15T10:00:00Z, 2025-11-15T11:00:00Z)"

    def test_key_is_the_compact_utc_start(self) -> None:
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11), "Europe/Paris")
        assert window.key == "20251115T100000Z"

    def test_windows_order_by_start(self) -> None:
        early = Window(utc(2025, 11, 15, 9), utc(2025, 11, 15, 12))
        late = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))
        assert sorted([late, early]) == [early, late]

    def test_equal_instants_in_different_zones_make_equal_windows(self) -> None:
        paris = ZoneInfo("Europe/Paris")
        in_paris = Window(
            datetime(2025, 11, 15, 11, tzinfo=paris), datetime(2025, 11, 15, 12, tzinfo=paris)
        )
        in_utc = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))
        assert in_paris == in_utc
        assert hash(in_paris) == hash(in_utc)

    @PROPERTY
    @given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
    def test_keys_sort_like_windows(self, first: datetime, second: datetime) -> None:
        hour = timedelta(hours=1)
        a, b = (Window(first, first + hour), Window(second, second + hour))
        if a.start.replace(microsecond=0) != b.start.replace(microsecond=0):
            assert (a.key < b.key) == (a < b)


class TestParseTimestamp:
    def test_reads_z_as_utc(self) -> None:
        assert parse_timestamp("2025-11-15T10:00:00Z") == utc(2025, 11, 15, 10)

    def test_reads_an_offset(self) -> None:
        assert parse_timestamp("2025-11-15T11:00+01:00") == utc(2025, 11, 15, 10)

    def test_returns_utc(self) -> None:
        assert parse_timestamp("2025-11-15T11:00+01:00").tzinfo is UTC

    def test_an_offset_wins_over_the_zone(self) -> None:
        assert parse_timestamp("2025-11-15T10:00Z", "Asia/Tokyo") == utc(2025, 11, 15, 10)

    def test_reads_a_naive_time_in_the_zone(self) -> None:
        assert parse_timestamp("2025-11-15T10:00", "Europe/Paris") == utc(2025, 11, 15, 9)

    def test_reads_a_naive_time_as_utc_by_default(self) -> None:
        assert parse_timestamp("2025-11-15 10:00:00") == utc(2025, 11, 15, 10)

    def test_reads_a_date_as_local_midnight(self) -> None:
        assert parse_timestamp("2025-11-15", "America/Chicago") == utc(2025, 11, 15, 6)

    def test_ignores_surrounding_whitespace(self) -> None:
        assert parse_timestamp(" 2025-11-15T10:00Z ") == utc(2025, 11, 15, 10)

    def test_a_nonexistent_time_becomes_the_end_of_the_gap(self) -> None:
        # Chicago skips 02:00-03:00 on 2025-03-09; 03:00 CDT is 08:00 UTC.
        assert parse_timestamp("2025-03-09T02:30", "America/Chicago") == utc(2025, 3, 9, 8)

    def test_a_nonexistent_time_in_a_half_hour_gap_becomes_its_end(self) -> None:
        # Lord Howe skips 02:00-02:30 on 2025-10-05; 02:30 at +11:00 is 15:30 UTC the day before.
        assert parse_timestamp("2025-10-05T02:15", "Australia/Lord_Howe") == utc(
            2025, 10, 4, 15, 30
        )

    def test_a_nonexistent_midnight_becomes_the_first_instant_of_the_day(self) -> None:
        # Sao Paulo jumped from 00:00 to 01:00 on 2018-11-04; 01:00 at -02:00 is 03:00 UTC.
        assert parse_timestamp("2018-11-04", "America/Sao_Paulo") == utc(2018, 11, 4, 3)

    def test_an_ambiguous_time_is_the_earlier_instant(self) -> None:
        # Chicago repeats 01:00-02:00 on 2025-11-02: first at -05:00 (CDT), then at -06:00.
        assert parse_timestamp("2025-11-02T01:30", "America/Chicago") == utc(2025, 11, 2, 6, 30)

    @pytest.mark.parametrize("text", ["", "yesterday", "2025-13-01", "15/11/2025", "10:00"])
    def test_rejects_text_that_is_not_iso_8601(self, text: str) -> None:
        with pytest.raises(ValueError, match="is not a timestamp: use ISO 8601"):
            parse_timestamp(text)

    def test_error_names_the_text_and_the_zone_for_dates(self) -> None:
        with pytest.raises(ValueError) as caught:
            parse_timestamp("tomorrow", "Europe/Paris")
        assert "'tomorrow'" in str(caught.value)
        assert "midnight in Europe/Paris" in str(caught.value)

    def test_rejects_an_unknown_zone(self) -> None:
        with pytest.raises(ValueError, match="not a known IANA time zone"):
            parse_timestamp("2025-11-15", "Europe/Atlantis")

    @PROPERTY
    @given(
        st.sampled_from(DST_ZONES),
        st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2035, 12, 31)),
    )
    def test_an_existing_local_time_reads_back_on_the_clock(
        self, zone_name: str, local: datetime
    ) -> None:
        zone = ZoneInfo(zone_name)
        instant = parse_timestamp(local.isoformat(), zone_name)
        on_clock = instant.astimezone(zone).replace(tzinfo=None)
        exists = (
            local.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
            == local
        )
        if exists:
            assert on_clock == local
        else:
            assert on_clock > local


class TestWindowGridConstruction:
    def test_from_config_takes_the_config_values(self) -> None:
        made = WindowGrid.from_config("1h", "Europe/Paris", date(2025, 11, 15))
        assert made == WindowGrid(duration="1h", timezone="Europe/Paris", anchor=date(2025, 11, 15))

    def test_from_config_reads_an_iso_start_date(self) -> None:
        assert WindowGrid.from_config("1h", "UTC", "2025-11-15").anchor == date(2025, 11, 15)

    def test_from_config_rejects_a_bad_start_date(self) -> None:
        with pytest.raises(ValueError, match="is not a start date"):
            WindowGrid.from_config("1h", "UTC", "15.11.2025")

    def test_rejects_a_datetime_anchor(self) -> None:
        with pytest.raises(TypeError, match="must be a date"):
            WindowGrid.from_config("1h", "UTC", datetime(2025, 11, 15, tzinfo=UTC))

    @pytest.mark.parametrize("duration", ["0s", "0d"])
    def test_rejects_a_zero_duration(self, duration: str) -> None:
        with pytest.raises(ValueError, match="must be longer than zero"):
            grid(duration)

    def test_rejects_a_negative_duration(self) -> None:
        with pytest.raises(ValueError, match="cannot be negative"):
            grid("-1h")

    def test_rejects_a_fraction_of_a_second(self) -> None:
        with pytest.raises(ValueError, match="whole number of seconds"):
            grid("1500ms")

    def test_rejects_an_unknown_zone(self) -> None:
        with pytest.raises(ValueError, match="not a known IANA time zone"):
            grid("1h", "Central")

    @pytest.mark.parametrize(
        ("duration", "calendar"), [("1d", True), ("1w", True), ("24h", False), ("1h", False)]
    )
    def test_whole_day_durations_make_a_calendar_grid(self, duration: str, calendar: bool) -> None:
        assert grid(duration).is_calendar is calendar


class TestExactGrid:
    def test_hourly_windows_start_on_the_hour(self) -> None:
        window = grid("1h").window_at(utc(2025, 11, 15, 10, 42))
        assert window == Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))

    def test_windows_carry_the_grid_zone(self) -> None:
        window = grid("1h", "Europe/Paris").window_at(utc(2025, 11, 15, 10, 42))
        assert window.timezone == "Europe/Paris"

    def test_fifteen_minute_windows(self) -> None:
        window = grid("15m").window_at(utc(2025, 11, 15, 10, 44, 59))
        assert str(window) == "[2025-11-15T10:30:00Z, 2025-11-15T10:45:00Z)"

    def test_the_grid_starts_at_local_midnight_of_the_anchor(self) -> None:
        first = grid("2h", "Asia/Kolkata", date(2025, 11, 15)).first()
        assert first.local_start == datetime(2025, 11, 15, tzinfo=ZoneInfo("Asia/Kolkata"))
        assert first.start == utc(2025, 11, 14, 18, 30)

    def test_hourly_windows_follow_the_local_hour_in_a_half_hour_zone(self) -> None:
        window = grid("1h", "Asia/Kolkata").window_at(utc(2025, 11, 15, 10, 0))
        assert window.start == utc(2025, 11, 15, 9, 30)

    def test_hourly_windows_stay_one_hour_across_spring_forward(self) -> None:
        hourly = grid("1h", "America/Chicago")
        windows = list(hourly.windows_between(utc(2025, 3, 9, 6), utc(2025, 3, 9, 10)))
        assert [w.duration for w in windows] == [timedelta(hours=1)] * 4
        assert [w.local_start.hour for w in windows] == [0, 1, 3, 4]

    def test_hourly_windows_stay_one_hour_across_fall_back(self) -> None:
        hourly = grid("1h", "America/Chicago")
        windows = list(hourly.windows_between(utc(2025, 11, 2, 5), utc(2025, 11, 2, 9)))
        assert [w.duration for w in windows] == [timedelta(hours=1)] * 4
        assert [w.local_start.hour for w in windows] == [0, 1, 1, 2]

    def test_24h_windows_keep_24_hours_on_a_dst_day(self) -> None:
        daily = grid("24h", "Europe/Paris", date(2025, 1, 1))
        window = daily.window_at(utc(2025, 3, 30, 12))
        assert window.duration == timedelta(hours=24)
        assert window.local_start.hour == 0
        assert daily.next(window).local_start.hour == 1

    def test_the_grid_extends_before_the_anchor(self) -> None:
        window = grid("1h", anchor=date(2025, 11, 15)).window_at(utc(2025, 11, 1, 3, 30))
        assert window.start == utc(2025, 11, 1, 3)


class TestCalendarGrid:
    @pytest.mark.parametrize(
        ("zone", "spring_forward", "fall_back"),
        [
            ("America/Chicago", date(2025, 3, 9), date(2025, 11, 2)),
            ("Europe/Berlin", date(2025, 3, 30), date(2025, 10, 26)),
            ("Europe/Paris", date(2025, 3, 30), date(2025, 10, 26)),
        ],
    )
    def test_a_day_is_23_hours_in_spring_and_25_in_autumn(
        self, zone: str, spring_forward: date, fall_back: date
    ) -> None:
        daily = grid("1d", zone)
        noon = time(12, tzinfo=ZoneInfo(zone))
        assert daily.window_at(datetime.combine(spring_forward, noon)).duration == timedelta(
            hours=23
        )
        assert daily.window_at(datetime.combine(fall_back, noon)).duration == timedelta(hours=25)

    def test_lord_howe_days_change_by_half_an_hour(self) -> None:
        daily = grid("1d", "Australia/Lord_Howe")
        noon = time(12, tzinfo=ZoneInfo("Australia/Lord_Howe"))
        spring = daily.window_at(datetime.combine(date(2025, 10, 5), noon))
        autumn = daily.window_at(datetime.combine(date(2025, 4, 6), noon))
        assert spring.duration == timedelta(hours=23, minutes=30)
        assert autumn.duration == timedelta(hours=24, minutes=30)

    def test_a_day_runs_from_local_midnight_to_local_midnight(self) -> None:
        window = grid("1d", "Europe/Paris").window_at(utc(2025, 11, 15, 10))
        assert window == Window(utc(2025, 11, 14, 23), utc(2025, 11, 15, 23), "Europe/Paris")
        assert window.target_date == date(2025, 11, 15)

    def test_a_day_without_midnight_starts_when_its_clock_starts(self) -> None:
        window = grid("1d", "America/Sao_Paulo", date(2018, 1, 1)).window_at(utc(2018, 11, 4, 12))
        assert window.local_start.replace(tzinfo=None) == datetime(2018, 11, 4, 1)
        assert window.duration == timedelta(hours=23)
        assert window.target_date == date(2018, 11, 4)

    def test_a_day_ending_in_a_repeated_hour_at_midnight_is_25_hours(self) -> None:
        # Sao Paulo set clocks back from 00:00 to 23:00 on 2018-02-18, repeating 17 Feb 23:00.
        daily = grid("1d", "America/Sao_Paulo", date(2018, 1, 1))
        saturday = daily.window_at(utc(2018, 2, 17, 12))
        assert saturday.duration == timedelta(hours=25)
        assert daily.next(saturday).local_start.replace(tzinfo=None) == datetime(2018, 2, 18)

    def test_a_skipped_calendar_day_joins_the_day_before(self) -> None:
        # Samoa moved across the date line: Pacific/Apia had no 2011-12-30.
        apia = ZoneInfo("Pacific/Apia")
        daily = grid("1d", "Pacific/Apia", date(2011, 12, 1))
        thursday = daily.window_at(datetime(2011, 12, 29, 12, tzinfo=apia))
        saturday = daily.next(thursday)
        assert thursday.duration == timedelta(hours=24)
        assert saturday.target_date == date(2011, 12, 31)
        assert daily.previous(saturday) == thursday
        days = daily.windows_between(
            datetime(2011, 12, 28, tzinfo=apia), datetime(2012, 1, 1, tzinfo=apia)
        )
        assert [w.target_date.day for w in days] == [28, 29, 31]

    def test_weeks_start_on_the_anchor_weekday(self) -> None:
        weekly = grid("1w", "Europe/Berlin", date(2025, 11, 12))  # a Wednesday
        window = weekly.window_at(utc(2025, 11, 24, 12))
        assert window.local_start.date() == date(2025, 11, 19)
        assert window.local_start.weekday() == 2
        assert window.local_end.date() == date(2025, 11, 26)

    def test_two_day_windows_count_from_the_anchor(self) -> None:
        window = grid("2d", anchor=date(2025, 11, 1)).window_at(utc(2025, 11, 4, 12))
        assert window == Window(utc(2025, 11, 3), utc(2025, 11, 5))

    def test_first_is_the_anchor_day(self) -> None:
        assert grid("1d", anchor=date(2025, 11, 15)).first() == Window(
            utc(2025, 11, 15), utc(2025, 11, 16)
        )

    def test_the_grid_extends_before_the_anchor(self) -> None:
        window = grid("1w", anchor=date(2025, 11, 15)).window_at(utc(2025, 11, 1, 12))
        assert window == Window(utc(2025, 11, 1), utc(2025, 11, 8))


class TestGridNavigation:
    def test_is_aligned_accepts_a_grid_window(self) -> None:
        assert grid("1h").is_aligned(Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11)))

    def test_is_aligned_rejects_a_shifted_window(self) -> None:
        assert not grid("1h").is_aligned(
            Window(utc(2025, 11, 15, 10, 30), utc(2025, 11, 15, 11, 30))
        )

    def test_is_aligned_rejects_a_window_of_another_length(self) -> None:
        assert not grid("1h").is_aligned(Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 12)))

    def test_is_aligned_ignores_the_timezone_label(self) -> None:
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11), "Asia/Tokyo")
        assert grid("1h").is_aligned(window)

    def test_window_starting_returns_the_window(self) -> None:
        window = grid("1h").window_starting(utc(2025, 11, 15, 10))
        assert window.end == utc(2025, 11, 15, 11)

    def test_window_starting_off_the_grid_names_the_nearest_starts(self) -> None:
        with pytest.raises(ValueError) as caught:
            grid("1h").window_starting(utc(2025, 11, 15, 10, 30))
        message = str(caught.value)
        assert "2025-11-15T10:30:00Z is not the start of a '1h' window in UTC" in message
        assert "2025-11-15T10:00:00Z and 2025-11-15T11:00:00Z" in message

    def test_next_and_previous_step_one_window(self) -> None:
        hourly = grid("1h")
        window = Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))
        assert hourly.next(window) == Window(utc(2025, 11, 15, 11), utc(2025, 11, 15, 12))
        assert hourly.previous(window) == Window(utc(2025, 11, 15, 9), utc(2025, 11, 15, 10))

    def test_next_rejects_a_window_off_the_grid(self) -> None:
        with pytest.raises(ValueError, match="is not a window of"):
            grid("1h").next(Window(utc(2025, 11, 15, 10, 30), utc(2025, 11, 15, 11, 30)))

    def test_last_complete_is_the_window_before_now(self) -> None:
        window = grid("1h").last_complete(utc(2025, 11, 15, 10, 59))
        assert window == Window(utc(2025, 11, 15, 9), utc(2025, 11, 15, 10))

    def test_last_complete_includes_a_window_ending_exactly_now(self) -> None:
        window = grid("1h").last_complete(utc(2025, 11, 15, 11))
        assert window == Window(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11))

    def test_windows_between_lists_the_windows_in_order(self) -> None:
        windows = list(grid("1d").windows_between(utc(2025, 11, 1), utc(2025, 11, 4)))
        assert [w.target_date for w in windows] == [
            date(2025, 11, 1),
            date(2025, 11, 2),
            date(2025, 11, 3),
        ]

    def test_windows_between_starts_with_the_window_holding_start(self) -> None:
        windows = list(grid("1h").windows_between(utc(2025, 11, 15, 10, 30), utc(2025, 11, 15, 12)))
        assert [w.start for w in windows] == [utc(2025, 11, 15, 10), utc(2025, 11, 15, 11)]

    def test_windows_between_leaves_out_the_window_holding_end(self) -> None:
        windows = list(grid("1h").windows_between(utc(2025, 11, 15, 10), utc(2025, 11, 15, 11, 30)))
        assert [w.start for w in windows] == [utc(2025, 11, 15, 10)]

    def test_windows_between_equal_bounds_is_empty(self) -> None:
        assert list(grid("1h").windows_between(utc(2025, 11, 15, 10), utc(2025, 11, 15, 10))) == []

    def test_windows_between_rejects_an_end_before_the_start(self) -> None:
        with pytest.raises(ValueError, match="before it starts"):
            grid("1h").windows_between(utc(2025, 11, 15, 10), utc(2025, 11, 15, 9))

    def test_window_at_rejects_a_naive_instant(self) -> None:
        with pytest.raises(TypeError, match="has no time zone"):
            grid("1h").window_at(datetime(2025, 11, 15, 10))


class TestGridProperties:
    """Over DST zones, anchors, durations and instants near clock changes."""

    @PROPERTY
    @given(grids_and_instants())
    def test_window_at_contains_the_instant(self, case: tuple[WindowGrid, datetime]) -> None:
        windows, instant = case
        assert windows.window_at(instant).contains(instant)

    @PROPERTY
    @given(grids_and_instants())
    def test_window_at_a_window_start_is_that_window(
        self, case: tuple[WindowGrid, datetime]
    ) -> None:
        windows, instant = case
        window = windows.window_at(instant)
        assert windows.window_at(window.start) == window
        assert windows.window_starting(window.start) == window
        assert windows.is_aligned(window)

    @PROPERTY
    @given(grids_and_instants())
    def test_consecutive_windows_touch_without_overlap(
        self, case: tuple[WindowGrid, datetime]
    ) -> None:
        windows, instant = case
        window = windows.window_at(instant)
        following = windows.next(window)
        assert following.start == window.end
        assert windows.previous(following) == window
        assert windows.window_at(window.end - timedelta(microseconds=1)) == window
        assert windows.window_at(window.end) == following

    @PROPERTY
    @given(grids_and_instants())
    def test_exact_windows_have_exactly_the_duration(
        self, case: tuple[WindowGrid, datetime]
    ) -> None:
        windows, instant = case
        if not windows.is_calendar:
            assert windows.window_at(instant).duration == parse_duration(windows.duration)

    @PROPERTY
    @given(grids_and_instants())
    def test_calendar_windows_span_whole_local_days(
        self, case: tuple[WindowGrid, datetime]
    ) -> None:
        windows, instant = case
        if not windows.is_calendar:
            return
        window = windows.window_at(instant)
        days = parse_duration(windows.duration).days
        assert window.local_end.date() - window.local_start.date() == timedelta(days=days)
        assert (window.local_start.date() - windows.anchor).days % days == 0
        for edge in (window.local_start, window.local_end):
            # Step back on the UTC line: arithmetic on an aware local datetime is wall-clock.
            moment_before = (edge.astimezone(UTC) - timedelta(microseconds=1)).astimezone(
                edge.tzinfo
            )
            assert moment_before.date() < edge.date(), (
                "a window edge is the first instant of its day"
            )

    @PROPERTY
    @given(grids_and_instants(), st.integers(0, 40))
    def test_windows_between_tiles_the_range(
        self, case: tuple[WindowGrid, datetime], count: int
    ) -> None:
        windows, instant = case
        start = windows.window_at(instant)
        end = start
        for _ in range(count):
            end = windows.next(end)
        tiles = list(windows.windows_between(start.start, end.start))
        assert len(tiles) == count
        assert all(a.end == b.start for a, b in zip(tiles, tiles[1:], strict=False))
        if tiles:
            assert tiles[0] == start
            assert tiles[-1].end == end.start

    @PROPERTY
    @given(grids_and_instants())
    def test_last_complete_ends_at_or_before_now(self, case: tuple[WindowGrid, datetime]) -> None:
        windows, now = case
        window = windows.last_complete(now)
        assert window.end <= now < windows.next(window).end
