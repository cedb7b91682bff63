"""``run --window-start`` with a local time the clocks skipped or showed twice, and how such
windows are labelled (both offsets, so the repeated hour is never shown as the wrong one)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivetrain.cli._pipelines import window_text
from tests.cli.conftest import Cli
from tests.sdk.factory import make_pipeline_dir

BERLIN = {"frequency": "hourly", "timezone": "Europe/Berlin", "start_date": "2025-03-01"}


@pytest.fixture
def berlin(cli: Cli) -> Path:
    return make_pipeline_dir(cli.cwd / "lab", [], dag_schedule=BERLIN)


def test_a_skipped_local_time_is_refused_with_the_two_nearest_windows(cli: Cli, berlin: Path) -> None:
    result = cli("run", "./lab", "--window-start", "2025-03-30T02:30", "--dry-run")
    assert result.returncode == 2, result
    assert "2025-03-30T02:30 does not exist in Europe/Berlin" in result.stderr
    assert "the nearest windows start at 2025-03-30T01:00+01:00 and 2025-03-30T03:00+02:00" in result.stderr


def test_a_skipped_time_with_an_offset_or_a_plain_date_is_still_accepted(cli: Cli, berlin: Path) -> None:
    assert cli("run", "./lab", "--window-start", "2025-03-30T03:00+02:00", "--dry-run").returncode == 0
    assert cli("run", "./lab", "--window-start", "2025-03-30", "--dry-run").returncode == 0


def test_a_repeated_local_time_takes_the_first_and_says_how_to_get_the_second(cli: Cli, berlin: Path) -> None:
    first = cli("run", "./lab", "--window-start", "2025-10-26T02:00", "--dry-run")
    assert first.returncode == 0, first
    assert "happened twice in Europe/Berlin; taking the first, 2025-10-26T02:00+02:00" in first.stderr
    assert "write 2025-10-26T02:00+01:00 for the second" in first.stderr
    assert "2025-10-26 02:00 CEST (+02:00) -> 02:00 CET (+01:00)" in first.stdout
    second = cli("run", "./lab", "--window-start", "2025-10-26T02:00+01:00", "--dry-run")
    assert "2025-10-26 02:00 CET (+01:00) -> 03:00 CET (+01:00)" in second.stdout, second


def test_labels_show_both_offsets_only_around_a_clock_change() -> None:
    def label(start: datetime, end: datetime) -> str:
        return window_text(start, end, "Europe/Berlin")

    assert label(datetime(2025, 10, 26, 0, 30, tzinfo=UTC), datetime(2025, 10, 26, 1, 30, tzinfo=UTC)) == (
        "2025-10-26 02:30 CEST (+02:00) -> 02:30 CET (+01:00)")
    assert label(datetime(2025, 10, 25, 8, tzinfo=UTC), datetime(2025, 10, 25, 9, tzinfo=UTC)) == (
        "2025-10-25 10:00 -> 11:00 CEST")
    assert window_text(datetime(2025, 10, 26, 1, tzinfo=UTC), datetime(2025, 10, 26, 2, tzinfo=UTC), "UTC") == (
        "2025-10-26 01:00 -> 02:00 UTC")
