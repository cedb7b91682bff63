"""Finding pipelines and their drive tables for the commands, and formatting what they hold.

A command names a pipeline by name (registered, or a folder under ``DRIVETRAIN_PIPELINES_HOME``)
or by a path to a folder holding ``config.json`` (``./shop``); see :mod:`drivetrain.pipeline_names`.
Commands that look at many pipelines (``status``, ``show``, ``report``) use every registered
pipeline (the contrib ones only when enabled: see :mod:`drivetrain.pipeline_names`), every
pipeline under the pipelines homes, plus the folder given by ``--dir`` (or the working folder)
when it holds a config.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.errors import ConfigError, DrivetrainError, PipelineNotFound
from drivetrain.window import EARLIEST_WINDOW, LATEST_WINDOW

from ._output import EXIT_USAGE, CliError, output

if TYPE_CHECKING:
    from drivetrain.drive import DriveStore
    from drivetrain.pipeline import Pipeline
    from drivetrain.window import Window


def load(name_or_folder: str) -> Pipeline:
    """Pipeline.load with the command line's error handling: config problems exit 2."""
    from drivetrain.pipeline import Pipeline

    try:
        return Pipeline.load(name_or_folder)
    except PipelineNotFound as exc:
        message = str(exc)
        if "did you mean" not in message and "write ./" not in message:
            import difflib

            here = [p.name for p in Path.cwd().iterdir() if (p / "config.json").is_file()] if Path.cwd().is_dir() else []
            close = difflib.get_close_matches(Path(name_or_folder).name, here, n=1)
            if close:
                message += f"; did you mean the folder ./{close[0]}?"
        raise CliError(message, EXIT_USAGE, kind="not_found") from exc
    except ConfigError as exc:
        raise CliError(config_message(exc), EXIT_USAGE, kind="config") from exc


def config_message(exc: ConfigError) -> str:
    if len(exc.problems) == 1:
        return f"invalid configuration: {exc.problems[0]}"
    return "invalid configuration:\n" + "\n".join(f"  {p}" for p in exc.problems)


@contextmanager
def opened(name_or_folder: str) -> Iterator[Pipeline]:
    pipeline = load(name_or_folder)
    try:
        yield pipeline
    finally:
        pipeline.close()


@attrs.frozen
class Candidate:
    """A pipeline a command may look at, or why it could not be loaded."""

    label: str
    """Registered name, or the folder."""
    pipeline: Any = None
    problem: str | None = None


def candidates(folder: str | None, load_folder: Callable[[Path], Any] | None = None) -> tuple[list[Candidate], list[str]]:
    """Every registered pipeline, every one under the pipelines homes, plus ``folder``
    (default: the working folder) if it has a config. ``load_folder`` loads a pipeline folder
    (default :meth:`Pipeline.from_folder`; ``status`` reads remembered config views).

    :returns: the candidates and a description of where they were found.
    """
    from drivetrain import plugins
    from drivetrain.pipeline import Pipeline
    from drivetrain.pipeline_names import (
        CONTRIB_ENV,
        HOME_ENV,
        home_pipelines,
        listed_by_default,
        looks_like_path,
        pipelines_homes,
    )

    where = []
    found: list[Candidate] = []
    from_folder = load_folder or Pipeline.from_folder
    every = plugins.registered_pipelines()
    registered = {name: target for name, target in every.items() if listed_by_default(name, target)}
    where.append(f"{len(registered)} registered pipeline(s)" + (f" ({', '.join(sorted(registered))})" if registered else ""))
    hidden = sorted(set(every) - set(registered))
    if hidden:
        where.append(f"contrib pipelines not enabled: {', '.join(hidden)} (list them with {CONTRIB_ENV}=name,... or all)")
    for name in sorted(registered):
        found.append(try_load(name, lambda n=name: Pipeline.load(n)))
    homes = home_pipelines()
    if pipelines_homes():
        in_homes = ", ".join(sorted(homes)) or "none"
        where.append(f"{HOME_ENV} {', '.join(str(h) for h in pipelines_homes())} ({in_homes})")
    for name in sorted(set(homes) - set(registered)):
        # one folder: load it (by name, every load would list the homes again: 500 pipelines, 250,000 stats)
        only = homes[name][0] if len(homes[name]) == 1 else None
        found.append(try_load(name, lambda n=name, f=only: from_folder(f) if f else Pipeline.load(n)))
    base = Path(folder) if folder else Path.cwd()
    seen = {c.pipeline.config.base_dir.resolve() for c in found if c.pipeline is not None}
    if (base / "config.json").is_file() and base.resolve() in seen:
        where.append(f"the folder {base.resolve()} (one of the above)")
    elif (base / "config.json").is_file():
        where.append(f"the folder {base.resolve()}")
        label = str(base) if looks_like_path(str(base)) else f"./{base}"  # a folder, never read as a name
        found.append(try_load(label, lambda: from_folder(base)))
    else:
        where.append(f"{base.resolve()} (no config.json there)")
    return found, where


