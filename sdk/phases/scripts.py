"""Run pipelines written to the spec's script interface unchanged.

A pipeline folder may hold ``user_scripts/<phase>.py`` files, each defining a function named
after its phase that takes ``(config, record)`` (two dicts) and returns the spec's dict
(``skip_dag_run``, ``error_message``, ``count`` ...). Each becomes a :class:`ScriptPhase`
that replaces the default phase of that name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from drivetrain.errors import ConfigError
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.results import PhaseResult, to_result
from drivetrain.user_code import import_file

from .base import BasePhase, PhaseContext

ScriptFunction = Callable[[dict[str, Any], dict[str, Any]], Mapping[str, Any] | None]


class ScriptPhase(BasePhase):
    """A phase whose work is a plain ``function(config, record) -> dict``."""

    function: ScriptFunction

    def run(self, ctx: PhaseContext) -> PhaseResult:
        record = ctx.record.to_json()
        record["query_window_start_timestamp"] = ctx.window.start.isoformat()
        record["query_window_end_timestamp"] = ctx.window.end.isoformat()
        return to_result(type(self).function(ctx.config.snapshot(), record), phase=self.name)

    @classmethod
    def wrap(cls, name: str, function: ScriptFunction) -> type[ScriptPhase]:
        return type(f"Script_{name}", (cls,), {"name": name, "function": staticmethod(function),
                                               "__doc__": (function.__doc__ or f"user script {name}.py").strip()})


def load_user_scripts(folder: Path) -> dict[str, type[BasePhase]]:
    """Phase classes for every ``user_scripts/<phase>.py`` under ``folder``."""
    scripts = folder / "user_scripts"
    found: dict[str, type[BasePhase]] = {}
    if not scripts.is_dir():
        return found
    for path in sorted(scripts.glob("*.py")):
        name = path.stem
        if name.startswith("_") or name == "common_utilities":
            continue
        if name not in PHASE_NAMES:
            raise ConfigError(f"{path}: not a phase name; expected one of {', '.join(PHASE_NAMES)}")
        module = import_file(path, f"drivetrain_user_scripts.{folder.name}.{name}")
        function = getattr(module, name, None)
        if not callable(function):
            raise ConfigError(f"{path}: define a function {name}(config, record) returning a dict")
        found[name] = ScriptPhase.wrap(name, function)
    return found
