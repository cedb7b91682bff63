"""The ``phases`` section: one attrs class per phase's settings, and the section itself."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from drivetrain.phase_names import PHASE_NAMES

from ._convert import _freeze_options, _optional_duration, _optional_float
from .problems import did_you_mean


@attrs.frozen
class PhaseConfig:
    """Settings every phase accepts (``phases.<name>``)."""

    name: str
    """The phase name, one of PHASE_NAMES."""
    enabled: bool = True
    """Whether the phase runs."""
    expected_run_duration: timedelta | None = None
    """Baseline duration for alerts."""
    expected_run_duration_text: str | None = None
    """The baseline as written in config, for the drive table."""
    timeout_minutes: float | None = attrs.field(default=None, converter=_optional_float)
    """Cancel the phase after this long; None means no limit."""
    continue_on_failure: bool = False
    """Whether a failure lets the run go on (cleaning phases only)."""
    description: str | None = None
    """What the phase does in this pipeline."""

    #: Keys read by this class beyond the common ones (``section key -> attribute``).

    @property
    def timeout(self) -> timedelta | None:
        """``timeout_minutes`` as a timedelta."""
        return None if self.timeout_minutes is None else timedelta(minutes=self.timeout_minutes)


@attrs.frozen
class StaleHandlingConfig(PhaseConfig):
    """``phases.stale_pipeline_handling``."""

    timeout_minutes: float | None = attrs.field(default=120.0, converter=_optional_float)
    """Also how long a RUNNING run may go without a heartbeat before it is closed as dead."""


@attrs.frozen
class SourceCountConfig(PhaseConfig):
    """``phases.source_count``."""

    on_empty_window: str = "continue"
    """What an empty window does: continue, skip (nothing to load) or fail."""


@attrs.frozen
class SourceToStageConfig(PhaseConfig):
    """``phases.source_to_stage_transfer``."""

    max_rejected_percent: float | None = attrs.field(default=None, converter=_optional_float)
    """Fail when a larger share of records is rejected; None means no limit."""


@attrs.frozen
class StageToTargetConfig(PhaseConfig):
    """``phases.stage_to_target_transfer``."""

    max_shrink_percent: float = attrs.field(default=50.0, converter=float)
    """Shrink guard: fail a load leaving the window this share (or more) below its last load."""
    accept_shrink: bool = False
    """Let loads through that the shrink guard would stop."""


@attrs.frozen
class AuditConfig(PhaseConfig):
    """``phases.audit``."""

    source_to_stage_tolerance_percent: float = attrs.field(default=0.0, converter=float)
    """Share of source records that may be missing from stage."""
    stage_to_target_tolerance_percent: float = attrs.field(default=0.0, converter=float)
    """Share of stage records that may be missing from target."""


@attrs.frozen
class StageCleaningConfig(PhaseConfig):
    """``phases.stage_cleaning``."""

    archive_before_delete: bool = True
    """Whether stage rows are archived (and verified) before they are deleted."""
    archive_location: str | None = None
    """A local folder or s3://bucket/prefix, as written."""
    archive_credentials_ref: str | None = None
    """Credentials for the archive (S3), if it needs any."""
    archive_options: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_options, hash=False)
    """The archive connector's own settings (region, storage class...), checked by it."""
    delete_after_days: int = attrs.field(default=7, converter=int)
    """Stage rows are kept this many days after their target date."""


@attrs.frozen
class TargetCleaningConfig(PhaseConfig):
    """``phases.target_cleaning``: user logic, off by default."""

    enabled: bool = False
    """Off unless config turns it on."""
    cleaning_type: str | None = None
    """A label for the kind of cleaning."""
    transformation_description: str | None = None
    """What the cleaning does, for people."""


PHASE_CLASSES: Mapping[str, type[PhaseConfig]] = MappingProxyType(
    {
        "stale_pipeline_handling": StaleHandlingConfig,
        "source_count": SourceCountConfig,
        "source_to_stage_transfer": SourceToStageConfig,
        "stage_to_target_transfer": StageToTargetConfig,
        "audit": AuditConfig,
        "stage_cleaning": StageCleaningConfig,
        "target_cleaning": TargetCleaningConfig,
    }
)


def _phase(name: str, section: Mapping[str, Any]) -> PhaseConfig:
    cls = PHASE_CLASSES.get(name, PhaseConfig)
    derived = {"name", "expected_run_duration", "expected_run_duration_text"}
    kwargs: dict[str, Any] = {
        f.name: section[f.name]
        for f in attrs.fields(cls)
        if f.name in section and f.name not in derived
    }
    text = section.get("expected_run_duration")
    kwargs.update(expected_run_duration=_optional_duration(text), expected_run_duration_text=text)
    if cls is AuditConfig:
        kwargs.update(section.get("count_tolerances", {}))
    return cls(name=name, **kwargs)


@attrs.frozen
class PhasesConfig:
    """``phases``: one settings object per phase, defaults filled in."""

    stale_pipeline_handling: StaleHandlingConfig
    """Closes dead RUNNING runs."""
    pre_validation: PhaseConfig
    """Decides fresh run or continuation; checks prerequisites."""
    source_count: SourceCountConfig
    """Counts the window in the source."""
    source_to_stage_transfer: SourceToStageConfig
    """Extracts, validates and loads the window into stage."""
    stage_count: PhaseConfig
    """Counts the window in stage."""
    stage_to_target_transfer: StageToTargetConfig
    """Moves the window from stage to target."""
    target_count: PhaseConfig
    """Counts the window in target."""
    audit: AuditConfig
    """Compares the counts against the tolerances."""
    publish: PhaseConfig
    """Makes the audited window visible in the target (skipped with ``target_system.publish: direct``)."""
    stage_cleaning: StageCleaningConfig
    """Archives and deletes old stage rows."""
    target_cleaning: TargetCleaningConfig
    """User-defined target cleanup."""

    names: ClassVar[tuple[str, ...]] = PHASE_NAMES

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> PhasesConfig:
        """Build from a validated ``phases`` section (absent phases take their defaults)."""
        phases: dict[str, Any] = {name: _phase(name, section.get(name, {})) for name in PHASE_NAMES}
        return cls(**phases)

    def get(self, name: str) -> PhaseConfig:
        """The settings of phase ``name``; KeyError (with a suggestion) for an unknown name."""
        if name not in PHASE_NAMES:
            raise KeyError(f"unknown phase {name!r}{did_you_mean(name, PHASE_NAMES)}")
        return getattr(self, name)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[PhaseConfig]:
        return (getattr(self, name) for name in PHASE_NAMES)
