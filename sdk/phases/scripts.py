"""Run pipelines written to the spec's script interface unchanged.

A pipeline folder may hold ``user_scripts/<phase>.py`` files, each defining a function named
after its phase that takes ``(config, record)`` (two dicts) and returns the spec's dict
(``skip_dag_run``, ``error_message``, ``count`` ...). Each becomes a :class:`ScriptPhase`
that replaces the default phase of that name.

Scripts are looked up in the pipeline's own ``user_scripts/`` first, then in the shared
``user_scripts/`` folders of the project around it (see :func:`drivetrain.user_code.shared_script_folders`).
Other modules in those folders (``common_utilities.py``...) are helpers the scripts import
with ``from user_scripts import common_utilities``.

A spec-style ``pre_validation`` script keeps continuation: the ``phases_to_skip`` it returns
are skipped, but only those the window's previous attempt completed and that are still valid
(the drive table decides, exactly as for the built-in phase). A name it asks for whose work is
not there runs again, and the phase's details say why.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from drivetrain.errors import ConfigError
from drivetrain.phase_names import ALWAYS_RUN, PHASE_NAMES, PRE_VALIDATION
from drivetrain.record import PhaseState
from drivetrain.results import PhaseResult, to_result
from drivetrain.user_code import import_file, script_folders, script_imports

from .base import BasePhase, PhaseContext
from .housekeeping import PreValidation, PreValidationResult

ScriptFunction = Callable[[dict[str, Any], dict[str, Any]], Mapping[str, Any] | None]


class ScriptPhase(BasePhase):
    """A phase whose work is a plain ``function(config, record) -> dict``."""

    function: ScriptFunction
    #: The pipeline folder whose scripts this one may import (``from user_scripts import ...``).
    folder: ClassVar[Path | None] = None

    def run(self, ctx: PhaseContext) -> PhaseResult:
        return to_result(self.call(ctx), phase=self.name)

    def call(self, ctx: PhaseContext) -> Mapping[str, Any] | None:
        """The user function's own answer, called with the spec's two dicts."""
        record = ctx.record.to_json()
        record["query_window_start_timestamp"] = ctx.window.start.isoformat()
        record["query_window_end_timestamp"] = ctx.window.end.isoformat()
        folder = type(self).folder
        if folder is None:
            return type(self).function(ctx.config.snapshot(), record)
        with script_imports(folder):
            return type(self).function(ctx.config.snapshot(), record)

    @classmethod
    def wrap(cls, name: str, function: ScriptFunction, folder: Path | None = None) -> type[ScriptPhase]:
        base: type[ScriptPhase] = PreValidationScript if name == PRE_VALIDATION else cls
        return type(f"Script_{name}", (base,), {"name": name, "function": staticmethod(function), "folder": folder,
                                                "__doc__": (function.__doc__ or f"user script {name}.py").strip()})


class PreValidationScript(ScriptPhase):
    """A spec-style ``pre_validation(config, record)``: its checks, and its ``phases_to_skip``
    honoured within what the drive table shows is carried."""

    name = PRE_VALIDATION

    def run(self, ctx: PhaseContext) -> PhaseResult:
        answer = self.call(ctx)
        result = to_result(answer, phase=self.name)
        if result.failed:
            return result
        asked = (answer or {}).get("phases_to_skip") if isinstance(answer, Mapping) else None
        carried, notes = honoured_skips(ctx, asked)
        details = {**result.details, "continuation_notes": notes}
        details.pop("phases_to_skip", None)
        details.pop("is_fresh_run", None)
        if asked is not None:
            details["phases_to_skip_requested"] = list(asked)
        return PreValidationResult(is_fresh_run=not carried, carried=carried, details=details,
                                   skip_remaining=result.skip_remaining)

    def carried_phases(self, result: PhaseResult) -> Mapping[str, PhaseState]:
        """The phases :func:`honoured_skips` let the script skip, as :meth:`run` reported them."""
        return result.carried if isinstance(result, PreValidationResult) else {}


def honoured_skips(ctx: PhaseContext, asked: Any) -> tuple[dict[str, PhaseState], list[str]]:
    """The phases a script's ``phases_to_skip`` may skip, and notes on what it may not.

    ``None`` (the script said nothing) gets the built-in plan. Otherwise a phase is skipped
    only when the built-in plan would carry it (the previous attempt completed it, its work is
    still there) and every phase before it is skipped too: work is never skipped on top of
    work that runs again.
    """
    allowed, notes = PreValidation(ctx.pipeline).plan_continuation(ctx)
    if asked is None:
        return allowed, notes
    if isinstance(asked, str) or not isinstance(asked, (list, tuple, set, frozenset)):
        raise ConfigError(f"user_scripts/pre_validation.py: phases_to_skip must be a list of phase names, "
                          f"not {type(asked).__name__}")
    wanted = set()
    for name in asked:
        if name not in PHASE_NAMES:
            raise ConfigError(f"user_scripts/pre_validation.py: phases_to_skip names {name!r}, which is not a phase; "
                              f"expected some of {', '.join(PHASE_NAMES)}")
        if name not in ALWAYS_RUN:  # stale handling and pre-validation always run: they have run already
            wanted.add(name)
    carried: dict[str, PhaseState] = {}
    for name in PHASE_NAMES:
        if name in ALWAYS_RUN:
            continue
        if name not in wanted:
            if name in allowed:
                notes.append(f"{name} runs again: pre_validation.py did not ask to skip it")
            break
        if name not in allowed:
            break
        carried[name] = allowed[name]
    for name in sorted(wanted - set(carried), key=PHASE_NAMES.index):
        if name not in allowed:
            notes.append(f"{name} runs: pre_validation.py asked to skip it, but the window's previous attempt did not "
                         "complete it (or its work is gone), so skipping it would lose data")
        else:
            notes.append(f"{name} runs: pre_validation.py asked to skip it, but a phase before it runs again")
    for name in list(carried):
        again = [p for p in ctx.pipeline.phase(name).carried_only_with if p not in carried and ctx.config.phases.get(p).enabled]
        if again:
            del carried[name]
            notes.append(f"{name} runs again: {', '.join(again)} runs again in this attempt and is compared with it")
    return carried, notes


def _defines(path: Path, name: str) -> bool:
    """Whether the file defines a top-level function ``name`` (read, not run)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name for node in tree.body)


def load_user_scripts(folder: Path) -> dict[str, type[BasePhase]]:
    """Phase classes for every ``user_scripts/<phase>.py`` of ``folder`` or its shared folders.

    The pipeline's own script wins over a shared one of the same phase. A file that is not
    named after a phase is a helper module, unless it defines a function named like itself
    (then it is a phase script with a misspelt name, and that is an error).
    """
    found: dict[str, type[BasePhase]] = {}
    for scripts in script_folders(folder):
        for path in sorted(scripts.glob("*.py")):
            name = path.stem
            if name.startswith("_") or name in found:
                continue
            if name not in PHASE_NAMES:
                if _defines(path, name):
                    raise ConfigError(f"{path}: not a phase name; expected one of {', '.join(PHASE_NAMES)} "
                                      "(a helper module for the scripts must not define a function named like the file)")
                continue
            with script_imports(folder):
                module = import_file(path, f"drivetrain_user_scripts.{folder.name}.{name}")
            function = getattr(module, name, None)
            if not callable(function):
                raise ConfigError(f"{path}: define a function {name}(config, record) returning a dict")
            found[name] = ScriptPhase.wrap(name, function, folder)
    return found
