"""Tests for drivetrain.durations: the "1h 30m 45s" grammar, both directions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain.durations import format_duration, is_calendar_duration, parse_duration

PROPERTY = settings(max_examples=200, deadline=None)

UNIT_LENGTHS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1h 30m 45s", timedelta(hours=1, minutes=30, seconds=45)),
            ("45m", timedelta(minutes=45)),
            ("2h", timedelta(hours=2)),
            ("1d", timedelta(days=1)),
            ("1w", timedelta(weeks=1)),
            ("1d 6h", timedelta(days=1, hours=6)),
            ("500ms", timedelta(milliseconds=500)),
            ("1.5s", timedelta(seconds=1.5)),
            ("90s", timedelta(seconds=90)),
            ("1s 250ms", timedelta(seconds=1, milliseconds=250)),
            ("0.5h", timedelta(minutes=30)),
        ],
    )
    def test_reads_the_documented_examples(self, text: str, expected: timedelta) -> None:
        assert parse_duration(text) == expected

    def test_parts_may_be_written_without_spaces(self) -> None:
        assert parse_duration("1h30m45s") == parse_duration("1h 30m 45s")

    def test_units_are_case_insensitive(self) -> None:
        assert parse_duration("1H 30M 500MS") == timedelta(hours=1, minutes=30, milliseconds=500)

    def test_surrounding_whitespace_is_ignored(self) -> None:
        assert parse_duration("  2h \n") == timedelta(hours=2)

    def test_m_means_minutes_and_ms_milliseconds(self) -> None:
        assert parse_duration("5m") == timedelta(minutes=5)
        assert parse_duration("5ms") == timedelta(milliseconds=5)

    def test_zero_is_allowed(self) -> None:
        assert parse_duration("0s") == timedelta(0)

    @pytest.mark.parametrize(
        "text", ["", "   ", "1hour", "1", "h", "1.5", "1,5h", "1y", "1e3s", "1h x", ".5s", "+1h"]
    )
    def test_rejects_text_that_is_not_a_duration(self, text: str) -> None:
        with pytest.raises(ValueError, match="is not a duration: use numbers with units"):
            parse_duration(text)

    def test_error_names_the_text_and_the_expected_form(self) -> None:
        with pytest.raises(ValueError) as caught:
            parse_duration("1hour")
        assert str(caught.value) == (
            "'1hour' is not a duration: use numbers with units w, d, h, m, s, ms, like \"1h 30m\""
        )

    def test_rejects_a_leading_minus(self) -> None:
        with pytest.raises(ValueError, match="cannot be negative"):
            parse_duration("-1h")

    def test_rejects_units_out_of_order(self) -> None:
        with pytest.raises(ValueError, match="largest first"):
            parse_duration("30m 1h")

    def test_rejects_a_repeated_unit(self) -> None:
        with pytest.raises(ValueError, match="at most once"):
            parse_duration("1h 1h")

    def test_rejects_precision_finer_than_a_microsecond(self) -> None:
        with pytest.raises(ValueError, match="one microsecond"):
            parse_duration("0.0000001s")

    def test_rejects_durations_too_long_for_a_timedelta(self) -> None:
        with pytest.raises(ValueError, match="longer than a timedelta"):
            parse_duration("999999999999w")

    def test_rejects_non_text(self) -> None:
        with pytest.raises(TypeError, match="must be text"):
            parse_duration(3600)  # type: ignore[arg-type]

    @PROPERTY
    @given(
        amounts=st.lists(st.integers(0, 10_000), min_size=6, max_size=6),
        chosen=st.lists(st.booleans(), min_size=6, max_size=6).filter(any),
        separator=st.sampled_from(["", " ", "  "]),
        upper=st.booleans(),
    )
    def test_reads_any_well_formed_combination(
        self, amounts: list[int], chosen: list[bool], separator: str, upper: bool
    ) -> None:
        parts = [
            (amount, unit)
            for amount, unit, keep in zip(amounts, UNIT_LENGTHS, chosen, strict=True)
            if keep
        ]
        text = separator.join(f"{amount}{unit}" for amount, unit in parts)
        expected = sum((amount * UNIT_LENGTHS[unit] for amount, unit in parts), timedelta(0))
        assert parse_duration(text.upper() if upper else text) == expected


class TestFormatDuration:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (timedelta(hours=1, minutes=30, seconds=45), "1h 30m 45s"),
            (timedelta(minutes=45), "45m"),
            (timedelta(hours=2), "2h"),
            (timedelta(days=1), "1d"),
            (timedelta(days=1, hours=1), "1d 1h"),
            (timedelta(weeks=2), "14d"),
            (timedelta(days=1, seconds=1), "1d 1s"),
            (timedelta(0), "0s"),
            (timedelta(milliseconds=250), "0.25s"),
            (timedelta(seconds=4), "4s"),
            (timedelta(seconds=12.5), "12.5s"),
            (timedelta(milliseconds=1), "0.001s"),
        ],
    )
    def test_writes_the_documented_examples(self, value: timedelta, expected: str) -> None:
        assert format_duration(value) == expected

    def test_accepts_seconds_as_a_float(self) -> None:
        assert format_duration(5445.0) == "1h 30m 45s"
        assert format_duration(0.25) == "0.25s"

    def test_accepts_seconds_as_an_int(self) -> None:
        assert format_duration(90) == "1m 30s"

    def test_below_a_minute_rounds_to_milliseconds_half_up(self) -> None:
        assert format_duration(timedelta(microseconds=1_500)) == "0.002s"
        assert format_duration(timedelta(microseconds=1_499)) == "0.001s"

    def test_a_tiny_duration_shows_as_zero(self) -> None:
        assert format_duration(timedelta(microseconds=400)) == "0s"

    def test_from_a_minute_up_rounds_to_whole_seconds_half_up(self) -> None:
        assert format_duration(timedelta(seconds=90, milliseconds=500)) == "1m 31s"
        assert format_duration(timedelta(seconds=90, milliseconds=499)) == "1m 30s"

    def test_rounding_up_to_a_minute_gives_the_minute(self) -> None:
        assert format_duration(timedelta(seconds=59, microseconds=999_600)) == "1m"

    def test_rejects_a_negative_duration(self) -> None:
        with pytest.raises(ValueError, match="negative"):
            format_duration(timedelta(seconds=-1))

    @pytest.mark.parametrize("value", [float("nan"), float("inf")])
    def test_rejects_non_finite_seconds(self, value: float) -> None:
        with pytest.raises(ValueError, match="cannot format"):
            format_duration(value)

    def test_rejects_booleans_and_text(self) -> None:
        with pytest.raises(TypeError):
            format_duration(True)
        with pytest.raises(TypeError):
            format_duration("1h")  # type: ignore[arg-type]


class TestIsCalendarDuration:
    @pytest.mark.parametrize("text", ["1d", "2d", "1w", "1w 2d", "1D"])
    def test_whole_days_and_weeks_are_calendar(self, text: str) -> None:
        assert is_calendar_duration(text)

    @pytest.mark.parametrize("text", ["24h", "1d 6h", "1.5d", "15m", "1h", "1d 0s"])
    def test_any_other_unit_or_a_fraction_of_a_day_is_exact(self, text: str) -> None:
        assert not is_calendar_duration(text)

    def test_rejects_text_that_is_not_a_duration(self) -> None:
        with pytest.raises(ValueError, match="is not a duration"):
            is_calendar_duration("daily")


# Durations already at the precision format_duration keeps: milliseconds below a minute,
# whole seconds from a minute up.
kept_precision = st.one_of(
    st.integers(0, 59_999).map(lambda millis: timedelta(milliseconds=millis)),
    st.integers(60, 10**10).map(lambda seconds: timedelta(seconds=seconds)),
)


class TestRoundTrip:
    @PROPERTY
    @given(kept_precision)
    def test_parse_reads_back_what_format_wrote(self, value: timedelta) -> None:
        assert parse_duration(format_duration(value)) == value

    @PROPERTY
    @given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10**5)))
    def test_format_rounds_to_its_precision(self, value: timedelta) -> None:
        step = timedelta(milliseconds=1) if value < timedelta(minutes=1) else timedelta(seconds=1)
        assert abs(parse_duration(format_duration(value)) - value) <= step / 2
