"""The audit phase's verdicts and explanations, pinned down one by one.

Counts are fixed by replacing the count phases; the transfers run for real (files -> DuckDB),
so the audit also sees what the extract returned. Written to kill every mutant of
``drivetrain.phases.audit`` that tests/mutation/test_mutants.py makes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunRecord, RunStatus
from drivetrain.phases import SourceCount, StageCount, TargetCount
from drivetrain.results import CountResult

from .factory import make_pipeline_dir, make_rows


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_pipeline_dir(tmp_path / "lab")


def fixed(phase: type, count: int) -> type:
    return type(f"Fixed{phase.__name__}", (phase,), {"run": lambda self, ctx: CountResult(count=count)})


def run(folder: Path, source: int | None = None, stage: int | None = None, target: int | None = None,
        **overrides: Any) -> RunRecord:
    """One window with the given counts (None: the real count phase runs)."""
    chosen = {name: fixed(cls, n) for name, cls, n in
              (("source_count", SourceCount, source), ("stage_count", StageCount, stage), ("target_count", TargetCount, target))
              if n is not None}

    class Fixed(Pipeline):
        phase_classes = chosen

    with Fixed(folder / "config.json", overrides={
        "phases.audit.count_tolerances.source_to_stage_tolerance_percent": 2.0,
        "phases.audit.count_tolerances.stage_to_target_tolerance_percent": 1.0,
        **overrides,
    }) as pipeline:
        return pipeline.runner().run(pipeline.grid.first())


def audit(record: RunRecord) -> dict[str, Any]:
    return dict(record.phases["audit"].phase_specific_details)


class TestVerdict:
    def test_a_failed_audit_is_recorded_as_failed(self, folder: Path) -> None:
        record = run(folder, 10_000, 9_000, 9_000)
        assert record.phase_failed == "audit"
        assert audit(record)["validation_status"] == "FAILED"

    def test_more_rows_in_the_target_than_in_the_stage_fail_as_double_loading(self, folder: Path) -> None:
        record = run(folder, 100, 100, 101)
        assert record.phase_failed == "audit"
        assert "the target holds 101 rows for the window but the stage only 100" in record.phases["audit"].error_message

    def test_a_merge_target_may_hold_more_rows_than_the_stage(self, folder: Path) -> None:
        """Merge keeps rows of earlier loads in the window, so more rows there is no loss."""
        record = run(folder, target=10**6, **{"target_system.load_strategy": "merge", "target_system.merge_keys": ["test_id"]})
        assert audit(record)["validation_status"] == "PASSED", record.phases["audit"].error_message

    def test_a_loss_says_how_many_rows_of_how_many(self, folder: Path) -> None:
        record = run(folder, 10_000, 9_000, 8_910)
        message = record.phases["audit"].error_message
        assert "source -> stage lost 10% (1000 of 10000), above the tolerance 2%" in message
        assert "stage -> target lost 1% (90 of 9000)" not in message  # 1% is within its tolerance
        record = run(folder, 10_000, 10_000, 9_800)
        assert "stage -> target lost 2% (200 of 10000), above the tolerance 1%" in record.phases["audit"].error_message


class TestExplanations:
    def test_an_empty_window_has_no_loss_and_says_it_is_empty(self, tmp_path: Path) -> None:
        details = audit(run(make_pipeline_dir(tmp_path / "lab", []), **{"phases.source_count.on_empty_window": "continue"}))
        assert details["validation_status"] == "PASSED"
        assert details["source_to_stage_loss_percent"] == details["stage_to_target_loss_percent"] == 0.0
        assert "the window is empty at the source" in details["loss_reasons"]

    def test_a_window_empty_only_downstream_is_not_called_empty(self, folder: Path) -> None:
        details = audit(run(folder, 100, 0, 0))
        assert details["source_to_stage_loss_percent"] == 100.0
        assert not [r for r in details["loss_reasons"] if "empty" in r]

    def test_an_empty_source_with_rows_downstream_is_minus_100_percent(self, folder: Path) -> None:
        record = run(folder, 0, 5, 5)
        assert audit(record)["source_to_stage_loss_percent"] == -100.0
        assert "the stage holds 5 rows but the source counted 0" in record.phases["audit"].error_message

    def test_a_source_that_changed_between_count_and_extract_is_explained(self, folder: Path) -> None:
        record = run(folder, source=999_999)
        assert record.phase_failed == "audit"
        assert "the source returned 211 records to the extract but counted 999999: it changed in between" in (
            record.phases["audit"].error_message or "")

    def test_a_source_that_did_not_change_is_not_said_to_have(self, folder: Path) -> None:
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert not [r for r in audit(record)["loss_reasons"] if "changed in between" in r]

    def test_rejected_and_deduplicated_records_are_given_as_reasons(self, tmp_path: Path) -> None:
        """One hour of rows, some with invalid ages, three keys sent twice."""
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(200, hours=1, duplicates=3))
        reasons = audit(run(folder))["loss_reasons"]
        assert [r for r in reasons if r.startswith("source -> stage: ") and " rejected: " in r]
        assert [r for r in reasons if r.startswith("stage -> target: ") and " dropped: " in r]

    def test_a_disabled_count_phase_leaves_its_comparisons_out(self, folder: Path) -> None:
        record = run(folder, **{"phases.stage_count.enabled": False})
        details = audit(record)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert details["source_to_stage_loss_percent"] is None and details["stage_to_target_loss_percent"] is None
        assert "source -> stage not compared: a count phase did not run" in details["loss_reasons"]
        assert "stage -> target not compared: a count phase did not run" in details["loss_reasons"]

    def test_without_a_target_count_only_the_target_comparison_is_left_out(self, folder: Path) -> None:
        details = audit(run(folder, **{"phases.target_count.enabled": False}))
        assert details["source_to_stage_loss_percent"] is not None
        assert details["stage_to_target_loss_percent"] is None


class TestExactAccounting:
    """source = stage + rejected, exactly, whenever the extract ran in the same attempt."""

    @staticmethod
    def real_counts(folder: Path) -> tuple[int, int, int]:
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        source = record.phases["source_count"].phase_specific_details["count"]
        stage = record.phases["stage_count"].phase_specific_details["count"]
        rejected = record.phases["source_to_stage_transfer"].phase_specific_details["records_failed"]
        assert rejected > 0 and source == stage + rejected  # the sample data has invalid rows
        return source, stage, rejected

    def test_records_neither_staged_nor_rejected_are_counted_in_the_failure(self, folder: Path) -> None:
        source, stage, rejected = self.real_counts(folder)
        record = run(folder, stage=stage - 1, **{"phases.audit.count_tolerances.source_to_stage_tolerance_percent": 50.0})
        assert record.phase_failed == "audit"
        assert (f"1 of {source} source records are neither in the stage ({stage - 1}) nor rejected ({rejected})"
                in (record.phases["audit"].error_message or ""))

    def test_more_staged_and_rejected_than_counted_fails_too(self, folder: Path) -> None:
        source, stage, rejected = self.real_counts(folder)
        record = run(folder, stage=source)
        assert record.phase_failed == "audit"
        assert (f"the stage ({source}) and the rejects ({rejected}) hold {rejected} more records than the source's {source}"
                in (record.phases["audit"].error_message or ""))

