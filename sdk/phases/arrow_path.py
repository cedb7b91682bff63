"""Stage to target through Python: the window streamed through a transfer's ``transform()``.

Without keys the transformed rows replace the target's window directly. With ``dedup_keys``
or ``load_strategy: merge`` they go to a scratch table beside the target first
(:func:`scratch_table`), and the target warehouse's own push-down applies the keys from there,
with the same SQL as the push-down path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from drivetrain._lazy import lazy_module
from drivetrain.errors import ConnectorError, PermanentError
from drivetrain.tables import Stage, Target
from drivetrain.warehouse import TableRef

from .lineage import ROW_COLUMN, lineage_values, load_key, with_lineage

if TYPE_CHECKING:
    import pyarrow as pa

    from .base import PhaseContext
else:  # a window with nothing to load imports no pyarrow
    pa = lazy_module("pyarrow")


class Transforming(Protocol):
    """What the Arrow path needs of its transfer (StageToTargetTransfer), without importing it."""

    @property
    def batch_size(self) -> int: ...

    def transform(self, batch: pa.RecordBatch, ctx: PhaseContext) -> pa.RecordBatch: ...

#: The reject reason for rows transform() did not return.
REMOVED_BY_TRANSFORM = "removed by transform()"
#: Suffix of the table beside the target that keyed Arrow transfers load first.
SCRATCH_SUFFIX = "__drivetrain_transfer"


def scratch_table(target: TableRef) -> TableRef:
    """``<target>__drivetrain_transfer``: same database and schema, same window column.

    It only ever holds windows in flight: each keyed Arrow transfer replaces its window there,
    pushes it down, then empties it. It may be dropped whenever no transfer runs.
    """
    return target.sibling(SCRATCH_SUFFIX, query_field=target.query_field)


def empty_scratch_window(ctx: PhaseContext, target: Target, scratch: TableRef) -> None:
    """Delete the pushed-down window from the scratch table.

    Fenced like every commit: a run that lost its lease must not empty the window the new
    holder has just loaded. Failing here changes no result (the next load of the window
    replaces what is left), so only a lost lease is raised.
    """
    try:
        with target.load(ctx.window, load_key(ctx)) as load:
            load.commit([scratch], fence=ctx.fence)
    except ConnectorError as exc:
        ctx.log.warning("%s keeps this window's rows until its next load: %s", scratch, exc)


class TransformedWindow:
    """The stage's window streamed through a transfer's transform(), checked and counted.

    Iterating yields batches ready to load: transform()'s columns (drivetrain's own removed),
    the lineage columns and, with ``with_row``, ``_drivetrain_row`` (the stage's number of the
    row when transform() kept that column, else the order transform() returned rows in).
    ``required`` maps each column the output must hold to the config key that asks for it.
    """

    def __init__(self, phase: Transforming, ctx: PhaseContext, stage: Stage, query_field: str,
                 required: Mapping[str, str], *, with_row: bool) -> None:
        self.phase = phase
        self.ctx = ctx
        self.stage = stage
        self.query_field = query_field
        self.required = dict(required)
        self.with_row = with_row
        self.lineage = lineage_values(ctx)
        self.rows_read = 0
        """Stage rows read so far."""
        self.rows_out = 0
        """Rows transform() returned so far."""
        self._fields: dict[str, pa.Field] = {}

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        ctx = self.ctx
        for batch in self.stage.read(ctx.window, self.phase.batch_size):
            ctx.check_cancelled()
            self.rows_read += batch.num_rows
            given = [n for n in batch.schema.names if n == ROW_COLUMN or not n.startswith("_drivetrain_")]
            out = self.phase.transform(batch.select(given), ctx)
            ctx.progress(batch.num_rows)
            self._check_columns(out)
            stage_rows = out.column(ROW_COLUMN) if ROW_COLUMN in out.schema.names else None
            out = out.select([n for n in out.schema.names if not n.startswith("_drivetrain_")])
            if not out.num_rows:
                continue
            self._check_window(out)
            loaded = with_lineage(out, self.lineage, first_row=self.rows_out if self.with_row else None)
            if self.with_row and stage_rows is not None:
                loaded = loaded.set_column(loaded.num_columns - 1, ROW_COLUMN, self._row_numbers(stage_rows))
            for field in loaded.schema:
                known = self._fields.get(field.name)
                if known is None or pa.types.is_null(known.type):
                    self._fields[field.name] = field
            self.rows_out += out.num_rows
            yield loaded

    def columns(self) -> list[str]:
        """transform()'s output columns, in the order first seen."""
        return [n for n in self._fields if not n.startswith("_drivetrain_")]

    def target_schema(self) -> pa.Schema:
        """transform()'s columns and the lineage columns: what the target must hold."""
        return pa.schema([f for n, f in self._fields.items() if n != ROW_COLUMN])

    def _who(self) -> str:
        return f"{type(self.phase).__name__}.transform()"

    def _check_columns(self, out: pa.RecordBatch) -> None:
        names = out.schema.names
        for column, key in self.required.items():
            if column in names:
                continue
            returned = ", ".join(repr(n) for n in names if not n.startswith("_drivetrain_")) or "nothing"
            if key == "query_field":
                what = "the target's window column"
                fix = "keep it in transform()'s output, or set target_system.query_field to the column holding each row's time"
            else:
                what = "a key in target_system." + key
                fix = f"keep or add it in transform(), or list in target_system.{key} columns transform() returns"
            raise self.ctx.config.target.error(key, f"{self._who()} returns no column {column!r}, {what} (it returns {returned}); {fix}")

    def _check_window(self, out: pa.RecordBatch) -> None:
        """A row moved out of the window would never be replaced by a later run: refuse it."""
        import pyarrow.compute as pc

        column = out.column(self.query_field)
        if not pa.types.is_timestamp(column.type):
            return  # compared by the warehouse; the push-down counts what falls outside
        utc = pa.timestamp("us", tz="UTC")
        values = column.cast(utc, safe=False)  # a naive time is read as UTC, like the warehouse sessions do
        start, end = pa.scalar(self.ctx.window.start, type=utc), pa.scalar(self.ctx.window.end, type=utc)
        inside = pc.sum(pc.fill_null(pc.and_(pc.greater_equal(values, start), pc.less(values, end)), False)).as_py() or 0
        if inside < out.num_rows:
            raise PermanentError(
                f"{self._who()} returned {out.num_rows - inside} row(s) whose {self.query_field!r} is empty or outside "
                f"the window {self.ctx.window}: the transfer replaces one window at a time, so those rows could never be "
                f"replaced or removed; leave {self.query_field!r} as the stage holds it (put a converted time in a new column)"
            )

    def _row_numbers(self, rows: pa.Array | pa.ChunkedArray) -> pa.Array:
        if rows.null_count:
            raise PermanentError(
                f"{self._who()} returned {rows.null_count} row(s) with an empty {ROW_COLUMN!r}: keep the stage's value "
                f"for each row it returns, or drop the column (copies with equal times are then ranked by output order)"
            )
        return rows.cast(pa.int64())
