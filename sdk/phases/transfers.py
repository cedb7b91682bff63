"""The two transfers: source to stage (validated), and stage to target (transformed).

Both replace the window atomically, so running either twice leaves the same rows: nothing is
loaded twice, and a crash part-way leaves the tables as they were before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.errors import ConnectorError, PermanentError
from drivetrain.phase_names import SOURCE_COUNT
from drivetrain.readahead import ReadAhead
from drivetrain.record import PhaseState
from drivetrain.results import TransferResult
from drivetrain.tables import Stage, Target
from drivetrain.validation import REJECTS_SCHEMA, ColumnSpec, RecordValidator, raw_json
from drivetrain.warehouse import (
    LINEAGE_COLUMNS,
    PushDown,
    PushDownStats,
    TableRef,
    Warehouse,
    quote_expr,
)

from .base import BasePhase, PhaseContext
from .housekeeping import reference_attempt

#: Stage-only column: the row's position in the extract, so "the later copy wins" is exact.
ROW_COLUMN = "_drivetrain_row"


def lineage_values(ctx: PhaseContext) -> dict[str, Any]:
    """The lineage columns' values for rows this run loads."""
    return {
        "_drivetrain_pipeline_id": ctx.run_id,
        "_drivetrain_window_start": ctx.window.start,
        "_drivetrain_window_end": ctx.window.end,
        "_drivetrain_target_date": ctx.window.target_date,
        "_drivetrain_loaded_at": datetime.now(UTC),
    }


def with_lineage(batch: pa.RecordBatch, lineage: dict[str, Any], first_row: int | None = None) -> pa.RecordBatch:
    """Append the lineage columns; with ``first_row``, also ``_drivetrain_row`` (source order)."""
    types = {
        "_drivetrain_pipeline_id": pa.string(),
        "_drivetrain_window_start": pa.timestamp("us", tz="UTC"),
        "_drivetrain_window_end": pa.timestamp("us", tz="UTC"),
        "_drivetrain_target_date": pa.date32(),
        "_drivetrain_loaded_at": pa.timestamp("us", tz="UTC"),
    }
    arrays = list(batch.columns) + [pa.repeat(pa.scalar(lineage[c], type=types[c]), batch.num_rows) for c in LINEAGE_COLUMNS]
    names = [n for n in batch.schema.names] + list(LINEAGE_COLUMNS)
    if first_row is not None:
        arrays.append(_row_numbers(first_row, batch.num_rows))
        names.append(ROW_COLUMN)
    return pa.RecordBatch.from_arrays(arrays, names=names)


#: 0, 1, 2... grown on demand: row numbers are a slice of it plus an offset, built in C.
_COUNTING = pa.array([], type=pa.int64())


def _row_numbers(first: int, n: int) -> pa.Array:
    """``first, first + 1, ... first + n - 1`` as int64."""
    global _COUNTING
    counting = _COUNTING
    if len(counting) < n:
        counting = _COUNTING = pa.array(range(max(n, 2 * len(counting))), type=pa.int64())
    return pc.add(counting.slice(0, n), pa.scalar(first, type=pa.int64()))


