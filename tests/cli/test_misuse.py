"""Misuse of the command line and damaged state: a clear error and exit 1 or 2, never a traceback;
with ``--json``, stdout holds one JSON object (``{"error": {...}}``) on error."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from drivetrain import Pipeline
from drivetrain.drive import new_holder_id
from tests.connectors.test_duckdb_bad_file import flip_bytes

from .conftest import SAMPLE_DAY, Cli, Result

FIRST = f"{SAMPLE_DAY}T00:00:00Z"


def clean_error(result: Result, code: int) -> str:
    """The stderr of a command that must end with exit ``code`` and no traceback."""
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr + result.stdout, result
    assert "internal error" not in result.stderr, result
    return result.stderr


def json_error(result: Result, code: int, kind: str) -> dict[str, object]:
    clean_error(result, code)
    body = json.loads(result.stdout)["error"]
    assert body["exit_code"] == code
    assert body["kind"] == kind
    assert body["message"]
    return body


class TestArgumentBounds:
    def test_new_with_dir_a_file_exits_2(self, cli: Cli) -> None:
        (cli.cwd / "afile").write_text("x")
        stderr = clean_error(cli("new", "x", "--dir", "afile"), 2)
        assert "afile is a file, not a folder" in stderr
        assert not (cli.cwd / "afile" / "x").exists()

    def test_new_with_dir_under_a_file_exits_2(self, cli: Cli) -> None:
        (cli.cwd / "afile").write_text("x")
        assert "a parent of afile/sub" in clean_error(cli("new", "x", "--dir", "afile/sub"), 2)

    def test_new_with_dir_proc_exits_2_and_leaves_nothing(self, cli: Cli) -> None:
        stderr = clean_error(cli("new", "x", "--dir", "/proc"), 2)
        assert "--dir /proc: cannot write there" in stderr

    @pytest.mark.parametrize("days", ["nan", "inf", "1e308", "-1", "0"])
    def test_report_days_out_of_range_exits_2(self, cli: Cli, days: str) -> None:
        assert "--days" in clean_error(cli("report", "--days", days), 2)

    def test_report_html_into_a_missing_folder_exits_2(self, cli: Cli) -> None:
        stderr = clean_error(cli("report", "--html", "/missing/dir/x.html"), 2)
        assert "the folder /missing/dir does not exist" in stderr

    def test_demo_dir_a_file_exits_2(self, cli: Cli) -> None:
        stderr = clean_error(cli("demo", "--dir", "/etc/passwd"), 2)
        assert "/etc/passwd is a file, not a folder" in stderr

    @pytest.mark.parametrize("start", ["9999-12-31T23:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
                                       "1899-12-31T23:00:00Z", "3000-01-01T00:00:00Z"])
    def test_window_start_outside_the_sane_range_exits_2_and_runs_nothing(self, cli: Cli, shop: Path, start: str) -> None:
        stderr = clean_error(cli("run", "./shop", "--window-start", start), 2)
        assert "is outside the range windows can be run in (1900-01-01 to 3000-01-01, UTC)" in stderr
        assert not (shop / "warehouse.duckdb").exists()

    def test_from_outside_the_sane_range_exits_2(self, cli: Cli, shop: Path) -> None:
        stderr = clean_error(cli("run", "./shop", "--from", "0001-01-01", "--to", "0001-01-01T03:00"), 2)
        assert "--from: 0001-01-01T00:00:00Z is outside the range" in stderr

    def test_a_config_start_date_in_year_1_exits_2_for_every_command(self, cli: Cli, shop: Path) -> None:
        config = json.loads((shop / "config.json").read_text())
        config["dag_schedule"]["start_date"] = "0001-01-01"
        (shop / "config.json").write_text(json.dumps(config))
        for args in (["validate", "./shop"], ["run", "./shop"], ["status", "./shop"]):
            assert "dag_schedule.start_date: 0001-01-01 is outside the range" in clean_error(cli(*args), 2)

    def test_history_limit_beyond_64_bits_exits_2(self, cli: Cli, shop: Path) -> None:
        assert "--limit" in clean_error(cli("history", "./shop", "-n", "99999999999999999999"), 2)


class TestJsonErrors:
    def test_history_of_an_unknown_pipeline(self, cli: Cli) -> None:
        body = json_error(cli("history", "nope", "--json"), 2, "not_found")
        assert "no pipeline 'nope'" in str(body["message"])

    def test_a_usage_error_of_a_json_command(self, cli: Cli, shop: Path) -> None:
        json_error(cli("history", "./shop", "--json", "-n", "abc"), 2, "usage")

    def test_an_unknown_option_of_a_json_command(self, cli: Cli, shop: Path) -> None:
        json_error(cli("status", "--json", "--bogus"), 2, "usage")

    def test_show_of_an_unknown_run(self, cli: Cli, shop: Path) -> None:
        json_error(cli("show", "shop_20250101T000000Z_run9", "--json", "--dir", "shop"), 2, "not_found")

    def test_status_of_a_broken_config(self, cli: Cli, shop: Path) -> None:
        (shop / "config.json").write_text("{")
        json_error(cli("status", "./shop", "--json"), 2, "config")

    def test_run_with_a_bad_timestamp(self, cli: Cli, shop: Path) -> None:
        json_error(cli("run", "./shop", "--window-start", "yesterday", "--json"), 2, "usage")

    def test_report_with_nan_days(self, cli: Cli) -> None:
        json_error(cli("report", "--days", "nan", "--json"), 2, "usage")

    def test_run_of_a_locked_window_prints_one_json_error(self, cli: Cli, shop: Path) -> None:
        with Pipeline.load(shop) as pipeline:
            window = pipeline.grid.first()
            store = pipeline.drive_store()
            store.ensure()
            lease = store.acquire_lease(pipeline.name, window.start, window.end, new_holder_id(), 600)
            try:
                result = cli("run", "./shop", "--window-start", FIRST, "--json")
            finally:
                store.release_lease(lease)
        json_error(result, 3, "locked")

    def test_without_json_stdout_stays_empty_on_error(self, cli: Cli) -> None:
        result = cli("history", "nope")
        clean_error(result, 2)
        assert result.stdout == ""


class TestRunJson:
    def test_run_json_has_the_stored_created_and_updated_at(self, cli: Cli, shop: Path) -> None:
        (row,) = cli("run", "./shop", "--window-start", FIRST, "--json").json()
        assert row["created_at"] is not None
        assert row["updated_at"] is not None
        (stored,) = cli("history", "./shop", "--json").json()
        assert (row["created_at"], row["updated_at"]) == (stored["created_at"], stored["updated_at"])


class TestCorruptFile:
    @pytest.fixture
    def corrupt(self, cli: Cli, shop: Path) -> Path:
        assert cli("run", "./shop", "--window-start", FIRST).returncode == 0
        path = shop / "drive.sqlite"  # the drive table's file (the default): every command below reads it
        flip_bytes(path, 0, 9000)  # its header and first pages: damage every command meets as it opens the file
        return path

    @pytest.mark.parametrize("args", [["run", "./shop"], ["history", "./shop"], ["status", "./shop"],
                                      ["show", "shop_20250101T000000Z_run1", "-p", "./shop"]])
    def test_every_command_names_the_file_and_the_fix(self, cli: Cli, corrupt: Path, args: list[str]) -> None:
        stderr = clean_error(cli(*args), 1)
        assert f"{corrupt}: " in stderr and "the SQLite drive file is damaged" in stderr
        assert "restore it from a backup" in stderr
        assert stderr.count(str(corrupt)) == 1, stderr  # the file is named once, not by each layer

    def test_status_json_prints_a_json_error(self, cli: Cli, corrupt: Path) -> None:
        body = json_error(cli("status", "./shop", "--json"), 1, "failed")
        assert "drive file is damaged" in str(body["message"])

    def test_history_json_prints_a_json_error(self, cli: Cli, corrupt: Path) -> None:
        body = json_error(cli("history", "./shop", "--json"), 1, "failed")
        assert "drive file is damaged" in str(body["message"])

    def test_report_of_a_named_pipeline_says_why_and_fails(self, cli: Cli, corrupt: Path) -> None:
        result = cli("report", "./shop")
        assert "Traceback" not in result.stderr
        assert "shop: skipped: cannot read its drive table" in result.stderr
        assert "the SQLite drive file is damaged" in result.stderr
        assert result.returncode == 1 and "cannot read the drive table of ./shop" in result.stderr

    def test_report_json_of_a_named_pipeline_is_one_json_error_with_the_rest_of_the_report(self, cli: Cli, corrupt: Path) -> None:
        body = json_error(cli("report", "./shop", "--json"), 1, "failed")
        assert body["unreadable"] == ["./shop"] and body["report"]["success_rates"] == []

    def test_report_over_the_fleet_skips_the_pipeline_and_goes_on(self, cli: Cli, corrupt: Path, shop: Path) -> None:
        result = cli("report", "--dir", str(shop))
        assert "skipped: cannot read its drive table" in result.stderr and result.returncode == 0

    @pytest.mark.parametrize("json_flag", [[], ["--json"]])
    def test_the_report_skips_a_file_damaged_past_its_header(self, cli: Cli, shop: Path, json_flag: list[str]) -> None:
        """Damage met only when the report's queries read the rows (the schema page is whole)."""
        assert cli("run", "./shop", "--window-start", FIRST).returncode == 0
        path = shop / "drive.sqlite"
        with contextlib.closing(sqlite3.connect(path)) as conn:  # the pages holding the drive rows themselves
            size = conn.execute("PRAGMA page_size").fetchone()[0]
            pages = [n for (n,) in conn.execute("SELECT pageno FROM dbstat WHERE name = 'pipeline_execution_drive'")]
        for page in pages:
            flip_bytes(path, (page - 1) * size + 8, size - 8)  # the cells, past the page header
        result = cli("report", "--dir", str(shop), *json_flag)
        assert "Traceback" not in result.stderr
        assert "shop: skipped: cannot read its drive table" in result.stderr, result.stderr
        assert "the SQLite drive file is damaged" in result.stderr and result.returncode == 0
        if json_flag:
            assert result.json()["success_rates"] == []
        fleet = cli("status", "--dir", str(shop))  # status over the fleet marks the pipeline and goes on too
        assert "Traceback" not in fleet.stderr and fleet.returncode == 0, fleet.stderr
        assert "shop" in fleet.stdout and "drive file is damaged" in fleet.stdout + fleet.stderr


