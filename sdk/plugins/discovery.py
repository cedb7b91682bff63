"""Finding the ``drivetrain`` entry points of installed distributions, remembered between runs.

``importlib.metadata`` lists every distribution on ``sys.path`` and reads its metadata: 30-40 ms
where Airflow is installed (hundreds of distributions), plus 20 ms to import it, on every start
of the command. What it finds changes only when a distribution is installed, removed or
rewritten, so the entry points found are kept in a small JSON file under the cache folder
(``$DRIVETRAIN_CACHE_DIR/plugins``, see :mod:`drivetrain._cache_dir`), keyed by

* the interpreter and ``sys.path`` (another virtualenv, or ``PYTHONPATH``, has its own file);
* the modification time of every ``sys.path`` folder: installing or removing a distribution
  adds or removes its ``*.dist-info`` folder there, which changes the folder's time (the rule
  ``importlib.metadata`` itself uses to cache a folder's listing);
* the size and time of every distribution's ``entry_points.txt`` in those folders (one
  rewritten in place, as ``setup.py develop`` does in a project's ``*.egg-info``).

Any difference scans again. ``DRIVETRAIN_CONFIG_CACHE=off`` turns remembering off; a cache that
cannot be read or written is simply not used.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from drivetrain._cache_dir import cache_file, write_json

#: Changes whenever the cache file's layout does.
_FORMAT = 1


class Distribution(NamedTuple):
    """What is known of an entry point's distribution: enough for messages and cache keys."""

    name: str
    version: str


class FoundEntryPoint(NamedTuple):
    """An entry point as ``importlib.metadata.EntryPoint`` describes it, without importing it."""

    name: str
    value: str
    group: str
    dist: Distribution | None = None

    def load(self) -> Any:
        """The object named by ``value``, imported as ``EntryPoint.load()`` would."""
        from importlib.metadata import EntryPoint

        return EntryPoint(self.name, self.value, self.group).load()


def plugin_entry_points(group: str = "drivetrain") -> list[FoundEntryPoint]:
    """The entry points of ``group``: what ``importlib.metadata.entry_points(group=group)`` returns.

    Remembered as the module docstring says; a scan parses only the ``entry_points.txt`` files
    that mention ``group``, keeping the same rule for a distribution installed twice on
    ``sys.path``: the first copy counts.
    """
    cache = _cache_file(group)
    if cache is not None:
        kept = _read(cache)
        if kept is not None:
            return kept
    found, everywhere = _scan(group)
    if cache is not None and everywhere:
        _write(cache, found)
    return found


def _installed() -> list[str]:
    """Every ``sys.path`` entry's time, and the size and time of the ``entry_points.txt`` of every
    distribution in it (a stat each: a millisecond or two where hundreds are installed)."""
    found = []
    for entry in sys.path:
        try:
            stat = os.stat(entry or ".")
        except OSError:
            found.append(f"{entry}\0-")
            continue
        found.append(f"{entry}\0{stat.st_mtime_ns}")
        try:
            with os.scandir(entry or ".") as listing:
                infos = sorted(e.path for e in listing if e.name.endswith((".dist-info", ".egg-info")))
        except OSError:  # a zip file: its own time says it changed
            continue
        for info in infos:
            try:
                stat = os.stat(os.path.join(info, "entry_points.txt"))
            except OSError:
                found.append(f"{info}\0-")
            else:
                found.append(f"{info}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return found


def _cache_file(group: str) -> Path | None:
    return cache_file("plugins", f"{_FORMAT}\n{group}\n{sys.executable}\n{sys.path!r}")


def _read(cache: Path) -> list[FoundEntryPoint] | None:
    try:
        kept = json.loads(cache.read_text())
        if kept["installed"] != _installed():
            return None
        return [FoundEntryPoint(e["name"], e["value"], e["group"], Distribution(*e["dist"]) if e["dist"] else None)
                for e in kept["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(cache: Path, found: list[FoundEntryPoint]) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)  # first: it may change a sys.path folder's time
        kept = {
            "installed": _installed(),
            "entry_points": [{"name": e.name, "value": e.value, "group": e.group,
                              "dist": list(e.dist) if e.dist else None} for e in found],
        }
        write_json(cache, kept)
    except OSError:
        return


def _scan(group: str) -> tuple[list[FoundEntryPoint], bool]:
    """The entry points, and whether each came from a folder on disk (else: do not remember,
    :func:`_installed` could not tell when it changes)."""
    from importlib import metadata

    found: list[FoundEntryPoint] = []
    on_disk = True
    seen: set[str] = set()
    for dist in metadata.distributions():
        text = dist.read_text("entry_points.txt")
        if not text or group not in text:
            continue
        name = dist.metadata["Name"]
        if name:
            key = re.sub(r"[-_.]+", "-", name).lower()
            if key in seen or not _first_copy(metadata, name, text):
                continue  # an earlier copy of the distribution on sys.path hides this one
            seen.add(key)
        on_disk = on_disk and isinstance(getattr(dist, "_path", None), os.PathLike)  # a PathDistribution
        owner = Distribution(name, dist.version) if name else None
        found += [FoundEntryPoint(ep.name, ep.value, ep.group, owner) for ep in dist.entry_points.select(group=group)]
    return found, on_disk


def _first_copy(metadata: Any, name: str, text: str) -> bool:
    try:
        return metadata.distribution(name).read_text("entry_points.txt") == text  # type: ignore[no-any-return]
    except metadata.PackageNotFoundError:
        return True
