"""Pipeline configuration: the config.json schema, the typed model and the loader.

::

    from drivetrain.config import load_config

    config = load_config("pipelines/lab_results")     # the folder's config.json
    config.query_window.length                          # timedelta(hours=1)
    config.phases.audit.source_to_stage_tolerance_percent
    config.source.require("table")                      # connector options, with good errors

Everything wrong with a file is reported at once in one
:class:`~drivetrain.errors.ConfigError`, one ``FILE: json.path: message`` line per problem.
:func:`schema` returns the JSON Schema editors can use (also shipped as ``schema.json``).
"""

from drivetrain.config.core_keys import SourceKeys, StageKeys, TargetKeys
from drivetrain.config.loader import load_config
from drivetrain.config.model import (
    ColumnConfig,
    MetadataConfig,
    MonitoringConfig,
    PipelineConfig,
    QueryWindowConfig,
    RetryConfig,
    ScheduleConfig,
    SystemConfig,
)
from drivetrain.config.phases import (
    AuditConfig,
    PhaseConfig,
    PhasesConfig,
    SourceCountConfig,
    SourceToStageConfig,
    StageCleaningConfig,
    StageToTargetConfig,
    StaleHandlingConfig,
    TargetCleaningConfig,
)
from drivetrain.config.schema_check import schema
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.secrets import Credentials, Secret

__all__ = [
    "PHASE_NAMES",
    "AuditConfig",
    "ColumnConfig",
    "Credentials",
    "MetadataConfig",
    "MonitoringConfig",
    "PhaseConfig",
    "PhasesConfig",
    "PipelineConfig",
    "QueryWindowConfig",
    "RetryConfig",
    "ScheduleConfig",
    "Secret",
    "SourceCountConfig",
    "SourceKeys",
    "SourceToStageConfig",
    "StageCleaningConfig",
    "StageKeys",
    "StageToTargetConfig",
    "StaleHandlingConfig",
    "SystemConfig",
    "TargetKeys",
    "TargetCleaningConfig",
    "load_config",
    "schema",
]