class SourceToStageTransfer(BasePhase):
    """Extract the window from the source, validate each record, load valid rows to stage."""

    name = "source_to_stage_transfer"

    def validator(self, ctx: PhaseContext) -> RecordValidator:
        stage_cfg = ctx.config.stage
        columns = [ColumnSpec(name=c.name, type=c.type, required=c.required, nullable=c.nullable,
                              max_length=c.max_length, min=c.min, max=c.max) for c in stage_cfg.columns]
        return RecordValidator(columns, ctx.config.source.get("query_field"),
                               naive_timezone=ctx.config.source.get("source_timezone", "UTC"))

    def transform(self, batch: pa.RecordBatch, ctx: PhaseContext) -> pa.RecordBatch:
        """Reshape a source batch before validation. Default: unchanged."""
        return batch

    def run(self, ctx: PhaseContext) -> TransferResult:
        pipeline = ctx.pipeline
        stage = pipeline.stage()
        validator = self.validator(ctx)
        lineage = lineage_values(ctx)
        reasons: Counter[str] = Counter()
        read = written = 0
        source = pipeline.source()
        with (stage.warehouse.window_load(ctx.window, f"{pipeline.name}_{ctx.window.key}") as load,
              ReadAhead(lambda: source.extract(ctx.window), name="drivetrain-extract") as extracted):
            for batch in extracted:
                ctx.check_cancelled()
                read += batch.num_rows
                checked = validator.validate(self.transform(batch, ctx))
                if checked.valid.num_rows:
                    load.append(stage.ref, with_lineage(checked.valid, lineage, first_row=written))
                    written += checked.valid.num_rows
                if checked.rejected:
                    reasons.update(checked.reasons)
                    load.append(stage.rejects, self._rejects(ctx, checked.rejected_rows, checked.reasons))
                ctx.progress(batch.num_rows)
            ctx.check_cancelled()
            limit = self.settings.max_rejected_percent
            rejected = sum(reasons.values())
            if limit is not None and read and rejected * 100.0 / read > limit:
                return TransferResult(
                    transfer_completed=False, rows_read=read, rows_written=0, rows_rejected=rejected,
                    reject_reasons=dict(reasons),
                    error_message=f"{rejected} of {read} records ({rejected * 100.0 / read:.2f}%) failed validation, "
                                  f"above max_rejected_percent {limit}; nothing was loaded. Top reasons: {_top(reasons)}",
                )
            counts = load.commit([stage.ref, stage.rejects], fence=ctx.fence)
        committed = counts.get(str(stage.ref), 0)
        ctx.log.info("source -> stage: %d read, %d loaded, %d rejected", read, committed, rejected)
        return TransferResult(rows_read=read, rows_written=committed, rows_rejected=rejected, reject_reasons=dict(reasons))

    def _rejects(self, ctx: PhaseContext, rows: list[dict[str, Any]], reasons: list[str]) -> pa.RecordBatch:
        n = len(rows)
        now = datetime.now(UTC)
        columns = {
            "pipeline_id": [ctx.run_id] * n,
            "pipeline_name": [ctx.pipeline.name] * n,
            "window_start": [ctx.window.start] * n,
            "window_end": [ctx.window.end] * n,
            "target_date": [ctx.window.target_date] * n,
            "reason": reasons,
            "raw_record": raw_json(rows),
            "rejected_at": [now] * n,
        }
        return pa.RecordBatch.from_pydict(columns, schema=REJECTS_SCHEMA)

    def still_valid(self, ctx: PhaseContext, state: PhaseState) -> str | None:
        expected = state.phase_specific_details.get("rows_written")
        if expected is None:
            return None
        read, counted = state.phase_specific_details.get("rows_read"), _earlier_source_count(ctx)
        if read is not None and counted is not None and read != counted:
            # a stream that ended early (or a source that changed): carrying it would fail the audit forever
            return f"the earlier transfer read {read} records where the source count found {counted}"
        actual = ctx.pipeline.stage().count(ctx.window)
        if actual != expected:
            return f"the stage holds {actual} rows for the window, not the {expected} the earlier run loaded"
        return None


