"""genetic_tests: Elasticsearch -> Snowflake, the specification's running example.

The Elasticsearch source already flattens the nested document (``patient.age`` becomes the
stage column ``patient_age``, see ``fields`` in config.json) and the config renames
``@timestamp`` to ``reported_at``. What is left is done here, in the stage-to-target transfer,
as SQL that runs inside the warehouse (rows never travel through Python):

- ``gene`` is normalised to upper case without surrounding blanks;
- the ``sequencing`` JSON object is parsed into ``sequencing_instrument`` and ``mean_coverage``;
- ``turnaround_hours``, from sample collection to the report, is derived;
- ``age_group`` buckets the patient's age.

The SQL is written so that it runs unchanged on Snowflake and on DuckDB, so the pipeline can
be tried on a laptop by pointing stage and target at a DuckDB file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from drivetrain import PhaseContext, Pipeline, StageToTargetTransfer
from drivetrain.warehouse import quote_name

#: Target column -> SQL over stage columns, added after the copied ones.
DERIVED = {
    "sequencing_instrument": "JSON_EXTRACT_PATH_TEXT({sequencing}, 'instrument')",
    "mean_coverage": "TRY_CAST(JSON_EXTRACT_PATH_TEXT({sequencing}, 'mean_coverage') AS FLOAT)",
    "turnaround_hours": "ROUND(DATEDIFF('second', {collected_at}, {reported}) / 3600.0, 2)",
    "age_group": (
        "CASE WHEN {patient_age} IS NULL THEN NULL WHEN {patient_age} < 18 THEN 'pediatric' "
        "WHEN {patient_age} >= 65 THEN 'senior' ELSE 'adult' END"
    ),
}
#: Stage columns replaced by what DERIVED makes of them.
PARSED_AWAY = ("sequencing",)


class GeneticTestsTransfer(StageToTargetTransfer):
    """Stage to target with the report's derived and parsed columns, pushed down as SQL."""

    def select_columns(self, ctx: PhaseContext, stage_columns: Sequence[str]) -> list[tuple[str, str]]:
        """The default copy (renamed by config), gene normalised, plus the derived columns."""
        names = {
            "sequencing": quote_name("sequencing"),
            "collected_at": quote_name("collected_at"),
            "reported": quote_name(ctx.config.source.get("query_field")),
            "patient_age": quote_name("patient_age"),
        }
        columns = []
        for name, expr in super().select_columns(ctx, stage_columns):
            if name in PARSED_AWAY:
                continue
            if name == "gene":
                expr = f"UPPER(TRIM({expr}))"
            columns.append((name, expr))
        return columns + [(name, sql.format(**names)) for name, sql in DERIVED.items()]

    def describe_transformations(self, ctx: PhaseContext) -> str:
        """What the drive table records under ``transformations_applied``."""
        own = f"gene upper-cased; sequencing parsed; derived {', '.join(DERIVED)}"
        return f"{super().describe_transformations(ctx)}; {own}"


class GeneticTests(Pipeline):
    """The genetic_tests pipeline: config.json beside this file, with its own transfer."""

    config_path = Path(__file__).with_name("config.json")
    phase_classes = {"stage_to_target_transfer": GeneticTestsTransfer}
