"""The publish gate on Snowflake (the real connector on fakesnow): same promise as on DuckDB."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from pathlib import Path
from typing import Any

from drivetrain import Pipeline, RunStatus
from drivetrain.record import PhaseStatus, RunRecord
from tests.connectors.snowflake.conftest import database, sf_env, sf_rows  # noqa: F401 - fixtures
from tests.connectors.snowflake.scenario import (
    make_snowflake_pipeline,
    register_snowflake,
    target_rows,
)
from tests.sdk.factory import DAY, expected_target, make_rows

from .conftest import HOUR, changed


def run(folder: Path) -> RunRecord:
    register_snowflake()
    with Pipeline.load(folder) as pipeline:
        return pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(DAY))


def reconfigure(folder: Path, rows: list[dict[str, Any]] | None = None, tolerance: float | None = None) -> None:
    if rows is not None:
        (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if tolerance is not None:
        config = json.loads((folder / "config.json").read_text())
        config["phases"]["audit"]["count_tolerances"]["source_to_stage_tolerance_percent"] = tolerance
        (folder / "config.json").write_text(json.dumps(config))


def pairs(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((k, v["result"]) for k, v in expected_target(rows, DAY, DAY + HOUR).items())


def checksum(server: Any, db: str) -> str:
    every = sf_rows(server, db, 'SELECT "test_id", "result", "reported_at", "_drivetrain_pipeline_id" FROM TESTS ORDER BY 1, 4')
    return hashlib.sha256(repr(every).encode()).hexdigest()


def test_a_failed_audit_leaves_the_target_unchanged_and_the_fix_publishes(tmp_path, fakesnow_server, database, sf_env):  # noqa: F811
    rows = make_rows(300, hours=1, seed=9)
    folder = make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database, rows)
    first = run(folder)
    assert first.pipeline_status is RunStatus.SUCCESS
    window = (DAY, DAY + HOUR)
    assert target_rows(fakesnow_server, database, *window) == pairs(rows)
    assert first.phases["publish"].phase_specific_details["rows_published"] == len(pairs(rows))
    before = checksum(fakesnow_server, database)
    new_rows = changed(rows)
    reconfigure(folder, new_rows, tolerance=0.0)

    failed = run(folder)

    assert failed.phase_failed == "audit" and failed.phases["publish"].status is PhaseStatus.PENDING
    assert checksum(fakesnow_server, database) == before
    pending_sql = failed.phases["stage_to_target_transfer"].phase_specific_details["pending_query"]
    pending = sf_rows(fakesnow_server, database, pending_sql.replace("SELECT *", 'SELECT "test_id", "result"', 1) + " ORDER BY 1")
    assert [tuple(r) for r in pending] == pairs(new_rows)

    reconfigure(folder, tolerance=5.0)
    fixed = run(folder)

    assert fixed.pipeline_status is RunStatus.SUCCESS
    assert target_rows(fakesnow_server, database, *window) == pairs(new_rows)
    assert sf_rows(fakesnow_server, database, "SELECT COUNT(*) FROM TESTS__PENDING") == [(0,)]
    total, distinct = sf_rows(fakesnow_server, database, 'SELECT COUNT(*), COUNT(DISTINCT "test_id") FROM TESTS')[0]
    assert total == distinct == len(pairs(new_rows))
    (loaded,) = sf_rows(fakesnow_server, database, 'SELECT DISTINCT "_drivetrain_loaded_at" FROM TESTS WHERE "_drivetrain_pipeline_id" = ?',
                        [fixed.pipeline_id])
    assert loaded[0].replace(tzinfo=UTC) >= fixed.phases["publish"].start_timestamp  # visible then, not at the pending write


def test_merge_with_delete_missing_is_applied_at_publish(tmp_path, fakesnow_server, database, sf_env):  # noqa: F811
    rows = make_rows(120, hours=1, invalid_every=0, duplicates=0, seed=11)
    folder = make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database, rows, target_system__load_strategy="merge",
                                     target_system__merge_keys=["test_id"], target_system__delete_missing=True)
    assert run(folder).pipeline_status is RunStatus.SUCCESS
    before = checksum(fakesnow_server, database)
    kept = [{**r, "result": "updated"} if i == 0 else r for i, r in enumerate(rows[10:])]
    reconfigure(folder, kept + [{**rows[0], "age": "n/a"}], tolerance=0.0)
    assert run(folder).phase_failed == "audit"
    assert checksum(fakesnow_server, database) == before
    reconfigure(folder, tolerance=5.0)
    fixed = run(folder)
    assert fixed.pipeline_status is RunStatus.SUCCESS
    assert target_rows(fakesnow_server, database, DAY, DAY + HOUR) == pairs(kept)
    assert fixed.phases["publish"].phase_specific_details["rows_removed_missing_at_source"] == 10
    (loaded,) = sf_rows(fakesnow_server, database, 'SELECT DISTINCT "_drivetrain_loaded_at" FROM TESTS WHERE "_drivetrain_pipeline_id" = ?',
                        [fixed.pipeline_id])  # bound inside the MERGE's source
    assert loaded[0].replace(tzinfo=UTC) >= fixed.phases["publish"].start_timestamp


def test_a_publish_that_fails_inside_its_transaction_is_resumed_at_publish_only(tmp_path, fakesnow_server, database, sf_env):  # noqa: F811
    from drivetrain.testing import FaultPlugin

    rows = make_rows(100, hours=1, seed=13)
    folder = make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database, rows)
    assert run(folder).pipeline_status is RunStatus.SUCCESS
    before = checksum(fakesnow_server, database)
    new_rows = changed(rows)
    reconfigure(folder, new_rows)
    with FaultPlugin(fail={"publish": 1}).installed():
        failed = run(folder)
    assert failed.phase_failed == "publish"
    assert checksum(fakesnow_server, database) == before  # the publish transaction rolled back whole
    resumed = run(folder)
    assert resumed.pipeline_status is RunStatus.SUCCESS
    for name in ("stage_to_target_transfer", "target_count", "audit"):
        assert resumed.phases[name].carried_from == failed.pipeline_id, name
    assert target_rows(fakesnow_server, database, DAY, DAY + HOUR) == pairs(new_rows)
    # written by the failed run, visible since the resumed one's publish: loaded then
    (loaded,) = sf_rows(fakesnow_server, database, 'SELECT DISTINCT "_drivetrain_loaded_at" FROM TESTS WHERE "_drivetrain_pipeline_id" = ?',
                        [failed.pipeline_id])
    assert loaded[0].replace(tzinfo=UTC) >= resumed.phases["publish"].start_timestamp
