"""``drivetrain status``, ``history`` and ``show``: tables, JSON rows and where they look."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import SAMPLE_DAY, Cli, add_invalid_order, edit_config, strict_rejects

#: Columns of the drive table as the spec names them (phase columns are nested objects).
SPEC_COLUMNS = {
    "pipeline_id", "pipeline_name", "pipeline_status", "pipeline_retry_number",
    "pipeline_start_timestamp", "pipeline_end_timestamp", "pipeline_run_duration",
    "query_window_start_timestamp", "query_window_end_timestamp", "target_date", "query_window_duration",
    "stale_pipeline_handling_phase", "pre_validation_phase", "source_to_stage_transfer_phase",
    "stage_to_target_transfer_phase", "audit_phase", "stage_cleaning_phase", "target_cleaning_phase",
    "phases_completed", "phases_skipped", "phase_failed", "phases_pending", "created_at", "updated_at",
}
PHASE_KEYS = {"start_timestamp", "end_timestamp", "actual_run_duration", "retry_number", "error_message",
              "status", "expected_run_duration", "phase_specific_details"}


def two_runs(cli: Cli) -> None:
    """Window 00:00 succeeds, window 01:00 fails in source_to_stage_transfer."""
    result = cli("run", "./shop", "--from", SAMPLE_DAY, "--to", f"{SAMPLE_DAY}T02:00")
    assert result.returncode == 1, result


class TestHistory:
    def test_history_lists_runs_newest_first(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, strict_rejects)
        add_invalid_order(shop, hour=1)
        two_runs(cli)
        result = cli("history", "./shop")
        assert result.returncode == 0, result
        lines = result.stdout.splitlines()
        assert lines[0].startswith("shop: 2 run(s), newest first")
        assert lines[1].split()[:2] == ["run", "status"]
        assert lines[2].split()[:2] == ["shop_20250101T010000Z_run1", "FAILED"]
        assert lines[3].split()[:2] == ["shop_20250101T000000Z_run1", "SUCCESS"]

    def test_history_json_rows_have_the_spec_columns(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, strict_rejects)
        add_invalid_order(shop, hour=1)
        two_runs(cli)
        rows = cli("history", "./shop", "--json").json()
        assert len(rows) == 2
        for row in rows:
            assert set(row) >= SPEC_COLUMNS
            assert set(row["audit_phase"]) >= PHASE_KEYS
        failed = rows[0]
        assert failed["pipeline_status"] == "FAILED"
        assert failed["phase_failed"] == "source_to_stage_transfer"
        assert "source_count" in failed["phases_completed"]
        assert failed["source_to_stage_transfer_phase"]["status"] == "FAILED"

    def test_history_filters_by_status_and_limits(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, strict_rejects)
        add_invalid_order(shop, hour=1)
        two_runs(cli)
        rows = cli("history", "./shop", "--status", "success", "--limit", "5", "--json").json()
        assert [r["pipeline_id"] for r in rows] == ["shop_20250101T000000Z_run1"]

    def test_history_of_an_unknown_pipeline_exits_2_with_did_you_mean(self, cli: Cli, shop: Path) -> None:
        result = cli("history", "shpo")
        assert result.returncode == 2, result
        assert "no pipeline 'shpo'" in result.stderr
        assert "did you mean the folder ./shop?" in result.stderr

    def test_history_of_a_pipeline_that_never_ran_says_so(self, cli: Cli, shop: Path) -> None:
        result = cli("history", "./shop")
        assert result.returncode == 0, result
        assert "no runs recorded" in result.stderr


class TestStatus:
    def test_status_without_a_pipeline_shows_registered_ones_and_the_folder(self, cli: Cli, shop: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
        assert cli("run", "./shop").returncode == 0
        monkeypatch.setenv("DRIVETRAIN_CONTRIB_PIPELINES", "demo")
        result = cli("status", "--dir", "shop")
        assert result.returncode == 0, result
        assert "looked at: 1 registered pipeline(s) (demo)" in result.stderr
        assert f"the folder {shop.resolve()}" in result.stderr
        rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
        assert "no runs yet" in rows["demo"]
        assert "shop_20250101T000000Z_run1  SUCCESS" in rows["shop"]

    def test_status_never_creates_a_drive_table_for_a_pipeline_that_never_ran(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DRIVETRAIN_CONTRIB_PIPELINES", "demo")  # the demo pipeline's DuckDB file lives under HOME
        result = cli("status")
        assert result.returncode == 0, result
        assert "(not created yet)" in result.stdout
        assert not (cli.home / ".drivetrain").exists()

    def test_status_json_is_the_latest_row_per_pipeline(self, cli: Cli, shop: Path) -> None:
        cli("run", "./shop", "--from", SAMPLE_DAY, "--to", f"{SAMPLE_DAY}T02:00")
        rows = cli("status", "./shop", "--json").json()
        assert [r["pipeline_id"] for r in rows] == ["shop_20250101T010000Z_run1"]
        assert set(rows[0]) >= SPEC_COLUMNS

    def test_status_reports_a_broken_config_in_the_folder_and_goes_on(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["query_window"].update(duration="often"))
        result = cli("status", "--dir", "shop")
        assert result.returncode == 0, result
        assert "CONFIG ERROR" in result.stdout
        assert "query_window.duration" in result.stdout


class TestShow:
    def test_show_finds_the_run_from_the_folder_in_the_working_directory(self, cli: Cli, shop: Path) -> None:
        cli("run", "./shop")
        result = cli("show", "shop_20250101T000000Z_run1", cwd=shop)
        assert result.returncode == 0, result
        assert "run shop_20250101T000000Z_run1" in result.stdout
        assert "stage_to_target_transfer  COMPLETED" in result.stdout

    def test_show_json_is_one_object_with_nested_phases(self, cli: Cli, shop: Path) -> None:
        cli("run", "./shop")
        row = cli("show", "shop_20250101T000000Z_run1", "--pipeline", "./shop", "--json").json()
        assert row["pipeline_id"] == "shop_20250101T000000Z_run1"
        assert set(row) >= SPEC_COLUMNS
        assert row["target_count_phase"]["phase_specific_details"]["count"] == 4

    def test_show_of_a_failed_run_prints_the_error(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, strict_rejects)
        add_invalid_order(shop, hour=0)
        cli("run", "./shop")
        result = cli("show", "shop_20250101T000000Z_run1", "--dir", "shop")
        assert result.returncode == 0, result
        assert "outcome: failed at source_to_stage_transfer" in result.stdout

    def test_show_of_an_unknown_run_exits_2_saying_where_it_looked(self, cli: Cli, shop: Path) -> None:
        result = cli("show", "shop_20990101T000000Z_run1", "--dir", "shop")
        assert result.returncode == 2, result
        assert "no run 'shop_20990101T000000Z_run1'" in result.stderr
        assert "shop (" in result.stderr
