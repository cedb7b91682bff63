"""The gate's pending row numbers point into the stage: a stage window changed before publish.

On DuckDB a replaced window's transfer keeps only the numbers of the stage rows publish will copy
(drivetrain.sql.pending_rows). Between the transfer and a resumed publish the stage window can
change under them: loaded again by another run (its numbers start at 0 again, so they coincide),
or cleaned. The next run must then write the numbers again and publish what the stage holds,
never publish nothing, half, or another load's rows under the audited counts; the target keeps
the old window until then. The kill points around the same steps are in test_crash_points.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.phase_names import STAGE_TO_TARGET_TRANSFER
from drivetrain.record import RunRecord
from drivetrain.testing import FaultPlugin
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows, query
from tests.wap.conftest import HOUR, changed, snapshot


def pairs(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted((k, v["result"]) for k, v in expected_target(rows, DAY, DAY + HOUR).items())


def run(folder: Path, *, fail: str | None = None) -> RunRecord:
    with Pipeline.load(folder) as pipeline, FaultPlugin(fail={fail: 1} if fail else {}).installed():
        return pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(DAY))


def refill_stage(folder: Path, run_id: str, *, suffix: str | None) -> None:
    """Load the stage window again as run ``run_id`` (results + ``suffix``), or empty it (None)."""
    with Pipeline.load(folder) as pipeline:
        stage, window = pipeline.stage(), pipeline.grid.window_starting(DAY)
        batches = []
        if suffix is not None:
            table = pa.Table.from_batches(list(stage.read(window)))
            table = table.set_column(table.schema.get_field_index("result"), "result",
                                     pc.binary_join_element_wise(table["result"], pa.scalar(suffix), ""))
            ids = pa.array([run_id] * table.num_rows, type=table.schema.field("_drivetrain_pipeline_id").type)
            table = table.set_column(table.schema.get_field_index("_drivetrain_pipeline_id"), "_drivetrain_pipeline_id", ids)
            batches = table.to_batches()
        stage.replace_window(window, "refill", iter(batches))


@pytest.mark.parametrize("change", ["loaded again", "cleaned"])
def test_a_stage_window_changed_after_the_numbers_were_written_is_transferred_again(tmp_path: Path, change: str) -> None:
    rows = make_rows(300, hours=1, seed=11)
    folder = make_pipeline_dir(tmp_path / "lab", rows)
    assert run(folder).pipeline_status is RunStatus.SUCCESS
    old, new_rows = snapshot(folder)["window"], changed(rows)
    (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new_rows))

    held = run(folder, fail="publish")
    assert held.phase_failed == "publish"
    assert "pending_row_numbers" in held.phases[STAGE_TO_TARGET_TRANSFER].phase_specific_details
    refill_stage(folder, "lab_someone_else", suffix="-v3" if change == "loaded again" else None)
    assert snapshot(folder)["window"] == old  # nothing published yet

    resumed = run(folder)

    assert resumed.pipeline_status is RunStatus.SUCCESS, resumed.phases[resumed.phase_failed or "audit"].error_message
    assert resumed.phases[STAGE_TO_TARGET_TRANSFER].carried_from is None  # the numbers were written again
    expected = [(k, f"{v}-v3") for k, v in pairs(new_rows)] if change == "loaded again" else pairs(new_rows)
    assert snapshot(folder)["window"] == expected
    total, distinct = query(folder, "SELECT count(*), count(DISTINCT test_id) FROM tests")[0]
    assert total == distinct  # 0 twice
    assert resumed.phases["publish"].phase_specific_details["rows_published"] == len(expected)  # 0 lost
