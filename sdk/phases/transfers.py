"""The two transfers: source to stage (validated), and stage to target (transformed).

Both replace the window atomically, so running either twice leaves the same rows: nothing is
loaded twice, and a crash part-way leaves the tables as they were before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.phase_names import SOURCE_COUNT
from drivetrain.readahead import ReadAhead
from drivetrain.record import PhaseState
from drivetrain.results import TransferResult
from drivetrain.validation import REJECTS_SCHEMA, ColumnSpec, RecordValidator, raw_json
from drivetrain.warehouse import LINEAGE_COLUMNS, PushDown, quote_expr

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
    """Move the window from stage to target: SQL inside the warehouse, or Arrow via transform()."""

    name = "stage_to_target_transfer"

    def select_columns(self, ctx: PhaseContext, stage_columns: Sequence[str]) -> list[tuple[str, str]]:
        """(target column, SQL expression over stage columns) for the push-down.

        Default: every stage column, renamed by ``target_system.rename``. Override to compute
        derived columns in SQL.
        """
        rename = dict(ctx.config.target.get("rename") or {})
        return [(rename.get(c, c), quote_expr(c)) for c in stage_columns if not c.startswith("_drivetrain_")]

    def transform(self, batch: pa.RecordBatch, ctx: PhaseContext) -> pa.RecordBatch:
        """Arrow transformation, used instead of the push-down when a subclass overrides it."""
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
        tcfg = ctx.config.target
        if self.uses_arrow_path(ctx):
            return self._arrow(ctx, stage, target)
        spec = PushDown(
            stage=stage.ref,
            target=target.ref,
            columns=self.select_columns(ctx, list(stage.columns())),
            dedup_keys=tuple(tcfg.get("dedup_keys") or ()),
            order_by=(stage.ref.query_field, ROW_COLUMN),
            merge_keys=tuple(tcfg.get("merge_keys") or ()) if tcfg.get("load_strategy") == "merge" else (),
        )
        stats = stage.warehouse.push_down(spec, ctx.window, lineage_values(ctx), fence=ctx.fence)
        ctx.progress(stats.rows_read)
        reason = ("duplicate of another row with the same key, or an older version of a row the target holds newer"
                  if spec.merge_keys else "duplicate of another row with the same key")
        reasons = {reason: stats.rows_dropped} if stats.rows_dropped else {}
        ctx.log.info("stage -> target (SQL): %d read, %d written, %d duplicates dropped", stats.rows_read, stats.rows_written, stats.rows_dropped)
        return TransferResult(
            rows_read=stats.rows_read, rows_written=stats.rows_written, rows_dropped=stats.rows_dropped,
            reject_reasons=reasons,
            details={"stage_count": stats.rows_read, "target_count": stats.rows_written, "method": "push-down SQL",
                     "transformations_applied": self.describe_transformations(ctx)},
        )

    def _arrow(self, ctx: PhaseContext, stage: Any, target: Any) -> TransferResult:
        """Stream the window through transform(). Keys (dedup_keys, merge) are SQL-only: say so."""
        keys = ctx.config.target.get("dedup_keys") or ctx.config.target.get("merge_keys")
        if keys:
            ctx.log.warning(
                "target_system keys %s are applied by the SQL push-down only; this transfer runs "
                "%s.transform(), so remove duplicates there", list(keys), type(self).__name__,
            )
        lineage = lineage_values(ctx)
        read = 0

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal read
            for batch in stage.read(ctx.window):
                ctx.check_cancelled()
                read += batch.num_rows
                keep = [n for n in batch.schema.names if not n.startswith("_drivetrain_")]
                out = self.transform(batch.select(keep), ctx)
                ctx.progress(batch.num_rows)
                if out.num_rows:
                    yield with_lineage(out, lineage)

        with target.warehouse.window_load(ctx.window, f"{ctx.pipeline.name}_{ctx.window.key}") as load:
            for batch in batches():
                load.append(target.ref, batch)
            ctx.check_cancelled()
            counts = load.commit([target.ref], fence=ctx.fence)
        written = counts.get(str(target.ref), 0)
        dropped = read - written
        return TransferResult(
            rows_read=read, rows_written=written, rows_dropped=max(dropped, 0),
            reject_reasons={"removed by transform()": dropped} if dropped > 0 else {},
            details={"stage_count": read, "target_count": written, "method": "arrow",
                     "transformations_applied": self.describe_transformations(ctx)},
        )

    def still_valid(self, ctx: PhaseContext, state: PhaseState) -> str | None:
        expected = state.phase_specific_details.get("rows_written")
        if expected is None or ctx.config.target.get("load_strategy") == "merge":
            return None
        actual = ctx.pipeline.target().count(ctx.window)
        if actual != expected:
            return f"the target holds {actual} rows for the window, not the {expected} the earlier run wrote"
        return None


def _earlier_source_count(ctx: PhaseContext) -> int | None:
    """The source count of the attempt a continuation carries phases from, if it has one."""
    reference = reference_attempt(ctx.previous_attempts)
    if reference is None:
        return None
    count = reference.phases[SOURCE_COUNT].phase_specific_details.get("count")
    return int(count) if count is not None else None


def _top(reasons: Counter[str], n: int = 3) -> str:
    return "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common(n))
