"""What the target count means for ``load_strategy: merge``.

A merge keeps one row per key, the newest version, wherever its query field places it. So after
a record was updated and the update loaded by a later window, the target no longer holds it in
its old window: counting the window's rows in the target would make the old window look short
(and a window holding rows a later window will move would look long). For a merge the target
count is therefore taken row by row against the stage's window: the number of the window's
stage rows whose record the target holds at that row's version or a newer one. A version
replaced by a newer one (a later copy in the same window, or an update loaded by a later
window) is accounted for, not lost; a row whose record the target lacks, or holds older, is
missing. The audit compares this count with the stage count as for a replace.

With the publish gate the count is taken against the pending table (one row per key, the newest
of the window), before the merge into the target happens at publish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import PhaseContext

#: The transfer method whose projection the count can reproduce (the Arrow path cannot).
PUSH_DOWN = "push-down SQL"


def merged_target_count(ctx: PhaseContext) -> tuple[int, dict[str, Any]] | None:
    """``(count, details)`` for a merge pushed down in SQL, or None to count the window as usual."""
    from .transfers import StageToTargetTransfer

    target_cfg = ctx.config.target
    if target_cfg.get("load_strategy") != "merge":
        return None
    if ctx.details("stage_to_target_transfer").get("method") != PUSH_DOWN:
        return None
    transfer = ctx.pipeline.phase("stage_to_target_transfer")
    if not isinstance(transfer, StageToTargetTransfer):
        return None
    from .publish import gated, written_table

    stage, target = ctx.pipeline.stage(), written_table(ctx)  # the pending rows before publish
    projection = dict(transfer.select_columns(ctx, list(stage.columns())))
    keys = list(target_cfg.get("merge_keys") or ())
    version = target_cfg.get("version_column") or target.ref.query_field or ""
    if not keys or any(k not in projection for k in [*keys, version]):
        return None
    counted = stage.count_merged(target, ctx.window, [(k, projection[k]) for k in keys], (version, projection[version]))
    if counted is None:
        return None
    held, newer = counted
    extra: dict[str, Any] = {}
    if gated(ctx.config):  # versions the target already holds newer stay there at publish
        published = stage.count_merged(ctx.pipeline.target(), ctx.window, [(k, projection[k]) for k in keys],
                                       (version, projection[version]))
        newer = min(newer + (published[1] if published else 0), held)
        extra = {"pending_rows_in_window": target.count(ctx.window)}
        target = ctx.pipeline.target()
    details = {
        "counted_as": "stage rows of the window whose record the target holds at that version or a newer one (merge)",
        "held_at_their_version": held - newer,
        "held_at_a_newer_version": newer,
        "target_rows_in_window": target.count(ctx.window),
        **extra,
    }
    return held, details
