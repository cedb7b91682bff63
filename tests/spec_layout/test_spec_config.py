"""Every config key the spec lists is accepted, or refused with what replaced it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from drivetrain.config import PipelineConfig
from drivetrain.errors import ConfigError
from drivetrain.plugins import connector_class

#: A config written from the spec's configuration chapter, every section and key it names.
SPEC_CONFIG: dict[str, Any] = {
    "pipeline_metadata": {
        "pipeline_name": "genetic_tests", "pipeline_description": "Genetic test results from Elasticsearch",
        "owner_name": "John Doe", "owner_email": "john.doe@company.com",
        "notification_emails": ["john.doe@company.com", "data-team@company.com"], "slack_channel": "#data-pipeline-alerts",
    },
    "dag_schedule": {"frequency": "hourly", "cron_expression": "0 * * * *", "timezone": "UTC", "start_date": "2025-11-15",
                     "catchup": False},
    "query_window": {"type": "hourly", "duration": "1h"},
    "source_system": {"type": "elasticsearch", "endpoint": "https://elasticsearch.company.com:9200", "index": "genetic_tests_v1",
                      "query_field": "@timestamp", "batch_size": 5000, "credentials_ref": "ES_PROD"},
    "stage_system": {"type": "snowflake", "account": "acme-prod", "database": "CADS_DB", "schema": "stg_genetic_tests",
                     "table": "genetic_tests", "temp_table_prefix": "tmp_", "credentials_ref": "SNOWFLAKE"},
    "target_system": {"type": "snowflake", "account": "acme-prod", "database": "CDW_DB", "schema": "prod_genetic_tests",
                      "table": "genetic_tests", "credentials_ref": "SNOWFLAKE"},
    "phases": {
        "stale_pipeline_handling": {"enabled": True, "expected_run_duration": "1m", "timeout_minutes": 120},
        "pre_validation": {"enabled": True, "expected_run_duration": "1m"},
        "source_count": {"enabled": True, "expected_run_duration": "1m"},
        "source_to_stage_transfer": {"enabled": True, "expected_run_duration": "10m"},
        "stage_count": {"enabled": True, "expected_run_duration": "1m"},
        "stage_to_target_transfer": {"enabled": True, "expected_run_duration": "10m"},
        "target_count": {"enabled": True, "expected_run_duration": "1m"},
        "audit": {"enabled": True, "expected_run_duration": "1m",
                  "count_tolerances": {"source_to_stage_tolerance_percent": 2.0, "stage_to_target_tolerance_percent": 1.0}},
        "stage_cleaning": {"enabled": True, "expected_run_duration": "5m", "archive_before_delete": True,
                           "archive_location": "s3://company-archive/stage-backups/", "delete_after_days": 7},
        "target_cleaning": {"enabled": False, "expected_run_duration": "5m", "description": "nothing to clean yet"},
    },
    "retry": {"max_retries": 3, "backoff_strategy": "exponential"},
    "monitoring": {"alert_on_failure": True, "alert_on_duration_exceed": True, "duration_multiplier_threshold": 2.0},
}

MYSQL_SOURCE = {"type": "mysql", "host": "mysql-prod.company.com", "port": 3306, "database": "source_db",
                "table": "genetic_tests", "query_field": "created_timestamp", "batch_size": 10000}


def check(tmp_path: Path, config: dict[str, Any]) -> PipelineConfig:
    """Load the config and validate each connector section against its connector's schema."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = PipelineConfig.from_file(tmp_path / "config.json")
    for role, section in (("source", loaded.source), ("warehouse", loaded.stage), ("warehouse", loaded.target)):
        section.validate_against(connector_class(role, section.type, json_path=section.json_path).options_schema)
    return loaded


class TestSpecKeys:
    def test_a_config_with_every_key_of_the_spec_is_accepted(self, tmp_path: Path) -> None:
        loaded = check(tmp_path, SPEC_CONFIG)
        assert loaded.stage.options["temp_table_prefix"] == "tmp_"

    def test_the_spec_mysql_source_section_is_accepted(self, tmp_path: Path) -> None:
        config = copy.deepcopy(SPEC_CONFIG)
        config["source_system"] = MYSQL_SOURCE
        check(tmp_path, config)

    def test_temp_table_prefix_is_accepted_on_duckdb_too(self, tmp_path: Path) -> None:
        config = copy.deepcopy(SPEC_CONFIG)
        config["stage_system"] = {"type": "duckdb", "path": "w.duckdb", "table": "stg", "temp_table_prefix": "tmp_"}
        config["target_system"] = {"type": "duckdb", "path": "w.duckdb", "table": "tgt"}
        check(tmp_path, config)

    def test_authentication_is_refused_with_what_replaced_it(self, tmp_path: Path) -> None:
        config = copy.deepcopy(SPEC_CONFIG)
        del config["source_system"]["credentials_ref"]
        config["source_system"]["authentication"] = "ES_PROD"
        with pytest.raises(ConfigError, match=r"source_system\.authentication: unknown key; the spec's 'authentication' "
                                              r"is written 'credentials_ref' here"):
            check(tmp_path, config)
