"""The two transfers: source to stage (validated), and stage to target (transformed).

Both replace the window atomically, so running either twice leaves the same rows: nothing is
loaded twice, and a crash part-way leaves the tables as they were before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from drivetrain._lazy import lazy_module
from drivetrain.phase_names import SOURCE_COUNT
from drivetrain.readahead import ReadAhead
from drivetrain.record import PhaseState
from drivetrain.results import TransferResult
from drivetrain.schema_contract import ContractBreach, ContractGate, SchemaContract
from drivetrain.schema_types import changes_between
from drivetrain.sql import pending_rows
from drivetrain.tables import Stage, Target
from drivetrain.transitions import reference_attempt
from drivetrain.warehouse import PushDown, PushDownStats, quote_expr

from .arrow_path import REMOVED_BY_TRANSFORM, TransformedWindow, empty_scratch_window, scratch_table
from .base import BasePhase, PhaseContext
from .lineage import ROW_COLUMN, lineage_values, load_key, with_lineage
from .publish import gated, pending_details, pending_table
from .shrink import ShrinkGuard

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import SourceToStageConfig, StageToTargetConfig
    from drivetrain.validation import RecordValidator
else:  # a window with nothing to load imports no pyarrow
    pa = lazy_module("pyarrow")

__all__ = ["ROW_COLUMN", "SourceToStageTransfer", "StageToTargetTransfer", "lineage_values", "with_lineage"]


class SourceToStageTransfer(BasePhase):
    """Extract the window from the source, validate each record, load valid rows to stage."""

    name = "source_to_stage_transfer"

    @property
    def settings(self) -> SourceToStageConfig:
        """``phases.source_to_stage_transfer``, typed as this phase's settings."""
        return self.pipeline.config.phases.source_to_stage_transfer

    def validator(self, ctx: PhaseContext) -> RecordValidator:
        from drivetrain.validation import ColumnSpec, RecordValidator

        stage_cfg = ctx.config.stage
        columns = [ColumnSpec(name=c.name, type=c.type, required=c.required, nullable=c.nullable,
                              max_length=c.max_length, min=c.min, max=c.max) for c in stage_cfg.columns]
        return RecordValidator(columns, ctx.config.source.get("query_field"),
                               naive_timezone=ctx.config.source.get("source_timezone", "UTC"),
                               timestamp_unit=ctx.config.source.get("timestamp_unit"))

    def transform(self, batch: pa.RecordBatch, ctx: PhaseContext) -> pa.RecordBatch:
        """Reshape a source batch before validation. Default: unchanged."""
        return batch

    def run(self, ctx: PhaseContext) -> TransferResult:
        pipeline = ctx.pipeline
        stage = pipeline.stage()
        source = pipeline.source()
        # the source connects and starts its query first: meanwhile the stage's warehouse opens,
        # the stage's columns are read and its tables claimed, off the path of the rows
        with ReadAhead(lambda: source.extract(ctx.window), name="drivetrain-extract") as extracted:
            gate = schema_gate(ctx, stage)
            stage.claim()
            return self._load(ctx, stage, gate, extracted)

    def _load(self, ctx: PhaseContext, stage: Stage, gate: ContractGate, extracted: ReadAhead[pa.RecordBatch]) -> TransferResult:
        """Validate the extract's batches and load them into the stage (valid rows) and its
        rejects table, replacing the window in both at the end."""
        pipeline = ctx.pipeline
        validator: RecordValidator | None = None  # made for the first batch: an empty window needs no pyarrow
        lineage = lineage_values(ctx)
        reasons: Counter[str] = Counter()
        read = written = 0
        with stage.load(ctx.window, f"{pipeline.name}_{ctx.window.key}") as load:
            if (counted := ctx.count_of(SOURCE_COUNT)) is not None:
                load.expect(counted)
            for batch in extracted:
                ctx.check_cancelled()
                read += batch.num_rows
                if validator is None:
                    validator = self.validator(ctx)
                checked = validator.validate(self.transform(batch, ctx))
                try:
                    kept = gate.check(checked.valid)
                except ContractBreach as exc:
                    return TransferResult(transfer_completed=False, rows_read=read, rows_written=0,
                                          error_message=str(exc), details=gate.details())
                if kept.batch.num_rows:
                    load.append(stage.ref, with_lineage(kept.batch, lineage, first_row=written))
                    written += kept.batch.num_rows
                rejected_rows, why = [*checked.rejected_rows, *kept.discarded_rows], [*checked.reasons, *kept.reasons]
                if why:
                    reasons.update(why)
                    load.append(stage.rejects, self._rejects(ctx, rejected_rows, why))
                ctx.progress(batch.num_rows)
            ctx.check_cancelled()
            limit = self.settings.max_rejected_percent
            rejected = sum(reasons.values())
            if limit is not None and read and rejected * 100.0 / read > limit:
                return TransferResult(
                    transfer_completed=False, rows_read=read, rows_written=0, rows_rejected=rejected,
                    reject_reasons=dict(reasons), details=gate.details(),
                    error_message=f"{rejected} of {read} records ({rejected * 100.0 / read:.2f}%) failed validation, "
                                  f"above max_rejected_percent {limit}; nothing was loaded. Top reasons: {_top(reasons)}",
                )
            counts = load.commit([stage.ref, stage.rejects], fence=ctx.fence)
        committed = counts.get(str(stage.ref), 0)
        ctx.log.info("source -> stage: %d read, %d loaded, %d rejected", read, committed, rejected)
        changes = changes_between(stage.ref, gate.existing, stage.columns())
        return TransferResult(rows_read=read, rows_written=committed, rows_rejected=rejected, reject_reasons=dict(reasons),
                              details={**gate.details(), **({"schema_changes": changes} if changes else {})})

    def _rejects(self, ctx: PhaseContext, rows: list[dict[str, Any]], reasons: list[str]) -> pa.RecordBatch:
        from drivetrain.validation import REJECTS_SCHEMA, raw_json

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

    @property
    def settings(self) -> StageToTargetConfig:
        """``phases.stage_to_target_transfer``, typed as this phase's settings."""
        return self.pipeline.config.phases.stage_to_target_transfer

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
        return overridden or not ctx.pipeline.stage().same_warehouse(ctx.pipeline.target())

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
        target = target.pending() if gated(ctx.config) else target  # the pending table, unless publish is direct
        guard = ShrinkGuard(ctx)  # before anything touches the target
        if guard.active and (problem := guard.check(stage.count(ctx.window))):
            return shrunk(guard, problem)
        before = target.columns()  # the schema changes this transfer makes are recorded
        if not gated(ctx.config):  # what an earlier after_audit attempt left pending is not the window's any more
            forget_pending(ctx, rows=True, numbers=True)
        if self.uses_arrow_path(ctx):
            if gated(ctx.config):  # whole rows pending this time: no numbers may stand for the window
                forget_pending(ctx, numbers=True)
            return with_schema_changes(with_pending(with_guard(self._arrow(ctx, stage, target), guard), ctx), target, before)
        dedup_keys, merge_keys = target_keys(ctx)
        spec = PushDown(
            stage=stage.ref,
            target=target.ref,
            columns=self.select_columns(ctx, list(stage.columns())),
            dedup_keys=dedup_keys,
            order_by=(stage.ref.query_field or "", ROW_COLUMN),
            merge_keys=merge_keys,
            delete_missing=bool(ctx.config.target.get("delete_missing")),
            version_column=ctx.config.target.get("version_column"),
        )
        numbers = gated(ctx.config) and pending_rows.usable(stage.warehouse, stage.ref, bool(merge_keys))
        if numbers:  # publish copies the kept rows from the stage: only their numbers are written now
            rows = ctx.pipeline.target().pending_rows()
            forget_pending(ctx, rows=True)
            stats = pending_rows.write_row_numbers(stage.warehouse, attrs.evolve(spec, target=rows.ref), ctx.window,
                                                   lineage_values(ctx), rows.ref, ctx.fence)
        else:
            if gated(ctx.config):
                forget_pending(ctx, numbers=True)
            stats = stage.push_down(into_pending(spec, ctx), ctx.window, lineage_values(ctx), fence=ctx.fence)
        ctx.progress(stats.rows_read)
        reasons = {key_drop_reason(spec): stats.rows_dropped} if stats.rows_dropped else {}
        ctx.log.info("stage -> target (SQL): %d read, %d written, %d duplicates dropped", stats.rows_read, stats.rows_written, stats.rows_dropped)
        return with_schema_changes(TransferResult(
            rows_read=stats.rows_read, rows_written=stats.rows_written, rows_dropped=stats.rows_dropped,
            reject_reasons=reasons,
            details={"stage_count": stats.rows_read, "target_count": stats.rows_written, "method": "push-down SQL",
                     "rows_removed_missing_at_source": stats.rows_removed,
                     "transformations_applied": self.describe_transformations(ctx), **guard_details(guard),
                     **pending_details(ctx, {"stage": str(stage.ref), "columns": [list(c) for c in spec.columns]} if numbers else None)},
        ), target, before)

    def _arrow(self, ctx: PhaseContext, stage: Stage, target: Target) -> TransferResult:
        """Stream the window through transform(); keys are applied in the target warehouse."""
        dedup_keys, merge_keys = target_keys(ctx)
        required = {target.ref.query_field or "": "query_field"}
        required.update({k: "dedup_keys" for k in dedup_keys if k not in required})
        required.update({k: "merge_keys" for k in merge_keys if k not in required})
        keyed = bool(dedup_keys or merge_keys)
        stream = TransformedWindow(self, ctx, stage, target.ref.query_field or "", required, with_row=keyed)
        if not keyed:
            with target.load(ctx.window, load_key(ctx)) as load:
                for batch in stream:
                    load.append(target.ref, batch)
                ctx.check_cancelled()
                written = load.commit([target.ref], fence=ctx.fence).get(str(target.ref), 0)
            return self._arrow_result(ctx, stream, written, {}, {"method": "arrow"})
        spec = PushDown(stage=scratch_table(ctx.pipeline.target().ref), target=target.ref, columns=(), dedup_keys=dedup_keys,
                        order_by=(target.ref.query_field or "", ROW_COLUMN), merge_keys=merge_keys,
                        delete_missing=bool(ctx.config.target.get("delete_missing")),
                        version_column=ctx.config.target.get("version_column"))
        return self._arrow_keyed(ctx, stream, target, into_pending(spec, ctx))

    def _arrow_keyed(self, ctx: PhaseContext, stream: TransformedWindow, target: Target, spec: PushDown) -> TransferResult:
        """Transformed rows -> scratch table (committed), then push-down scratch -> target.

        Each step is one transaction of the target warehouse. A crash after the scratch load
        leaves the target as it was; the next run loads the scratch window again (a load
        replaces the window) before pushing it down, so it never pushes another run's rows.
        """
        scratch = spec.stage
        with target.load(ctx.window, load_key(ctx)) as load:
            for batch in stream:
                load.append(scratch, batch)
            ctx.check_cancelled()
            load.commit([scratch], fence=ctx.fence)  # also empties a window a crashed run left behind
        if not stream.rows_out:
            # nothing to push down: a replaced window ends empty, a merge changes nothing
            if spec.merge_keys:
                written = target.count(ctx.window)
            else:
                written = target.replace_window(ctx.window, load_key(ctx), iter(()), fence=ctx.fence)
            stats = PushDownStats(rows_read=0, rows_written=written, rows_dropped=0)
        else:
            ctx.check_cancelled()
            target.ensure(stream.target_schema())  # a column transform() added reaches the target
            spec = attrs.evolve(spec, columns=[(c, quote_expr(c)) for c in stream.columns()])
            stats = target.push_down(spec, ctx.window, stream.lineage, fence=ctx.fence)
            empty_scratch_window(ctx, target, scratch)
        reasons: dict[str, int] = {}
        if stats.rows_dropped:
            reasons[key_drop_reason(spec, merge=bool(target_keys(ctx)[1]))] = stats.rows_dropped
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
        if gated(ctx.config):
            return _pending_still_valid(ctx, state)
        if expected is None or ctx.config.target.get("load_strategy") == "merge":
            return None
        actual = ctx.pipeline.target().count(ctx.window)
        if actual != expected:
            return f"the target holds {actual} rows for the window, not the {expected} the earlier run wrote"
        return None


