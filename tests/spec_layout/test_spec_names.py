"""Every function and module name the spec uses has a documented equivalent, and the spec's
duration helpers exist."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from drivetrain.durations import calculate_duration, format_duration, records_per_second

DOC = (Path(__file__).resolve().parents[2] / "docs" / "from-the-spec.md").read_text()

#: The names the spec gives its framework's modules and functions (its "Framework Components",
#: "Code Reusability" and Airflow chapters).
SPEC_NAMES = [
    "framework_scripts", "config_handler_scripts", "config_loader", "user_scripts", "common_utilities",
    "phase_executor.execute_phase", "snowflake_operations.get_connection", "get_snowflake_connection",
    "initialize_pipeline_run", "update_phase_variant", "update_phase_arrays", "finalize_pipeline_run",
    "query_previous_runs", "get_count", "record_to_dict", "get_elasticsearch_client",
    "calculate_duration", "format_duration", "parse_duration",
    "handle_phase_error", "create_error_message", "determine_skip_dag", "log_to_variant",
    "initialize_pipeline", "finalize_pipeline", "notify_result", "phases_to_skip", "is_fresh_run",
    "skip_dag_run", "transfer_completed", "audit_passed", "cleaning_completed", "temp_table_prefix", "authentication",
]


class TestMapping:
    @pytest.mark.parametrize("name", SPEC_NAMES)
    def test_the_name_is_mapped(self, name: str) -> None:
        assert re.search(rf"`[^`\n]*\b{re.escape(name)}\b[^`\n]*`", DOC), f"docs/from-the-spec.md does not map {name}"


class TestCalculateDuration:
    def test_between_two_datetimes(self) -> None:
        start = datetime(2025, 11, 15, 10, tzinfo=UTC)
        assert calculate_duration(start, start + timedelta(hours=1, minutes=30, seconds=45)) == timedelta(seconds=5445)

    def test_between_the_iso_texts_of_a_record(self) -> None:
        elapsed = calculate_duration("2025-11-15T10:00:00Z", "2025-11-15T11:30:45+00:00")
        assert format_duration(elapsed) == "1h 30m 45s"

    def test_across_offsets(self) -> None:
        cet = timezone(timedelta(hours=1))
        assert calculate_duration(datetime(2025, 11, 15, 11, tzinfo=cet), datetime(2025, 11, 15, 10, 30, tzinfo=UTC)) == timedelta(minutes=30)

    @pytest.mark.parametrize(("start", "end", "message"), [
        ("2025-11-15T11:00:00Z", "2025-11-15T10:00:00Z", "is before start"),
        ("2025-11-15T10:00:00", "2025-11-15T11:00:00Z", "has no time zone"),
        ("yesterday", "2025-11-15T11:00:00Z", "is not an ISO 8601 timestamp"),
    ])
    def test_bad_input_says_what_is_wrong(self, start: str, end: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            calculate_duration(start, end)


class TestRecordsPerSecond:
    def test_the_rate(self) -> None:
        assert records_per_second(1000, timedelta(seconds=4)) == 250.0

    def test_no_rate_without_a_count_or_a_duration(self) -> None:
        assert records_per_second(None, timedelta(seconds=4)) is None
        assert records_per_second(10, timedelta(0)) is None
