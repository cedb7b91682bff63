"""A Snowflake drive row damaged with SQL (fakesnow): read with its damage named, never raising."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN
from drivetrain.record import PhaseStatus, RunRecord, RunStatus

from .conftest import sf_rows

T0 = datetime(2025, 11, 15, 10, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
RUN_ID = "lab_20251115T100000Z_run1"

#: (column, SQL value): VARIANTs and ARRAYs hold any JSON in Snowflake, VARCHARs any text.
DAMAGE: list[tuple[str, str]] = [
    *[(VARIANT_COLUMN[name], "PARSE_JSON('[1, 2]')") for name in PHASE_NAMES],
    ("AUDIT_PHASE", "PARSE_JSON('\"COMPLETED\"')"),
    ("AUDIT_PHASE", "PARSE_JSON('{\"status\": \"DONE\", \"retry_number\": \"x\"}')"),
    ("AUDIT_PHASE", "PARSE_JSON('{\"status\": \"COMPLETED\", \"start_timestamp\": \"noon\"}')"),
    ("PIPELINE_STATUS", "'DONE'"),
    ("PHASES_COMPLETED", "PARSE_JSON('[\"audit\", 3, {\"a\": 1}]')"),
    ("PHASES_PENDING", "PARSE_JSON('{\"not\": \"a list\"}')"),
    ("PHASE_FAILED", "'nowhere'"),
    ("CONFIG_SNAPSHOT", "PARSE_JSON('[1]')"),
]


@pytest.fixture
def store(warehouse):
    s = warehouse.drive_store(warehouse.table_ref({"table": "pipeline_execution_drive"}, None))
    s.ensure()
    s.insert(RunRecord(
        pipeline_id=RUN_ID, pipeline_name="lab", pipeline_status=RunStatus.SUCCESS, pipeline_start_timestamp=T0,
        query_window_start_timestamp=T0, query_window_end_timestamp=T1, target_date=date(2025, 11, 15),
        query_window_duration="1h", config_hash="h1", config_snapshot={"dag_schedule": {"timezone": "UTC"}},
    ))
    return s


class TestDamagedSnowflakeRow:
    @pytest.mark.parametrize(("column", "value"), DAMAGE, ids=[c for c, _ in DAMAGE])
    def test_the_row_is_read_with_the_damaged_column_named(self, store, fakesnow_server, database, column, value):
        sf_rows(fakesnow_server, database, f"UPDATE pipeline_execution_drive SET {column} = {value} WHERE pipeline_id = ?",
                [RUN_ID])
        (read,) = store.history("lab")
        assert read.pipeline_id == RUN_ID
        assert store.get(RUN_ID) == read
        assert any(problem.split(":")[0].split(".")[0] == column.lower() for problem in read.damage), read.damage
        assert read.to_json()["damage"] == list(read.damage)

    def test_an_unreadable_status_reads_as_failed(self, store, fakesnow_server, database):
        sf_rows(fakesnow_server, database, "UPDATE pipeline_execution_drive SET pipeline_status = 'DONE'")
        (read,) = store.attempts("lab", T0, T1)
        assert read.pipeline_status is RunStatus.FAILED

    def test_an_unreadable_phase_reads_as_pending_and_keeps_the_value_when_written_back(self, store, fakesnow_server, database):
        sf_rows(fakesnow_server, database, "UPDATE pipeline_execution_drive SET audit_phase = PARSE_JSON('[5]')")
        read = store.get(RUN_ID)
        assert read.phases["audit"].status is PhaseStatus.PENDING
        store.update(read)
        again = store.get(RUN_ID)
        assert again.phases["audit"].phase_specific_details == {"unreadable": [5]}