class TestBrokenPipelineModule:
    def test_validate_reports_a_syntax_error_as_a_config_problem(self, cli: Cli, shop: Path) -> None:
        with open(shop / "pipeline.py", "a", encoding="utf-8") as fh:
            fh.write("\ndef broken(:\n")
        lines = (shop / "pipeline.py").read_text().splitlines()
        stderr = clean_error(cli("validate", "./shop"), 2)
        assert f"pipeline.py:{len(lines)}: SyntaxError" in stderr
        assert "invalid configuration" in stderr

    @pytest.mark.parametrize("args", [["run", "./shop"], ["status", "./shop"], ["history", "./shop", "--json"]])
    def test_other_commands_exit_2_naming_the_file(self, cli: Cli, shop: Path, args: list[str]) -> None:
        (shop / "pipeline.py").write_text("import no_such_module_here\n")
        assert "pipeline.py:1" in clean_error(cli(*args), 2)


class TestDamagedRow:
    @pytest.fixture
    def damaged(self, cli: Cli, shop: Path) -> str:
        assert cli("run", "./shop", "--window-start", FIRST).returncode == 0
        with contextlib.closing(sqlite3.connect(shop / "drive.sqlite")) as conn, conn:  # the default drive file
            conn.execute("UPDATE pipeline_execution_drive SET audit_phase = '[1, 2]', pipeline_status = 'DONE'")
        return "shop_20250101T000000Z_run1"

    def test_history_marks_the_row_and_warns_with_row_and_column(self, cli: Cli, damaged: str) -> None:
        result = cli("history", "./shop")
        assert clean_error(result, 0).count("is damaged") == 1
        assert f"drive-table row {damaged}" in result.stderr
        assert "audit_phase: expected a JSON object" in result.stderr
        assert "damaged row" in result.stdout

    def test_show_lists_each_damaged_value(self, cli: Cli, damaged: str) -> None:
        result = cli("show", damaged, "-p", "./shop")
        clean_error(result, 0)
        assert "audit_phase: expected a JSON object, found a list [1, 2]" in result.stdout
        assert "pipeline_status: expected one of" in result.stdout

    def test_json_output_carries_the_damage(self, cli: Cli, damaged: str) -> None:
        (row,) = cli("history", "./shop", "--json").json()
        assert any(p.startswith("audit_phase") for p in row["damage"])

    def test_the_pipeline_runs_on_the_damaged_window_first(self, cli: Cli, shop: Path, damaged: str) -> None:
        result = cli("run", "./shop")
        clean_error(result, 0)
        assert "SUCCESS  shop_20250101T000000Z_run2" in result.stdout
        status = cli("status", "./shop")  # the newest run is whole: status reads no other row, so has nothing to warn of
        clean_error(status, 0)
        assert "SUCCESS" in status.stdout and "shop_20250101T000000Z_run2" in status.stdout
