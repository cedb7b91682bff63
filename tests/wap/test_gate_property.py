"""Property: whatever sequence of passing and failing attempts a window goes through, the target
shows exactly the last version whose audit passed (or nothing), and the pending table exactly
the rows of a failed attempt, until the next attempt."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows, query

from .conftest import HOUR, snapshot


def version(i: int) -> list[dict]:
    """Version ``i`` of the window: its own number of records (so the source count changes) and results."""
    return [{**r, "result": f"{r['result']}-v{i}"} for r in make_rows(60 + i, hours=1, seed=1, duplicates=0)]


def pairs(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted((k, v["result"]) for k, v in expected_target(rows, DAY, DAY + HOUR).items())


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(passes=st.lists(st.booleans(), min_size=1, max_size=4))
def test_the_target_shows_the_last_audited_version_only(tmp_path_factory: pytest.TempPathFactory, passes: list[bool]) -> None:
    folder = make_pipeline_dir(tmp_path_factory.mktemp("prop") / "lab", version(0))
    shown: list[tuple[str, str]] = []
    for i, passing in enumerate(passes, start=1):
        rows = version(i)
        (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        config = json.loads((folder / "config.json").read_text())
        config["phases"]["audit"]["count_tolerances"]["source_to_stage_tolerance_percent"] = 5.0 if passing else 0.0
        (folder / "config.json").write_text(json.dumps(config))
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
        assert (record.pipeline_status is RunStatus.SUCCESS) is passing, record.phase_failed
        if passing:
            shown = pairs(rows)
        assert snapshot(folder)["window"] == shown
        sql = record.phases["stage_to_target_transfer"].phase_specific_details["pending_query"]  # as show prints it
        pending = query(folder, sql.replace("SELECT *", "SELECT test_id, result", 1) + " ORDER BY test_id")
        assert pending == ([] if passing else pairs(rows))
