"""lab_results: MySQL -> Snowflake, lab results with a flag derived from the reference range.

The MySQL source reads the columns named in config.json; the stage declares their types and
rejects what breaks the rules (a LOINC code longer than ten characters, a negative value).
On the way to the target the config renames two columns, and this module adds one derived
column, pushed down as SQL:

``abnormal_flag``
    ``L`` below the reference range, ``H`` above it, ``N`` inside it, NULL when the value or
    the whole range is missing.

The target merges on ``result_id``: a result corrected in MySQL gets a new ``updated_at``,
is read again by the window of the correction, and replaces the earlier version wherever it
was. The SQL runs unchanged on Snowflake and DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from drivetrain import PhaseContext, Pipeline, StageToTargetTransfer
from drivetrain.warehouse import quote_name

ABNORMAL_FLAG = (
    "CASE WHEN {value} IS NULL OR ({low} IS NULL AND {high} IS NULL) THEN NULL "
    "WHEN {value} < {low} THEN 'L' WHEN {value} > {high} THEN 'H' ELSE 'N' END"
)


class LabResultsTransfer(StageToTargetTransfer):
    """Stage to target: the renamed copy plus ``abnormal_flag``, as one SQL statement."""

    def select_columns(self, ctx: PhaseContext, stage_columns: Sequence[str]) -> list[tuple[str, str]]:
        """The default copy (renamed by config) and the derived flag."""
        flag = ABNORMAL_FLAG.format(
            value=quote_name("value_numeric"), low=quote_name("reference_low"), high=quote_name("reference_high")
        )
        return [*super().select_columns(ctx, stage_columns), ("abnormal_flag", flag)]

    def describe_transformations(self, ctx: PhaseContext) -> str:
        """What the drive table records under ``transformations_applied``."""
        return f"{super().describe_transformations(ctx)}; derived abnormal_flag from the reference range"


class LabResults(Pipeline):
    """The lab_results pipeline: config.json beside this file, with its own transfer."""

    config_path = Path(__file__).with_name("config.json")
    phase_classes = {"stage_to_target_transfer": LabResultsTransfer}
