"""The plugin manager: built-ins and installed plugins, found the same way.

The manager is built lazily on first use. Built-in connectors register through
``drivetrain.plugins.builtins`` exactly like a third-party plugin registers through the
``drivetrain`` entry-point group. A plugin that fails to load gives a warning naming it.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from drivetrain import hookspecs
from drivetrain.errors import ConfigError
from drivetrain.plugins.discovery import plugin_entry_points

if TYPE_CHECKING:
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
