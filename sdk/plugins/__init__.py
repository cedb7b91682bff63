"""The plugin manager: built-ins and installed plugins, found the same way.

The manager is built lazily on first use. Built-in connectors register through
``drivetrain.plugins.builtins`` exactly like a third-party plugin registers through the
``drivetrain`` entry-point group. A plugin that fails to load gives a warning naming it.
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from drivetrain import hookspecs
from drivetrain.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from drivetrain.base import Connector

hookimpl = pluggy.HookimplMarker("drivetrain")
DEFAULT_PLUGINS = ("drivetrain.plugins.builtins", "drivetrain.monitoring.plugin", "drivetrain.lineage.plugin")
ROLES = ("source", "warehouse", "archive")

_manager: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first call."""
    global _manager
    if _manager is None:
        _manager = _build()
    return _manager


def reset_plugin_manager(pm: pluggy.PluginManager | None = None) -> None:
    """Forget the manager (tests), or install a prepared one."""
    global _manager
    _manager = pm


def _build() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("drivetrain")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    for ep in plugin_entry_points():
        if pm.has_plugin(ep.value) or pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break drivetrain
            warnings.warn(f"drivetrain plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        if not pm.is_registered(plugin):
            pm.register(plugin, name=ep.value)
    return pm


def plugin_entry_points(group: str = "drivetrain") -> list[EntryPoint]:
    """The entry points of ``group``: what ``importlib.metadata.entry_points(group=group)`` returns.

    That call parses the ``entry_points.txt`` of every installed distribution (hundreds where
    Airflow is installed); this one parses only the files that mention ``group``, keeping the
    same rule for a distribution installed twice on ``sys.path``: the first copy counts.
    """
    from importlib import metadata

    found: list[EntryPoint] = []
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
        found += dist.entry_points.select(group=group)
    return found


def _first_copy(metadata: Any, name: str, text: str) -> bool:
    try:
        return metadata.distribution(name).read_text("entry_points.txt") == text
    except metadata.PackageNotFoundError:
        return True


def _role_of(cls: type) -> str:
    from drivetrain.base import Archive, Source
    from drivetrain.warehouse import Warehouse

    for base, role in ((Source, "source"), (Warehouse, "warehouse"), (Archive, "archive")):
        if issubclass(cls, base):
            return role
    return "other"


def _load(value: Any) -> type:
    if isinstance(value, str):
        module, _, attr = value.partition(":")
        return getattr(importlib.import_module(module), attr)
    return value


def connector_types(role: str) -> dict[str, Any]:
    """Every registered connector of a role, by type name (classes or lazy "module:Class")."""
    found: dict[str, Any] = {}
    for registered in reversed(get_plugin_manager().hook.drivetrain_register_connectors()):
        for name, value in (registered or {}).items():
            role_hint = name.partition(":")[0] if ":" in name else None
            type_name = name.partition(":")[2] if ":" in name else name
            if role_hint is not None and role_hint != role:
                continue
            found[type_name] = value
    return found


def connector_class(role: str, type_name: str, *, json_path: str, source_file: str = "config.json") -> type[Connector]:
    """The class for ``type`` in a config section, or a ConfigError with did-you-mean."""
    import difflib

    known = connector_types(role)
    if type_name not in known:
        close = difflib.get_close_matches(str(type_name), list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{source_file}: {json_path}.type: unknown {role} type {type_name!r}{hint} "
            f"(installed: {', '.join(sorted(known)) or 'none'})"
        )
    cls = _load(known[type_name])
    if _role_of(cls) != role:
        raise ConfigError(f"{source_file}: {json_path}.type: {type_name!r} is a {_role_of(cls)}, not a {role}")
    return cls


def registered_pipelines() -> dict[str, Any]:
    """Pipeline name -> Pipeline subclass or folder, from every plugin."""
    found: dict[str, Any] = {}
    for registered in reversed(get_plugin_manager().hook.drivetrain_register_pipelines()):
        for name, value in (registered or {}).items():
            found[name] = Path(value) if isinstance(value, str) else value
    return found


def registered_phases() -> dict[str, type]:
    found: dict[str, type] = {}
    for registered in reversed(get_plugin_manager().hook.drivetrain_register_phases()):
        found.update(registered or {})
    return found


def notify(hook: str, **kwargs: Any) -> None:
    """Call a lifecycle hook; a failing plugin is reported, never fatal."""
    try:
        getattr(get_plugin_manager().hook, hook)(**kwargs)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"a drivetrain plugin failed in {hook}: {exc}", stacklevel=2)
