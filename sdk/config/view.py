"""A light view of a pipeline folder's config: what fleet commands read, remembered between calls.

``drivetrain status`` over 500 pipelines needs of each only its name, tags, schedule and window
(for the grid), freshness threshold and which drive table it writes to. Loading each config in
full (substitution, the schema of every connector section, user-script folders, warehouse
objects for the drive store) cost 5-7 s for the fleet. Once a folder's config loaded in full
without a problem, :class:`ConfigView` keeps exactly those facts in the cache folder of
:mod:`drivetrain.config.validated_cache` (``config-views/``), under a name made of

* the bytes of ``config.json`` and the folder it sits in (relative paths resolve there);
* the value (or absence) of every environment variable the file references as ``${VAR}``;
* drivetrain's version, config schema and config modules, and the plugins installed (a
  connector's own checks come from its plugin).

Anything else changes the name, so the config is loaded in full again: a changed file, a changed
variable, an upgrade. A folder with ``pipeline.py`` or ``user_scripts/`` is always loaded in full
(its code may fail to import, which a view would hide). A config that fails is never remembered.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import attrs

from .model import MetadataConfig, PipelineConfig, ScheduleConfig

__all__ = ["ConfigView", "cached_view", "needs_full_load", "remember_view", "view_of"]

#: Bumped when the stored shape changes.
VIEW_FORMAT = 1
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@attrs.frozen
class QueryWindowView:
    duration: str


@attrs.frozen
class MonitoringView:
    freshness_threshold: timedelta | None = None


@attrs.frozen
class DriveTableView:
    type: str


@attrs.frozen
class ConfigView:
    """The parts of a :class:`PipelineConfig` the fleet commands read, under the same names."""

    name: str
    metadata: MetadataConfig
    schedule: ScheduleConfig
    query_window: QueryWindowView
    monitoring: MonitoringView
    drive_table: DriveTableView
    base_dir: Path
    source_file: str
    drive_key: str
    """Which drive table it writes to: pipelines with the same key share one (see
    :func:`drivetrain.monitoring.fleet.store_key`)."""

    def to_json(self) -> dict[str, Any]:
        threshold = self.monitoring.freshness_threshold
        return {
            "format": VIEW_FORMAT, "name": self.name, "metadata": attrs.asdict(self.metadata),
            "schedule": {**attrs.asdict(self.schedule), "start_date": self.schedule.start_date.isoformat()},
            "duration": self.query_window.duration,
            "freshness_seconds": threshold.total_seconds() if threshold is not None else None,
            "drive_type": self.drive_table.type, "base_dir": str(self.base_dir), "source_file": self.source_file,
            "drive_key": self.drive_key,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfigView:
        seconds = data["freshness_seconds"]
        metadata: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["metadata"].items()}
        return cls(
            name=data["name"], metadata=MetadataConfig(**metadata),
            schedule=ScheduleConfig(**{**data["schedule"], "start_date": date.fromisoformat(data["schedule"]["start_date"])}),
            query_window=QueryWindowView(data["duration"]),
            monitoring=MonitoringView(timedelta(seconds=seconds) if seconds is not None else None),
            drive_table=DriveTableView(data["drive_type"]), base_dir=Path(data["base_dir"]),
            source_file=data["source_file"], drive_key=data["drive_key"],
        )


def view_of(config: PipelineConfig, drive_key: str) -> ConfigView:
    """The view of a config loaded in full."""
    return ConfigView(
        name=config.name, metadata=config.metadata, schedule=config.schedule,
        query_window=QueryWindowView(config.query_window.duration),
        monitoring=MonitoringView(config.monitoring.freshness_threshold),
        drive_table=DriveTableView(config.drive_table.type), base_dir=config.base_dir, source_file=config.source_file,
        drive_key=drive_key,
    )


def needs_full_load(folder: Path) -> bool:
    """Whether the folder holds code that loading it runs (never read through a view)."""
    return (folder / "pipeline.py").exists() or (folder / "user_scripts").exists()


def cached_view(folder: Path) -> ConfigView | None:
    """The remembered view of ``folder``'s config as it is now, or None (load it in full)."""
    path = _place(folder)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        return ConfigView.from_json(data) if data.get("format") == VIEW_FORMAT else None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged entry: load in full (and write it again)


def remember_view(folder: Path, view: ConfigView) -> None:
    """Keep ``view`` for ``folder`` (after a full load that succeeded); never fails."""
    path = _place(folder)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(f".{os.getpid()}.tmp")
        part.write_text(json.dumps(view.to_json()))
        part.replace(path)  # whole or not at all, for a reader in another process
    except OSError:
        return


def _place(folder: Path) -> Path | None:
    from .validated_cache import _fingerprint, cache_folder

    base = cache_folder()
    if base is None:
        return None
    try:
        raw = (folder / "config.json").read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256(f"{VIEW_FORMAT}\n{_fingerprint()}\n{_plugins()}\n{folder.resolve()}\n".encode())
    digest.update(raw)
    for name in sorted(set(_REFERENCE.findall(raw.decode("utf-8", "replace")))):
        value = os.environ.get(name)
        digest.update(f"\n{name}{'=' + value if value is not None else ' unset'}".encode())
    name = digest.hexdigest()
    return base.parent / "config-views" / name[:2] / f"{name}.json"


@functools.cache
def _plugins() -> str:
    """The plugins installed (their entry points), as text."""
    from drivetrain.plugins import plugin_entry_points

    return "\n".join(sorted(f"{ep.name}={ep.value} {getattr(ep.dist, 'version', '')}" for ep in plugin_entry_points()))
