"""A source-to-stage transfer starts its source before it needs the warehouse.

The source connects and runs its query (for PostgreSQL: about 0.1 s before the first rows)
while the stage's warehouse opens and the stage's tables are looked up and claimed. In
Airflow's shape (one process per phase) the phase's process opens the DuckDB file itself: that
opening no longer comes first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from drivetrain import Pipeline
from drivetrain.record import PhaseStatus
from drivetrain.testing import MemorySource
from drivetrain.window import Window
from tests.connectors.test_duckdb_pool import holder, let_go

from .factory import expected_target, make_pipeline_dir, make_rows, query

TRANSFER = "source_to_stage_transfer"


class Announcing(MemorySource):
    """The memory source, saying when its extract has started reading."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = threading.Event()

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        self.started.set()
        yield from super().extract(window)


def test_the_source_reads_while_another_process_still_holds_the_warehouse_file(tmp_path: Path) -> None:
    """Before, the phase's process opened the warehouse file first: with the file held by another
    process the source did not start until that process let go."""
    rows = make_rows(300, hours=1, invalid_every=0, duplicates=0)
    folder = make_pipeline_dir(tmp_path / "lab", rows)
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().start(pipeline.grid.first())
    for name in record.phases:
        if name == TRANSFER:
            break
        with Pipeline.load(folder) as pipeline:
            pipeline.runner().run_phase(record.pipeline_id, name)
    source = Announcing.from_rows(rows, query_field="reported_at")
    other = holder(folder / "warehouse.duckdb")
    outcome: dict[str, Any] = {}
    try:
        with Pipeline.load(folder) as pipeline:
            pipeline.use(source=source)
            step = threading.Thread(target=lambda: outcome.update(state=pipeline.runner().run_phase(record.pipeline_id, TRANSFER)))
            step.start()
            started = source.started.wait(timeout=30)
            still_held = other.poll() is None
            let_go(other)
            step.join(timeout=120)
    finally:
        if other.poll() is None:
            other.kill()
    assert started and still_held
    state = outcome["state"]
    assert state.status is PhaseStatus.COMPLETED, state.error_message
    window = record.query_window_start_timestamp, record.query_window_end_timestamp
    assert state.phase_specific_details["rows_written"] == len(expected_target(rows, *window)) > 0
    assert query(folder, "SELECT count(*) FROM stg_tests")[0][0] == len(expected_target(rows, *window))