def try_load(label: str, make: Any) -> Candidate:
    try:
        return Candidate(label=label, pipeline=make())
    except ConfigError as exc:
        return Candidate(label=label, problem=config_message(exc))
    except DrivetrainError as exc:
        return Candidate(label=label, problem=str(exc))


def drive_exists(pipeline: Pipeline) -> bool:
    """Whether the pipeline's drive table can be read without creating anything.

    Opening an embedded warehouse creates its file; for ``status`` over every registered
    pipeline that would leave empty database files wherever their configs point. A
    warehouse with a local ``path`` that does not exist yet has no runs: say so instead.
    """
    return pipeline.drive_store().exists()


def drive_location(pipeline: Pipeline) -> str:
    store: DriveStore = pipeline.drive_store()
    return store.location or pipeline.config.drive_table.type


# -- argument checks ----------------------------------------------------------------------

#: The instants windows are run between (see drivetrain.pipeline.EARLIEST_WINDOW).
EARLIEST, LATEST = EARLIEST_WINDOW, LATEST_WINDOW


def within_range(moment: datetime, option: str) -> datetime:
    """``moment`` when it lies in [EARLIEST, LATEST); otherwise a usage error naming ``option``."""
    if not EARLIEST <= moment < LATEST:
        raise out_of_range(moment.isoformat().replace("+00:00", "Z"), option)
    return moment


def out_of_range(text: str, option: str) -> CliError:
    return CliError(f"{option}: {text} is outside the range windows can be run in "
                    f"({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}, UTC); check the date", EXIT_USAGE)


def folder_for_writing(path: Path, option: str) -> Path:
    """Check that ``path`` is, or can be made, a folder: an existing file in its place (or in
    place of one of its parents) is a usage error naming ``option``."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "is" if part == path else f"(a parent of {path}) is"
                raise CliError(f"{option} {path}: {part} {what} a file, not a folder; give a folder", EXIT_USAGE)
            break
    return path


def cannot_write(path: Path, option: str, exc: OSError) -> CliError:
    """A usage error for a folder given with ``option`` that cannot be written."""
    return CliError(f"{option} {path}: cannot write there: {exc.strerror or exc}; give a folder you can write to",
                    EXIT_USAGE)


def write_new_folder(folder: Path, parent: str, what: str, write: Callable[[], list[Path]]) -> str:
    """Run ``write`` (it fills ``folder`` and returns the files written) and list them.

    A folder that did not exist before is removed again when writing fails, so no half-written
    pipeline or package is left behind; the error names ``--dir``. Returns the folder as the
    next steps should spell it (``./name`` for a relative one: a bare name means a registered
    pipeline).
    """
    out = output()
    existed = folder.exists()
    try:
        files = write()
    except OSError as exc:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise cannot_write(Path(parent), "--dir", exc) from exc
    out.line(f"created {folder}/ ({what}):")
    for path in files:
        out.line(f"  {path.relative_to(folder)}")
    out.line("")
    return str(folder) if folder.is_absolute() or str(folder).startswith(".") else f"./{folder}"


# -- formatting ---------------------------------------------------------------------------


def when(value: datetime | None) -> str:
    """A timestamp for tables: UTC, to the second."""
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else ""


def window_text(start: datetime, end: datetime, timezone: str = "UTC") -> str:
    """``2025-11-15 10:00 -> 11:00 UTC``; the end shows its date for windows of a day or more."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    s, e = start.astimezone(zone), end.astimezone(zone)
    seconds = s.second or e.second
    clock = "%H:%M:%S" if seconds else "%H:%M"
    end_fmt = clock if (e - s).total_seconds() < 86400 else f"%Y-%m-%d {clock}"
    label = "UTC" if timezone == "UTC" else s.strftime("%Z")
    if timezone != "UTC" and (s.utcoffset() != e.utcoffset() or _repeated(s) or _repeated(e)):
        # across a clock change, or on a repeated hour: each end with its own offset
        return f"{s.strftime('%Y-%m-%d ' + clock)} {_offset(s)} -> {e.strftime(end_fmt)} {_offset(e)}"
    return f"{s.strftime('%Y-%m-%d ' + clock)} -> {e.strftime(end_fmt)} {label}"


def _repeated(local: datetime) -> bool:
    """Whether the clock showed this reading twice (the hour repeated when clocks go back)."""
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def _offset(local: datetime) -> str:
    """``CEST (+02:00)``."""
    text = local.strftime("%z")
    return f"{local.strftime('%Z')} ({text[:3]}:{text[3:]})"


def window_of(window: Window) -> str:
    return window_text(window.start, window.end, window.timezone)
