"""A resumed window is audited against counts of its own attempt: source = stage + rejected.

Whenever the extract runs again, the source count runs again with it; a count carried from
the failed attempt would describe other data (the source changed in between).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus, SourceCount
from drivetrain.record import PhaseStatus, RunRecord
from drivetrain.testing import FaultPlugin

from .factory import make_pipeline_dir, make_rows

STRICT = {"source_to_stage_tolerance_percent": 0.0, "stage_to_target_tolerance_percent": 0.0}


def add_row(folder: Path, test_id: str, minute: int = 30) -> None:
    row = {"test_id": test_id, "age": 40, "result": "positive", "reported_at": f"2025-11-15T00:{minute:02d}:00Z"}
    with (folder / "data" / "records.jsonl").open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def counts(record: RunRecord) -> tuple[int, int, int, int]:
    details = record.phases
    return (
        details["source_count"].phase_specific_details["count"],
        details["source_to_stage_transfer"].phase_specific_details["rows_read"],
        details["stage_count"].phase_specific_details["count"],
        details["source_to_stage_transfer"].phase_specific_details["records_failed"],
    )


def run(folder: Path, pipeline_class: type[Pipeline] = Pipeline, plugin: FaultPlugin | None = None) -> RunRecord:
    with pipeline_class(folder / "config.json") as pipeline:
        window = pipeline.grid.first()
        if plugin is None:
            return pipeline.runner().run(window)
        with plugin.installed():
            return pipeline.runner().run(window)


@pytest.fixture
def strict(tmp_path: Path) -> Path:
    return make_pipeline_dir(tmp_path / "lab", make_rows(200, invalid_every=0, duplicates=0),
                             phases__audit={"count_tolerances": STRICT})


class TestResumeAfterTransferFailure:
    def test_the_source_is_counted_again_when_the_extract_runs_again(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(300))
        failed = run(folder, plugin=FaultPlugin(fail={"source_to_stage_transfer": 1}))
        assert failed.phase_failed == "source_to_stage_transfer"
        add_row(folder, "LATE0001")
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases[record.phase_failed or "audit"].error_message
        assert record.phases["source_count"].status is PhaseStatus.COMPLETED
        assert record.phases["source_count"].carried_from is None
        source, read, stage, rejected = counts(record)
        assert source == read == stage + rejected

    def test_a_window_whose_source_grew_during_the_failed_attempt_passes_a_zero_tolerance_audit(self, strict: Path) -> None:
        failed = run(strict, plugin=FaultPlugin(fail={"source_to_stage_transfer": 1}))
        add_row(strict, "LATE0001")
        record = run(strict)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases["audit"].error_message
        assert counts(record)[0] == failed.phases["source_count"].phase_specific_details["count"] + 1

    def test_the_plan_says_why_the_count_runs_again(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab")
        run(folder, plugin=FaultPlugin(fail={"source_to_stage_transfer": 1}))
        with Pipeline(folder / "config.json") as pipeline:
            plan = {p.phase: p for p in pipeline.runner().plan(pipeline.grid.first())}
        assert plan["source_count"].action == "run"
        assert "source_to_stage_transfer runs again" in plan["pre_validation"].reason


def growing(folder: Path) -> type[Pipeline]:
    """A pipeline whose source gains a record between the count and the extract."""

    class GrowingCount(SourceCount):
        def run(self, ctx):  # type: ignore[no-untyped-def]
            result = super().run(ctx)
            add_row(folder, "ARRIVED1", minute=45)
            return result

    class Growing(Pipeline):
        phase_classes = {"source_count": GrowingCount}

    return Growing


class TestSourceChangingWithinOneAttempt:
    def test_the_audit_fails_when_the_extract_read_other_records_than_were_counted(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(300))
        record = run(folder, growing(folder))
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "audit"
        assert "changed in between" in record.phases["audit"].error_message

    def test_the_next_run_counts_and_extracts_again_and_succeeds(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(300))
        run(folder, growing(folder))
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases["audit"].error_message
        assert record.phases["source_count"].carried_from is None
        assert record.phases["source_to_stage_transfer"].carried_from is None
        source, read, stage, rejected = counts(record)
        assert source == read == stage + rejected
