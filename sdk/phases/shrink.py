"""The shrink guard: a loaded window is not replaced by far fewer rows unless the run accepts it.

A source that was rotated or purged still answers for its old windows, with fewer records or
none. Loading such a window again would replace what the target holds with that remainder,
and every count and audit would agree. So before the stage-to-target transfer touches the
target, :class:`ShrinkGuard` compares the rows the load would write with the rows the window's
last successful load left in the target (from the drive table). The load fails, target
unchanged, when it would empty a window that held rows, or lose more than
``phases.stage_to_target_transfer.max_shrink_percent`` of them; ``accept_shrink`` in config or
``drivetrain run --accept-shrink`` lets it through, and the run's row records that it did.

A merge never removes rows from the target, so the guard leaves ``load_strategy: merge`` alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivetrain.phase_names import STAGE_TO_TARGET_TRANSFER, TARGET_COUNT
from drivetrain.record import RunRecord, RunStatus

if TYPE_CHECKING:
    from .base import PhaseContext

#: Where the guard's settings live, for messages.
SETTING = "phases.stage_to_target_transfer"


def last_load(attempts: list[RunRecord]) -> tuple[RunRecord, int] | None:
    """The newest successful attempt and the rows it left in the target, if it recorded them."""
    for record in reversed(attempts):
        if record.pipeline_status is not RunStatus.SUCCESS:
            continue
        count = record.phases[TARGET_COUNT].phase_specific_details.get("count")
        if count is None:
            count = record.phases[STAGE_TO_TARGET_TRANSFER].phase_specific_details.get("rows_written")
        return (record, int(count)) if isinstance(count, int | float) else None
    return None


class ShrinkGuard:
    """The guard for one stage-to-target load of ``ctx.window``."""

    def __init__(self, ctx: PhaseContext) -> None:
        self.ctx = ctx
        settings = ctx.config.phases.stage_to_target_transfer
        self.max_percent = settings.max_shrink_percent
        self.accept = settings.accept_shrink
        merge = ctx.config.target.get("load_strategy") == "merge"
        self.last = None if merge else last_load(ctx.previous_attempts)
        self.details: dict[str, Any] = {}
        """What the guard found, for the phase's details (empty when the window did not shrink)."""

    @property
    def active(self) -> bool:
        """False when there is nothing to protect: no earlier successful load, or a merge."""
        return self.last is not None and self.last[1] > 0

    def check(self, rows: int) -> str | None:
        """The error that fails the load, or None when ``rows`` may replace the window.

        :param rows: the most rows the load can leave in the window (before duplicates are
            dropped, so the guard never stops a load that keys alone would shrink).
        """
        if self.last is None:
            return None
        record, before = self.last
        if rows >= before:
            return None
        lost = (before - rows) * 100.0 / before
        emptied = rows == 0
        stopped = emptied or lost > self.max_percent
        self.details = {
            "previous_run": record.pipeline_id,
            "previous_target_rows": before,
            "rows": rows,
            "shrink_percent": round(lost, 2),
            "max_shrink_percent": self.max_percent,
            "stopped": stopped and not self.accept,
            "accepted": stopped and self.accept,
        }
        if not stopped:
            return None
        what = (f"the window held {before} rows after its last successful load ({record.pipeline_id}); "
                f"this load would leave {'none' if emptied else f'at most {rows}'} ({lost:.1f}% fewer)")
        if self.accept:
            self.ctx.log.warning("shrink accepted: %s", what)
            return None
        limit = ("a load that empties a window needs to be accepted" if emptied
                 else f"more than {SETTING}.max_shrink_percent ({self.max_percent:g}%)")
        start = self.ctx.window.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        return (f"shrink guard: {what}, {limit}. The target was not changed. If the source really lost "
                f"these records (rotation, purge), run the window again with "
                f"'drivetrain run {self.ctx.pipeline.name} --window-start {start} --accept-shrink', "
                f"or set {SETTING}.accept_shrink to true")