class StageToTargetTransfer(BasePhase):
    """Move the window from stage to target: SQL inside the warehouse, or Arrow via transform().

    On the Arrow path (``transform()`` overridden, or stage and target in different warehouses)
    the rows pass through Python. Without keys they are loaded straight into the target's
    window. With ``dedup_keys`` or ``load_strategy: merge`` they are loaded into a scratch table
    beside the target (:func:`scratch_table`), and the target warehouse's own push-down takes
    them from there, so both paths apply the keys with the same SQL.
    """

    name = "stage_to_target_transfer"
    #: Stage rows per batch handed to transform() on the Arrow path.
    batch_size: ClassVar[int] = 50_000

    def select_columns(self, ctx: PhaseContext, stage_columns: Sequence[str]) -> list[tuple[str, str]]:
        """(target column, SQL expression over stage columns) for the push-down.

        Default: every stage column, renamed by ``target_system.rename``. Override to compute
        derived columns in SQL.
        """
        rename = dict(ctx.config.target.get("rename") or {})
        return [(rename.get(c, c), quote_expr(c)) for c in stage_columns if not c.startswith("_drivetrain_")]

    def transform(self, batch: pa.RecordBatch, ctx: PhaseContext) -> pa.RecordBatch:
        """Arrow transformation, used instead of the push-down when a subclass overrides it.

        ``batch`` holds the stage's columns and ``_drivetrain_row``, each record's position in
        the extract. Return the target's columns: they must include the target's query field
        and every dedup or merge key. Keep ``_drivetrain_row`` (filters and column changes do)
        and copies of a key with equal query-field values are decided by source order, as in
        the SQL push-down; without it, the copy returned later wins. It never reaches the target.
        """
        return batch

    def uses_arrow_path(self, ctx: PhaseContext) -> bool:
        overridden = type(self).transform is not StageToTargetTransfer.transform
        return overridden or not ctx.pipeline.stage().warehouse.same_warehouse(ctx.pipeline.target().warehouse)

    def describe_transformations(self, ctx: PhaseContext) -> str:
        target = ctx.config.target
        parts = []
        if target.get("rename"):
            parts.append(f"renamed {len(target.get('rename'))} column(s)")
        if target.get("dedup_keys"):
            parts.append(f"deduplicated on {', '.join(target.get('dedup_keys'))}")
        if target.get("load_strategy") == "merge":
            parts.append(f"merged on {', '.join(target.get('merge_keys'))}")
        if type(self).transform is not StageToTargetTransfer.transform:
            parts.append(f"{type(self).__name__}.transform")
        return "; ".join(parts) or "copied unchanged"

    def run(self, ctx: PhaseContext) -> TransferResult:
        stage, target = ctx.pipeline.stage(), ctx.pipeline.target()
        if self.uses_arrow_path(ctx):
            return self._arrow(ctx, stage, target)
        dedup_keys, merge_keys = target_keys(ctx)
        spec = PushDown(
            stage=stage.ref,
            target=target.ref,
            columns=self.select_columns(ctx, list(stage.columns())),
            dedup_keys=dedup_keys,
            order_by=(stage.ref.query_field, ROW_COLUMN),
            merge_keys=merge_keys,
        )
        stats = stage.warehouse.push_down(spec, ctx.window, lineage_values(ctx), fence=ctx.fence)
        ctx.progress(stats.rows_read)
        reasons = {key_drop_reason(spec): stats.rows_dropped} if stats.rows_dropped else {}
        ctx.log.info("stage -> target (SQL): %d read, %d written, %d duplicates dropped", stats.rows_read, stats.rows_written, stats.rows_dropped)
        return TransferResult(
            rows_read=stats.rows_read, rows_written=stats.rows_written, rows_dropped=stats.rows_dropped,
            reject_reasons=reasons,
            details={"stage_count": stats.rows_read, "target_count": stats.rows_written, "method": "push-down SQL",
                     "transformations_applied": self.describe_transformations(ctx)},
        )

    def _arrow(self, ctx: PhaseContext, stage: Stage, target: Target) -> TransferResult:
        """Stream the window through transform(); keys are applied in the target warehouse."""
        dedup_keys, merge_keys = target_keys(ctx)
        required = {target.ref.query_field or "": "query_field"}
        required.update({k: "dedup_keys" for k in dedup_keys if k not in required})
        required.update({k: "merge_keys" for k in merge_keys if k not in required})
        keyed = bool(dedup_keys or merge_keys)
        stream = TransformedWindow(self, ctx, stage, target.ref.query_field or "", required, with_row=keyed)
        if not keyed:
            with target.warehouse.window_load(ctx.window, _load_key(ctx)) as load:
                for batch in stream:
                    load.append(target.ref, batch)
                ctx.check_cancelled()
                written = load.commit([target.ref], fence=ctx.fence).get(str(target.ref), 0)
            return self._arrow_result(ctx, stream, written, {}, {"method": "arrow"})
        spec = PushDown(stage=scratch_table(target.ref), target=target.ref, columns=(), dedup_keys=dedup_keys,
                        order_by=(target.ref.query_field or "", ROW_COLUMN), merge_keys=merge_keys)
        return self._arrow_keyed(ctx, stream, target, spec)

    def _arrow_keyed(self, ctx: PhaseContext, stream: TransformedWindow, target: Target, spec: PushDown) -> TransferResult:
        """Transformed rows -> scratch table (committed), then push-down scratch -> target.

        Each step is one transaction of the target warehouse. A crash after the scratch load
        leaves the target as it was; the next run loads the scratch window again (a load
        replaces the window) before pushing it down, so it never pushes another run's rows.
        """
        wh, scratch = target.warehouse, spec.stage
        with wh.window_load(ctx.window, _load_key(ctx)) as load:
            for batch in stream:
                load.append(scratch, batch)
            ctx.check_cancelled()
            load.commit([scratch], fence=ctx.fence)  # also empties a window a crashed run left behind
        if not stream.rows_out:
            # nothing to push down: a replaced window ends empty, a merge changes nothing
            if spec.merge_keys:
                written = wh.count_window(target.ref, ctx.window)
            else:
                with wh.window_load(ctx.window, _load_key(ctx)) as load:
                    load.commit([target.ref], fence=ctx.fence)
                written = 0
            stats = PushDownStats(rows_read=0, rows_written=written, rows_dropped=0)
        else:
            ctx.check_cancelled()
            wh.ensure_table(target.ref, stream.target_schema())  # a column transform() added reaches the target
            spec = attrs.evolve(spec, columns=[(c, quote_expr(c)) for c in stream.columns()])
            stats = wh.push_down(spec, ctx.window, stream.lineage, fence=ctx.fence)
            _empty_scratch_window(ctx, wh, scratch)
        reasons: dict[str, int] = {}
        if stats.rows_dropped:
            reasons[key_drop_reason(spec)] = stats.rows_dropped
        outside = stream.rows_out - stats.rows_read  # only when the query field is not a timestamp any more
        if outside > 0:
            reasons[f"placed outside the window by {type(self).__name__}.transform()"] = outside
        details = {"method": "arrow", "keys_applied": f"push-down SQL from {scratch}"}
        return self._arrow_result(ctx, stream, stats.rows_written, reasons, details)

    def _arrow_result(self, ctx: PhaseContext, stream: TransformedWindow, written: int,
                      key_reasons: dict[str, int], details: dict[str, Any]) -> TransferResult:
        """Counts of an Arrow transfer: rows transform() removed and rows the keys dropped, apart."""
        removed = max(stream.rows_read - stream.rows_out, 0)
        reasons = {REMOVED_BY_TRANSFORM: removed} if removed else {}
        reasons.update(key_reasons)
        dropped = sum(reasons.values())
        ctx.log.info("stage -> target (Arrow): %d read, %d removed by transform(), %d dropped by keys, %d written",
                     stream.rows_read, removed, dropped - removed, written)
        return TransferResult(
            rows_read=stream.rows_read, rows_written=written, rows_dropped=dropped, reject_reasons=reasons,
            details={"stage_count": stream.rows_read, "target_count": written, "rows_transformed": stream.rows_out,
                     **details, "transformations_applied": self.describe_transformations(ctx)},
        )

    def still_valid(self, ctx: PhaseContext, state: PhaseState) -> str | None:
        expected = state.phase_specific_details.get("rows_written")
        if expected is None or ctx.config.target.get("load_strategy") == "merge":
            return None
        actual = ctx.pipeline.target().count(ctx.window)
        if actual != expected:
            return f"the target holds {actual} rows for the window, not the {expected} the earlier run wrote"
        return None


