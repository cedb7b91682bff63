"""OpenLineage events from real runs on DuckDB, received over HTTP and checked against the OpenLineage spec
as the installed client models it (tests/lineage/spec.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunRecord
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.testing import FaultPlugin
from tests.lineage.receiver import Receiver
from tests.sdk.factory import make_pipeline_dir, make_rows


def _folder(root: Path, *, lineage: bool = True) -> Path:
    changes = {"monitoring__openlineage": True} if lineage else {}
    return make_pipeline_dir(root / "lab", make_rows(60, hours=3, invalid_every=0, duplicates=0), **changes)


def _run(folder: Path, faults: FaultPlugin | None = None) -> RunRecord:
    with Pipeline.load(folder) as pipeline:
        runner = pipeline.runner(heartbeat_seconds=0.2)
        if faults is None:
            return runner.run(pipeline.grid.first())
        with faults.installed():
            return runner.run(pipeline.grid.first())


def _by_type(events: list[dict]) -> list[str]:
    return [e["eventType"] for e in events]


class TestOffByDefault:
    def test_a_pipeline_without_monitoring_openlineage_sends_nothing(self, receiver: Receiver, tmp_path: Path) -> None:
        record = _run(_folder(tmp_path, lineage=False))
        assert record.pipeline_status.value == "SUCCESS"
        assert receiver.events == []

    def test_openlineage_disabled_in_the_environment_wins(self, receiver: Receiver, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
        _run(_folder(tmp_path))
        assert receiver.events == []


class TestSuccessfulRun:
    @pytest.fixture
    def sent(self, receiver: Receiver, tmp_path: Path) -> tuple[Receiver, RunRecord, Path]:
        folder = _folder(tmp_path)
        record = _run(folder)
        assert record.pipeline_status.value == "SUCCESS"
        return receiver, record, folder

    def test_every_event_keeps_the_openlineage_spec(self, sent: tuple[Receiver, RunRecord, Path]) -> None:
        receiver, _, _ = sent
        assert len(receiver.events) > 2
        assert receiver.invalid() == {}

    def test_the_run_starts_first_and_completes_last(self, sent: tuple[Receiver, RunRecord, Path]) -> None:
        receiver, _, _ = sent
        assert _by_type(receiver.of("lab")) == ["START", "COMPLETE"]
        assert receiver.events[0]["job"]["name"] == "lab" and receiver.events[-1]["job"]["name"] == "lab"
        assert receiver.events[0]["job"]["namespace"] == "drivetrain"

    def test_each_phase_that_ran_starts_and_completes_under_the_run(self, sent: tuple[Receiver, RunRecord, Path]) -> None:
        receiver, record, _ = sent
        run_id = receiver.of("lab")[0]["run"]["runId"]
        ran = [p for p in PHASE_NAMES if record.phases[p].status.value == "COMPLETED"]
        assert ran
        for phase in ran:
            events = receiver.of(f"lab.{phase}")
            assert _by_type(events) == ["START", "COMPLETE"], phase
            assert events[0]["run"]["runId"] == events[1]["run"]["runId"] != run_id
            parent = events[1]["run"]["facets"]["parent"]
            assert parent["run"]["runId"] == run_id
            assert (parent["job"]["namespace"], parent["job"]["name"]) == ("drivetrain", "lab")

    def test_datasets_follow_the_naming_conventions(self, sent: tuple[Receiver, RunRecord, Path]) -> None:
        receiver, _, folder = sent
        end = receiver.of("lab")[-1]
        warehouse = f"duckdb://{(folder / 'warehouse.duckdb').resolve().as_posix()}"
        assert [(d["namespace"], d["name"]) for d in end["inputs"]] == [("file", (folder / "data/records.jsonl").as_posix())]
        assert [(d["namespace"], d["name"]) for d in end["outputs"]] == [(warehouse, "main.stg_tests"), (warehouse, "main.tests")]

    def test_counts_are_the_drive_tables_as_statistics_facets(self, sent: tuple[Receiver, RunRecord, Path]) -> None:
        receiver, record, _ = sent
        end = receiver.of("lab")[-1]
        details = {p: record.phases[p].phase_specific_details for p in PHASE_NAMES}
        assert end["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == details["source_count"]["count"]
        stage, target = (o["outputFacets"]["outputStatistics"]["rowCount"] for o in end["outputs"])
        assert stage == details["source_to_stage_transfer"]["rows_written"]
        assert target == details["stage_to_target_transfer"]["rows_written"]
        assert 0 < target <= stage <= details["source_count"]["count"]
        load = receiver.of("lab.stage_to_target_transfer")[-1]
        assert load["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == target

    def test_the_window_is_the_nominal_time(self, sent: tuple[Receiver, RunRecord, Path]) -> None:
        receiver, _, _ = sent
        nominal = receiver.of("lab")[0]["run"]["facets"]["nominalTime"]
        assert (nominal["nominalStartTime"], nominal["nominalEndTime"]) == ("2025-11-15T00:00:00+00:00", "2025-11-15T01:00:00+00:00")


class TestFailures:
    def test_a_failed_phase_and_run_send_fail_with_the_error(self, receiver: Receiver, tmp_path: Path) -> None:
        record = _run(_folder(tmp_path), FaultPlugin(fail={"stage_to_target_transfer": 99}))
        assert record.pipeline_status.value == "FAILED"
        phase = receiver.of("lab.stage_to_target_transfer")
        assert _by_type(phase) == ["START", "FAIL"]
        assert phase[-1]["run"]["facets"]["errorMessage"]["message"]
        run = receiver.of("lab")
        assert _by_type(run) == ["START", "FAIL"]
        assert "stage_to_target_transfer" in run[-1]["run"]["facets"]["errorMessage"]["message"]
        assert receiver.invalid() == {}

    def test_a_receiver_that_refuses_events_never_fails_the_run(self, receiver: Receiver, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
        receiver.status = 400
        with caplog.at_level(logging.WARNING, logger="drivetrain.lineage"):
            record = _run(_folder(tmp_path))
        assert record.pipeline_status.value == "SUCCESS"
        warnings = [r.getMessage() for r in caplog.records if r.name == "drivetrain.lineage"]
        assert len(warnings) == 1 and "could not send an OpenLineage START event" in warnings[0]
        assert "the rest of run lab_20251115T000000Z_run1 sends none" in warnings[0]
        assert len(receiver.events) == 1  # the first, refused; nothing after it

    def test_a_receiver_that_is_down_never_fails_the_run(self, receiver: Receiver, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
        receiver.stop()
        config = tmp_path / "openlineage.yml"  # the client's own retry settings apply: none here
        config.write_text(f"transport:\n  type: http\n  url: {receiver.url}\n  retry:\n    total: 0\n")
        monkeypatch.delenv("OPENLINEAGE_URL")
        monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
        assert _run(_folder(tmp_path)).pipeline_status.value == "SUCCESS"
        receiver.start()  # up again, on a new port
        config.write_text(f"transport:\n  type: http\n  url: {receiver.url}\n")
        _run(_folder(tmp_path / "again"))
        assert _by_type(receiver.of("lab")) == ["START", "COMPLETE"]  # a later run sends again


class TestConfiguration:
    def test_an_openlineage_yml_named_by_openlineage_config_is_used(self, receiver: Receiver, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        other = Receiver().start()
        try:
            config = tmp_path / "openlineage.yml"
            config.write_text(f"transport:\n  type: http\n  url: {other.url}\n")
            monkeypatch.delenv("OPENLINEAGE_URL")
            monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
            monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "lab-prod")
            _run(_folder(tmp_path))
        finally:
            other.stop()
        assert other.invalid() == {}
        assert receiver.events == []
        assert {e["job"]["namespace"] for e in other.events} == {"lab-prod"}
        assert _by_type(other.of("lab")) == ["START", "COMPLETE"]

    def test_outside_an_airflow_task_the_provider_changes_nothing(
            self, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)  # the CLI, or any other scheduler
        from drivetrain.lineage import airflow_provider_active

        assert airflow_provider_active() is False
        _run(_folder(tmp_path))
        assert _by_type(receiver.of("lab")) == ["START", "COMPLETE"]


class TestAirflowProvider:
    """With the real apache-airflow-providers-openlineage installed (the dev extra brings it)."""

    def test_inside_an_airflow_task_with_the_provider_enabled_drivetrain_defers(
            self, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "lab")  # set by Airflow for a running task
        monkeypatch.delenv("AIRFLOW__OPENLINEAGE__DISABLED", raising=False)
        from drivetrain.lineage import airflow_provider_active

        assert airflow_provider_active() is True  # OPENLINEAGE_URL configures the provider too
        assert _run(_folder(tmp_path)).pipeline_status.value == "SUCCESS"
        assert receiver.events == []

    def test_with_the_provider_disabled_drivetrain_sends_its_own_events(
            self, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "lab")
        monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "true")
        from drivetrain.lineage import airflow_provider_active

        assert airflow_provider_active() is False
        _run(_folder(tmp_path))
        assert _by_type(receiver.of("lab")) == ["START", "COMPLETE"]

    def test_with_drivetrains_operators_disabled_in_the_provider_drivetrain_sends_its_own(
            self, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # the provider reads its settings afresh under pytest (it caches them only outside tests)
        monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "lab")
        monkeypatch.delenv("AIRFLOW__OPENLINEAGE__DISABLED", raising=False)
        monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED_FOR_OPERATORS",
                           "drivetrain.airflow.operators.PipelinePhaseOperator;drivetrain.airflow.operators.PipelineStartOperator")
        from drivetrain.lineage import airflow_provider_active

        assert airflow_provider_active() is False
        _run(_folder(tmp_path))
        assert _by_type(receiver.of("lab")) == ["START", "COMPLETE"]
