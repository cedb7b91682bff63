"""The eleven phases, in run order, and the drive-table column that holds each one's state."""

from __future__ import annotations

STALE_PIPELINE_HANDLING = "stale_pipeline_handling"
PRE_VALIDATION = "pre_validation"
SOURCE_COUNT = "source_count"
SOURCE_TO_STAGE_TRANSFER = "source_to_stage_transfer"
STAGE_COUNT = "stage_count"
STAGE_TO_TARGET_TRANSFER = "stage_to_target_transfer"
TARGET_COUNT = "target_count"
AUDIT = "audit"
PUBLISH = "publish"
STAGE_CLEANING = "stage_cleaning"
TARGET_CLEANING = "target_cleaning"

PHASE_NAMES: tuple[str, ...] = (
    STALE_PIPELINE_HANDLING,
    PRE_VALIDATION,
    SOURCE_COUNT,
    SOURCE_TO_STAGE_TRANSFER,
    STAGE_COUNT,
    STAGE_TO_TARGET_TRANSFER,
    TARGET_COUNT,
    AUDIT,
    PUBLISH,
    STAGE_CLEANING,
    TARGET_CLEANING,
)

#: Phases that run in every attempt: they decide what the rest of the run does.
ALWAYS_RUN: frozenset[str] = frozenset({STALE_PIPELINE_HANDLING, PRE_VALIDATION})

#: Phase name -> drive-table column holding its state (the spec's ``*_phase`` VARIANTs).
VARIANT_COLUMN: dict[str, str] = {name: f"{name}_phase" for name in PHASE_NAMES}
