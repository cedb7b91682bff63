"""Pipeline: a config, its phase classes and its connectors. It coordinates; phases do the work.

Subclass it to customise phases::

    class GeneticTests(Pipeline):
        config_path = Path(__file__).with_name("config.json")
        phase_classes = {"stage_to_target_transfer": MyTransfer}

or load a folder holding ``config.json`` (and optionally ``pipeline.py`` defining a subclass,
or ``user_scripts/`` in the spec's style) with :meth:`Pipeline.load`.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from drivetrain import _connector_roles, plugins
from drivetrain.config import PipelineConfig, SystemConfig
from drivetrain.errors import ConfigError, DrivetrainError, TransientError
from drivetrain.ownership import owned
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.tables import Stage, Target
from drivetrain.user_code import import_file, import_problem, script_folders, script_imports
from drivetrain.window import EARLIEST_WINDOW, LATEST_WINDOW, WindowGrid

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from drivetrain.base import Archive, Connector, Source
    from drivetrain.drive import DriveStore
    from drivetrain.phases import BasePhase
    from drivetrain.warehouse import Warehouse


class Pipeline:
    """One configured pipeline. Cheap to build; connectors are opened on first use, unless
    given ready-made (``connectors=`` here, or :meth:`use`)."""

    #: The config file a subclass runs with, when not given one explicitly.
    config_path: ClassVar[str | Path | None] = None
    #: Phase name -> class, replacing the defaults for this pipeline.
    phase_classes: ClassVar[Mapping[str, type[BasePhase]]] = {}

    def __init__(self, config: PipelineConfig | str | Path | None = None, *, overrides: Mapping[str, Any] | None = None,
                 connectors: Mapping[str, Connector] | None = None) -> None:
        if config is None:
            if self.config_path is None:
                raise ConfigError(f"{type(self).__name__}: give a config, or set config_path on the class")
            config = Path(self.config_path)
        loaded: PipelineConfig = config if isinstance(config, PipelineConfig) else PipelineConfig.from_file(Path(config))
        if overrides:
            loaded = loaded.with_overrides(dict(overrides))
        _check_start_date(loaded)
        self.config = loaded
        self.extra_phases: dict[str, type[BasePhase]] = {}
        self._connectors: dict[str, Any] = {}
        self._given: dict[str, Any] = {}  # by cache key, checked by use()
        self._retired: list[Any] = []  # built, then replaced by use(): closed by close()
        self._phases: list[BasePhase] | None = None
        if connectors:
            self.use(**connectors)

    # -- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def grid(self) -> WindowGrid:
        sched = self.config.schedule
        return WindowGrid.from_config(self.config.query_window.duration, sched.timezone, sched.start_date)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- loading --------------------------------------------------------------------------

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str], *, overrides: Mapping[str, Any] | None = None) -> Pipeline:
        """A registered pipeline or a folder under a pipelines home by name, or a folder (or
        config.json) by path; the spelling decides, never the working directory (see
        :mod:`drivetrain.pipeline_names`)."""
        from drivetrain.pipeline_names import locate

        located = locate(name_or_path)
        if located.folder is None:
            return located.target(overrides=overrides)  # type: ignore[no-any-return]
        return cls.from_folder(located.folder, overrides=overrides)

    @classmethod
    def from_folder(cls, folder: Path, *, overrides: Mapping[str, Any] | None = None) -> Pipeline:
        """``folder/config.json`` with the Pipeline subclass in ``folder/pipeline.py``, if any."""
        folder = folder.resolve()
        pipeline_cls: type[Pipeline] = cls
        module_file = folder / "pipeline.py"
        if module_file.is_file():
            pipeline_cls = _pipeline_class_in(module_file) or cls
        try:
            pipeline = pipeline_cls(folder / "config.json", overrides=overrides)
        except (DrivetrainError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - the user's __init__ failed: say where
            raise ConfigError(import_problem(module_file, exc, f"creating {pipeline_cls.__name__}")) from exc
        if script_folders(folder):  # the phases (and pyarrow) are imported for scripts, else when a run needs them
            from drivetrain.phases import load_user_scripts

            pipeline.extra_phases = load_user_scripts(folder)
        return pipeline

    # -- phases ---------------------------------------------------------------------------

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_phase_classes(cls.phase_classes, f"{cls.__qualname__}.phase_classes")

    def phase_class(self, name: str) -> type[BasePhase]:
        """Which class runs a phase: this pipeline's, a user script, a plugin's, or the default.

        :raises ConfigError: the class found is not a BasePhase for ``name`` (its ``name``
            differs from the key it was registered under).
        """
        for origin, classes in (
            (f"{type(self).__qualname__}.phase_classes", self.phase_classes),
            (f"{self.config.source_file}: user_scripts", self.extra_phases),
            ("a plugin's drivetrain_register_phases()", plugins.registered_phases()),
        ):
            if name in classes:
                check_phase_classes(classes, origin)
                return classes[name]
        # imported here, not with this module: commands that only read need no phase
        from drivetrain.phases import DEFAULT_PHASES

        return DEFAULT_PHASES[name]

    def phases(self) -> list[BasePhase]:
        """One instance per phase, in run order."""
        if self._phases is None:
            self._phases = [self.phase_class(name)(self) for name in PHASE_NAMES]
        return self._phases

    def phase(self, name: str) -> BasePhase:
        return self.phases()[PHASE_NAMES.index(name)]

    # -- connectors -----------------------------------------------------------------------

    def use(self, **connectors: Connector) -> Self:
        """Give this pipeline ready connectors instead of the ones its config describes.

        ``pipeline.use(source=MemorySource.from_rows(...))`` or, wrapping the configured one,
        ``pipeline.use(source=FaultySource(pipeline.source(), fail_at_batch=0))``. The roles:

        - ``source``: a :class:`~drivetrain.Source`, used by the count and the extract;
        - ``stage``, ``target``, ``drive_table``: a :class:`~drivetrain.Warehouse`; the config
          still names the tables in it (give one object for roles that share a system);
        - ``archive``: an :class:`~drivetrain.Archive`, where stage cleaning archives to.

        An unknown role or an object of the wrong kind raises TypeError and changes nothing.
        The pipeline never closes what it was given: :meth:`close` leaves it open (and in
        place, for the next use of the pipeline); close it yourself. What the pipeline built
        itself, a source you wrapped included, it still closes. Returns the pipeline.
        """
        for key, connector in _connector_roles.checked(connectors).items():
            self._given[key] = connector
            if key in self._connectors:  # built before: still ours to close
                self._retired.append(self._connectors.pop(key))
            derived = {"stage_wh": "stage", "target_wh": "target", "drive_wh": "drive"}.get(key)
            if derived in self._connectors:  # the table or drive store over the old warehouse
                self._retired.append(self._connectors.pop(derived))
        return self

    def _connector(self, key: str, role: str, section: SystemConfig) -> Any:
        if key in self._given:
            return self._given[key]
        if key not in self._connectors:
            cls = plugins.connector_class(role, section.type, json_path=section.json_path, source_file=section.source_file)
            section.validate_against(cls.options_schema)
            self._connectors[key] = cls(section, section.credentials() if section.credentials_ref else None)
        return self._connectors[key]

    def source(self) -> Source:
        return self._connector("source", "source", self.config.source)

    def _warehouse(self, key: str, section: SystemConfig) -> Warehouse:
        """Warehouses are shared between roles that name the same system."""
        warehouse: Warehouse = self._connector(key, "warehouse", section)
        if key in self._given:  # used as given
            return warehouse
        for other_key in ("stage_wh", "target_wh", "drive_wh"):
            other = self._given.get(other_key) or self._connectors.get(other_key)
            if other is not None and other is not warehouse and other.same_warehouse(warehouse):
                if other_key not in self._given:  # a given one is never cached as ours
                    self._connectors[key] = other
                return other
        return warehouse

    def stage(self) -> Stage:
        if "stage" not in self._connectors:
            wh = self._warehouse("stage_wh", self.config.stage)
            ref = wh.table_ref(self.config.stage.options, self.config.source_keys.query_field)
            self._connectors["stage"] = Stage(wh, owned(ref, self.name, self.config.stage_keys.shared, "stage_system"),
                                              for_speed=not self.config.stage.options.get("compress_stage", False))
        return self._connectors["stage"]

    def target(self) -> Target:
        if "target" not in self._connectors:
            cfg = self.config.target
            wh = self._warehouse("target_wh", cfg)
            keys = self.config.target_keys
            query_field = keys.query_field_for(self.config.source_keys.query_field)
            ref = owned(wh.table_ref(cfg.options, query_field), self.name, keys.shared, "target_system")
            self._connectors["target"] = Target(wh, ref, config=self.config)
        return self._connectors["target"]

    def drive_store(self) -> DriveStore:
        if "drive" not in self._connectors:
            cfg = self.config.drive_table
            wh = self._warehouse("drive_wh", cfg)
            options = dict(cfg.options)
            options.setdefault("table", "pipeline_execution_drive")
            self._connectors["drive"] = wh.drive_store(wh.table_ref(options, None))
        return self._connectors["drive"]

    def archive(self) -> Archive:
        """Where stage cleaning archives to: a local folder, or S3 for ``s3://`` locations."""
        section = self.config.archive
        if "archive" in self._given:
            return self._given["archive"]
        if section is None:
            raise ConfigError(
                f"{self.config.source_file}: phases.stage_cleaning.archive_location: required to archive before deleting"
            )
        return self._connector("archive", "archive", section)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Hold each warehouse's connection open for a block of work (the runner: one phase).

        A warehouse that cannot be opened now (its file locked by another process beyond the
        lock timeout) is not held: the work opens it statement by statement instead, so the
        wait happens inside the phase, where transient errors are retried with backoff.
        """
        holds = [self.drive_store().session, self.stage().warehouse.session, self.target().warehouse.session]
        with contextlib.ExitStack() as stack:
            for hold in holds:  # re-entrant: a shared warehouse is held once
                try:
                    stack.enter_context(hold())
                except TransientError as exc:
                    log.warning("not holding a connection open for this phase: %s", exc)
            yield

    @contextlib.contextmanager
    def keep_open(self) -> Iterator[None]:
        """Keep each warehouse's connection between phases for a whole run; an embedded
        warehouse still lets go between phases when another process asks for its file."""
        holds = [self.drive_store().keep_open, self.stage().warehouse.keep_open, self.target().warehouse.keep_open]
        with contextlib.ExitStack() as stack:
            for hold in holds:
                stack.enter_context(hold())
            yield

    def close(self) -> None:
        """Close every connector this pipeline opened; never one it was given (see :meth:`use`)."""
        seen: set[int] = {id(given) for given in self._given.values()}
        for value in [*self._connectors.values(), *self._retired]:
            target = getattr(value, "warehouse", value)
            if id(target) in seen or not hasattr(target, "close"):
                continue
            seen.add(id(target))
            with contextlib.suppress(Exception):  # closing must not hide the run's outcome
                target.close()
        self._connectors.clear()
        self._retired.clear()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------

    def runner(self, **kwargs: Any) -> Any:
        from drivetrain.runner import Runner

        return Runner(self, **kwargs)


def _check_start_date(config: PipelineConfig) -> None:
    start = config.schedule.start_date
    if not EARLIEST_WINDOW.date() <= start < LATEST_WINDOW.date():
        raise ConfigError(
            f"{config.source_file}: dag_schedule.start_date: {start.isoformat()} is outside the range windows can be "
            f"run in ({EARLIEST_WINDOW:%Y-%m-%d} to {LATEST_WINDOW:%Y-%m-%d}); set the first day the source has data"
        )


def check_phase_classes(classes: Mapping[str, object], origin: str) -> None:
    """Every key names a phase, and its class is a BasePhase whose ``name`` is that key.

    :param origin: where the mapping comes from, for the message.
    :raises ConfigError: naming the key, the class and its ``name``, and what to change.
    """
    from drivetrain.phases import BasePhase

    problems = []
    for key, cls in classes.items():
        if key not in PHASE_NAMES:
            close = difflib.get_close_matches(key, PHASE_NAMES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"{origin}: {key!r} is not a phase name; {hint}the phases are {', '.join(PHASE_NAMES)}")
        elif not (inspect.isclass(cls) and issubclass(cls, BasePhase)):
            problems.append(f"{origin}: {key!r} maps to {cls!r}, which is not a BasePhase subclass; give the class itself")
        elif cls.name != key:
            problems.append(
                f"{origin}: {key!r} maps to {cls.__qualname__}, whose name is {cls.name!r}; the key and the class's "
                f"name must be the same phase: subclass the default {key} phase (or set name = {key!r}), or move the "
                f"class to the key {cls.name!r}"
            )
    if problems:
        raise ConfigError(problems, source=origin)


def _pipeline_class_in(path: Path) -> type[Pipeline] | None:
    """Import ``pipeline.py`` and return the Pipeline subclass it defines (the last one)."""
    module_name = f"drivetrain_pipelines.{path.parent.name}"
    with script_imports(path.parent):  # pipeline.py may import modules of its folder and user_scripts
        module = import_file(path, module_name)  # a broken file is a ConfigError with its line
    found = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Pipeline) and obj is not Pipeline and obj.__module__ == module_name
    ]
    return found[-1] if found else None
