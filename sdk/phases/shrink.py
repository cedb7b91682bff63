"""The shrink guard: a loaded window is not replaced by far fewer rows unless the run accepts it.

A source that was rotated or purged still answers for its old windows, with fewer records or
none. Loading such a window again would replace what the target holds with that remainder,
and every count and audit would agree. So before the stage-to-target transfer touches the
target, :class:`ShrinkGuard` compares the rows the window now has in stage with the rows the
window's last successful load took from stage (both from before duplicates are dropped or
``transform()`` filters, so a change of keys or transform is not mistaken for a shrink). The
load fails, target unchanged, when it would empty a window that held rows, or bring it more
than ``phases.stage_to_target_transfer.max_shrink_percent`` below; ``accept_shrink`` in config
or ``drivetrain run --accept-shrink`` lets it through, and the run's row records that it did.

The guard leaves ``load_strategy: merge`` alone. A merge removes rows only with ``delete_missing``,
where a record that moved to a later window would look like a shrink; that case is not guarded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.phase_names import STAGE_COUNT, STAGE_TO_TARGET_TRANSFER, TARGET_COUNT
from drivetrain.record import RunRecord, RunStatus

if TYPE_CHECKING:
    from .base import PhaseContext

#: Where the guard's settings live, for messages.
SETTING = "phases.stage_to_target_transfer"


def _first_number(record: RunRecord, *places: tuple[str, str]) -> int | None:
    for phase, key in places:
        value = record.phases[phase].phase_specific_details.get(key)
        if isinstance(value, int | float):
            return int(value)
    return None


@attrs.frozen
class LastLoad:
    """What the window's newest successful attempt loaded."""

    run_id: str
    rows: int
    """Stage rows it moved to the target (before keys and transform())."""
    target_rows: int | None
    """Rows it left in the target."""


def last_load(attempts: list[RunRecord]) -> LastLoad | None:
    """The newest successful attempt of the window and its counts, if it recorded them."""
    for record in reversed(attempts):
        if record.pipeline_status is not RunStatus.SUCCESS:
            continue
        target = _first_number(record, (TARGET_COUNT, "count"), (STAGE_TO_TARGET_TRANSFER, "rows_written"))
        rows = _first_number(record, (STAGE_TO_TARGET_TRANSFER, "rows_read"), (STAGE_COUNT, "count"))
        rows = rows if rows is not None else target
        return LastLoad(record.pipeline_id, rows, target) if rows is not None else None
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
        """False when there is nothing to protect: no earlier successful load, a merge, or a window
        the earlier load left empty in the target."""
        return self.last is not None and self.last.rows > 0 and self.last.target_rows != 0

    def check(self, rows: int) -> str | None:
        """The error that fails the load, or None when the window's ``rows`` stage rows may replace it.

        :param rows: the window's rows in stage now, before keys and transform().
        """
        last = self.last
        if last is None or rows >= last.rows or last.target_rows == 0:
            return None
        lost = (last.rows - rows) * 100.0 / last.rows
        emptied = rows == 0
        stopped = emptied or lost > self.max_percent
        self.details = {
            "previous_run": last.run_id,
            "previous_rows": last.rows,
            "previous_target_rows": last.target_rows,
            "rows": rows,
            "shrink_percent": round(lost, 2),
            "max_shrink_percent": self.max_percent,
            "stopped": stopped and not self.accept,
            "accepted": stopped and self.accept,
        }
        if not stopped:
            return None
        held = f" ({last.target_rows} in the target)" if last.target_rows is not None else ""
        what = (f"the window's last successful load ({last.run_id}) had {last.rows} rows{held}; "
                f"this load has {'none' if emptied else f'only {rows}'} ({lost:.1f}% fewer)")
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
