"""incidents: ServiceNow -> Snowflake, one row per incident in its latest state.

The ServiceNow source asks for stored and display values at once (``display_value: "all"``):
``state`` holds the stored code (``6``) and ``dv_state`` the label people read
(``Resolved``); references such as ``assignment_group`` hold a sys_id, with the group's name
in ``dv_assignment_group``. The config renames the label columns; this module adds two derived
columns, pushed down as SQL:

``is_resolved``
    whether the incident has a resolution time;
``resolution_hours``
    hours from opening to resolution, two decimals, NULL while unresolved.

Windows follow ``sys_updated_on``, so an incident touched again is read again by the window of
its latest update, and the merge on ``sys_id`` replaces its earlier row. The SQL runs
unchanged on Snowflake and DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from drivetrain import PhaseContext, Pipeline, StageToTargetTransfer
from drivetrain.warehouse import quote_name

OPENED, RESOLVED = quote_name("opened_at"), quote_name("resolved_at")
DERIVED = {
    "is_resolved": f"({RESOLVED} IS NOT NULL)",
    "resolution_hours": f"ROUND(DATEDIFF('second', {OPENED}, {RESOLVED}) / 3600.0, 2)",
}


class IncidentsTransfer(StageToTargetTransfer):
    """Stage to target: the renamed copy plus the resolution columns, as one SQL statement."""

    def select_columns(self, ctx: PhaseContext, stage_columns: Sequence[str]) -> list[tuple[str, str]]:
        """The default copy (labels renamed by config) and the derived columns."""
        return [*super().select_columns(ctx, stage_columns), *DERIVED.items()]

    def describe_transformations(self, ctx: PhaseContext) -> str:
        """What the drive table records under ``transformations_applied``."""
        return f"{super().describe_transformations(ctx)}; derived {', '.join(DERIVED)}"


class Incidents(Pipeline):
    """The incidents pipeline: config.json beside this file, with its own transfer."""

    config_path = Path(__file__).with_name("config.json")
    phase_classes = {"stage_to_target_transfer": IncidentsTransfer}
