"""``drivetrain run``: a run ahead never leaves a window behind; windows that have not ended.

The scaffolded ``shop`` pipeline (hourly windows from 2025-01-01, catchup on) through the
installed script.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from .conftest import SAMPLE_DAY, Cli, edit_config


def run_ids(stdout: str) -> list[str]:
    return [line.split()[1] for line in stdout.splitlines() if line.startswith(("SUCCESS", "FAILED", "SKIPPED"))]


def today_daily(config: dict) -> None:
    """Daily windows starting today (UTC): today's window has not ended."""
    config["dag_schedule"].update(frequency="daily", start_date=datetime.now(UTC).date().isoformat())
    config["query_window"].update(type="daily", duration="1d")


class TestRunAhead:
    def test_a_plain_run_after_a_run_ahead_takes_the_oldest_window_without_a_success(self, cli: Cli, shop: Path) -> None:
        ahead = cli("run", "./shop", "--window-start", f"{SAMPLE_DAY}T03:00")
        assert ahead.returncode == 0, ahead
        result = cli("run", "./shop")
        assert result.returncode == 0, result
        assert run_ids(result.stdout) == ["shop_20250101T000000Z_run1"]

    def test_plain_runs_fill_every_window_before_the_run_ahead_then_go_on_after_it(self, cli: Cli, shop: Path) -> None:
        cli("run", "./shop", "--window-start", f"{SAMPLE_DAY}T02:00")
        ids = []
        for _ in range(4):
            result = cli("run", "./shop")
            assert result.returncode == 0, result
            ids += run_ids(result.stdout)
        assert ids == [f"shop_20250101T0{h}0000Z_run1" for h in (0, 1, 3, 4)]


class TestWindowsThatHaveNotEnded:
    def test_window_start_of_a_window_still_open_exits_2_saying_when_it_ends(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, today_daily)
        today = datetime.now(UTC).date()
        result = cli("run", "./shop", "--window-start", today.isoformat())
        assert result.returncode == 2, result
        ends = (today + timedelta(days=1)).isoformat()
        assert "has not ended yet" in result.stderr and f"ends at {ends}T00:00:00Z" in result.stderr, result
        assert "--allow-partial" in result.stderr
        assert cli("history", "./shop").stdout.count("shop_") == 0

    def test_a_range_reaching_past_now_exits_2_unless_partial_runs_are_allowed(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, today_daily)
        today = datetime.now(UTC).date()
        result = cli("run", "./shop", "--from", today.isoformat(), "--to", (today + timedelta(days=3)).isoformat())
        assert result.returncode == 2, result
        assert "has not ended yet" in result.stderr

    def test_allow_partial_runs_it_and_says_a_plain_run_completes_it(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, today_daily)
        today = datetime.now(UTC).date()
        result = cli("run", "./shop", "--window-start", today.isoformat(), "--allow-partial", "--json")
        assert result.returncode == 0, result
        (row,) = result.json()
        assert row["pre_validation_phase"]["phase_specific_details"]["partial_window"] is True
        label = "partial: started before the window ended; a plain run loads the window again"
        assert label in cli("history", "./shop").stdout
        shown = cli("show", row["pipeline_id"], "-p", "./shop").stdout
        assert f"SUCCESS ({label})" in shown

    def test_allow_partial_without_a_window_is_a_usage_error(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--allow-partial")
        assert result.returncode == 2, result
        assert "--allow-partial needs --window-start or --from" in result.stderr

    def test_a_plain_run_says_nothing_is_due_while_the_only_window_left_is_open(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, today_daily)
        cli("run", "./shop", "--window-start", datetime.now(UTC).date().isoformat(), "--allow-partial")
        result = cli("run", "./shop")
        assert result.returncode == 0, result
        assert "nothing to run" in result.stderr

    def test_a_window_that_has_not_started_is_refused_even_with_allow_partial(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, today_daily)
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        result = cli("run", "./shop", "--window-start", tomorrow.isoformat(), "--allow-partial")
        assert result.returncode == 2, result
        assert "has not started yet" in result.stderr
