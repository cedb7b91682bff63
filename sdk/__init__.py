"""drivetrain: incremental, windowed data pipelines with a drive table.

Data moves from a source through a stage table into a target, one half-open time window at a
time; every attempt is a row in the drive table, phase by phase. A failed window is resumed
by the next run from the phase that failed; counts are audited from source to stage to target.

The names below are the public API; everything else may change between releases.
"""

from typing import TYPE_CHECKING

from drivetrain._lazy import lazy_getattr

if TYPE_CHECKING:
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
    from drivetrain.results import (
        AuditResult,
        CleaningResult,
        CountResult,
        PhaseResult,
        TransferResult,
    )
    from drivetrain.runner import Runner
    from drivetrain.tables import Stage, Target
    from drivetrain.warehouse import TableRef, Warehouse
    from drivetrain.window import Window, WindowGrid, parse_timestamp

#: Where each public name lives. They are imported on first use (PEP 562), so ``import drivetrain``
#: and every ``drivetrain.<module>`` import stay cheap: pyarrow, DuckDB, jsonschema and the
#: phases load only when a name that needs them is used (tests/test_startup_imports.py).
_EXPORTS = {
    "PHASE_NAMES": "drivetrain.phase_names",
    "Archive": "drivetrain.base",
    "ArchiveReceipt": "drivetrain.base",
    "Audit": "drivetrain.phases",
    "AuditFailed": "drivetrain.errors",
    "AuditResult": "drivetrain.results",
    "BasePhase": "drivetrain.phases",
    "CleaningResult": "drivetrain.results",
    "ConfigError": "drivetrain.errors",
    "Connector": "drivetrain.base",
    "ConnectorError": "drivetrain.errors",
    "CountResult": "drivetrain.results",
    "DriveStore": "drivetrain.drive",
    "DrivetrainError": "drivetrain.errors",
    "Lease": "drivetrain.drive",
    "LeaseError": "drivetrain.errors",
    "MissingExtraError": "drivetrain.errors",
    "PermanentError": "drivetrain.errors",
    "PhaseContext": "drivetrain.phases",
    "PhaseFailed": "drivetrain.errors",
    "PhaseResult": "drivetrain.results",
    "PhaseState": "drivetrain.record",
    "PhaseStatus": "drivetrain.record",
    "PhaseTimeout": "drivetrain.errors",
    "Pipeline": "drivetrain.pipeline",
    "PipelineConfig": "drivetrain.config",
    "PipelineNotFound": "drivetrain.errors",
    "PreValidation": "drivetrain.phases",
    "RunRecord": "drivetrain.record",
    "RunStatus": "drivetrain.record",
    "Runner": "drivetrain.runner",
    "Source": "drivetrain.base",
    "SourceCount": "drivetrain.phases",
    "SourceToStageTransfer": "drivetrain.phases",
    "Stage": "drivetrain.tables",
    "StageCleaning": "drivetrain.phases",
    "StageCount": "drivetrain.phases",
    "StageToTargetTransfer": "drivetrain.phases",
    "StalePipelineHandling": "drivetrain.phases",
    "SystemConfig": "drivetrain.config",
    "TableRef": "drivetrain.warehouse",
    "Target": "drivetrain.tables",
    "TargetCleaning": "drivetrain.phases",
    "TargetCount": "drivetrain.phases",
    "TransferResult": "drivetrain.results",
    "TransientError": "drivetrain.errors",
    "Warehouse": "drivetrain.warehouse",
    "Window": "drivetrain.window",
    "WindowGrid": "drivetrain.window",
    "format_duration": "drivetrain.durations",
    "hookimpl": "drivetrain.plugins",
    "load_config": "drivetrain.config",
    "parse_duration": "drivetrain.durations",
    "parse_timestamp": "drivetrain.window",
}

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


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
