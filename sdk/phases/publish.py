"""The publish gate: the target shows a window only after its audit passed.

With ``target_system.publish: after_audit`` (the default) the stage-to-target transfer writes the
window into ``<target>__pending`` (see :meth:`drivetrain.tables.Target.pending`), already through
its projection, keys and ``transform()``; target_count and the audit look at those rows; and
:class:`Publish`, after the audit, moves them into the target in one transaction (the window's old
rows out, the audited ones in; for a merge the upsert and ``delete_missing`` happen here) and
empties the pending window. A failed audit therefore leaves the target as it was, and the pending
rows stay there for inspection until the window's next attempt replaces them.

With ``publish: direct`` the transfer writes straight into the target (the order the original
spec describes) and the publish phase is recorded as skipped; it empties whatever an earlier
gated attempt left pending for the window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drivetrain.errors import PermanentError
from drivetrain.phase_names import STAGE_TO_TARGET_TRANSFER
from drivetrain.record import PhaseStatus
from drivetrain.results import PhaseResult
from drivetrain.schema_types import changes_between

from .base import BasePhase, PhaseContext

if TYPE_CHECKING:
    from drivetrain.config import PipelineConfig
    from drivetrain.tables import Target
    from drivetrain.window import Window

#: ``target_system.publish`` values.
AFTER_AUDIT = "after_audit"
DIRECT = "direct"
PUBLISH_MODES = (AFTER_AUDIT, DIRECT)


def gated(config: PipelineConfig) -> bool:
    """Whether the pipeline writes windows to the pending table and publishes them after the audit."""
    return (config.target.get("publish") or AFTER_AUDIT) == AFTER_AUDIT


#: Key of the transfer's details when it wrote pending row numbers: the stage and the projection.
PENDING_ROWS = "pending_row_numbers"


def written_table(ctx: PhaseContext) -> Target:
    """Where the stage-to-target transfer writes the window, and target_count counts it."""
    target = ctx.pipeline.target()
    if not gated(ctx.config):
        return target
    transfer = ctx.states.get(STAGE_TO_TARGET_TRANSFER)
    return pending_table(target, transfer.phase_specific_details if transfer is not None else {}, ctx.window)


def pending_table(target: Target, transfer_details: Any, window: Window) -> Target:
    """The pending table a transfer with these details wrote: rows, or the numbers of stage rows.

    A ``run()`` of the user's may return details of its own: then the table that holds the window
    tells (the transfer empties the window of the one it does not use)."""
    if PENDING_ROWS in transfer_details or "pending_table" in transfer_details:
        return target.pending_rows() if transfer_details.get(PENDING_ROWS) else target.pending()
    rows = target.pending_rows()
    return rows if rows.count(window) else target.pending()


def pending_details(ctx: PhaseContext, row_numbers: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the transfer's details say about the pending rows (empty without the gate); with
    ``row_numbers`` (stage and projection), the transfer wrote pending row numbers."""
    if not gated(ctx.config):
        return {"publish": DIRECT}
    target = ctx.pipeline.target()
    if not row_numbers:
        pending = target.pending()
        return {"publish": AFTER_AUDIT, "pending_table": str(pending.ref), "pending_query": pending.window_query(ctx.window)}
    from drivetrain.sql.pending_rows import window_query

    rows, stage = target.pending_rows(), ctx.pipeline.stage()
    query = window_query(target.warehouse, stage.ref, rows.ref, [tuple(c) for c in row_numbers["columns"]], ctx.window)
    return {"publish": AFTER_AUDIT, "pending_table": str(rows.ref), "pending_query": query, PENDING_ROWS: row_numbers}


class Publish(BasePhase):
    """Make the audited window visible in the target in one transaction, then empty its pending rows."""

    name = "publish"

    def not_needed(self, ctx: PhaseContext) -> str | None:
        if not gated(ctx.config):
            return "target_system.publish is 'direct': the transfer wrote straight to the target"
        if not ctx.config.phases.get(STAGE_TO_TARGET_TRANSFER).enabled:
            return "stage_to_target_transfer is disabled: nothing is written to publish"
        return None

    def run(self, ctx: PhaseContext) -> PhaseResult:
        target = ctx.pipeline.target()
        transfer = ctx.states.get(STAGE_TO_TARGET_TRANSFER)
        if transfer is None or not (transfer.status is PhaseStatus.COMPLETED or transfer.carried_from is not None):
            # publishing an empty pending window would empty the target's window
            return PhaseResult(details={"rows_published": 0, "note": "nothing to publish: the transfer did not run"})
        details = transfer.phase_specific_details
        pending = pending_table(target, details, ctx.window)
        expected = details.get("rows_written")
        written_by = transfer.carried_from or ctx.run_id
        held = pending.count(ctx.window)
        base = {"target_table": str(target.ref), "pending_table": str(pending.ref)}
        if expected and held == 0:
            found = target.count_written_by(ctx.window, written_by)
            if found:  # an earlier attempt's publish committed, then its process stopped before recording it
                ctx.log.info("publish: %s already holds the window as written by %s", target.ref, written_by)
                return PhaseResult(details={**base, "rows_published": found, "published_at": None,
                                            "note": f"already published: the target holds the {found} rows {written_by} wrote"})
        if expected is not None and held != expected:
            raise PermanentError(
                f"publish: {pending.ref} holds {held} rows for the window, not the {expected} the audited transfer "
                f"wrote; nothing was published and {target.ref} is unchanged. Run the window again so the transfer "
                f"writes it again: drivetrain run {ctx.pipeline.name} --window-start "
                f"{ctx.window.start.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
            )
        cfg = ctx.config.target
        merge = cfg.get("load_strategy") == "merge"
        ctx.check_cancelled()
        before = target.columns()  # columns the pending rows bring are added (or widened) on publish
        if pending.ref == target.pending_rows().ref:  # one copy: the kept rows straight from the stage
            stats = target.publish_rows(ctx.pipeline.stage(), ctx.window, fence=ctx.fence)
        else:
            stats = target.publish(
                ctx.window, merge_keys=tuple(cfg.get("merge_keys") or ()) if merge else (),
                version_column=cfg.get("version_column"), delete_missing=merge and bool(cfg.get("delete_missing")),
                fence=ctx.fence,
            )
        ctx.progress(stats.rows_read)
        ctx.log.info("publish: %d rows made visible in %s", stats.rows_written, target.ref)
        out: dict[str, Any] = {**base, "rows_published": stats.rows_written, "published_at": datetime.now(UTC).isoformat()}
        if merge:
            out.update(rows_superseded=stats.rows_superseded, rows_removed_missing_at_source=stats.rows_removed)
        if changes := changes_between(target.ref, before, target.columns()):
            out["schema_changes"] = changes
        return PhaseResult(details=out)
