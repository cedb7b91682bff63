"""Importing the Python files a pipeline folder holds (``pipeline.py``, ``user_scripts/*.py``).

A mistake in one of them (a syntax error, a missing import, an exception at import time) is
the user's to fix, so it becomes a :class:`~drivetrain.errors.ConfigError` naming the file,
the line and the problem, never a traceback from inside drivetrain.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from drivetrain.errors import ConfigError


def import_file(path: Path, module_name: str) -> ModuleType:
    """Run ``path`` as the module ``module_name`` (registered in ``sys.modules`` while it runs).

    :raises ConfigError: the file could not be imported; the message has the file and line.
    """
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported as a Python module; it must be a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of user code is reported
        sys.modules.pop(module_name, None)
        raise ConfigError(import_problem(path, exc)) from exc
    return module


def import_problem(path: Path, exc: BaseException, doing: str = "importing it") -> str:
    """``file:line: what went wrong; what to do``, for an exception raised importing ``path``
    (or, per ``doing``, running code it defines)."""
    fix = f"fix {path.name} and try again"
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}" if exc.lineno else exc.filename
        text = (exc.text or "").strip()
        shown = f" in {text!r}" if text else ""
        via = "" if Path(exc.filename) == path else f" (imported by {path})"
        return f"{where}: {type(exc).__name__}: {exc.msg}{shown}{via}; {fix}"
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename) == path]
    if mine:
        where = f"{path}:{mine[-1].lineno}"
        last = frames[-1]
        if Path(last.filename) != path and not last.filename.startswith("<frozen"):
            where += f" (raised in {last.filename}:{last.lineno})"
    else:
        where = str(path)
    message = str(exc) or "(no message)"
    return f"{where}: {type(exc).__name__} while {doing}: {message}; {fix}"
