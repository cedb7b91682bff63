"""The runner end to end with PostgreSQL as drive table, stage and target: files -> PostgreSQL,
and PostgreSQL / MariaDB sources -> PostgreSQL."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.drive import new_holder_id
from drivetrain.errors import LeaseError
from drivetrain.phases import StageToTargetTransfer
from drivetrain.testing import FaultPlugin
from tests.sdk.factory import BASE_CONFIG, DAY, expected_target, make_pipeline_dir, make_rows
from tests.servers.postgres import PostgresServer

from .test_pipeline import postgres_pipeline
from .warehouse import CREDENTIALS_REF, env, new_schema

HOUR = timedelta(hours=1)


def sections(server: PostgresServer, schema: str) -> dict[str, Any]:
    """stage_system and target_system of BASE_CONFIG moved into ``schema`` (the drive table follows the stage)."""
    connection = {"type": "postgres", "host": server.host, "port": server.port, "database": server.database,
                  "schema": schema, "credentials_ref": CREDENTIALS_REF}
    out = {}
    for name in ("stage_system", "target_system"):
        section = {**copy.deepcopy(BASE_CONFIG[name]), **connection}
        section.pop("path")
        out[name] = section
    return out


def pg_rows(server: PostgresServer, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with server.admin() as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def target_rows(server: PostgresServer, schema: str, start: Any, end: Any) -> list[tuple[str, str]]:
    return pg_rows(server, f'SELECT "test_id", "result" FROM {schema}.tests WHERE "reported_at" >= %s AND "reported_at" < %s '
                           'ORDER BY "test_id"', (start, end))


@pytest.fixture
def schema(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in env(postgres).items():
        monkeypatch.setenv(key, value)
    return new_schema(postgres)


@pytest.fixture
def folder(tmp_path: Path, postgres: PostgresServer, schema: str) -> Path:
    return make_pipeline_dir(tmp_path / "lab", None, **sections(postgres, schema))


def run(folder: Path) -> Any:
    with Pipeline.load(folder) as pipeline:
        return pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())


class TestFilesToPostgres:
    def test_consecutive_windows_succeed_and_the_target_holds_each_valid_row_once(self, folder, postgres, schema):
        rows = make_rows()
        with Pipeline.load(folder) as pipeline:
            runner = pipeline.runner(heartbeat_seconds=0.2)
            window = pipeline.grid.first()
            for _ in range(3):
                record = runner.run(window)
                assert record.pipeline_status is RunStatus.SUCCESS, (record.phase_failed, record.phases[record.phase_failed or "audit"])
                expected = expected_target(rows, window.start, window.end)
                assert target_rows(postgres, schema, window.start, window.end) == sorted((k, v["result"]) for k, v in expected.items())
                window = pipeline.grid.next(window)
        total, distinct = pg_rows(postgres, f'SELECT COUNT(*), COUNT(DISTINCT "test_id") FROM {schema}.tests')[0]
        assert total == distinct == len(expected_target(rows, DAY, DAY + 3 * HOUR))
        assert pg_rows(postgres, f"SELECT pipeline_status, COUNT(*) FROM {schema}.pipeline_execution_drive GROUP BY 1") == [("SUCCESS", 3)]

    def test_the_transfer_is_pushed_down_and_accounting_is_exact(self, folder, postgres, schema):
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        s2t = record.phases["stage_to_target_transfer"].phase_specific_details
        assert s2t["method"] == "push-down SQL"
        s2s = record.phases["source_to_stage_transfer"].phase_specific_details
        assert record.phases["source_count"].phase_specific_details["count"] == s2s["rows_read"] == s2s["rows_written"] + s2s["records_failed"]
        rejects = pg_rows(postgres, f"SELECT COUNT(*) FROM {schema}.stg_tests__rejects")[0][0]
        assert rejects == s2s["records_failed"] > 0

    def test_the_arrow_path_reads_stage_and_loads_target(self, tmp_path, postgres, schema):
        import pyarrow.compute as pc

        class Upper(StageToTargetTransfer):
            def transform(self, batch, ctx):  # noqa: ANN001, ANN202 - a phase's hook
                return batch.set_column(batch.schema.get_field_index("result"), "result", pc.utf8_upper(batch.column("result")))

        folder = make_pipeline_dir(tmp_path / "lab", None, **sections(postgres, schema))
        pipeline = type("P", (Pipeline,), {"phase_classes": {"stage_to_target_transfer": Upper}})(folder / "config.json")
        with pipeline:
            record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert record.phases["stage_to_target_transfer"].phase_specific_details["method"] == "arrow"
        assert {r[0] for r in pg_rows(postgres, f'SELECT DISTINCT "result" FROM {schema}.tests')} <= {"POSITIVE", "NEGATIVE", "CORRECTED"}

    def test_stage_cleaning_archives_deletes_and_vacuums(self, tmp_path, postgres, schema):
        rows = make_rows(200, hours=1) + make_rows(200, hours=1, start=DAY + timedelta(days=1), prefix="U")
        folder = make_pipeline_dir(tmp_path / "lab", rows, **sections(postgres, schema),
                                   phases__stage_cleaning={"archive_location": "archive", "delete_after_days": 0})
        run(folder)
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(DAY + timedelta(days=1)))
        details = record.phases["stage_cleaning"].phase_specific_details
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert details["records_deleted"] == details["records_archived"] > 0
        assert details["vacuumed"] is True
        left = pg_rows(postgres, f'SELECT COUNT(*) FROM {schema}.stg_tests WHERE "_drivetrain_target_date" = %s', (DAY.date(),))
        assert left == [(0,)]

    def test_failed_stage_to_target_is_resumed_by_the_next_run(self, folder, postgres, schema):
        rows = make_rows()
        with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
            failed = run(folder)
        assert failed.pipeline_status is RunStatus.FAILED and failed.phase_failed == "stage_to_target_transfer"
        resumed = run(folder)
        assert resumed.pipeline_status is RunStatus.SUCCESS and resumed.pipeline_retry_number == 1
        assert resumed.phases["source_count"].carried_from == failed.pipeline_id
        expected = expected_target(rows, DAY, DAY + HOUR)
        assert target_rows(postgres, schema, DAY, DAY + HOUR) == sorted((k, v["result"]) for k, v in expected.items())

    def test_a_held_window_refuses_a_second_run_and_a_released_one_is_free(self, folder):
        with Pipeline.load(folder) as pipeline:
            window = pipeline.grid.first()
            store = pipeline.drive_store()
            store.ensure()
            lease = store.acquire_lease(pipeline.name, window.start, window.end, new_holder_id(), 60)
            with pytest.raises(LeaseError, match="not starting a second run"):
                pipeline.runner().run(window)
            assert store.history(pipeline.name) == []
            store.release_lease(lease)
            assert pipeline.runner().run(window).pipeline_status is RunStatus.SUCCESS

    def test_steps_from_fresh_runners_complete_a_run(self, folder):
        with Pipeline.load(folder) as pipeline:
            started = pipeline.runner().start(pipeline.grid.first())
        for name in started.phases:
            with Pipeline.load(folder) as pipeline:
                pipeline.runner(heartbeat_seconds=0.2).run_phase(started.pipeline_id, name)
        with Pipeline.load(folder) as pipeline:
            final = pipeline.runner().finish(started.pipeline_id)
        assert final.pipeline_status is RunStatus.SUCCESS, final.phase_failed

    def test_metrics_run_on_the_postgres_drive_table(self, folder):
        from drivetrain.monitoring import metrics

        with FaultPlugin(fail={"stage_to_target_transfer": 1}).installed():
            failed = run(folder)
        run(folder)
        with Pipeline.load(folder) as pipeline:
            result = metrics.compute(pipeline.drive_store(), [pipeline.name], days=3650)
        (failure,) = result.failed_runs
        assert (failure.run_id, failure.phase_failed, failure.recovered) == (failed.pipeline_id, "stage_to_target_transfer", True)
        assert "injected failure" in failure.error_message
        (rate,) = result.success_rates
        assert (rate.runs, rate.succeeded, rate.failed, rate.success_rate) == (2, 1, 1, 50.0)


class TestDatabasesToPostgres:
    @pytest.mark.parametrize("source", ["postgres", "mariadb"])
    def test_a_table_is_loaded_into_postgres_window_by_window(self, tmp_path, postgres, schema, monkeypatch, request, source):
        rows = make_rows(300, hours=2, invalid_every=0, duplicates=0)
        if source == "postgres":
            folder, _ = postgres_pipeline(tmp_path / "lab", postgres, rows, monkeypatch, **sections(postgres, schema))
        else:
            from tests.reliability.sources import mysql_pipeline

            folder = mysql_pipeline(tmp_path / "lab", request.getfixturevalue("mariadb"), rows, monkeypatch,
                                    **sections(postgres, schema))
        with Pipeline.load(folder) as pipeline:
            window = pipeline.grid.window_starting(DAY)
            for _ in range(2):
                record = pipeline.runner().run(window)
                assert record.pipeline_status is RunStatus.SUCCESS, (record.phase_failed, record.phases)
                counts = [record.phase(p).phase_specific_details["count"] for p in ("source_count", "stage_count", "target_count")]
                assert counts[0] == counts[1] > 0
                assert target_rows(postgres, schema, window.start, window.end) == sorted(
                    (k, v["result"]) for k, v in expected_target(rows, window.start, window.end).items())
                window = pipeline.grid.next(window)
