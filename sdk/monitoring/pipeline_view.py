"""Pipeline folders as ``drivetrain status`` reads them: a remembered config view, shared drive stores.

A :class:`PipelineView` answers what the fleet's status asks of a pipeline (name, config facts,
grid, drive store) from its :class:`~drivetrain.config.view.ConfigView`, without loading the
config in full or building its connectors. Views naming the same drive table share one drive
store (:class:`SharedStores`), taken from the first of them loaded in full. Anything else (the
runner, for a pipeline whose next window needs its own questions) loads the pipeline in full.
"""

from __future__ import annotations

import contextlib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivetrain.config.view import ConfigView, cached_view, needs_full_load, remember_view, view_of
from drivetrain.errors import DrivetrainError
from drivetrain.monitoring.fleet import store_key

if TYPE_CHECKING:
    from drivetrain.drive import DriveStore
    from drivetrain.pipeline import Pipeline
    from drivetrain.window import WindowGrid

__all__ = ["PipelineView", "SharedStores", "drive_key", "load_folder"]


def drive_key(store: DriveStore) -> str:
    """Which drive table a store reads, as text: :func:`~drivetrain.monitoring.fleet.store_key` written out."""
    kind, where = store_key(store)
    return f"{kind.__module__}.{kind.__qualname__} {where}"


class SharedStores:
    """One drive store per drive table for a command's views; closed with :meth:`close`."""

    def __init__(self) -> None:
        self._stores: dict[str, DriveStore] = {}
        self._owners: list[Pipeline] = []

    def store(self, view: PipelineView) -> DriveStore:
        key = view.config.drive_key
        if key not in self._stores:
            owner = view.full()
            self._stores[key] = owner.drive_store()
            self._owners.append(owner)
            view._owned_by_shared = True
        return self._stores[key]

    def close(self) -> None:
        for owner in self._owners:
            owner.close()
        self._owners.clear()
        self._stores.clear()


class PipelineView:
    """A pipeline folder read through its remembered :class:`ConfigView`."""

    def __init__(self, folder: Path, view: ConfigView, shared: SharedStores) -> None:
        self.folder, self.config, self._shared = folder, view, shared
        self._pipeline: Pipeline | None = None
        self._owned_by_shared = False

    @property
    def name(self) -> str:
        return self.config.name

    @cached_property
    def grid(self) -> WindowGrid:
        from drivetrain.monitoring.fleet_windows import _grid

        schedule = self.config.schedule
        return _grid(self.config.query_window.duration, schedule.timezone, schedule.start_date)

    def drive_store(self) -> DriveStore:
        return self._shared.store(self)

    def full(self) -> Pipeline:
        """The pipeline itself, loaded in full (once)."""
        if self._pipeline is None:
            from drivetrain.pipeline import Pipeline

            self._pipeline = Pipeline.from_folder(self.folder)
        return self._pipeline

    def runner(self) -> Any:
        return self.full().runner()

    def close(self) -> None:
        if self._pipeline is not None and not self._owned_by_shared:
            self._pipeline.close()

    def __repr__(self) -> str:
        return f"<PipelineView {self.name}>"


def load_folder(folder: Path, shared: SharedStores) -> Pipeline | PipelineView:
    """The pipeline in ``folder``: a view when one is remembered for the folder as it is now,
    else the pipeline loaded in full (and its view remembered for next time)."""
    folder = folder.resolve()
    if needs_full_load(folder):
        from drivetrain.pipeline import Pipeline

        return Pipeline.from_folder(folder)
    view = cached_view(folder)
    if view is not None:
        return PipelineView(folder, view, shared)
    from drivetrain.pipeline import Pipeline

    pipeline = Pipeline.from_folder(folder)
    with contextlib.suppress(DrivetrainError):  # e.g. its drive store's credentials are not set: not remembered
        remember_view(folder, view_of(pipeline.config, drive_key(pipeline.drive_store())))
    return pipeline
