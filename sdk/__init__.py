"""drivetrain: incremental, windowed data pipelines with a drive table.

Data moves from a source through a stage table into a target, one half-open time window at a
time; every attempt is a row in the drive table, phase by phase. A failed window is resumed
by the next run from the phase that failed; counts are audited from source to stage to target.

The names below are the public API; everything else may change between releases.
"""

from drivetrain.base import Archive, ArchiveReceipt, Connector, Source
from drivetrain.config import PipelineConfig, SystemConfig, load_config
from drivetrain.drive import DriveStore, Lease
from drivetrain.durations import format_duration, parse_duration
from drivetrain.errors import (
    AuditFailed,
    ConfigError,
    ConnectorError,
    DrivetrainError,
    LeaseError,
    MissingExtraError,
    PermanentError,
    PhaseFailed,
    PhaseTimeout,
    PipelineNotFound,
    TransientError,
)
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.phases import (
    Audit,
    BasePhase,
    PhaseContext,
    PreValidation,
    SourceCount,
    SourceToStageTransfer,
    StageCleaning,
    StageCount,
    StageToTargetTransfer,
    StalePipelineHandling,
    TargetCleaning,
    TargetCount,
)
from drivetrain.pipeline import Pipeline
from drivetrain.plugins import hookimpl
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from drivetrain.results import AuditResult, CleaningResult, CountResult, PhaseResult, TransferResult
from drivetrain.runner import Runner
from drivetrain.tables import Stage, Target
from drivetrain.warehouse import TableRef, Warehouse
from drivetrain.window import Window, WindowGrid, parse_timestamp

__version__ = "0.1.0"

__all__ = [
    "PHASE_NAMES",
    "Archive",
    "ArchiveReceipt",
    "Audit",
    "AuditFailed",
    "AuditResult",
    "BasePhase",
    "CleaningResult",
    "ConfigError",
    "Connector",
    "ConnectorError",
    "CountResult",
    "DriveStore",
    "DrivetrainError",
    "Lease",
    "LeaseError",
    "MissingExtraError",
    "PermanentError",
    "PhaseContext",
    "PhaseFailed",
    "PhaseResult",
    "PhaseState",
    "PhaseStatus",
    "PhaseTimeout",
    "Pipeline",
    "PipelineConfig",
    "PipelineNotFound",
    "PreValidation",
    "RunRecord",
    "RunStatus",
    "Runner",
    "Source",
    "SourceCount",
    "SourceToStageTransfer",
    "Stage",
    "StageCleaning",
    "StageCount",
    "StageToTargetTransfer",
    "StalePipelineHandling",
    "SystemConfig",
    "TableRef",
    "Target",
    "TargetCleaning",
    "TargetCount",
    "TransferResult",
    "TransientError",
    "Warehouse",
    "Window",
    "WindowGrid",
    "format_duration",
    "hookimpl",
    "load_config",
    "parse_duration",
    "parse_timestamp",
]
