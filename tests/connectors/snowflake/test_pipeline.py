"""The runner end to end with Snowflake (fakesnow) as drive table, stage and target."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.drive import new_holder_id
from drivetrain.errors import LeaseError
from drivetrain.phases import StageToTargetTransfer
from drivetrain.testing import FaultPlugin
from tests.sdk.factory import DAY, expected_target, make_rows

from .conftest import sf_rows
from .scenario import make_snowflake_pipeline, register_snowflake, target_rows

HOUR = timedelta(hours=1)


@pytest.fixture
def folder(tmp_path, fakesnow_server, database, sf_env):
    register_snowflake()
    return make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database)


def run(folder, window=None):
    register_snowflake()
    with Pipeline.load(folder) as pipeline:
        return pipeline.runner(heartbeat_seconds=0.2).run(window or pipeline.grid.first())


class TestRuns:
    def test_consecutive_windows_succeed_and_the_target_holds_each_valid_row_once(self, folder, fakesnow_server, database):
        rows = make_rows()
        with Pipeline.load(folder) as pipeline:
            runner = pipeline.runner(heartbeat_seconds=0.2)
            window = pipeline.grid.first()
            for _ in range(3):
                record = runner.run(window)
                assert record.pipeline_status is RunStatus.SUCCESS, (record.phase_failed, record.phases[record.phase_failed or "audit"])
                expected = expected_target(rows, window.start, window.end)
                assert target_rows(fakesnow_server, database, window.start, window.end) == sorted((k, v["result"]) for k, v in expected.items())
                window = pipeline.grid.next(window)
        total, distinct = sf_rows(fakesnow_server, database, 'SELECT COUNT(*), COUNT(DISTINCT "test_id") FROM TESTS')[0]
        assert total == distinct == len(expected_target(rows, DAY, DAY + 3 * HOUR))
        statuses = sf_rows(fakesnow_server, database, "SELECT PIPELINE_STATUS, COUNT(*) FROM PIPELINE_EXECUTION_DRIVE GROUP BY 1")
        assert statuses == [("SUCCESS", 3)]

    def test_the_transfer_is_pushed_down_and_accounting_is_exact(self, folder, fakesnow_server, database):
        record = run(folder)
        s2t = record.phases["stage_to_target_transfer"].phase_specific_details
        assert s2t["method"] == "push-down SQL"
        s2s = record.phases["source_to_stage_transfer"].phase_specific_details
        assert record.phases["source_count"].phase_specific_details["count"] == s2s["rows_read"] == s2s["rows_written"] + s2s["records_failed"]
        rejects = sf_rows(fakesnow_server, database, "SELECT COUNT(*) FROM STG_TESTS__REJECTS")[0][0]
        assert rejects == s2s["records_failed"] > 0

    def test_stage_cleaning_archives_deletes_and_reports_no_vacuum(self, tmp_path, fakesnow_server, database, sf_env):
        rows = make_rows(200, hours=1) + make_rows(200, hours=1, start=DAY + timedelta(days=1), prefix="U")
        folder = make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database, rows,
                                         phases__stage_cleaning={"archive_location": "archive", "delete_after_days": 0})
        run(folder)
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(DAY + timedelta(days=1)))
        details = record.phases["stage_cleaning"].phase_specific_details
        assert record.pipeline_status is RunStatus.SUCCESS
        assert details["records_deleted"] == details["records_archived"] > 0
        assert details["vacuumed"] is False and details["vacuum_note"] == "Snowflake has no VACUUM; storage is reclaimed automatically"
        assert details["statistics_gathered"] is False and details["statistics_note"].startswith("not gathered: snowflake")
        left = sf_rows(fakesnow_server, database, 'SELECT COUNT(*) FROM STG_TESTS WHERE "_drivetrain_target_date" = ?', [DAY.date()])
        assert left == [(0,)]

    def test_the_arrow_path_reads_stage_and_loads_target_through_parquet(self, tmp_path, fakesnow_server, database, sf_env):
        import pyarrow.compute as pc

        class Upper(StageToTargetTransfer):
            def transform(self, batch, ctx):
                return batch.set_column(batch.schema.get_field_index("result"), "result", pc.utf8_upper(batch.column("result")))

        register_snowflake()
        folder = make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database)
        pipeline = type("P", (Pipeline,), {"phase_classes": {"stage_to_target_transfer": Upper}})(folder / "config.json")
        with pipeline:
            record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases["stage_to_target_transfer"].phase_specific_details["method"] == "arrow"
        assert {r[0] for r in sf_rows(fakesnow_server, database, 'SELECT DISTINCT "result" FROM TESTS')} <= {"POSITIVE", "NEGATIVE", "CORRECTED"}

    def test_every_statement_carries_a_query_tag_with_pipeline_run_and_phase(self, folder, fakesnow_server, database):
        record = run(folder)
        # the driver re-sends each PUT naming the bare file, to get an upload URL: not our statement
        ours = [s for s in fakesnow_server.statements_for(database) if not re.match(r"PUT 'file://[^/]", s.sql)]
        assert ours and all(s.query_tag for s in ours), [s.sql for s in ours if not s.query_tag][:3]
        tags = [json.loads(s.query_tag) for s in ours]
        assert all(t["app"] == "drivetrain" for t in tags)
        copies = [json.loads(s.query_tag) for s in ours if s.sql.startswith("COPY INTO")]
        assert copies and all(t == {"app": "drivetrain", "pipeline": "lab", "run_id": record.pipeline_id, "phase": "source_to_stage_transfer"}
                              for t in copies[:1])
        phases = {t.get("phase") for t in tags}
        assert {"source_to_stage_transfer", "stage_to_target_transfer", "target_count", "lease", "heartbeat"} <= phases

    def test_the_query_tag_prefix_is_put_before_the_json(self, tmp_path, fakesnow_server, database, sf_env):
        from .scenario import make_snowflake_pipeline as make

        folder = make(tmp_path / "lab", fakesnow_server, database)
        config = json.loads((folder / "config.json").read_text())
        for section in ("stage_system", "target_system"):
            config[section]["query_tag_prefix"] = "team=lab;"
        (folder / "config.json").write_text(json.dumps(config))
        run(folder)
        tagged = [s.query_tag for s in fakesnow_server.statements_for(database) if s.query_tag]
        assert tagged and all(t.startswith('team=lab;{"app":"drivetrain"') for t in tagged)


class TestFailureAndResume:
    def test_failed_stage_to_target_is_resumed_by_the_next_run(self, folder, fakesnow_server, database):
        rows = make_rows()
        register_snowflake()
        with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
            failed = run(folder)
        assert failed.pipeline_status is RunStatus.FAILED and failed.phase_failed == "stage_to_target_transfer"
        assert "injected failure" in failed.phases["stage_to_target_transfer"].error_message
        resumed = run(folder)
        assert resumed.pipeline_status is RunStatus.SUCCESS and resumed.pipeline_retry_number == 1
        assert resumed.phases_skipped == ("source_count", "source_to_stage_transfer", "stage_count", "target_cleaning")
        assert resumed.phases["source_count"].carried_from == failed.pipeline_id
        expected = expected_target(rows, DAY, DAY + HOUR)
        assert target_rows(fakesnow_server, database, DAY, DAY + HOUR) == sorted((k, v["result"]) for k, v in expected.items())
        ids = [r[0] for r in sf_rows(fakesnow_server, database, "SELECT PIPELINE_ID FROM PIPELINE_EXECUTION_DRIVE ORDER BY PIPELINE_START_TIMESTAMP")]
        assert ids == [failed.pipeline_id, resumed.pipeline_id]

    def test_a_held_window_refuses_a_second_run(self, folder):
        with Pipeline.load(folder) as pipeline:
            window = pipeline.grid.first()
            store = pipeline.drive_store()
            store.ensure()
            store.acquire_lease(pipeline.name, window.start, window.end, new_holder_id(), 60)
            with pytest.raises(LeaseError, match="not starting a second run"):
                pipeline.runner().run(window)
            assert store.history(pipeline.name) == []

    def test_steps_from_fresh_runners_complete_a_run(self, folder):
        with Pipeline.load(folder) as pipeline:
            started = pipeline.runner().start(pipeline.grid.first())
        for name in started.phases:
            with Pipeline.load(folder) as pipeline:
                pipeline.runner(heartbeat_seconds=0.2).run_phase(started.pipeline_id, name)
        with Pipeline.load(folder) as pipeline:
            final = pipeline.runner().finish(started.pipeline_id)
            assert pipeline.drive_store().current_lease(pipeline.name, started.query_window_start_timestamp) is None
        assert final.pipeline_status is RunStatus.SUCCESS


class TestReports:
    def test_metrics_run_on_the_snowflake_drive_table_as_on_duckdb(self, folder):
        from drivetrain.monitoring import metrics

        with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
            failed = run(folder)
        run(folder)
        register_snowflake()
        with Pipeline.load(folder) as pipeline:
            result = metrics.compute(pipeline.drive_store(), [pipeline.name], days=3650)
        (failure,) = result.failed_runs
        assert (failure.run_id, failure.phase_failed, failure.recovered) == (failed.pipeline_id, "stage_to_target_transfer", True)
        assert "injected failure" in failure.error_message
        (rate,) = result.success_rates
        assert (rate.runs, rate.succeeded, rate.failed, rate.success_rate) == (2, 1, 1, 50.0)