def schema_gate(ctx: PhaseContext, stage: Stage) -> ContractGate:
    """The schema contract between the source's batches and the stage (see drivetrain.schema_contract)."""
    contract = SchemaContract.from_option(ctx.config.stage.get("schema_contract"))
    return ContractGate(contract, stage.ref, stage.columns(), stage.warehouse_type)


def into_pending(spec: PushDown, ctx: PhaseContext) -> PushDown:
    """``spec`` as the gate runs it: the window's final rows (one per dedup or merge key) replace
    the pending table's window; the merge and ``delete_missing`` happen at publish."""
    if not gated(ctx.config):
        return spec
    return attrs.evolve(spec, dedup_keys=tuple(spec.dedup_keys or spec.merge_keys), merge_keys=(), delete_missing=False)


def forget_pending(ctx: PhaseContext, *, rows: bool = False, numbers: bool = False) -> None:
    """Empty the window in the target's pending tables that exist (``rows``: ``__pending``,
    ``numbers``: ``__pending_rows``; this pipeline's rows only, on a shared target): nothing
    there may stand for the window once this transfer runs."""
    target = ctx.pipeline.target()
    if rows:
        pending_rows.forget(target.warehouse, target.pending().ref, ctx.window)
    if numbers:
        pending_rows.forget(target.warehouse, target.pending_rows().ref, ctx.window)


