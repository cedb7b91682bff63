"""Phase results: typed classes, and the spec's dicts converted on entry."""

from __future__ import annotations

import pytest

from drivetrain.results import (
    AuditResult,
    CleaningResult,
    CountResult,
    PhaseResult,
    TransferResult,
    to_result,
)


class TestToResult:
    def test_none_is_success_with_nothing_to_report(self):
        result = to_result(None, phase="audit")
        assert type(result) is PhaseResult and not result.failed

    def test_count_dict_becomes_count_result(self):
        result = to_result({"skip_dag_run": False, "error_message": None, "count": "10000"}, phase="source_count")
        assert isinstance(result, CountResult) and result.count == 10000 and not result.failed

    def test_failed_count_dict_keeps_the_message(self):
        result = to_result({"skip_dag_run": True, "error_message": "Elasticsearch connection timeout after 30s", "count": None}, phase="source_count")
        assert result.failed and result.error_message == "Elasticsearch connection timeout after 30s"

    @pytest.mark.parametrize(("key", "cls"), [("transfer_completed", TransferResult), ("audit_passed", AuditResult), ("cleaning_completed", CleaningResult)])
    def test_kind_is_chosen_by_its_key(self, key, cls):
        assert isinstance(to_result({key: True}, phase="x"), cls)

    @pytest.mark.parametrize("key", ["transfer_completed", "audit_passed", "cleaning_completed"])
    def test_false_completion_flag_fails_even_without_skip_dag_run(self, key):
        assert to_result({key: False}, phase="x").failed

    def test_error_message_alone_fails(self):
        assert to_result({"error_message": "boom"}, phase="x").failed

    def test_unknown_keys_are_kept_in_details(self):
        result = to_result({"count": 1, "records_resolved": 3, "is_fresh_run": True}, phase="x")
        assert result.phase_details() == {"records_resolved": 3, "is_fresh_run": True, "count": 1}

    def test_other_return_types_are_a_clear_type_error(self):
        with pytest.raises(TypeError, match="phase 'audit' returned list"):
            to_result([1], phase="audit")


class TestDetails:
    def test_transfer_details_use_the_spec_names(self):
        details = TransferResult(rows_read=10, rows_written=8, rows_rejected=2).phase_details()
        assert details["records_failed"] == 2 and details["transfer_status"] == "SUCCESS"

    def test_audit_details_say_passed_or_failed(self):
        assert AuditResult(audit_passed=False).phase_details()["validation_status"] == "FAILED"
