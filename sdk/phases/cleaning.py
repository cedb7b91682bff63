"""Stage cleaning (archive, verify, delete, vacuum) and the optional target cleaning."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from drivetrain.errors import ConnectorError, PermanentError
from drivetrain.results import CleaningResult

from .base import BasePhase, PhaseContext

if TYPE_CHECKING:
    from drivetrain.config import StageCleaningConfig, TargetCleaningConfig


class StageCleaning(BasePhase):
    """Archive stage rows older than delete_after_days, verify the archive, then delete them.

    Age is measured from the window being run (its target_date), not from today, so a
    backfill of old windows does not sweep away the stage data it just loaded.
    """

    name = "stage_cleaning"

    @property
    def settings(self) -> StageCleaningConfig:
        """``phases.stage_cleaning``, typed as this phase's settings."""
        return self.pipeline.config.phases.stage_cleaning

    def run(self, ctx: PhaseContext) -> CleaningResult:
        settings = self.settings
        stage = ctx.pipeline.stage()
        cutoff = ctx.window.target_date - timedelta(days=settings.delete_after_days)
        archive = ctx.pipeline.archive() if settings.archive_before_delete else None
        archived = deleted = 0
        dates, uris = [], []
        for day in stage.dates_before(cutoff):
            ctx.check_cancelled()
            expected = stage.count_date(day)
            if archive is not None:
                receipt = archive.write(ctx.pipeline.name, day, ctx.run_id, stage.read_date(day))
                if receipt.rows != expected:
                    raise PermanentError(
                        f"archive of {stage.ref} for {day} holds {receipt.rows} rows, the stage {expected}; nothing deleted"
                    )
                archived += receipt.rows
                uris.extend(receipt.uris)
            deleted += stage.delete_date(day, expected, fence=ctx.fence)
            dates.append(day.isoformat())
        try:
            vacuumed, note = stage.vacuum() if deleted else (False, "nothing deleted")
        except ConnectorError as exc:  # the rows are archived and deleted: a failed vacuum must not undo that record
            vacuumed, note = False, f"vacuum failed: {exc}"
        analyzed, statistics = stage.gather_statistics() if deleted else (False, "nothing deleted")
        ctx.log.info("stage cleaning: %d archived, %d deleted (before %s)", archived, deleted, cutoff)
        return CleaningResult(details={
            "records_archived": archived,
            "records_deleted": deleted,
            "archive_location": archive.location() if archive is not None else None,
            "archive_objects": uris,
            "target_dates_cleaned": dates,
            "cutoff_date": cutoff.isoformat(),
            "vacuumed": vacuumed,
            "vacuum_note": note,
            "statistics_gathered": analyzed,
            "statistics_note": statistics,
        })


class TargetCleaning(BasePhase):
    """Pipeline-specific cleanup of the target. Off by default; subclass to give it work."""

    name = "target_cleaning"

    @property
    def settings(self) -> TargetCleaningConfig:
        """``phases.target_cleaning``, typed as this phase's settings."""
        return self.pipeline.config.phases.target_cleaning

    def run(self, ctx: PhaseContext) -> CleaningResult:
        return CleaningResult(details={
            "cleaning_type": self.settings.cleaning_type or "none",
            "records_affected": 0,
            "transformations": self.settings.transformation_description or "no target cleaning logic defined",
        })
