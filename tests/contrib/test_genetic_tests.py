"""genetic_tests: the registered pipeline, Elasticsearch emulator -> Snowflake (fakesnow).

Two hourly windows run once for the module; the tests then look at what they left in the
target, the rejects table and the drive table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from drivetrain import Pipeline, RunRecord, RunStatus
from tests.emulators.elasticsearch import EsEmulator
from tests.servers.fakesnow_server import FakeSnowServer

from .conftest import archive_override, new_databases, sf_rows, snowflake_overrides
from .datasets import (
    GENETIC_INDEX,
    GENETIC_MAPPING,
    PER_WINDOW,
    WINDOWS,
    genetic_documents,
    genetic_expected,
)

ES_USER, ES_PASSWORD = "genetics_reader", "es-Pa55word-test"


@attrs.frozen
class Loaded:
    """What the module's runs left behind."""

    records: list[RunRecord]
    docs: list[dict[str, Any]]
    stage_db: str
    target_db: str
    history: list[RunRecord]
    server: FakeSnowServer

    def rows(self, database: str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return sf_rows(self.server, database, sql, params)


def overrides(es: EsEmulator, server: FakeSnowServer, stage_db: str, target_db: str, archive: Path) -> dict[str, Any]:
    return {"source_system.endpoint": es.url, **snowflake_overrides(server, stage_db, target_db), **archive_override(archive)}


@pytest.fixture(scope="module")
def loaded(es_server: EsEmulator, fakesnow_server: FakeSnowServer, warehouse_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    es_server.reset()
    docs = genetic_documents()
    es_server.add_documents(GENETIC_INDEX, docs, mapping=GENETIC_MAPPING)
    es_server.require_auth(ES_USER, ES_PASSWORD)
    stage_db, target_db = new_databases(fakesnow_server)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENETIC_TESTS_ES_USER", ES_USER)
        patch.setenv("GENETIC_TESTS_ES_PASSWORD", ES_PASSWORD)
        changes = overrides(es_server, fakesnow_server, stage_db, target_db, tmp_path_factory.mktemp("archive"))
        with Pipeline.load("genetic_tests", overrides=changes) as pipeline:
            runner = pipeline.runner(heartbeat_seconds=0.5)
            records = [runner.run(pipeline.grid.window_starting(start)) for start, _ in WINDOWS]
            history = pipeline.drive_store().history("genetic_tests")
    yield Loaded(records, docs, stage_db, target_db, history, fakesnow_server)
    es_server.reset()


def target(loaded: Loaded, start: Any, end: Any) -> dict[str, dict[str, Any]]:
    rows = loaded.rows(
        loaded.target_db,
        'SELECT "test_id", "gene", "classification", "sample_type", "performing_lab", "sequencing_instrument", '
        '"mean_coverage", "turnaround_hours", "age_group" FROM PROD.GENETIC_TESTS '
        'WHERE "reported_at" >= ? AND "reported_at" < ? ORDER BY "test_id"', [start, end],
    )
    names = ["gene", "classification", "sample_type", "performing_lab", "sequencing_instrument", "mean_coverage",
             "turnaround_hours", "age_group"]
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}


class TestRuns:
    def test_both_windows_succeed(self, loaded: Loaded) -> None:
        failures = {r.pipeline_id: (r.phase_failed, r.phases[r.phase_failed].error_message) for r in loaded.records if r.phase_failed}
        assert [r.pipeline_status for r in loaded.records] == [RunStatus.SUCCESS, RunStatus.SUCCESS], failures

    def test_the_registered_pipeline_class_and_transfer_ran(self, loaded: Loaded) -> None:
        details = loaded.records[0].phases["stage_to_target_transfer"].phase_specific_details
        assert details["method"] == "push-down SQL"
        assert "turnaround_hours" in details["transformations_applied"]
        assert "deduplicated on test_id" in details["transformations_applied"]


class TestTarget:
    @pytest.mark.parametrize("index", range(len(WINDOWS)))
    def test_each_window_holds_every_valid_report_once_with_the_derived_columns(self, loaded: Loaded, index: int) -> None:
        start, end = WINDOWS[index]
        got = target(loaded, start, end)
        want = genetic_expected(loaded.docs, start, end)
        assert set(got) == set(want)
        for test_id, row in want.items():
            actual = dict(got[test_id])
            actual["mean_coverage"] = round(float(actual["mean_coverage"]), 1)
            actual["turnaround_hours"] = float(actual["turnaround_hours"])
            assert actual == row, test_id

    def test_a_re_sent_report_keeps_its_later_classification(self, loaded: Loaded) -> None:
        start, end = WINDOWS[0]
        amended = [row for row in target(loaded, start, end).values() if row["classification"].startswith("amended")]
        assert len(amended) == 1

    def test_genes_are_normalised_to_upper_case(self, loaded: Loaded) -> None:
        start, end = WINDOWS[0]
        genes = {row["gene"] for row in target(loaded, start, end).values()}
        assert genes and all(g == g.strip().upper() for g in genes)


class TestRejects:
    def test_each_invalid_document_is_in_the_rejects_table_with_its_reason(self, loaded: Loaded) -> None:
        rows = loaded.rows(loaded.stage_db, "SELECT \"reason\" FROM STAGING.STG_GENETIC_TESTS__REJECTS ORDER BY 1")
        reasons = [r[0] for r in rows]
        assert len(reasons) == 3 * len(WINDOWS)
        assert sum("patient_age: above the maximum 120" in r for r in reasons) == len(WINDOWS)
        assert sum("gene: required" in r for r in reasons) == len(WINDOWS)
        assert sum("holds 2 values" in r for r in reasons) == len(WINDOWS)


class TestDriveTable:
    def test_one_successful_row_per_window(self, loaded: Loaded) -> None:
        assert sorted(r.pipeline_id for r in loaded.history) == [
            "genetic_tests_20251115T100000Z_run1", "genetic_tests_20251115T110000Z_run1"]
        assert {r.pipeline_status for r in loaded.history} == {RunStatus.SUCCESS}

    def test_the_audit_accounts_for_every_document_within_the_tolerances(self, loaded: Loaded) -> None:
        for record in loaded.records:
            audit = record.phases["audit"].phase_specific_details
            assert (audit["source_count"], audit["stage_count"], audit["target_count"]) == (PER_WINDOW + 1, PER_WINDOW - 2, PER_WINDOW - 3)
            assert audit["validation_status"] == "PASSED"

    def test_the_drive_rows_are_in_the_stage_database_as_snowflake_variants(self, loaded: Loaded) -> None:
        rows = loaded.rows(loaded.stage_db,
                       "SELECT PIPELINE_ID, PIPELINE_STATUS, AUDIT_PHASE FROM STAGING.PIPELINE_EXECUTION_DRIVE ORDER BY 1")
        assert [(r[0], r[1]) for r in rows] == [("genetic_tests_20251115T100000Z_run1", "SUCCESS"),
                                                ("genetic_tests_20251115T110000Z_run1", "SUCCESS")]
        assert json.loads(rows[0][2])["status"] == "COMPLETED"
