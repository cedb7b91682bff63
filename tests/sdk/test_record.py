"""RunRecord and PhaseState: the drive-table row, to columns and back."""

from __future__ import annotations

from datetime import UTC, date, datetime

from drivetrain import PHASE_NAMES
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus


def record() -> RunRecord:
    start = datetime(2025, 11, 15, 10, tzinfo=UTC)
    return RunRecord(
        pipeline_id="genetic_tests_20251115T100000Z_run1", pipeline_name="genetic_tests",
        pipeline_start_timestamp=start, query_window_start_timestamp=start,
        query_window_end_timestamp=datetime(2025, 11, 15, 11, tzinfo=UTC), target_date=date(2025, 11, 15),
        query_window_duration="1h", phases_pending=PHASE_NAMES,
    )


class TestRunRecord:
    def test_row_has_every_spec_column(self):
        row = record().to_row()
        for column in (
            "pipeline_id", "pipeline_name", "pipeline_status", "pipeline_retry_number", "pipeline_start_timestamp",
            "pipeline_end_timestamp", "pipeline_run_duration", "query_window_start_timestamp",
            "query_window_end_timestamp", "target_date", "query_window_duration", "stale_pipeline_handling_phase",
            "pre_validation_phase", "source_to_stage_transfer_phase", "stage_to_target_transfer_phase", "audit_phase",
            "stage_cleaning_phase", "target_cleaning_phase", "phases_completed", "phases_skipped", "phase_failed",
            "phases_pending", "created_at", "updated_at",
            "source_count_phase", "stage_count_phase", "target_count_phase", "heartbeat_at", "lease_holder",
            "config_hash", "config_snapshot",
        ):
            assert column in row

    def test_phase_variant_has_the_spec_structure(self):
        variant = record().to_row()["audit_phase"]
        assert set(variant) >= {"start_timestamp", "end_timestamp", "actual_run_duration", "retry_number",
                                "error_message", "status", "expected_run_duration", "phase_specific_details"}
        assert variant["status"] == "PENDING"

    def test_round_trip_through_the_row(self):
        original = record().with_phase("audit", PhaseState(status=PhaseStatus.FAILED, error_message="x",
                                                          start_timestamp=datetime(2025, 11, 15, 10, 5, tzinfo=UTC),
                                                          phase_specific_details={"loss": 1.5}))
        assert RunRecord.from_row(original.to_row()) == original

    def test_round_trip_through_json_text(self):
        original = record()
        assert RunRecord.from_row(original.to_json()) == original

    def test_finished_means_not_running(self):
        assert not record().is_finished
        import attrs

        assert attrs.evolve(record(), pipeline_status=RunStatus.FAILED).is_finished
