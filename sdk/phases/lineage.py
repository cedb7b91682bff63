"""What every loaded row carries besides its own columns: lineage, and its place in the extract.

Lineage columns say which run loaded a row, for which window and when. The stage also keeps
``_drivetrain_row``, each row's position in the source's extract, so that of two copies of a
key with equal query-field values the one the source sent later wins, whatever order the
warehouse later reads them in.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from drivetrain._lazy import lazy_module
from drivetrain.sql.names import LINEAGE, LINEAGE_COLUMNS
from drivetrain.sql.session import utc_now

if TYPE_CHECKING:
    import pyarrow as pa

    from .base import PhaseContext
else:  # a window with nothing to load imports no pyarrow
    pa = lazy_module("pyarrow")


@functools.cache
def _arrow(kind: str) -> pa.DataType:
    """Arrow type of each logical type the lineage columns use (the columns: drivetrain.sql.names.LINEAGE)."""
    return {"text": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32()}[kind]


#: Stage-only column: the row's position in the extract, so "the later copy wins" is exact.
ROW_COLUMN = "_drivetrain_row"


def lineage_values(ctx: PhaseContext) -> dict[str, Any]:
    """The lineage columns' values for rows this run loads."""
    values = (ctx.run_id, ctx.window.start, ctx.window.end, ctx.window.target_date, utc_now())
    return dict(zip(LINEAGE_COLUMNS, values, strict=True))


def with_lineage(batch: pa.RecordBatch, lineage: dict[str, Any], first_row: int | None = None) -> pa.RecordBatch:
    """Append the lineage columns; with ``first_row``, also ``_drivetrain_row`` (source order)."""
    arrays = list(batch.columns) + _lineage_arrays(lineage, batch.num_rows)
    names = [n for n in batch.schema.names] + list(LINEAGE_COLUMNS)
    if first_row is not None:
        arrays.append(_row_numbers(first_row, batch.num_rows))
        names.append(ROW_COLUMN)
    return pa.RecordBatch.from_arrays(arrays, names=names)


#: Batches up to this many rows get slices of one set of lineage arrays (see :func:`_lineage_arrays`).
LINEAGE_CACHE_ROWS = 65_536
#: (lineage values, their arrays of LINEAGE_CACHE_ROWS rows) of the last run that loaded rows.
_LINEAGE: tuple[tuple[Any, ...], list[pa.Array]] | None = None


def _lineage_arrays(lineage: dict[str, Any], n: int) -> list[pa.Array]:
    """The lineage columns for ``n`` rows: slices of arrays built once per run (the same five
    values repeated; building them for each batch was about a third of a transfer's
    main-thread CPU, 400k rows in 10k-row batches)."""
    global _LINEAGE
    if n > LINEAGE_CACHE_ROWS:
        return [pa.repeat(pa.scalar(lineage[c], type=_arrow(kind)), n) for c, kind in LINEAGE]
    key = tuple(lineage[c] for c in LINEAGE_COLUMNS)
    cached = _LINEAGE
    if cached is None or cached[0] != key:
        cached = _LINEAGE = (key, [pa.repeat(pa.scalar(lineage[c], type=_arrow(kind)), LINEAGE_CACHE_ROWS) for c, kind in LINEAGE])
    return [array.slice(0, n) for array in cached[1]]


#: 0, 1, 2... grown on demand: row numbers are a slice of it plus an offset, built in C.
_COUNTING: pa.Array | None = None


def _row_numbers(first: int, n: int) -> pa.Array:
    """``first, first + 1, ... first + n - 1`` as int64."""
    import pyarrow.compute as pc

    global _COUNTING
    counting = _COUNTING
    if counting is None or len(counting) < n:
        counting = _COUNTING = pa.array(range(max(n, 2 * len(counting or ()))), type=pa.int64())
    return pc.add(counting.slice(0, n), pa.scalar(first, type=pa.int64()))


def load_key(ctx: PhaseContext) -> str:
    """The name a window load of this pipeline and window gives its temporary objects."""
    return f"{ctx.pipeline.name}_{ctx.window.key}"
