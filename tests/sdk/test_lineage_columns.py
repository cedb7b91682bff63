"""The lineage columns a loaded batch gets (drivetrain.phases.lineage.with_lineage).

The five lineage arrays are built once per run and sliced for each batch; every batch must
still carry exactly its run's values, whatever the sizes of the batches and however runs
(lineages) alternate in a process.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain.phases.lineage import LINEAGE_CACHE_ROWS, ROW_COLUMN, with_lineage
from drivetrain.sql.names import LINEAGE_COLUMNS

START = datetime(2025, 1, 1, tzinfo=UTC)


def lineage_of(run: int) -> dict[str, object]:
    start = START + timedelta(hours=run)
    values = (f"run_{run}", start, start + timedelta(hours=1), date(2025, 1, 1) + timedelta(days=run), START + timedelta(seconds=run))
    return dict(zip(LINEAGE_COLUMNS, values, strict=True))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from([0, 1, 7, 1000, LINEAGE_CACHE_ROWS, LINEAGE_CACHE_ROWS + 3])),
                min_size=1, max_size=8))
def test_each_batch_carries_its_own_runs_values(batches: list[tuple[int, int]]) -> None:
    first = 0
    for run, n in batches:
        lineage = lineage_of(run)
        out = with_lineage(pa.record_batch({"v": pa.array(range(n), pa.int64())}), lineage, first_row=first)
        assert out.num_rows == n
        assert out.schema.names == ["v", *LINEAGE_COLUMNS, ROW_COLUMN]
        for name in LINEAGE_COLUMNS:
            column = out.column(name)
            assert column.null_count == 0
            assert column.unique().to_pylist() == ([lineage[name]] if n else [])
        assert out.column(ROW_COLUMN).equals(pa.array(range(first, first + n), pa.int64()))
        first += n


def test_the_columns_hold_only_the_batchs_rows_when_written_out() -> None:
    """A slice of a longer array must not carry the rest of it into what is written (IPC, Parquet)."""
    import pyarrow.parquet as pq

    out = with_lineage(pa.record_batch({"v": pa.array([1, 2, 3])}), lineage_of(1))
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_batches([out]), sink)
    back = pq.read_table(pa.BufferReader(sink.getvalue()))
    assert back.num_rows == 3
    assert back.column("_drivetrain_pipeline_id").to_pylist() == ["run_1"] * 3
