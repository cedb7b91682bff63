"""The pipeline config: JSON Schema, loader messages, the typed model and its helpers."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from drivetrain.config import (
    PHASE_NAMES,
    AuditConfig,
    PhaseConfig,
    PipelineConfig,
    RetryConfig,
    StageCleaningConfig,
    StaleHandlingConfig,
    SystemConfig,
    TargetCleaningConfig,
    load_config,
    schema,
)
from drivetrain.errors import ConfigError

CONFIGS = Path(__file__).parent / "configs"
FULL = CONFIGS / "full.json"
MINIMAL = CONFIGS / "minimal.json"


class _Delete:
    """The marker for "remove this key" in INVALID (its repr names the case the same way in every process)."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()


def full_data() -> dict[str, Any]:
    return json.loads(FULL.read_text())


def minimal_data() -> dict[str, Any]:
    return json.loads(MINIMAL.read_text())


def mutate(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (or, with DELETE, remove) the value at a dotted path with [n] indices."""
    parts: list[str | int] = []
    for piece in dotted.split("."):
        name, _, rest = piece.partition("[")
        parts.append(name)
        if rest:
            parts.append(int(rest.rstrip("]")))
    node: Any = data
    for part in parts[:-1]:
        node = node[part]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value


def problems_for(data: dict[str, Any], source: str = "config.json") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        PipelineConfig.from_dict(data, source=source)
    return caught.value.problems


class TestSchemaFile:
    def test_is_a_valid_draft_2020_12_schema(self) -> None:
        Draft202012Validator.check_schema(schema())

    def test_is_shipped_inside_the_package(self) -> None:
        import drivetrain.config

        shipped = Path(drivetrain.config.__file__).parent / "schema.json"
        assert json.loads(shipped.read_text()) == schema()

    def test_accepts_both_example_configs(self) -> None:
        validator = Draft202012Validator(schema())
        assert list(validator.iter_errors(full_data())) == []
        assert list(validator.iter_errors(minimal_data())) == []

    def test_returns_a_fresh_copy_each_call(self) -> None:
        first = schema()
        first["title"] = "changed"
        assert schema()["title"] != "changed"


@pytest.fixture(scope="module")
def full_config() -> PipelineConfig:
    return PipelineConfig.from_file(FULL)


@pytest.fixture(scope="module")
def minimal_config() -> PipelineConfig:
    return PipelineConfig.from_file(MINIMAL)


class TestFullConfig:
    @pytest.fixture
    def config(self, full_config: PipelineConfig) -> PipelineConfig:
        return full_config

    def test_name_comes_from_pipeline_metadata(self, config: PipelineConfig) -> None:
        assert config.name == "genetic_tests"

    def test_metadata_lists_become_tuples(self, config: PipelineConfig) -> None:
        assert config.metadata.notification_emails == ("ada@example.com", "data-team@example.com")
        assert config.metadata.tags == ("lab", "pii")
        assert config.metadata.slack_channel == "#data-pipeline-alerts"

    def test_schedule_keeps_the_written_cron_and_zone(self, config: PipelineConfig) -> None:
        assert config.schedule.cron_expression == "15 * * * *"
        assert config.schedule.timezone == "Europe/Paris"
        assert config.schedule.tzinfo.key == "Europe/Paris"
        assert config.schedule.start_date == date(2025, 11, 15)
        assert config.schedule.catchup is True

    def test_query_window_has_text_and_length(self, config: PipelineConfig) -> None:
        assert config.query_window.duration == "1h"
        assert config.query_window.length == timedelta(hours=1)

    def test_system_sections_keep_connector_keys(self, config: PipelineConfig) -> None:
        assert config.source.type == "mysql"
        assert config.source.role == "source_system"
        assert config.source.credentials_ref == "mysql_prod"
        assert config.source.get("host") == "mysql.example.com"
        assert config.source.get("batch_size") == 5000

    def test_comment_keys_are_left_out_of_options(self, config: PipelineConfig) -> None:
        assert "_comment_batch" not in config.source.options

    def test_options_are_read_only(self, config: PipelineConfig) -> None:
        with pytest.raises(TypeError):
            config.source.options["host"] = "elsewhere"  # type: ignore[index]

    def test_stage_columns_are_typed(self, config: PipelineConfig) -> None:
        columns = {c.name: c for c in config.stage.columns}
        assert columns["test_id"].required and not columns["test_id"].nullable
        assert columns["patient_code"].max_length == 32
        assert columns["score"].max == 1.5
        assert columns["created_timestamp"].min == datetime(2000, 1, 1, tzinfo=UTC)
        assert columns["sample_date"].min == date(2000, 1, 1)
        assert columns["payload"].description == "raw instrument output"

    def test_declared_drive_table_is_used(self, config: PipelineConfig) -> None:
        assert config.drive_table.role == "drive_table"
        assert config.drive_table.get("table") == "runs"
        assert config.drive_table.path("path") == Path.home() / "drive.duckdb"

    def test_phase_settings_are_typed(self, config: PipelineConfig) -> None:
        assert config.phases.stale_pipeline_handling.timeout_minutes == 90.0
        assert config.phases.source_count.on_empty_window == "skip"
        assert config.phases.source_to_stage_transfer.max_rejected_percent == 2.5
        assert config.phases.stage_to_target_transfer.expected_run_duration == timedelta(
            hours=1, minutes=30
        )
        assert config.phases.stage_to_target_transfer.expected_run_duration_text == "1h 30m"

    def test_audit_tolerances_are_floats(self, config: PipelineConfig) -> None:
        audit = config.phases.audit
        assert isinstance(audit, AuditConfig)
        assert audit.source_to_stage_tolerance_percent == 2.0
        assert audit.stage_to_target_tolerance_percent == 1.0
        assert isinstance(audit.stage_to_target_tolerance_percent, float)

    def test_cleaning_phases_may_continue_on_failure(self, config: PipelineConfig) -> None:
        assert config.phases.stage_cleaning.continue_on_failure is True
        assert config.phases.target_cleaning.enabled is True
        assert config.phases.target_cleaning.cleaning_type == "soft_delete"

    def test_archive_system_is_built_from_stage_cleaning(self, config: PipelineConfig) -> None:
        archive = config.archive
        assert archive is not None
        assert (archive.role, archive.type) == ("archive", "s3")
        assert archive.get("location") == "s3://company-archive/stage-backups"
        assert archive.credentials_ref == "archive_s3"
        assert archive.json_path == "phases.stage_cleaning"

    def test_retry_and_monitoring_values(self, config: PipelineConfig) -> None:
        assert config.retry == RetryConfig(5, "linear", 2.5, 60.0)
        assert config.monitoring.alert_on_duration_exceed is False
        assert config.monitoring.duration_multiplier_threshold == 3.0
        assert config.monitoring.freshness_threshold == timedelta(hours=6)
        assert config.monitoring.freshness_threshold_text == "6h"

    def test_base_dir_is_the_files_folder(self, config: PipelineConfig) -> None:
        assert config.base_dir == FULL.absolute().parent
        assert config.source_file == str(FULL)

    def test_repr_is_short(self, config: PipelineConfig) -> None:
        assert repr(config).startswith("PipelineConfig(name='genetic_tests'")
        assert "mysql.example.com" not in repr(config)


class TestMinimalConfigDefaults:
    @pytest.fixture
    def config(self, minimal_config: PipelineConfig) -> PipelineConfig:
        return minimal_config

    @pytest.mark.parametrize(
        ("frequency", "cron"),
        [("hourly", "0 * * * *"), ("daily", "0 0 * * *"), ("weekly", "0 0 * * 0")],
    )
    def test_cron_expression_follows_frequency(self, frequency: str, cron: str) -> None:
        data = minimal_data()
        data["dag_schedule"]["frequency"] = frequency
        assert PipelineConfig.from_dict(data).schedule.cron_expression == cron

    def test_schedule_defaults_to_utc_without_catchup(self, config: PipelineConfig) -> None:
        assert config.schedule.timezone == "UTC"
        assert config.schedule.catchup is False

    def test_drive_table_lives_in_the_stage_warehouse(self, config: PipelineConfig) -> None:
        drive = config.drive_table
        assert (drive.role, drive.type, drive.json_path) == ("drive_table", "duckdb", "drive_table")
        assert drive.get("table") == "pipeline_execution_drive"
        assert drive.get("path") == config.stage.get("path")

    def test_every_phase_is_present_in_order(self, config: PipelineConfig) -> None:
        assert [phase.name for phase in config.phases] == list(PHASE_NAMES)
        assert config.phases.names == PHASE_NAMES

    def test_phases_are_enabled_except_target_cleaning(self, config: PipelineConfig) -> None:
        enabled = {phase.name: phase.enabled for phase in config.phases}
        assert enabled.pop("target_cleaning") is False
        assert all(enabled.values())

    def test_stale_handling_times_out_after_120_minutes(self, config: PipelineConfig) -> None:
        stale = config.phases.stale_pipeline_handling
        assert isinstance(stale, StaleHandlingConfig)
        assert stale.timeout_minutes == 120.0
        assert stale.timeout == timedelta(hours=2)

    def test_other_phases_have_no_timeout(self, config: PipelineConfig) -> None:
        assert config.phases.source_count.timeout_minutes is None
        assert config.phases.source_count.on_empty_window == "continue"

    def test_audit_tolerances_default_to_zero(self, config: PipelineConfig) -> None:
        assert config.phases.audit.source_to_stage_tolerance_percent == 0.0
        assert config.phases.audit.stage_to_target_tolerance_percent == 0.0

    def test_stage_cleaning_archives_locally_and_keeps_seven_days(
        self, config: PipelineConfig
    ) -> None:
        cleaning = config.phases.stage_cleaning
        assert isinstance(cleaning, StageCleaningConfig)
        assert cleaning.archive_before_delete and cleaning.delete_after_days == 7
        assert config.archive is not None and config.archive.type == "local"
        assert config.archive.path("location") == MINIMAL.absolute().parent / "archive"

    def test_no_archive_when_archiving_is_off(self) -> None:
        data = minimal_data()
        data["phases"]["stage_cleaning"] = {"archive_before_delete": False}
        assert PipelineConfig.from_dict(data).archive is None

    def test_retry_defaults(self, config: PipelineConfig) -> None:
        assert config.retry == RetryConfig(3, "exponential", 1.0, 300.0)

    def test_monitoring_defaults(self, config: PipelineConfig) -> None:
        monitoring = config.monitoring
        assert monitoring.alert_on_failure and monitoring.alert_on_duration_exceed
        assert monitoring.duration_multiplier_threshold == 2.0
        assert not monitoring.alert_on_stale_data and monitoring.freshness_threshold is None

    def test_core_option_defaults(self, config: PipelineConfig) -> None:
        assert config.source.get("batch_size") == 10_000
        assert config.target.get("load_strategy") == "replace_window"
        assert "batch_size" not in config.source.options

    def test_from_dict_without_base_dir_uses_the_working_folder(self) -> None:
        assert PipelineConfig.from_dict(minimal_data()).base_dir == Path.cwd()

    def test_comment_and_schema_keys_are_ignored_everywhere(self) -> None:
        data = minimal_data()
        data["$schema"] = "./schema.json"
        data["// why"] = "hourly because the LIMS exports hourly"
        data["query_window"]["_comment"] = "one hour"
        data["phases"]["stage_cleaning"]["//"] = "kept locally on laptops"
        assert PipelineConfig.from_dict(data).name == "lab_results"


# (dotted path, new value or DELETE, the exact problem line)
INVALID = [
    (
        "phases.audit.count_tolerances.source_to_stage_tolerance_percent",
        150,
        "phases.audit.count_tolerances.source_to_stage_tolerance_percent: "
        "150 is above the maximum 100",
    ),
    (
        "phases.audit.count_tolerances.stage_to_target_tolerance_percent",
        -1,
        "phases.audit.count_tolerances.stage_to_target_tolerance_percent: "
        "-1 is below the minimum 0",
    ),
    (
        "phases.stage_count.expected_run_duration",
        "-5m",
        "phases.stage_count.expected_run_duration: '-5m' is not a duration; write a positive "
        "amount with units w, d, h, m, s or ms, such as '1h 30m', '45m' or '1d'",
    ),
    (
        "query_window.duration",
        "0h",
        "query_window.duration: '0h' is zero; a duration must be longer than zero",
    ),
    (
        "monitoring.freshness_threshold",
        "30m 1h",
        "monitoring.freshness_threshold: '30m 1h' is not a duration: "
        'write each unit at most once, largest first, like "1d 6h"',
    ),
    (
        "dag_schedule.timezone",
        "Europe/Pariss",
        "dag_schedule.timezone: 'Europe/Pariss' is not a known time zone; "
        "did you mean 'Europe/Paris'?",
    ),
    (
        "dag_schedule.timezone",
        "Nowhere",
        "dag_schedule.timezone: 'Nowhere' is not a known time zone; use an IANA name such as 'UTC'",
    ),
    (
        "phases.audit.count_tolerence",
        {},
        "phases.audit.count_tolerence: unknown key; did you mean 'count_tolerances'?",
    ),
    ("phase", {}, "phase: unknown key; did you mean 'phases'?"),
    ("phases.audt", {}, "phases.audt: unknown key; did you mean 'audit'?"),
    (
        "phases.pre_validation.enabled",
        False,
        "phases.pre_validation.enabled: this phase cannot be disabled: runs depend on it; "
        "remove 'enabled' or set it to true",
    ),
    (
        "phases.stale_pipeline_handling.enabled",
        False,
        "phases.stale_pipeline_handling.enabled: this phase cannot be disabled: runs depend "
        "on it; remove 'enabled' or set it to true",
    ),
    (
        "phases.audit.continue_on_failure",
        True,
        "phases.audit.continue_on_failure: continue_on_failure can only be true on "
        "stage_cleaning and target_cleaning; a failure in any other phase must stop the run",
    ),
    ("query_window", DELETE, "'query_window' is required"),
    ("target_system", DELETE, "'target_system' is required"),
    ("query_window.duration", DELETE, "query_window: 'duration' is required"),
    ("source_system.type", DELETE, "source_system: 'type' is required"),
    (
        "dag_schedule.cron_expression",
        "61 * * * *",
        "dag_schedule.cron_expression: '61 * * * *' is not a valid cron expression "
        "(minute hour day-of-month month day-of-week)",
    ),
    (
        "dag_schedule.cron_expression",
        "0 0 * * * *",
        "dag_schedule.cron_expression: '0 0 * * * *' has 6 fields; a cron expression has 5: "
        "minute hour day-of-month month day-of-week",
    ),
    (
        "dag_schedule.cron_expression",
        DELETE,
        "dag_schedule: 'cron_expression' is required when frequency is 'custom'",
    ),
    (
        "dag_schedule.frequency",
        "monthly",
        "dag_schedule.frequency: 'monthly' is not one of 'hourly', 'daily', 'weekly', 'custom'",
    ),
    (
        "dag_schedule.start_date",
        "2025-02-30",
        "dag_schedule.start_date: '2025-02-30' is not a real date",
    ),
    (
        "dag_schedule.start_date",
        "15/11/2025",
        "dag_schedule.start_date: '15/11/2025' is not a date; write it as YYYY-MM-DD",
    ),
    ("dag_schedule.catchup", "yes", "dag_schedule.catchup: expected true or false, got 'yes'"),
    (
        "pipeline_metadata.owner_email",
        "ada.example.com",
        "pipeline_metadata.owner_email: 'ada.example.com' is not an email address "
        "(expected name@example.com)",
    ),
    (
        "pipeline_metadata.notification_emails[1]",
        "team@",
        "pipeline_metadata.notification_emails[1]: 'team@' is not an email address "
        "(expected name@example.com)",
    ),
    (
        "pipeline_metadata.pipeline_name",
        "Genetic-Tests",
        "pipeline_metadata.pipeline_name: 'Genetic-Tests' is not a valid pipeline name; use "
        "lower-case letters, digits and underscores, starting with a letter, at most 63 "
        "characters",
    ),
    (
        "pipeline_metadata.slack_channel",
        "data-alerts",
        "pipeline_metadata.slack_channel: 'data-alerts' is not a Slack channel; write it with "
        "its '#', such as '#data-alerts'",
    ),
    (
        "source_system.password",
        "hunter2-in-config",
        "source_system.password: secrets do not belong in config; set credentials_ref and "
        "provide them through the environment",
    ),
    (
        "stage_system.auth",
        {"API_Key": "k-123456"},
        "stage_system.auth.API_Key: secrets do not belong in config; set credentials_ref and "
        "provide them through the environment",
    ),
    (
        "phases.audit.token",
        "t-123456",
        "phases.audit.token: secrets do not belong in config; set credentials_ref and "
        "provide them through the environment",
    ),
    ("source_system.batch_size", 0, "source_system.batch_size: 0 is below the minimum 1"),
    (
        "source_system.batch_size",
        2_000_000,
        "source_system.batch_size: 2000000 is above the maximum 1000000",
    ),
    (
        "source_system.batch_size",
        "big",
        "source_system.batch_size: expected an integer, got 'big'",
    ),
    (
        "target_system.merge_keys",
        DELETE,
        "target_system: 'merge_keys' is required when load_strategy is 'merge'",
    ),
    (
        "target_system.load_strategy",
        "merg",
        "target_system.load_strategy: 'merg' is not one of 'replace_window', 'merge'; "
        "did you mean 'merge'?",
    ),
    (
        "stage_system.columns[2].type",
        "decimal",
        "stage_system.columns[2].type: 'decimal' is not one of 'string', 'integer', 'float', "
        "'boolean', 'timestamp', 'date', 'json'",
    ),
    (
        "stage_system.columns[0].max_length",
        10,
        "stage_system.columns[0].max_length: applies to string columns only, not integer",
    ),
    (
        "stage_system.columns[2].max",
        -1,
        "stage_system.columns[2].min: 0 is above max -1",
    ),
    (
        "stage_system.columns[4].min",
        "yesterday",
        "stage_system.columns[4].min: expected an ISO timestamp such as "
        "'2025-01-31T00:00:00Z', got 'yesterday'",
    ),
    (
        "stage_system.columns[3].name",
        "TEST_ID",
        "stage_system.columns[3].name: 'TEST_ID' is declared twice (also columns[0]); "
        "column names are case-insensitive",
    ),
    (
        "stage_system.columns[1].nullabel",
        False,
        "stage_system.columns[1].nullabel: unknown key; did you mean 'nullable'?",
    ),
    (
        "phases.stage_cleaning.archive_location",
        DELETE,
        "phases.stage_cleaning: 'archive_location' is required while the phase is enabled and "
        "archive_before_delete is true (both default to true); give a local folder or "
        "s3://bucket/prefix, or set archive_before_delete to false",
    ),
    (
        "phases.stage_cleaning.archive_location",
        "gs://bucket/x",
        "phases.stage_cleaning.archive_location: 'gs://bucket/x' is not an archive location; "
        "give a local folder or s3://bucket/prefix",
    ),
    (
        "phases.stage_cleaning.delete_after_days",
        -1,
        "phases.stage_cleaning.delete_after_days: -1 is below the minimum 0",
    ),
    (
        "phases.source_count.on_empty_window",
        "ignore",
        "phases.source_count.on_empty_window: 'ignore' is not one of 'continue', 'skip', 'fail'",
    ),
    (
        "phases.source_count.timeout_minutes",
        0,
        "phases.source_count.timeout_minutes: 0 must be greater than 0",
    ),
    (
        "phases.source_to_stage_transfer.max_rejected_percent",
        101,
        "phases.source_to_stage_transfer.max_rejected_percent: 101 is above the maximum 100",
    ),
    ("retry.max_retries", 21, "retry.max_retries: 21 is above the maximum 20"),
    (
        "retry.backoff_strategy",
        "exponentail",
        "retry.backoff_strategy: 'exponentail' is not one of 'exponential', 'linear', 'none'; "
        "did you mean 'exponential'?",
    ),
    (
        "monitoring.duration_multiplier_threshold",
        0.5,
        "monitoring.duration_multiplier_threshold: 0.5 is below the minimum 1",
    ),
    ("phases", [], "phases: expected an object, got an array"),
    (
        "monitoring.freshness_threshold",
        math.nan,
        "monitoring.freshness_threshold: NaN is not allowed; numbers must be finite",
    ),
]


class TestInvalidConfigs:
    @pytest.mark.parametrize(
        ("path", "value", "line"), INVALID, ids=[f"{p}={v!r}"[:60] for p, v, _ in INVALID]
    )
    def test_reports_the_exact_path_and_message(self, path: str, value: Any, line: str) -> None:
        data = full_data()
        mutate(data, path, value)
        assert problems_for(data) == [f"config.json: {line}"]

    def test_every_problem_is_reported_at_once_sorted_by_path(self) -> None:
        data = full_data()
        mutate(data, "retry.max_retries", -1)
        mutate(data, "dag_schedule.timezone", "Mars/Olympus")
        mutate(data, "phases.audit.count_tolerances.source_to_stage_tolerance_percent", 150)
        mutate(data, "stage_system.columns[2].type", "decimal")
        mutate(data, "colour", "blue")
        assert [line.split(": ")[1] for line in problems_for(data)] == [
            "colour",
            "dag_schedule.timezone",
            "phases.audit.count_tolerances.source_to_stage_tolerance_percent",
            "retry.max_retries",
            "stage_system.columns[2].type",
        ]

    def test_array_indices_sort_numerically(self) -> None:
        data = full_data()
        data["stage_system"]["columns"] = [{"name": f"c{i}", "type": "x"} for i in range(11)]
        paths = [line.split(": ")[1] for line in problems_for(data)]
        assert paths[:2] == ["stage_system.columns[0].type", "stage_system.columns[1].type"]
        assert paths[-1] == "stage_system.columns[10].type"

    def test_missing_phases_still_needs_an_archive_location(self) -> None:
        data = minimal_data()
        del data["phases"]
        assert problems_for(data) == [
            "config.json: phases.stage_cleaning: 'archive_location' is required while the phase "
            "is enabled and archive_before_delete is true (both default to true); give a local "
            "folder or s3://bucket/prefix, or set archive_before_delete to false"
        ]

    def test_disabled_stage_cleaning_needs_no_archive_location(self) -> None:
        data = minimal_data()
        data["phases"] = {"stage_cleaning": {"enabled": False}}
        assert PipelineConfig.from_dict(data).archive is None

    def test_empty_dedup_keys_turn_deduplication_off(self) -> None:
        data = minimal_data()
        data["target_system"]["dedup_keys"] = []
        assert PipelineConfig.from_dict(data).target.get("dedup_keys") == ()

    def test_continue_on_failure_false_is_accepted_anywhere(self) -> None:
        data = minimal_data()
        data["phases"]["audit"] = {"continue_on_failure": False}
        assert PipelineConfig.from_dict(data).phases.audit.continue_on_failure is False

    def test_secret_values_never_appear_in_messages(self) -> None:
        data = full_data()
        data["source_system"]["Secret_Access_Key"] = "AKIA-very-secret-value"
        data["pipeline_metadata"]["db_password"] = "another-secret-value"
        text = "\n".join(problems_for(data))
        assert "very-secret" not in text and "another-secret" not in text
        assert "pipeline_metadata.db_password: secrets do not belong in config" in text

    def test_unknown_key_without_a_close_match_lists_the_known_keys(self) -> None:
        data = full_data()
        data["retry"]["zzz"] = 1
        assert problems_for(data) == [
            "config.json: retry.zzz: unknown key; expected one of 'max_retries', "
            "'backoff_strategy', 'backoff_seconds', 'max_backoff_seconds'"
        ]

    def test_source_is_the_name_given(self) -> None:
        data = full_data()
        mutate(data, "retry.max_retries", 99)
        with pytest.raises(ConfigError) as caught:
            PipelineConfig.from_dict(data, source="pipelines/lab/config.json")
        assert caught.value.source == "pipelines/lab/config.json"
        assert str(caught.value).startswith("pipelines/lab/config.json: retry.max_retries: ")

    def test_top_level_must_be_an_object(self) -> None:
        assert problems_for([1, 2]) == [  # type: ignore[arg-type]
            "config.json: the top level must be a JSON object, found an array"
        ]

    def test_integers_beyond_64_bits_are_reported(self) -> None:
        data = minimal_data()
        data["retry"] = {"max_retries": 10**5000}
        assert problems_for(data) == [
            "config.json: retry.max_retries: is too large a number; integers must fit in 64 bits"
        ]

    def test_python_values_json_cannot_hold_are_reported(self) -> None:
        data = minimal_data()
        data["source_system"]["since"] = {1, 2}
        assert problems_for(data) == [
            "config.json: source_system.since: a set value cannot be stored in JSON"
        ]


class TestConfigFiles:
    def write(self, folder: Path, text: str, name: str = "config.json") -> Path:
        path = folder / name
        path.write_text(text)
        return path

    def test_file_not_found(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.json"
        with pytest.raises(ConfigError) as caught:
            PipelineConfig.from_file(missing)
        assert caught.value.problems == [f"{missing}: file not found"]

    def test_folder_without_config_json(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config(tmp_path)
        assert caught.value.problems == [f"{tmp_path / 'config.json'}: file not found"]

    def test_load_config_reads_a_folders_config_json(self, tmp_path: Path) -> None:
        self.write(tmp_path, MINIMAL.read_text())
        config = load_config(tmp_path)
        assert config.name == "lab_results"
        assert config.base_dir == tmp_path.absolute()

    def test_bad_json_names_line_and_column(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, '{\n  "a": 1\n  "b": 2\n}\n')
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.problems == [
            f"{path}: line 3 column 3: invalid JSON: Expecting ',' delimiter"
        ]

    def test_trailing_comma_gets_a_hint(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, '{"a": 1,}')
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.problems == [
            f"{path}: line 1 column 9: invalid JSON: Expecting property name enclosed in double "
            "quotes (JSON allows no trailing commas or comments; use '_comment' keys instead)"
        ]

    def test_top_level_array_file(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, "[]")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.problems == [
            f"{path}: the top level must be a JSON object, found an array"
        ]

    def test_duplicate_keys_are_reported_with_their_path(self, tmp_path: Path) -> None:
        text = MINIMAL.read_text().replace('"duration": "1h"', '"duration": "1h", "duration": "2h"')
        path = self.write(tmp_path, text)
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.problems == [
            f"{path}: query_window.duration: appears more than once in the same object; keep one"
        ]

    def test_nan_in_a_file_is_reported(self, tmp_path: Path) -> None:
        text = MINIMAL.read_text().replace('"type": "hourly"', '"type": "hourly", "x": NaN')
        path = self.write(tmp_path, text)
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.problems == [
            f"{path}: query_window.x: NaN is not allowed; numbers must be finite"
        ]

    def test_utf8_byte_order_mark_is_accepted(self, tmp_path: Path) -> None:
        path = tmp_path / "config.json"
        path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.read_bytes())
        assert load_config(path).name == "lab_results"

    def test_a_folder_given_as_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            PipelineConfig.from_file(tmp_path)
        assert caught.value.problems == [f"{tmp_path}: is a folder; expected a config.json file"]


class TestConfigHash:
    def test_is_sha256_hex(self) -> None:
        digest = PipelineConfig.from_file(FULL).config_hash
        assert len(digest) == 64 and int(digest, 16) >= 0

    def test_ignores_key_order_whitespace_and_comments(self, tmp_path: Path) -> None:
        data = full_data()
        reordered = dict(reversed(list(data.items())))
        reordered["_comment_extra"] = "explanations do not change the hash"
        path = tmp_path / "config.json"
        path.write_text(json.dumps(reordered, indent=7))
        assert load_config(path).config_hash == PipelineConfig.from_file(FULL).config_hash

    def test_changes_with_any_value(self) -> None:
        data = full_data()
        data["source_system"]["batch_size"] = 5001
        assert PipelineConfig.from_dict(data).config_hash != load_config(FULL).config_hash

    def test_matches_the_canonical_json_of_the_snapshot(self) -> None:
        import hashlib

        config = load_config(FULL)
        canonical = json.dumps(
            config.snapshot(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        assert hashlib.sha256(canonical.encode()).hexdigest() == config.config_hash


class TestSnapshotAndRaw:
    def test_snapshot_drops_comment_keys(self) -> None:
        snapshot = load_config(FULL).snapshot()
        assert "_comment" not in snapshot and "$schema" not in snapshot
        assert "_comment" not in snapshot["phases"]["audit"]["count_tolerances"]

    def test_snapshot_is_plain_json(self) -> None:
        snapshot = load_config(FULL).snapshot()
        assert json.loads(json.dumps(snapshot)) == snapshot

    def test_snapshot_is_an_independent_copy(self) -> None:
        config = load_config(FULL)
        config.snapshot()["retry"]["max_retries"] = 0
        assert config.snapshot()["retry"]["max_retries"] == 5

    def test_raw_keeps_comments_and_is_read_only(self) -> None:
        config = load_config(FULL)
        assert config.raw["_comment"].startswith("Every section")
        with pytest.raises(TypeError):
            config.raw["retry"]["max_retries"] = 0  # type: ignore[index]

    def test_from_dict_does_not_keep_a_reference_to_the_input(self) -> None:
        data = minimal_data()
        config = PipelineConfig.from_dict(data)
        data["query_window"]["duration"] = "2h"
        assert config.snapshot()["query_window"]["duration"] == "1h"


class TestWithOverrides:
    def test_sets_a_value_and_keeps_the_rest(self) -> None:
        config = load_config(MINIMAL)
        changed = config.with_overrides({"stage_system.path": "/tmp/x.duckdb"})
        assert changed.stage.get("path") == "/tmp/x.duckdb"
        assert changed.target.get("path") == "lab.duckdb"
        assert changed.base_dir == config.base_dir and changed.source_file == config.source_file

    def test_leaves_the_original_alone(self) -> None:
        config = load_config(MINIMAL)
        config.with_overrides({"query_window.duration": "2h"})
        assert config.query_window.duration == "1h"

    def test_changes_the_hash(self) -> None:
        config = load_config(MINIMAL)
        assert config.with_overrides({"retry.max_retries": 1}).config_hash != config.config_hash

    def test_creates_missing_objects(self) -> None:
        config = load_config(MINIMAL).with_overrides({"phases.audit.enabled": False})
        assert config.phases.audit.enabled is False

    def test_reaches_into_arrays(self) -> None:
        config = load_config(FULL).with_overrides({"stage_system.columns[1].max_length": 64})
        assert config.stage.columns[1].max_length == 64

    def test_result_is_validated_again(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config(MINIMAL).with_overrides({"retry.max_retries": 50})
        assert caught.value.problems == [
            f"{MINIMAL}: retry.max_retries: 50 is above the maximum 20"
        ]

    def test_path_through_a_scalar_is_an_error(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config(MINIMAL).with_overrides({"query_window.duration.x": 1})
        assert caught.value.problems[0].startswith(
            f"{MINIMAL}: query_window.duration.x: cannot apply override:"
        )


class TestSystemConfig:
    def section(self, **extra: Any) -> SystemConfig:
        data = {"type": "duckdb", "path": "db/w.duckdb", **extra}
        return SystemConfig.from_section(
            "stage_system", data, base_dir=Path("/srv/pipe"), source_file="p/config.json"
        )

    def test_get_returns_the_default_when_absent(self) -> None:
        assert self.section().get("table", "fallback") == "fallback"

    def test_require_names_file_path_and_type(self) -> None:
        with pytest.raises(ConfigError) as caught:
            self.section().require("table")
        assert caught.value.problems == [
            "p/config.json: stage_system.table: required for type 'duckdb'"
        ]

    def test_path_resolves_against_base_dir(self) -> None:
        assert self.section().path("path") == Path("/srv/pipe/db/w.duckdb")

    def test_path_expands_home(self) -> None:
        assert self.section(log="~/x.log").path("log") == Path.home() / "x.log"

    def test_path_keeps_absolute_paths(self) -> None:
        assert self.section(log="/var/x.log").path("log") == Path("/var/x.log")

    def test_path_is_none_when_absent(self) -> None:
        assert self.section().path("log") is None

    def test_path_rejects_urls(self) -> None:
        with pytest.raises(ConfigError) as caught:
            self.section(log="s3://b/x").path("log")
        assert caught.value.problems == [
            "p/config.json: stage_system.log: expected a local path, got the URL 's3://b/x'"
        ]

    def test_error_builds_one_line(self) -> None:
        error = self.section().error("path", "cannot be opened")
        assert isinstance(error, ConfigError)
        assert error.problems == ["p/config.json: stage_system.path: cannot be opened"]

    def test_from_section_applies_the_core_rules(self) -> None:
        with pytest.raises(ConfigError) as caught:
            SystemConfig.from_section(
                "source_system", {"type": "x", "batch_size": 0, "password": "p4ssw0rd!"}
            )
        assert caught.value.problems == [
            "config.json: source_system.batch_size: 0 is below the minimum 1",
            "config.json: source_system.password: secrets do not belong in config; set "
            "credentials_ref and provide them through the environment",
        ]

    def test_from_section_checks_columns(self) -> None:
        with pytest.raises(ConfigError) as caught:
            self.section(columns=[{"name": "a", "type": "boolean", "min": 1}])
        assert caught.value.problems == [
            "p/config.json: stage_system.columns[0].min: applies to integer, float, timestamp "
            "and date columns, not boolean"
        ]

    def test_from_section_rejects_an_unknown_role(self) -> None:
        with pytest.raises(ValueError, match="unknown role 'sink'"):
            SystemConfig.from_section("sink", {"type": "x"})

    def test_credentials_are_resolved_from_the_environment(self) -> None:
        system = self.section(credentials_ref="wh")
        creds = system.credentials(environ={"WH_USER": "u", "WH_PASSWORD": "pw-123456"})
        assert creds is not None and creds.reveal("password") == "pw-123456"

    def test_missing_credentials_name_the_section(self) -> None:
        with pytest.raises(ConfigError) as caught:
            self.section(credentials_ref="wh").credentials(environ={})
        assert caught.value.problems[0].startswith(
            "p/config.json: stage_system.credentials_ref: no credentials found for 'wh'"
        )

    def test_no_credentials_ref_means_no_credentials(self) -> None:
        assert self.section().credentials(environ={}) is None


class TestValidateAgainst:
    SCHEMA = {
        "type": "object",
        "required": ["path"],
        "properties": {
            "path": {"type": "string"},
            "threads": {"type": "integer", "minimum": 1},
        },
        "additionalProperties": False,
    }

    def test_accepts_a_matching_section(self) -> None:
        system = SystemConfig.from_section(
            "stage_system", {"type": "duckdb", "path": "x", "credentials_ref": "c", "columns": []}
        )
        system.validate_against(self.SCHEMA)

    def test_reports_unknown_keys_with_a_suggestion(self) -> None:
        system = SystemConfig.from_section(
            "target_system", {"type": "duckdb", "path": "x", "thread": 2}
        )
        with pytest.raises(ConfigError) as caught:
            system.validate_against(self.SCHEMA)
        assert caught.value.problems == [
            "config.json: target_system.thread: unknown key; did you mean 'threads'?"
        ]

    def test_reports_every_problem_with_the_role_prefix(self) -> None:
        system = SystemConfig.from_section("source_system", {"type": "duckdb", "threads": 0})
        with pytest.raises(ConfigError) as caught:
            system.validate_against(self.SCHEMA)
        assert caught.value.problems == [
            "config.json: source_system: 'path' is required",
            "config.json: source_system.threads: 0 is below the minimum 1",
        ]

    def test_drive_table_default_uses_its_own_path(self) -> None:
        config = load_config(MINIMAL)
        with pytest.raises(ConfigError) as caught:
            config.drive_table.validate_against({"type": "object", "required": ["schema"]})
        assert caught.value.problems == [f"{MINIMAL}: drive_table: 'schema' is required"]


class TestPhases:
    def test_get_returns_the_named_phase(self) -> None:
        phases = load_config(MINIMAL).phases
        assert phases.get("audit") is phases.audit

    def test_get_suggests_a_close_name(self) -> None:
        with pytest.raises(KeyError, match="did you mean 'audit'"):
            load_config(MINIMAL).phases.get("audti")

    def test_phase_classes_match_their_phase(self) -> None:
        phases = load_config(MINIMAL).phases
        assert type(phases.stage_count) is PhaseConfig
        assert isinstance(phases.target_cleaning, TargetCleaningConfig)

    def test_phase_names_constant_is_the_run_order(self) -> None:
        assert PHASE_NAMES[0] == "stale_pipeline_handling" and PHASE_NAMES[-1] == "target_cleaning"
        assert len(PHASE_NAMES) == 11


class TestRetryDelay:
    def test_exponential_doubles_from_backoff_seconds(self) -> None:
        retry = RetryConfig()
        assert [retry.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]

    def test_exponential_is_capped(self) -> None:
        retry = RetryConfig(backoff_seconds=10, max_backoff_seconds=30)
        assert [retry.delay(n) for n in (1, 2, 3)] == [10.0, 20.0, 30.0]

    def test_huge_attempt_numbers_stay_at_the_cap(self) -> None:
        assert RetryConfig().delay(10_000) == 300.0

    def test_linear_waits_the_same_each_time(self) -> None:
        retry = RetryConfig(backoff_strategy="linear", backoff_seconds=5)
        assert [retry.delay(n) for n in (1, 2, 7)] == [5.0, 5.0, 5.0]

    def test_linear_is_capped_too(self) -> None:
        retry = RetryConfig(backoff_strategy="linear", backoff_seconds=50, max_backoff_seconds=20)
        assert retry.delay(1) == 20.0

    def test_none_never_waits(self) -> None:
        assert RetryConfig(backoff_strategy="none").delay(3) == 0.0

    def test_attempts_count_from_one(self) -> None:
        with pytest.raises(ValueError):
            RetryConfig().delay(0)


# -- property: any JSON-ish value in any section ends in a config or a ConfigError -----------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["1h", "0m", "1h 30m", "UTC", "0 * * * *", "merge", "s3://b/p", "x@y.io"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _known_keys(section: str) -> list[str]:
    definition = schema()["$defs"][section]
    keys = list(definition.get("properties", {}))
    return keys + ["type", "credentials_ref", "columns", "password", "_comment"]


SECTIONS = [
    "pipeline_metadata",
    "dag_schedule",
    "query_window",
    "source_system",
    "stage_system",
    "target_system",
    "drive_table",
    "phases",
    "retry",
    "monitoring",
]


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(FULL_DATA)
    section = draw(st.sampled_from(SECTIONS))
    how = draw(st.sampled_from(["replace", "key", "phase_key"]))
    if how == "replace":
        data[section] = draw(json_values)
    elif how == "key" or section != "phases":
        key = draw(st.sampled_from(_known_keys(section)) | st.text(max_size=8))
        target = data.setdefault(section, {})
        target[key] = draw(json_values)
    else:
        phase = draw(st.sampled_from(PHASE_NAMES))
        key = draw(
            st.sampled_from(
                _known_keys("plain_phase")
                + [
                    "count_tolerances",
                    "archive_location",
                    "archive_before_delete",
                    "delete_after_days",
                    "on_empty_window",
                    "max_rejected_percent",
                ]
            )
        )
        data["phases"].setdefault(phase, {})[key] = draw(json_values)
    return data


FULL_DATA = full_data()


class TestAnyInput:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated_configs())
    def test_ends_in_a_config_or_a_config_error(self, data: dict[str, Any]) -> None:
        try:
            config = PipelineConfig.from_dict(data)
        except ConfigError as error:
            assert error.problems and all(
                line.startswith("config.json: ") for line in error.problems
            )
        else:
            assert isinstance(config, PipelineConfig)


def test_a_config_deep_copies_as_itself() -> None:
    import copy

    config = PipelineConfig.from_file(MINIMAL)
    assert copy.deepcopy(config) is config and copy.copy(config) is config


def test_an_override_can_replace_a_whole_section() -> None:
    config = PipelineConfig.from_file(MINIMAL)
    section = {**config.snapshot()["source_system"], "batch_size": 77}
    assert config.with_overrides({"source_system": section}).source.get("batch_size") == 77
