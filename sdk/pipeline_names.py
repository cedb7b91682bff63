"""What a pipeline reference means: one rule for the CLI, the Python API and Airflow.

A reference is either a **path** or a **name**, and its spelling says which:

- a path looks like one: absolute (``/srv/pipelines/lab``), relative with a leading ``./`` or
  ``../``, starting with ``~``, holding a ``/``, or a ``.json`` file; ``pathlib.Path`` objects
  are always paths. It names a folder holding ``config.json`` (or that file).
- anything else is a **name**: a pipeline registered by a plugin (the
  ``drivetrain_register_pipelines`` hook, the contrib pipelines included), or a folder
  ``<home>/<name>`` under a pipelines home listed in ``DRIVETRAIN_PIPELINES_HOME``
  (several folders separated by ``os.pathsep``). A name never looks at the working
  directory, so it means the same thing in a shell, in a script and on an Airflow worker.

A name that matches two of these (a registered pipeline and a folder under a home, or folders
under two homes) is an error naming both; nothing shadows anything silently.

The contrib pipelines drivetrain ships (``drivetrain.contrib``) can always be named, but the
commands that look at every pipeline (``status``, ``report``) list them only when the user
enables them: ``DRIVETRAIN_CONTRIB_PIPELINES`` names them (separated by commas), or says
``all`` (see :func:`listed_by_default`).
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Any

import attrs

from drivetrain import plugins
from drivetrain._user_path import user_path
from drivetrain.errors import PipelineNotFound

__all__ = ["CONTRIB_ENV", "HOME_ENV", "AmbiguousPipelineName", "Located", "enabled_contrib", "home_pipelines", "is_contrib",
           "listed_by_default", "locate", "looks_like_path", "pipelines_homes"]

log = logging.getLogger(__name__)

#: The environment variable listing the pipelines homes (``os.pathsep``-separated folders).
HOME_ENV = "DRIVETRAIN_PIPELINES_HOME"
#: The environment variable naming the contrib pipelines ``status`` and ``report`` list.
CONTRIB_ENV = "DRIVETRAIN_CONTRIB_PIPELINES"


class AmbiguousPipelineName(PipelineNotFound):
    """A name matches more than one pipeline; the message names each."""


@attrs.frozen
class Located:
    """What a reference resolved to."""

    reference: str
    """The reference as given."""
    kind: str
    """``registered``, ``home`` (a folder under a pipelines home) or ``path``."""
    target: Any
    """The folder (a resolved Path) or, for a pipeline registered as a class, the class."""

    @property
    def folder(self) -> Path | None:
        return self.target if isinstance(self.target, Path) else None

    def describe(self) -> str:
        """Where the pipeline came from, for messages and ``status``."""
        where = str(self.target) if self.folder is not None else f"class {self.target.__module__}.{self.target.__qualname__}"
        if self.kind == "registered":
            return f"the registered pipeline {self.reference!r} ({where})"
        if self.kind == "home":
            return f"the folder {where} (under {HOME_ENV})"
        return f"the folder {where}"


def looks_like_path(reference: str | os.PathLike[str]) -> bool:
    """Whether ``reference`` is a path by its spelling (see the module doc)."""
    if not isinstance(reference, str):
        return True
    text = reference.strip()
    separators = {"/", os.sep, *([os.altsep] if os.altsep else [])}
    return (
        text.startswith((".", "~"))
        or os.path.isabs(text)
        or any(sep in text for sep in separators)
        or text.lower().endswith(".json")
    )


def pipelines_homes(environ: Any = None) -> list[Path]:
    """The folders named by ``DRIVETRAIN_PIPELINES_HOME``, in order (relative ones made absolute)."""
    value = (os.environ if environ is None else environ).get(HOME_ENV, "")
    return [user_path(part).resolve() for part in value.split(os.pathsep) if part.strip()]


def home_pipelines(environ: Any = None) -> dict[str, list[Path]]:
    """Name -> the folders ``<home>/<name>`` holding config.json, over every pipelines home."""
    found: dict[str, list[Path]] = {}
    for home in pipelines_homes(environ):
        if not home.is_dir():
            continue
        for folder in sorted(home.iterdir()):
            if (folder / "config.json").is_file():
                found.setdefault(folder.name, []).append(folder)
    return found


def _registered_target(value: Any) -> Any:
    return user_path(value).resolve() if isinstance(value, (str, os.PathLike)) else value


def _path(reference: str | os.PathLike[str]) -> Located:
    text = os.fspath(reference)
    target = user_path(text)
    if target.is_file():
        target = target.parent
    if not (target / "config.json").is_file():
        raise PipelineNotFound(f"no pipeline at {text!r}: {target.resolve()} holds no config.json")
    return Located(text, "path", target.resolve())


def locate(reference: str | os.PathLike[str]) -> Located:
    """The pipeline ``reference`` means (see the module doc).

    :raises AmbiguousPipelineName: a name matches several pipelines; the message names each.
    :raises PipelineNotFound: nothing matches; the message says where it looked.
    """
    if looks_like_path(reference):
        return _path(reference)
    name = str(reference).strip()
    registered = plugins.registered_pipelines()
    # <home>/<name> in each home, not a listing of every home (a fleet's home holds hundreds)
    matches = [Located(name, "home", home / name) for home in pipelines_homes()
               if name not in ("", ".", "..") and (home / name / "config.json").is_file()]
    if name in registered:
        mine = Located(name, "registered", _registered_target(registered[name]))
        matches = [mine, *(m for m in matches if m.target != mine.target)]
    if len(matches) > 1:
        raise AmbiguousPipelineName(
            f"the pipeline name {name!r} is ambiguous: it means both "
            + " and ".join(m.describe() for m in matches)
            + "; give the folder as a path (such as " + repr(str(matches[-1].target)) + "), or rename one of them"
        )
    if matches:
        _warn_about_folder_here(matches[0])
        return matches[0]
    raise PipelineNotFound(_not_found(name, registered, home_pipelines()))


def _not_found(name: str, registered: dict[str, Any], homes: dict[str, list[Path]]) -> str:
    known = sorted({*registered, *homes})
    close = difflib.get_close_matches(name, known, n=1)
    homes_text = ", ".join(str(h) for h in pipelines_homes()) or f"none: {HOME_ENV} is not set"
    message = (
        f"no pipeline {name!r}: a bare name means a registered pipeline (registered: "
        f"{', '.join(sorted(registered)) or 'none'}) or a folder under a pipelines home ({homes_text})"
    )
    if close:
        message += f"; did you mean {close[0]!r}?"
    if (Path(name) / "config.json").is_file():
        message += f"; for the folder {name} here, write ./{name}"
    return message


def _warn_about_folder_here(located: Located) -> None:
    """A folder of the same name in the working directory is not used: say so, never silently."""
    here = Path(located.reference)
    if (here / "config.json").is_file() and here.resolve() != located.target:
        log.warning(
            "%r means %s, not the folder %s in the working directory; write ./%s for that folder",
            located.reference, located.describe(), here.resolve(), located.reference,
        )


def _contrib_root() -> Path:
    from drivetrain import contrib

    return Path(contrib.__file__).resolve().parent


def is_contrib(target: Any) -> bool:
    """Whether a registered pipeline (its folder) is one of the contrib pipelines drivetrain ships."""
    folder = _registered_target(target)
    return isinstance(folder, Path) and folder.parent == _contrib_root()


def enabled_contrib(environ: Any = None) -> set[str] | None:
    """The contrib pipelines named in ``DRIVETRAIN_CONTRIB_PIPELINES``; None means ``all``."""
    value = (os.environ if environ is None else environ).get(CONTRIB_ENV, "")
    names = {part.strip() for part in value.replace(os.pathsep, ",").split(",") if part.strip()}
    return None if "all" in names else names


def listed_by_default(name: str, target: Any, environ: Any = None) -> bool:
    """Whether a registered pipeline belongs in a listing of every pipeline: any plugin's
    pipeline does; a contrib pipeline only when enabled (see the module doc)."""
    if not is_contrib(target):
        return True
    enabled = enabled_contrib(environ)
    return enabled is None or name in enabled