#: The reject reason for rows transform() did not return.
REMOVED_BY_TRANSFORM = "removed by transform()"
#: Suffix of the table beside the target that keyed Arrow transfers load first.
SCRATCH_SUFFIX = "__drivetrain_transfer"


def target_keys(ctx: PhaseContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(dedup_keys, merge_keys) from ``target_system``; merge keys only for ``load_strategy: merge``."""
    target = ctx.config.target
    dedup = tuple(target.get("dedup_keys") or ())
    merge = tuple(target.get("merge_keys") or ()) if target.get("load_strategy") == "merge" else ()
    return dedup, merge


def key_drop_reason(spec: PushDown) -> str:
    """Why a push-down with keys selected fewer rows than it read."""
    if spec.merge_keys:
        return "duplicate of another row with the same key, or an older version of a row the target holds newer"
    return "duplicate of another row with the same key"


def scratch_table(target: TableRef) -> TableRef:
    """``<target>__drivetrain_transfer``: same database and schema, same window column.

    It only ever holds windows in flight: each keyed Arrow transfer replaces its window there,
    pushes it down, then empties it. It may be dropped whenever no transfer runs.
    """
    return target.sibling(SCRATCH_SUFFIX, query_field=target.query_field)


def _load_key(ctx: PhaseContext) -> str:
    return f"{ctx.pipeline.name}_{ctx.window.key}"


def _empty_scratch_window(ctx: PhaseContext, wh: Warehouse, scratch: TableRef) -> None:
    """Delete the pushed-down window from the scratch table.

    Fenced like every commit: a run that lost its lease must not empty the window the new
    holder has just loaded. Failing here changes no result (the next load of the window
    replaces what is left), so only a lost lease is raised.
    """
    try:
        with wh.window_load(ctx.window, _load_key(ctx)) as load:
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

    def __init__(self, phase: StageToTargetTransfer, ctx: PhaseContext, stage: Stage, query_field: str,
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


def _earlier_source_count(ctx: PhaseContext) -> int | None:
    """The source count of the attempt a continuation carries phases from, if it has one."""
    reference = reference_attempt(ctx.previous_attempts)
    if reference is None:
        return None
    count = reference.phases[SOURCE_COUNT].phase_specific_details.get("count")
    return int(count) if count is not None else None


def _top(reasons: Counter[str], n: int = 3) -> str:
    return "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common(n))
