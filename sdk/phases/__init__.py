"""The phase classes: BasePhase, the eleven defaults, and the adapter for spec-style scripts."""

from .audit import Audit
from .base import BasePhase, PhaseContext
from .cleaning import StageCleaning, TargetCleaning
from .counts import SourceCount, StageCount, TargetCount
from .housekeeping import PreValidation, PreValidationResult, StalePipelineHandling
from .publish import Publish
from .scripts import ScriptPhase, load_user_scripts
from .transfers import SourceToStageTransfer, StageToTargetTransfer

#: Phase name -> default class, in run order.
DEFAULT_PHASES: dict[str, type[BasePhase]] = {
    cls.name: cls
    for cls in (
        StalePipelineHandling,
        PreValidation,
        SourceCount,
        SourceToStageTransfer,
        StageCount,
        StageToTargetTransfer,
        TargetCount,
        Audit,
        Publish,
        StageCleaning,
        TargetCleaning,
    )
}

__all__ = [
    "DEFAULT_PHASES",
    "Audit",
    "BasePhase",
    "PhaseContext",
    "PreValidation",
    "PreValidationResult",
    "Publish",
    "ScriptPhase",
    "SourceCount",
    "SourceToStageTransfer",
    "StageCleaning",
    "StageCount",
    "StageToTargetTransfer",
    "StalePipelineHandling",
    "TargetCleaning",
    "TargetCount",
    "load_user_scripts",
]
