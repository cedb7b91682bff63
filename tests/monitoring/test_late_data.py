"""The report's late-data reloads: the same rows from DuckDB's drive table and from Snowflake SQL.

A window is loaded, late records arrive, and a settle reloads it; the report lists the reload
with both counts and its reason. The drive rows are then copied into a Snowflake table (the real
connector against fakesnow) and the report query must read the same reload there.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.connectors.snowflake.drive import SnowflakeDriveStore
from drivetrain.monitoring import metrics
from drivetrain.monitoring.cli import drift_lines
from drivetrain.settle import settle
from drivetrain.warehouse import TableRef
from tests.connectors.snowflake.conftest import ENV, make_warehouse
from tests.sdk.factory import DAY, make_pipeline_dir
from tests.servers.fakesnow_server import FakeSnowServer

HOUR = timedelta(hours=1)


def record(i: int, minute: int, prefix: str = "T") -> dict[str, Any]:
    ts = (DAY + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    return {"test_id": f"{prefix}{i:04d}", "age": 20, "result": "negative", "reported_at": ts}


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two windows loaded; then three late records for the second one, and for the first one a
    late record as another is deleted (the same count, other records); a settle reloads both."""
    folder = make_pipeline_dir(tmp_path_factory.mktemp("late") / "lab", [record(i, i * 10) for i in range(12)],
                               query_window__settle_horizon="1d")
    with Pipeline.load(folder) as pipeline:
        runner = pipeline.runner(heartbeat_seconds=0.2)
        for window in pipeline.grid.windows_between(DAY, DAY + 2 * HOUR):
            assert runner.run(window).pipeline_status is RunStatus.SUCCESS
        data = folder / "data" / "records.jsonl"
        kept = [line for line in data.read_text(encoding="utf-8").splitlines(keepends=True) if '"T0002"' not in line]
        late = [record(200, 45, prefix="L")] + [record(100 + i, 61 + i, prefix="L") for i in range(3)]
        data.write_text("".join(kept) + "".join(json.dumps(r) + "\n" for r in late), encoding="utf-8")
        outcome = settle(pipeline, now=DAY + 3 * HOUR)
    assert [r.pipeline_status for r in outcome.records] == [RunStatus.SUCCESS] * 2
    return folder


def report(folder: Path, source: Any = None) -> metrics.Metrics:
    with Pipeline.load(folder) as pipeline:
        return metrics.compute(source or pipeline.drive_store(), ["lab"], since=DAY - HOUR, now=DAY + 3 * HOUR)


class TestReloadsInTheReport:
    def test_the_report_lists_the_reload_with_both_counts_and_the_reason(self, reloaded: Path) -> None:
        reload, _ = report(reloaded).reloads  # newest first
        assert reload.run_id == "lab_20251115T010000Z_run2" and reload.status == "SUCCESS"
        assert (reload.previous_run, reload.previous_count, reload.source_count) == ("lab_20251115T010000Z_run1", 6, 9)
        assert reload.reason == "source count 6 -> 9 since the run of lab_20251115T010000Z_run1"
        assert reload.window_start == DAY + HOUR and reload.window_end == DAY + 2 * HOUR

    def test_a_window_whose_records_changed_with_its_count_is_listed_with_its_reason(self, reloaded: Path) -> None:
        _, reload = report(reloaded).reloads
        assert reload.run_id == "lab_20251115T000000Z_run2" and reload.status == "SUCCESS"
        assert (reload.previous_run, reload.previous_count, reload.source_count) == ("lab_20251115T000000Z_run1", 6, 6)
        assert reload.reason == ("source count unchanged (6) but the window's records changed since the run of "
                                 "lab_20251115T000000Z_run1 (fingerprint)")
        with Pipeline.load(reloaded) as pipeline:
            status = drift_lines(pipeline, now=DAY + 3 * HOUR)
        assert "reloaded after their source records changed: 2 run(s), newest first" in status

    def test_a_rerun_without_drift_is_not_a_reload(self, reloaded: Path) -> None:
        with Pipeline.load(reloaded) as pipeline:
            rerun = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())
        assert rerun.phases["source_count"].phase_specific_details["reload"]["drift"] == 0
        assert "records_changed" not in rerun.phases["source_count"].phase_specific_details["reload"]
        assert [r.run_id for r in report(reloaded).reloads] == ["lab_20251115T010000Z_run2", "lab_20251115T000000Z_run2"]

    def test_snowflake_sql_reads_the_same_reloads(self, reloaded: Path, fakesnow_server: FakeSnowServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        """The drive rows written by the shipped Snowflake store, the report read through its own SQL."""
        for key, value in ENV.items():
            monkeypatch.setenv(key, value)
        warehouse = make_warehouse(fakesnow_server, f"L_{uuid.uuid4().hex[:12].upper()}", table="pipeline_execution_drive")
        try:
            store = warehouse.drive_store(TableRef(name="pipeline_execution_drive"))
            assert isinstance(store, SnowflakeDriveStore)
            with Pipeline.load(reloaded) as pipeline:
                records = pipeline.drive_store().history("lab")
            for run in reversed(records):
                store.insert(run)
            snow = report(reloaded, store).reloads
        finally:
            warehouse.close()
        assert snow == report(reloaded).reloads
