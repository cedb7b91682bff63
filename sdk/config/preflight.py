"""Checks of a config that need more than one key at a time, so that nothing fails later.

:func:`document_problems` runs while a config loads: a ``query_field`` must name one field,
not hold an expression or SQL, and ``merge_keys`` are refused where ``load_strategy`` would
ignore them. :func:`pipeline_problems` needs the pipeline too (``drivetrain validate`` calls
it): the schedule must fire once per window, and the target's keys (``rename``,
``dedup_keys``, ``merge_keys``, ``query_field``) must name columns the declared record schema
can produce, unless the pipeline computes its own target columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivetrain.errors import ConfigError

from .problems import JsonPath, Problems, did_you_mean, show

if TYPE_CHECKING:
    from drivetrain.pipeline import Pipeline

__all__ = ["document_problems", "pipeline_problems", "query_field_problem"]

#: Characters no field name holds but SQL and expressions do.
_SQL_CHARACTERS = re.compile(r"[;()'\"`=<>,|\\+*%!]|--|/\*|\s[-/]\s")
#: Words that, next to others, show an expression rather than a field name.
_SQL_WORDS = frozenset({
    "select", "from", "where", "and", "or", "not", "cast", "as", "union", "drop", "delete", "insert",
    "update", "case", "when", "then", "else", "end", "asc", "desc", "between", "like", "in", "is",
    "null", "interval", "join", "order", "by", "group", "limit", "exists", "truncate", "alter",
})


def query_field_problem(value: str) -> str | None:
    """Why ``value`` is not one field name (it holds SQL or an expression), or None."""
    words = value.lower().split()
    if _SQL_CHARACTERS.search(value) or (len(words) > 1 and _SQL_WORDS & set(words)) or not value.strip():
        return (f"{show(value)} is not a field name; query_field names one field or column of the records "
                "(such as 'updated_at' or '@timestamp'), never an expression or SQL")
    return None


def document_problems(data: Mapping[str, Any], problems: Problems) -> None:
    """The cross-key checks of a whole config document; each tolerates any shape of input."""
    for section in ("source_system", "target_system"):
        options = data.get(section)
        field = options.get("query_field") if isinstance(options, Mapping) else None
        if isinstance(field, str) and (message := query_field_problem(field)) is not None:
            problems.add((section, "query_field"), message)
    target = data.get("target_system")
    if isinstance(target, Mapping) and target.get("load_strategy", "replace_window") == "replace_window":
        for key in ("merge_keys", "delete_missing", "version_column"):  # a replace would ignore them
            if target.get(key):
                problems.add(("target_system", key),
                             f"is only used with load_strategy 'merge', and load_strategy is "
                             f"{show(target.get('load_strategy', 'replace_window'))}: set load_strategy to 'merge' "
                             f"or remove {key}")


def _dry_context(pipeline: Pipeline) -> Any:
    """A context for the pipeline's first window, as a run would build it, for reading only."""
    import logging
    from datetime import UTC, datetime

    from drivetrain.durations import format_duration
    from drivetrain.phases.base import PhaseContext
    from drivetrain.record import RunRecord

    window = pipeline.grid.first()
    record = RunRecord(
        pipeline_id=f"{pipeline.name}_{window.key}_validate", pipeline_name=pipeline.name,
        pipeline_start_timestamp=datetime.now(UTC), query_window_start_timestamp=window.start,
        query_window_end_timestamp=window.end, target_date=window.target_date,
        query_window_duration=format_duration(window.duration),
    )
    log = logging.LoggerAdapter(logging.getLogger("drivetrain.validate"), {})
    return PhaseContext(pipeline=pipeline, record=record, window=window, log=log, fence=lambda: None)


def _target_columns(pipeline: Pipeline, stage_columns: list[str]) -> list[str] | None:
    """The columns the stage-to-target phase writes, or None when only a run can tell.

    The default phase and subclasses that only change ``select_columns`` (the push-down SQL)
    are asked for their columns; a phase with its own ``transform`` or ``run`` is not.
    """
    from drivetrain.phases.transfers import StageToTargetTransfer

    cls = pipeline.phase_class("stage_to_target_transfer")
    if not (isinstance(cls, type) and issubclass(cls, StageToTargetTransfer)):
        return None
    if any(getattr(cls, name) is not getattr(StageToTargetTransfer, name) for name in ("transform", "run")):
        return None
    try:
        phase = pipeline.phase("stage_to_target_transfer")
        assert isinstance(phase, StageToTargetTransfer)
        return [name for name, _ in phase.select_columns(_dry_context(pipeline), stage_columns)]
    except Exception:  # noqa: BLE001 - user code that needs a real run: leave the keys to the run
        return None


def _key_problems(pipeline: Pipeline, problems: Problems) -> None:
    """Target keys that no column of the declared record schema can fill."""
    config = pipeline.config
    declared = [column.name for column in config.stage.columns]
    if not declared:
        return  # without declared columns the stage keeps whatever the source sends
    source_field = config.source.get("query_field")
    stage_columns = {name.lower(): name for name in [*declared, *([source_field] if isinstance(source_field, str) else [])]}
    target = config.target
    rename = dict(target.get("rename") or {})
    for key in rename:
        if key.lower() not in stage_columns:
            problems.add(("target_system", "rename", key),
                         f"renames {key!r}, which is not a stage column{did_you_mean(key, stage_columns.values())} "
                         f"(the stage columns are {', '.join(stage_columns.values())})")
    computed = _target_columns(pipeline, list(stage_columns.values()))
    if computed is None:
        return
    target_columns = {name.lower(): name for name in computed}
    listed = ", ".join(target_columns.values())
    keys: list[tuple[JsonPath, Any]] = [(("target_system", "dedup_keys", i), k) for i, k in enumerate(target.get("dedup_keys") or ())]
    if target.get("load_strategy") == "merge":
        keys += [(("target_system", "merge_keys", i), k) for i, k in enumerate(target.get("merge_keys") or ())]
    if target.get("query_field"):
        keys.append((("target_system", "query_field"), target.get("query_field")))
    for path, key in keys:
        if isinstance(key, str) and key.lower() not in target_columns:
            problems.add(path, f"{key!r} is not a column of the target{did_you_mean(key, target_columns.values())} "
                               f"(its columns are {listed})")


def pipeline_problems(pipeline: Pipeline) -> ConfigError | None:
    """Everything about ``pipeline``'s config that would only fail at run time, or None.

    :returns: one ConfigError listing every problem (``FILE: json.path: message``), or None.
    """
    from drivetrain.config.schedule import schedule_problem

    config = pipeline.config
    problems = Problems(config.source_file)
    found = schedule_problem(config)
    if found is not None:
        path, message = found
        problems.add(tuple(path.split(".")), message)
    _key_problems(pipeline, problems)
    return ConfigError(problems.lines(), source=config.source_file) if problems else None