def with_schema_changes(result: TransferResult, table: Target, before: dict[str, str]) -> TransferResult:
    """``result`` with the columns the transfer added to or widened in ``table``, in its details."""
    changes = changes_between(table.ref, before, table.columns())
    return attrs.evolve(result, details={**result.details, "schema_changes": changes}) if changes else result


def with_pending(result: TransferResult, ctx: PhaseContext) -> TransferResult:
    """``result`` with where its rows wait for the publish phase, in its details."""
    return attrs.evolve(result, details={**result.details, **pending_details(ctx)})


def _pending_still_valid(ctx: PhaseContext, state: PhaseState) -> str | None:
    """A carried transfer of the gate holds while its rows still wait in the pending table, or
    once they were published (the publish may have committed without being recorded)."""
    expected = state.phase_specific_details.get("rows_written")
    if expected is None:
        return None
    target = ctx.pipeline.target()
    pending = pending_table(target, state.phase_specific_details, ctx.window)
    held = pending.count(ctx.window)
    if held == expected:
        if pending.ref == target.pending_rows().ref:  # the numbers must still name the stage's rows
            return pending_rows.rows_problem(target.warehouse, ctx.pipeline.stage().ref, pending.ref, ctx.window)
        return None
    reference = reference_attempt(ctx.previous_attempts)
    writer = state.carried_from or (reference.pipeline_id if reference is not None else None)
    if held == 0 and expected and writer is not None and target.count_written_by(ctx.window, writer):
        return None  # published: the publish phase finds it so and records it
    return f"{pending.ref} holds {held} rows for the window, not the {expected} the earlier run wrote"


