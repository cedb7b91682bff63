"""``drivetrain validate``: the config, then each system, with precise messages and exit statuses."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .conftest import Cli, edit_config

PASSWORD = "hunter2-Sup3r-s3cret"


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestValidate:
    def test_a_good_pipeline_passes_every_check(self, cli: Cli, shop: Path) -> None:
        result = cli("validate", "./shop")
        assert result.returncode == 0, result
        labels = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok ")]
        assert labels == ["config", "source_system", "stage_system", "target_system", "drive_table", "archive"]
        assert "every check passed" in result.stderr

    def test_a_schema_error_exits_2_with_the_file_and_json_path(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["dag_schedule"].update(frequency="sometimes"))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert f"{shop.resolve() / 'config.json'}: dag_schedule.frequency: 'sometimes' is not one of" in result.stderr
        assert result.stdout == ""

    def test_every_config_problem_is_listed(self, cli: Cli, shop: Path) -> None:
        def two_problems(config: dict) -> None:
            config["dag_schedule"]["frequency"] = "sometimes"
            del config["target_system"]
        edit_config(shop, two_problems)
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "dag_schedule.frequency" in result.stderr
        assert "target_system" in result.stderr

    def test_an_unknown_connector_option_exits_2_naming_the_key(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["stage_system"].update(tabel="oops"))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "FAILED  stage_system" in result.stdout
        assert "tabel" in result.stdout

    def test_an_unreachable_source_exits_1_and_the_other_checks_still_run(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["source_system"].update(path="nowhere/*.jsonl"))
        result = cli("validate", "./shop")
        assert result.returncode == 1, result
        assert "FAILED  source_system" in result.stdout
        assert "no files match" in result.stdout
        assert "ok      target_system" in result.stdout

    def test_an_unknown_pipeline_exits_2(self, cli: Cli) -> None:
        result = cli("validate", "no_such_pipeline")
        assert result.returncode == 2, result
        assert "no pipeline 'no_such_pipeline'" in result.stderr

    def test_a_registered_pipeline_by_name_with_a_typo_gets_did_you_mean(self, cli: Cli) -> None:
        result = cli("validate", "dmeo")
        assert result.returncode == 2, result
        assert "did you mean 'demo'?" in result.stderr

    def test_a_refused_connection_exits_1_without_printing_the_password(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        made = cli("new", "lims", "--source", "mysql")
        assert made.returncode == 0, made
        edit_config(cli.cwd / "lims", lambda c: c["source_system"].update(host="127.0.0.1", port=free_port(), connect_timeout=2))
        monkeypatch.setenv("LIMS_MYSQL_USER", "reader")
        monkeypatch.setenv("LIMS_MYSQL_PASSWORD", PASSWORD)
        result = cli("-v", "validate", "./lims")
        assert result.returncode == 1, result
        assert "FAILED  source_system" in result.stdout
        assert "127.0.0.1" in result.stdout
        assert PASSWORD not in result.stdout + result.stderr

    def test_a_password_written_into_the_mysql_host_exits_2_and_is_never_printed(self, cli: Cli) -> None:
        made = cli("new", "lims", "--source", "mysql")
        assert made.returncode == 0, made
        edit_config(cli.cwd / "lims", lambda c: c["source_system"].update(host=f"reader:{PASSWORD}@127.0.0.1"))
        result = cli("validate", "./lims")
        assert result.returncode == 2, result
        assert "source_system.host: holds a user or password before '@'" in result.stderr
        assert PASSWORD not in result.stdout + result.stderr


class TestValidateFindsWhatWouldFailLater:
    @pytest.mark.parametrize(("frequency", "duration"), [("hourly", "7m"), ("hourly", "2h"), ("daily", "1h")])
    def test_windows_that_do_not_fit_the_schedule_exit_2_naming_the_schedule(
        self, cli: Cli, shop: Path, frequency: str, duration: str
    ) -> None:
        def change(config: dict) -> None:
            config["dag_schedule"]["frequency"] = frequency
            config["dag_schedule"].pop("cron_expression", None)
            config["query_window"]["duration"] = duration
        edit_config(shop, change)
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "dag_schedule.frequency: " in result.stdout
        assert f"does not fire once per '{duration}' window" in result.stdout
        assert "ok      source_system" in result.stdout  # the other checks still run

    def test_a_cron_expression_off_the_window_boundaries_is_named(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["dag_schedule"].update(frequency="custom", cron_expression="30 * * * *"))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "dag_schedule.cron_expression: '30 * * * *' in UTC does not fire once per '1h' window" in result.stdout
        assert "'0 * * * *'" in result.stdout  # the cron that would fit

    def test_a_schedule_that_fits_says_so(self, cli: Cli, shop: Path) -> None:
        result = cli("validate", "./shop")
        assert result.returncode == 0, result
        assert "one run per window ('0 * * * *')" in result.stdout

    def test_a_dedup_key_that_is_no_declared_column_exits_2_with_did_you_mean(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].update(dedup_keys=["order_idd"]))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "target_system.dedup_keys[0]: 'order_idd' is not a column of the target; did you mean 'order_id'?" in result.stdout

    def test_a_rename_of_a_column_that_is_not_declared_exits_2(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].update(rename={"statuss": "state"}))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "target_system.rename.statuss: renames 'statuss', which is not a stage column; did you mean 'status'?" in result.stdout

    def test_dedup_keys_name_the_renamed_target_columns(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].update(rename={"order_id": "id"}, dedup_keys=["id"], merge_keys=["id"]))
        result = cli("validate", "./shop")
        assert result.returncode == 0, result

    def test_sql_in_a_query_field_exits_2(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["source_system"].update(query_field="updated_at; DROP TABLE shop"))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "source_system.query_field: 'updated_at; DROP TABLE shop' is not a field name" in result.stderr

    def test_merge_keys_that_replace_window_would_ignore_exit_2(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].update(load_strategy="replace_window"))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "target_system.merge_keys: is only used with load_strategy 'merge'" in result.stderr

    def test_archive_options_a_local_folder_would_ignore_exit_2(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["phases"]["stage_cleaning"].update(archive_options={"storage_class": "GLACIER"}))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "FAILED  archive" in result.stdout
        assert "phases.stage_cleaning.archive_options.storage_class: unknown key" in result.stdout

    def test_a_typo_in_a_target_system_key_gets_did_you_mean(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].update(dedup_key=["order_id"]))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "target_system.dedup_key: unknown key; did you mean 'dedup_keys'?" in result.stdout

    def test_an_unknown_target_system_key_lists_every_allowed_key(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].update(zzzz=1))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        [line] = [line for line in result.stdout.splitlines() if "target_system.zzzz" in line]
        for key in ("table", "path", "query_field", "dedup_keys", "load_strategy", "merge_keys", "rename", "credentials_ref"):
            assert f"'{key}'" in line, key


class TestEnvironment:
    def test_validate_shows_each_reference_resolved(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].update(table="${SHOP_TABLE:-shop_dev}"))
        result = cli("validate", "./shop")
        assert result.returncode == 0, result
        assert "environment   target_system.table: ${SHOP_TABLE:-shop_dev} -> shop_dev (default: SHOP_TABLE unset)" in result.stdout

    def test_an_unset_variable_exits_2_naming_it(self, cli: Cli, shop: Path) -> None:
        edit_config(shop, lambda c: c["target_system"].update(table="${SHOP_TABLE_UNSET_HERE}"))
        result = cli("validate", "./shop")
        assert result.returncode == 2, result
        assert "target_system.table: environment variable SHOP_TABLE_UNSET_HERE is not set" in result.stdout + result.stderr
