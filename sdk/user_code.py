"""Importing the Python files a pipeline folder holds (``pipeline.py``, ``user_scripts/*.py``).

While they are imported and while a script phase runs, the spec's import style works
(:func:`script_imports`): the pipeline folder and the project folders around it are on
``sys.path`` (``import helpers`` finds ``<pipeline>/helpers.py``), and ``user_scripts`` is a
package made of the pipeline's own ``user_scripts/`` followed by the shared ones
(:func:`shared_script_folders`), so ``from user_scripts import common_utilities`` finds the
pipeline's module first, else the project's.

A mistake in one of them (a syntax error, a missing import, an exception at import time) is
the user's to fix, so it becomes a :class:`~drivetrain.errors.ConfigError` naming the file,
the line and the problem, never a traceback from inside drivetrain.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
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


#: The package name spec-style scripts import shared code from.
SCRIPTS_PACKAGE = "user_scripts"
#: Project folders above a pipeline folder that may hold a shared ``user_scripts/``: the
#: folder holding the pipeline's folder (``projects/``), and the one above it.
SHARED_LEVELS = 2

_imports_lock = threading.RLock()


def shared_script_folders(folder: Path) -> list[Path]:
    """The shared ``user_scripts/`` folders of a pipeline folder, nearest first.

    With the spec's layout ``<project>/projects/<pipeline>/config.json`` the shared folder is
    ``<project>/user_scripts`` (or ``<project>/projects/user_scripts``).
    """
    folder = folder.resolve()
    return [p / SCRIPTS_PACKAGE for p in list(folder.parents)[:SHARED_LEVELS] if (p / SCRIPTS_PACKAGE).is_dir()]


def script_folders(folder: Path) -> list[Path]:
    """The pipeline's own ``user_scripts/`` (if any), then the shared ones."""
    own = folder.resolve() / SCRIPTS_PACKAGE
    return ([own] if own.is_dir() else []) + shared_script_folders(folder)


def _import_roots(folder: Path) -> list[Path]:
    folder = folder.resolve()
    return [folder, *(p.parent for p in shared_script_folders(folder))]


#: Folders put on sys.path for some pipeline so far (see :func:`_forget_foreign`).
_seen_roots: set[str] = set()


def _forget_foreign(roots: list[str]) -> None:
    """Drop modules imported from another pipeline's folders, so a name means this pipeline's module.

    Only modules lying directly in such a folder (``helpers.py``, ``helpers/__init__.py``) are
    dropped: nothing installed, nothing deeper, is touched.
    """
    foreign = {Path(r) for r in _seen_roots if r not in roots}
    if not foreign:
        return
    mine = {Path(r) for r in roots}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        where = Path(file).parent
        home = where.parent if Path(file).name == "__init__.py" else where
        if home in foreign and home not in mine:
            del sys.modules[name]


@contextmanager
def script_imports(folder: Path) -> Iterator[None]:
    """The spec's imports for the pipeline in ``folder``, while the block runs.

    ``user_scripts`` is (re)made the package of this pipeline's script folders; its submodules
    imported for another pipeline are forgotten first, so two pipelines in one process each see
    their own ``common_utilities``. The pipeline folder and the project folders are put first
    on ``sys.path`` and taken off again afterwards.
    """
    folders = [str(p) for p in script_folders(folder)]
    roots = [str(p) for p in _import_roots(folder)]
    with _imports_lock:
        _forget_foreign(roots)
        _seen_roots.update(roots)
        current = sys.modules.get(SCRIPTS_PACKAGE)
        if current is None or list(getattr(current, "__path__", [])) != folders:
            for name in [m for m in sys.modules if m == SCRIPTS_PACKAGE or m.startswith(SCRIPTS_PACKAGE + ".")]:
                del sys.modules[name]
            package = ModuleType(SCRIPTS_PACKAGE, "user scripts of the pipeline being run (drivetrain)")
            package.__path__ = folders
            sys.modules[SCRIPTS_PACKAGE] = package
        added = [r for r in roots if r not in sys.path]
        sys.path[:0] = added
    try:
        yield
    finally:
        with _imports_lock:
            for root in added:
                if root in sys.path:
                    sys.path.remove(root)
