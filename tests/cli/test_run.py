"""``drivetrain run``: choosing windows, dry runs, failures, locks and signals, with exit statuses."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from drivetrain import Pipeline
from drivetrain.drive import new_holder_id

from .conftest import SAMPLE_DAY, Cli, add_invalid_order, edit_config, strict_rejects

FIRST = f"{SAMPLE_DAY}T00:00:00Z"


class TestChoosingWindows:
    def test_without_a_window_it_runs_the_first_window_of_a_new_pipeline(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop")
        assert result.returncode == 0, result
        assert result.stdout.startswith("SUCCESS  shop_20250101T000000Z_run1"), result
        assert "source 4, stage 4, target 4" in result.stdout

    def test_the_next_run_takes_the_window_after_the_last_success(self, cli: Cli, shop: Path) -> None:
        cli("run", "./shop")
        result = cli("run", "./shop")
        assert result.returncode == 0, result
        assert "shop_20250101T010000Z_run1" in result.stdout

    def test_window_start_runs_that_window(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--window-start", f"{SAMPLE_DAY}T02:00")
        assert result.returncode == 0, result
        assert "shop_20250101T020000Z_run1" in result.stdout

    def test_a_plain_date_means_midnight_in_the_schedule_timezone(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--window", SAMPLE_DAY, "--window-end", f"{SAMPLE_DAY}T01:00:00+00:00")
        assert result.returncode == 0, result
        assert "shop_20250101T000000Z_run1" in result.stdout

    def test_a_start_off_the_grid_exits_2_naming_the_nearest_starts(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--window-start", f"{SAMPLE_DAY}T01:30:00Z")
        assert result.returncode == 2, result
        assert "nearest window starts are 2025-01-01T01:00:00Z and 2025-01-01T02:00:00Z" in result.stderr

    def test_a_window_end_that_does_not_match_the_grid_exits_2(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--window-start", FIRST, "--window-end", f"{SAMPLE_DAY}T03:00:00Z")
        assert result.returncode == 2, result
        assert "ends at 2025-01-01T01:00:00Z" in result.stderr

    def test_an_unreadable_timestamp_exits_2(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--window-start", "yesterday")
        assert result.returncode == 2, result
        assert "'yesterday' is not a timestamp" in result.stderr

    def test_window_start_and_from_together_is_a_usage_error(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--window-start", FIRST, "--from", FIRST)
        assert result.returncode == 2, result
        assert "not both" in result.stderr

    def test_from_to_runs_every_window_in_order(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--from", SAMPLE_DAY, "--to", f"{SAMPLE_DAY}T03:00")
        assert result.returncode == 0, result
        ids = [line.split()[1] for line in result.stdout.splitlines()]
        assert ids == [f"shop_20250101T0{h}0000Z_run1" for h in range(3)]

    def test_nothing_due_exits_0_with_a_message(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["dag_schedule"].update(start_date="2999-01-01"))
        result = cli("run", "./shop")
        assert result.returncode == 0, result
        assert result.stdout == ""
        assert "nothing to run" in result.stderr


class TestFailures:
    def test_a_failed_run_exits_1_and_names_the_phase(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, strict_rejects)
        add_invalid_order(shop, hour=0)
        result = cli("run", "./shop", "--window-start", FIRST)
        assert result.returncode == 1, result
        assert result.stdout.startswith("FAILED")
        assert "failed at source_to_stage_transfer" in result.stdout
        assert "max_rejected_percent" in result.stdout

    def test_from_to_stops_at_the_first_failure(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, strict_rejects)
        add_invalid_order(shop, hour=1)
        result = cli("run", "./shop", "--from", SAMPLE_DAY, "--to", f"{SAMPLE_DAY}T03:00")
        assert result.returncode == 1, result
        statuses = [line.split()[0] for line in result.stdout.splitlines()]
        assert statuses == ["SUCCESS", "FAILED"]
        assert "stopped after 2 of 3 window(s)" in result.stderr

    def test_the_next_run_retries_the_failed_window_first(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, strict_rejects)
        add_invalid_order(shop, hour=1)
        cli("run", "./shop", "--from", SAMPLE_DAY, "--to", f"{SAMPLE_DAY}T03:00")
        def tolerate(config: dict) -> None:
            config["phases"]["source_to_stage_transfer"] = {"max_rejected_percent": 50}
            config["phases"]["audit"]["count_tolerances"]["source_to_stage_tolerance_percent"] = 50
        edit_config(shop, tolerate)
        result = cli("run", "./shop")
        assert result.returncode == 0, result
        assert "shop_20250101T010000Z_run2" in result.stdout
        assert "rejected 1" in result.stdout

    def test_a_locked_window_exits_3_naming_the_holder(self, cli: Cli, shop: Path) -> None:
        holder = new_holder_id()  # this test process: alive, so the lease cannot be taken over
        with Pipeline.load(shop) as pipeline:
            window = pipeline.grid.first()
            store = pipeline.drive_store()
            store.ensure()
            lease = store.acquire_lease(pipeline.name, window.start, window.end, holder, 600)
            try:
                result = cli("run", "./shop", "--window-start", FIRST)
            finally:
                store.release_lease(lease)
        assert result.returncode == 3, result
        assert holder in result.stderr
        assert result.stdout == ""

    def test_sigterm_stops_the_run_at_a_safe_point_and_records_it_failed(self, cli: Cli, shop: Path) -> None:
        started = shop / "started"
        (shop / "pipeline.py").write_text(SLOW_PIPELINE.format(marker=str(started)))
        process = cli.popen("run", "./shop", "--window-start", FIRST)
        deadline = time.monotonic() + 60
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), process.communicate()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 1, (stdout, stderr)
        assert "failed at source_count" in stdout
        assert "stopped by SIGTERM" in stdout


SLOW_PIPELINE = '''
import time
from pathlib import Path

from drivetrain import Pipeline, SourceCount


class WaitingCount(SourceCount):
    """Signals that it started, then waits (checking for cancellation) until stopped."""

    def run(self, ctx):
        Path({marker!r}).write_text("started")
        for _ in range(1200):
            ctx.check_cancelled()
            time.sleep(0.05)
        return super().run(ctx)


class ShopPipeline(Pipeline):
    config_path = Path(__file__).with_name("config.json")
    phase_classes = {{"source_count": WaitingCount}}
'''


class TestDryRun:
    def test_dry_run_prints_the_plan_and_records_nothing(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--window-start", FIRST, "--dry-run")
        assert result.returncode == 0, result
        assert "plan (dry run, nothing changed)" in result.stdout
        assert "target_cleaning           skip    disabled in config" in result.stdout
        assert cli("history", "./shop", "--json").json() == []

    def test_dry_run_of_a_failed_window_shows_what_will_be_skipped(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["phases"]["audit"]["count_tolerances"].update(source_to_stage_tolerance_percent=0))
        def fail_in_audit(config: dict) -> None:
            config["phases"]["source_to_stage_transfer"] = {"max_rejected_percent": 100}
        edit_config(shop, fail_in_audit)
        add_invalid_order(shop, hour=0)
        assert cli("run", "./shop", "--window-start", FIRST).returncode == 1
        plan = cli("run", "./shop", "--dry-run", "--json").json()
        assert len(plan) == 1 and plan[0]["query_window_start_timestamp"].startswith("2025-01-01T00:00")
        actions = {p["phase"]: (p["action"], p["reason"]) for p in plan[0]["phases"]}
        assert actions["source_to_stage_transfer"] == ("skip", "completed by shop_20250101T000000Z_run1")
        assert actions["audit"][0] == "run"


class TestJsonOutput:
    def test_run_json_prints_the_drive_rows(self, cli: Cli, shop: Path) -> None:
        result = cli("run", "./shop", "--from", SAMPLE_DAY, "--to", f"{SAMPLE_DAY}T02:00", "--json")
        assert result.returncode == 0, result
        rows = result.json()
        assert [r["pipeline_status"] for r in rows] == ["SUCCESS", "SUCCESS"]
        assert rows[0]["source_count_phase"]["phase_specific_details"]["count"] == 4