def target_keys(ctx: PhaseContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(dedup_keys, merge_keys) from ``target_system``; merge keys only for ``load_strategy: merge``."""
    target = ctx.config.target
    dedup = tuple(target.get("dedup_keys") or ())
    merge = tuple(target.get("merge_keys") or ()) if target.get("load_strategy") == "merge" else ()
    return dedup, merge


def shrunk(guard: ShrinkGuard, problem: str) -> TransferResult:
    """The failed result of a load the shrink guard stopped (nothing was read or written)."""
    return TransferResult(transfer_completed=False, rows_read=0, rows_written=0, error_message=problem,
                          details=guard_details(guard))


def with_guard(result: TransferResult, guard: ShrinkGuard) -> TransferResult:
    """``result`` with what the shrink guard found (a shrink it let through) in its details."""
    return attrs.evolve(result, details={**result.details, **guard_details(guard)}) if guard.details else result


def guard_details(guard: ShrinkGuard) -> dict[str, Any]:
    """``{"shrink_guard": ...}`` for the phase's details when the window shrank, else nothing."""
    return {"shrink_guard": guard.details} if guard.details else {}


def key_drop_reason(spec: PushDown, *, merge: bool | None = None) -> str:
    """Why a push-down with keys selected fewer rows than it read (``merge``: whether the load
    merges, when ``spec`` is the gate's write to the pending table, which has no merge keys)."""
    if spec.merge_keys if merge is None else merge:
        return "duplicate of another row with the same key, or an older version of a row the target holds newer"
    return "duplicate of another row with the same key"


def _earlier_source_count(ctx: PhaseContext) -> int | None:
    """The source count of the attempt a continuation carries phases from, if it has one."""
    reference = reference_attempt(ctx.previous_attempts)
    if reference is None:
        return None
    count = reference.phases[SOURCE_COUNT].phase_specific_details.get("count")
    return int(count) if count is not None else None


def _top(reasons: Counter[str], n: int = 3) -> str:
    return "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common(n))
