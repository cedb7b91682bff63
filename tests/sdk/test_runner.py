"""The runner end to end on the embedded default: files source -> DuckDB stage and target."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.errors import LeaseError
from drivetrain.phases import SourceToStageTransfer, StageToTargetTransfer
from drivetrain.record import PhaseStatus
from drivetrain.results import TransferResult
from drivetrain.testing import FaultPlugin, FaultySource

from .factory import DAY, expected_target, make_pipeline_dir, make_rows, query, target_rows

HOUR = timedelta(hours=1)


@pytest.fixture
def folder(tmp_path):
    return make_pipeline_dir(tmp_path / "lab")


def run(folder, window=None, **overrides):
    with Pipeline.load(folder, overrides=overrides or None) as pipeline:
        window = window or pipeline.grid.first()
        return pipeline.runner(heartbeat_seconds=0.2).run(window)


class TestFreshRuns:
    def test_consecutive_windows_all_succeed_and_target_holds_each_valid_row_once(self, folder):
        rows = make_rows()
        with Pipeline.load(folder) as pipeline:
            runner = pipeline.runner()
            window = pipeline.grid.first()
            for _ in range(3):
                record = runner.run(window)
                assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
                expected = expected_target(rows, window.start, window.end)
                assert target_rows(folder, window.start, window.end) == sorted((k, v["result"]) for k, v in expected.items())
                window = pipeline.grid.next(window)
        total = query(folder, "SELECT count(*), count(DISTINCT test_id) FROM tests")[0]
        assert total[0] == total[1] == len(expected_target(rows, DAY, DAY + 3 * HOUR))

    def test_drive_row_has_every_phase_and_array(self, folder):
        record = run(folder)
        assert record.phases_completed == (
            "stale_pipeline_handling", "pre_validation", "source_count", "source_to_stage_transfer",
            "stage_count", "stage_to_target_transfer", "target_count", "audit", "publish", "stage_cleaning",
        )
        assert record.phases_skipped == ("target_cleaning",)
        assert record.phases_pending == ()
        assert record.phase_failed is None
        assert record.pipeline_end_timestamp is not None and record.pipeline_run_duration
        assert record.query_window_duration == "1h"
        assert record.target_date.isoformat() == "2025-11-15"
        assert record.config_hash and record.config_snapshot["pipeline_metadata"]["pipeline_name"] == "lab"
        for name in record.phases_completed:
            state = record.phases[name]
            assert state.status is PhaseStatus.COMPLETED and state.actual_run_duration and state.end_timestamp

    def test_exact_accounting_source_equals_stage_plus_rejects(self, folder):
        record = run(folder)
        details = record.phases["source_to_stage_transfer"].phase_specific_details
        source = record.phases["source_count"].phase_specific_details["count"]
        assert source == details["rows_read"] == details["rows_written"] + details["records_failed"]
        rejects = query(folder, "SELECT count(*) FROM stg_tests__rejects")[0][0]
        assert rejects == details["records_failed"] > 0
        reasons = record.phases["audit"].phase_specific_details["loss_reasons"]
        assert any("age: not a valid integer" in r for r in reasons)

    def test_rejected_records_keep_their_raw_text_and_reason(self, folder):
        run(folder)
        reason, raw = query(folder, "SELECT reason, raw_record FROM stg_tests__rejects LIMIT 1")[0]
        assert reason == "age: not a valid integer"
        assert '"age": "n/a"' in raw

    def test_rerun_of_a_succeeded_window_replaces_it_without_duplicates(self, folder):
        first = run(folder)
        second = run(folder)
        assert second.pipeline_retry_number == 1 and second.pipeline_status is RunStatus.SUCCESS
        assert first.pipeline_id != second.pipeline_id
        counts = query(folder, "SELECT count(*), count(DISTINCT test_id) FROM tests")[0]
        assert counts[0] == counts[1]
        assert query(folder, "SELECT count(*) FROM stg_tests")[0][0] == second.phases["stage_count"].phase_specific_details["count"]


class TestFailureAndResume:
    def test_failed_stage_to_target_is_resumed_by_the_next_run(self, folder):
        rows = make_rows()
        with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
            failed = run(folder)
        assert failed.pipeline_status is RunStatus.FAILED
        assert failed.phase_failed == "stage_to_target_transfer"
        assert "injected failure" in failed.phases["stage_to_target_transfer"].error_message
        assert failed.phases_completed == ("stale_pipeline_handling", "pre_validation", "source_count", "source_to_stage_transfer", "stage_count")
        assert failed.phases_pending == ("target_count", "audit", "publish", "stage_cleaning")
        # the pending table is created before the transfer; the failed transaction left no row in it
        assert query(folder, "SELECT count(*) FROM tests__pending_rows")[0][0] == 0

        resumed = run(folder)
        assert resumed.pipeline_status is RunStatus.SUCCESS
        assert resumed.pipeline_retry_number == 1
        assert resumed.phases_skipped == ("source_count", "source_to_stage_transfer", "stage_count", "target_cleaning")
        assert resumed.phases["source_count"].carried_from == failed.pipeline_id
        audit = resumed.phases["audit"].phase_specific_details
        assert audit["source_count"] == failed.phases["source_count"].phase_specific_details["count"]
        window = (DAY, DAY + HOUR)
        expected = expected_target(rows, *window)
        assert target_rows(folder, *window) == sorted((k, v["result"]) for k, v in expected.items())
        ids = [r[0] for r in query(folder, "SELECT pipeline_id FROM pipeline_execution_drive ORDER BY pipeline_start_timestamp")]
        assert ids == [failed.pipeline_id, resumed.pipeline_id]

    def test_a_third_attempt_still_skips_what_the_first_completed(self, folder):
        with FaultPlugin(fail={"stage_to_target_transfer": 2}).installed():
            first = run(folder)
            second = run(folder)
        third = run(folder)
        assert first.phase_failed == second.phase_failed == "stage_to_target_transfer"
        assert third.pipeline_status is RunStatus.SUCCESS
        assert third.phases["source_to_stage_transfer"].carried_from == first.pipeline_id

    def test_changed_config_makes_the_retry_a_fresh_run(self, folder):
        with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
            run(folder)
        resumed = run(folder, **{"phases.audit.count_tolerances.source_to_stage_tolerance_percent": 6.0})
        assert resumed.pipeline_status is RunStatus.SUCCESS
        assert resumed.phases_skipped == ("target_cleaning",)
        notes = resumed.phases["pre_validation"].phase_specific_details["continuation_notes"]
        assert any("config changed" in n for n in notes)

    def test_stage_data_changed_since_the_failure_is_reloaded_not_trusted(self, folder):
        with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
            run(folder)
        import duckdb

        with duckdb.connect(str(folder / "warehouse.duckdb")) as conn:
            conn.execute("DELETE FROM stg_tests WHERE test_id IN (SELECT test_id FROM stg_tests LIMIT 3)")
        resumed = run(folder)
        assert resumed.pipeline_status is RunStatus.SUCCESS
        assert "source_to_stage_transfer" in resumed.phases_completed
        assert "source_count" in resumed.phases_completed  # counted again with the extract it is audited against
        assert resumed.phases_skipped == ("target_cleaning",)

    def test_next_window_retries_the_failed_window_first(self, folder):
        with Pipeline.load(folder) as pipeline:
            first = pipeline.grid.first()
            with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
                pipeline.runner().run(first)
            pipeline.runner().run(pipeline.grid.next(first))
            assert pipeline.runner().next_window(now=DAY + 10 * HOUR) == first


class TestRetries:
    def test_transient_source_error_is_retried_with_backoff(self, folder):
        with Pipeline.load(folder) as pipeline:
            pipeline.use(source=FaultySource(pipeline.source(), fail_at_batch=1, times=2))
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases["source_to_stage_transfer"].retry_number == 2

    def test_transient_errors_past_max_retries_fail_the_phase(self, folder):
        with Pipeline.load(folder) as pipeline:
            pipeline.use(source=FaultySource(pipeline.source(), fail_at_batch=0, times=5))
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phase_failed == "source_to_stage_transfer"
        state = record.phases["source_to_stage_transfer"]
        assert state.retry_number == 2 and "gave up after 3 attempt(s)" in state.error_message
        assert query(folder, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'stg_tests'")[0][0] == 0

    def test_permanent_error_fails_at_once(self, folder):
        with Pipeline.load(folder) as pipeline:
            pipeline.use(source=FaultySource(pipeline.source(), fail_at_batch=1, times=1, transient=False))
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phase_failed == "source_to_stage_transfer"
        assert record.phases["source_to_stage_transfer"].retry_number == 0

    def test_a_silently_short_stream_is_caught_by_the_audit(self, folder):
        with Pipeline.load(folder) as pipeline:
            pipeline.use(source=FaultySource(pipeline.source(), truncate_at_batch=2))
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phase_failed == "audit"
        assert "lost" in record.phases["audit"].error_message


class TestAudit:
    def _run_with_counts(self, folder, source, stage, target, tolerance=2.0):
        from drivetrain.phases import SourceCount, StageCount, TargetCount
        from drivetrain.results import CountResult

        # the transfer accounts for every source record (loaded or rejected), as a real one does
        moved = TransferResult(rows_read=source, rows_written=stage, rows_rejected=max(source - stage, 0))

        class Fixed(Pipeline):
            phase_classes = {
                "source_to_stage_transfer": type("X", (SourceToStageTransfer,), {"run": lambda self, ctx: moved}),
                "source_count": type("S", (SourceCount,), {"run": lambda self, ctx: CountResult(count=source)}),
                "stage_count": type("St", (StageCount,), {"run": lambda self, ctx: CountResult(count=stage)}),
                "target_count": type("T", (TargetCount,), {"run": lambda self, ctx: CountResult(count=target)}),
            }

        pipeline = Fixed(folder / "config.json", overrides={
            "phases.audit.count_tolerances.source_to_stage_tolerance_percent": tolerance,
            "phases.audit.count_tolerances.stage_to_target_tolerance_percent": 1.0,
        })
        with pipeline:
            return pipeline.runner().run(pipeline.grid.first())

    def test_loss_equal_to_the_tolerance_passes(self, folder):
        record = self._run_with_counts(folder, 10_000, 9_800, 9_795)
        assert record.pipeline_status is RunStatus.SUCCESS
        details = record.phases["audit"].phase_specific_details
        assert details["source_to_stage_loss_percent"] == 2.0
        assert details["stage_to_target_loss_percent"] == pytest.approx(0.05102, abs=1e-4)
        assert details["validation_status"] == "PASSED"

    def test_loss_above_the_tolerance_fails(self, folder):
        record = self._run_with_counts(folder, 10_000, 9_799, 9_799)
        assert record.phase_failed == "audit"
        assert "above the tolerance 2%" in record.phases["audit"].error_message

    def test_stage_above_source_fails_as_duplicate_insertion(self, folder):
        record = self._run_with_counts(folder, 100, 101, 101)
        assert record.phase_failed == "audit"
        assert "loaded twice" in record.phases["audit"].error_message

    def test_empty_window_passes_with_an_explanation(self, folder):
        record = self._run_with_counts(folder, 0, 0, 0)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert "the window is empty at the source" in record.phases["audit"].phase_specific_details["loss_reasons"]

    def test_empty_window_can_be_skipped_by_config(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", **{"phases__source_count": {"on_empty_window": "skip"}})
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.window_at(DAY + 20 * HOUR))
        assert record.pipeline_status is RunStatus.SKIPPED
        assert record.phases["stage_to_target_transfer"].status is PhaseStatus.SKIPPED

    def test_empty_window_can_fail_by_config(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", **{"phases__source_count": {"on_empty_window": "fail"}})
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.window_at(DAY + 20 * HOUR))
        assert record.phase_failed == "source_count"


class TestPhaseControl:
    def test_disabled_phase_is_skipped_and_not_pending(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", **{"phases__stage_cleaning": {"enabled": False}})
        record = run(folder)
        assert record.phases["stage_cleaning"].skip_reason == "disabled in config"
        assert "stage_cleaning" in record.phases_skipped

    def test_max_rejected_percent_fails_the_transfer_and_loads_nothing(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", **{"phases__source_to_stage_transfer": {"max_rejected_percent": 1.0}})
        record = run(folder)
        assert record.phase_failed == "source_to_stage_transfer"
        assert "above max_rejected_percent 1.0" in record.phases["source_to_stage_transfer"].error_message
        with Pipeline.load(folder) as pipeline:
            assert pipeline.stage().count(pipeline.grid.first()) == 0

    def test_phase_timeout_cancels_between_batches(self, tmp_path):
        import time

        folder = make_pipeline_dir(tmp_path / "p", **{"phases__source_to_stage_transfer": {"timeout_minutes": 0.002}})

        class Slow(SourceToStageTransfer):
            def transform(self, batch, ctx):
                time.sleep(0.05)
                return batch

        class P(Pipeline):
            phase_classes = {"source_to_stage_transfer": Slow}

        with P(folder / "config.json") as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phase_failed == "source_to_stage_transfer"
        assert "ran past its timeout" in record.phases["source_to_stage_transfer"].error_message

    def test_arrow_transform_path_is_used_when_transform_is_overridden(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "p", target_system={"type": "duckdb", "path": "warehouse.duckdb", "table": "tests"})
        class Upper(StageToTargetTransfer):
            def transform(self, batch, ctx):
                import pyarrow.compute as pc

                return batch.set_column(batch.schema.get_field_index("result"), "result", pc.utf8_upper(batch.column("result")))

        class P(Pipeline):
            phase_classes = {"stage_to_target_transfer": Upper}

        pipeline = P(folder / "config.json")
        with pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases["stage_to_target_transfer"].phase_specific_details["method"] == "arrow"
        assert {r[0] for r in query(folder, "SELECT DISTINCT result FROM tests")} <= {"POSITIVE", "NEGATIVE", "CORRECTED"}

    def test_spec_style_dict_results_are_accepted(self, folder):
        class DictTransfer(StageToTargetTransfer):
            def run(self, ctx):
                result = super().run(ctx)
                assert isinstance(result, TransferResult)
                return {"skip_dag_run": False, "error_message": None, "transfer_completed": True, "note": "dict"}

        class P(Pipeline):
            phase_classes = {"stage_to_target_transfer": DictTransfer}

        with P(folder / "config.json") as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases["stage_to_target_transfer"].phase_specific_details["note"] == "dict"

    def test_skip_dag_run_fails_the_phase_with_its_message(self, folder):
        class Refuse(StageToTargetTransfer):
            def run(self, ctx):
                return {"skip_dag_run": True, "error_message": "Snowflake table lock timeout", "transfer_completed": False}

        class P(Pipeline):
            phase_classes = {"stage_to_target_transfer": Refuse}

        with P(folder / "config.json") as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phase_failed == "stage_to_target_transfer"
        assert record.phases["stage_to_target_transfer"].error_message == "Snowflake table lock timeout"

    def test_an_exception_in_user_code_fails_the_phase_not_the_runner(self, folder):
        class Broken(StageToTargetTransfer):
            def run(self, ctx):
                raise ZeroDivisionError("oops")

        class P(Pipeline):
            phase_classes = {"stage_to_target_transfer": Broken}

        with P(folder / "config.json") as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phases["stage_to_target_transfer"].error_message == "ZeroDivisionError: oops"


class TestLeaseAndStale:
    def test_a_held_window_refuses_a_second_run(self, folder):
        from drivetrain.drive import new_holder_id

        with Pipeline.load(folder) as pipeline:
            window = pipeline.grid.first()
            store = pipeline.drive_store()
            store.ensure()
            store.acquire_lease(pipeline.name, window.start, window.end, new_holder_id(), 60)
            with pytest.raises(LeaseError, match="not starting a second run"):
                pipeline.runner().run(window)
            assert store.history(pipeline.name) == []

    def test_a_lease_of_a_killed_process_is_taken_over(self, folder):
        import subprocess
        import sys

        script = (
            "import os, signal, sys; from drivetrain import Pipeline; "
            "p = Pipeline.load(sys.argv[1]); w = p.grid.first(); s = p.drive_store(); s.ensure(); "
            "s.acquire_lease(p.name, w.start, w.end, 'doomed', 600); os.kill(os.getpid(), signal.SIGKILL)"
        )
        killed = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=60)
        assert killed.returncode == -9, killed.stderr
        with Pipeline.load(folder) as pipeline:
            window = pipeline.grid.first()
            assert pipeline.drive_store().current_lease(pipeline.name, window.start).holder == "doomed"
            record = pipeline.runner().run(window)
        assert record.pipeline_status is RunStatus.SUCCESS

    def test_stale_running_rows_of_other_windows_are_closed(self, folder):
        import attrs

        with Pipeline.load(folder) as pipeline:
            first = pipeline.grid.first()
            done = pipeline.runner().run(first)
            store = pipeline.drive_store()
            ghost = attrs.evolve(done, pipeline_id="ghost", pipeline_status=RunStatus.RUNNING,
                                 pipeline_end_timestamp=None, phase_failed=None,
                                 pipeline_start_timestamp=done.pipeline_start_timestamp - timedelta(hours=5))
            store.insert(ghost)
            store.heartbeat("ghost", done.pipeline_start_timestamp - timedelta(hours=5))
            record = pipeline.runner().run(pipeline.grid.next(first))
            closed = store.get("ghost")
        assert record.phases["stale_pipeline_handling"].phase_specific_details["resolved_runs"] == ["ghost"]
        assert closed.pipeline_status is RunStatus.FAILED


class TestStepByStep:
    """The Airflow shape: start, one call per phase (each from a fresh Runner), finish."""

    def _steps(self, folder, *, fail=None):
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().start(pipeline.grid.first())
        states = {}
        for name in record.phases:
            with Pipeline.load(folder) as pipeline, FaultPlugin(fail=fail or {}).installed():
                try:
                    states[name] = pipeline.runner().run_phase(record.pipeline_id, name)
                except Exception as exc:  # noqa: BLE001
                    states[name] = exc
        with Pipeline.load(folder) as pipeline:
            final = pipeline.runner().finish(record.pipeline_id)
        return final, states

    def test_phases_run_one_call_each_and_finish_closes_the_row(self, folder):
        final, states = self._steps(folder)
        assert final.pipeline_status is RunStatus.SUCCESS
        assert states["target_cleaning"].status is PhaseStatus.SKIPPED
        assert final.phases_completed[-1] == "stage_cleaning"

    def test_a_failed_step_stops_the_later_ones_and_the_next_run_resumes(self, folder):
        final, states = self._steps(folder, fail={"stage_to_target_transfer": 1})
        assert final.pipeline_status is RunStatus.FAILED and final.phase_failed == "stage_to_target_transfer"
        assert "not run" in str(states["audit"])
        resumed, states = self._steps(folder)
        assert resumed.pipeline_status is RunStatus.SUCCESS
        assert states["source_to_stage_transfer"].carried_from == final.pipeline_id

    def test_a_started_run_keeps_the_window_from_a_cli_run(self, folder):
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().start(pipeline.grid.first())
        with Pipeline.load(folder) as pipeline, pytest.raises(LeaseError, match="step by step"):
            pipeline.runner().run(pipeline.grid.first())
        with Pipeline.load(folder) as pipeline:
            pipeline.runner().finish(record.pipeline_id)
            assert pipeline.runner().run(pipeline.grid.first()).pipeline_status is RunStatus.SUCCESS


class TestSecrets:
    def test_a_secret_in_an_error_reaches_neither_the_drive_table_nor_the_log(self, folder, caplog):
        from drivetrain.secrets import register_secret

        secret = "hunter2-is-not-a-password"
        register_secret(secret)

        class Leaky(StageToTargetTransfer):
            def run(self, ctx):
                raise RuntimeError(f"login failed for user etl with password {secret}")

        class P(Pipeline):
            phase_classes = {"stage_to_target_transfer": Leaky}

        with caplog.at_level("DEBUG"), P(folder / "config.json") as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert "<SECRET>" in record.phases["stage_to_target_transfer"].error_message
        stored = query(folder, "SELECT CAST(stage_to_target_transfer_phase AS VARCHAR) FROM pipeline_execution_drive")[0][0]
        assert secret not in stored
        assert secret not in caplog.text and "<SECRET>" in caplog.text
