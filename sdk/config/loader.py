"""Reading config.json and finding everything wrong with it, in one pass.

The steps: read the file (clear lines for a missing file or bad JSON, with line and column),
check that the value is plain JSON (finite numbers, string keys, no duplicate keys), drop the
keys that are only there for people (``"$schema"``, ``"_comment..."``, ``"//..."``), validate
against the shipped JSON Schema, then run the checks a schema cannot express (cron syntax, time
zones, real dates, secrets in config, credentials in hosts and URLs, the declared column schema). Every problem becomes one
line ``FILE: json.path: what is wrong and what is expected``; all of them are raised together
as one :class:`~drivetrain.errors.ConfigError`, sorted by path.

:func:`load_config` is the entry point. The steps live in small modules, re-exported here:
:mod:`~drivetrain.config.problems` (JSON paths, collecting problems),
:mod:`~drivetrain.config.jsondoc` (reading, plain JSON values, overrides),
:mod:`~drivetrain.config.schema_check` (the JSON Schema) and :mod:`~drivetrain.config.checks`
(what a schema cannot express, :func:`validate_document`). Building the typed model from the
validated data is :mod:`drivetrain.config.model`'s job.
"""

from __future__ import annotations

from pathlib import Path

from .checks import (
    COLUMN_TYPES,
    column_bound,
    column_problems,
    cron_problem,
    duration_problem,
    secret_key_problems,
    semantic_problems,
    table_name_problems,
    validate_document,
    window_duration_problem,
    zone_problem,
)
from .jsondoc import (
    apply_override,
    canonical_hash,
    freeze,
    normalize,
    read_json,
    split_dotted_path,
    thaw,
)
from .model import PipelineConfig
from .problems import (
    SECRET_KEYS,
    SECRETS_MESSAGE,
    JsonPath,
    Problems,
    did_you_mean,
    format_path,
    is_ignored_key,
    looks_like_secret,
    show,
    strip_ignored,
)
from .schema_check import make_validator, schema, schema_problems

__all__ = [
    "COLUMN_TYPES",
    "SECRETS_MESSAGE",
    "SECRET_KEYS",
    "JsonPath",
    "Problems",
    "apply_override",
    "canonical_hash",
    "column_bound",
    "column_problems",
    "cron_problem",
    "did_you_mean",
    "duration_problem",
    "format_path",
    "freeze",
    "is_ignored_key",
    "load_config",
    "looks_like_secret",
    "make_validator",
    "normalize",
    "read_json",
    "schema",
    "schema_problems",
    "secret_key_problems",
    "semantic_problems",
    "show",
    "split_dotted_path",
    "strip_ignored",
    "table_name_problems",
    "thaw",
    "validate_document",
    "window_duration_problem",
    "zone_problem",
]


def load_config(path_or_folder: str | Path) -> PipelineConfig:
    """Load and validate a pipeline config; a folder means ``folder/config.json``."""
    path = Path(path_or_folder)
    if path.is_dir():
        path = path / "config.json"
        return PipelineConfig.from_file(path)
    return PipelineConfig.from_file(path_or_folder)
