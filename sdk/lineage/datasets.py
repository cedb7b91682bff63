"""OpenLineage dataset names for the systems a pipeline reads and writes.

Names follow the OpenLineage naming conventions where they cover the system, and the same
``scheme://authority`` + dotted-name shape where they do not:

==================  ===============================================  ==============================
type                namespace                                        name
==================  ===============================================  ==============================
duckdb              ``duckdb://<absolute path of the database file>``  ``<schema>.<table>``
snowflake           ``snowflake://<account>``                        ``<DATABASE>.<SCHEMA>.<TABLE>``
mysql / mariadb     ``mysql://<host>:<port>``                        ``<database>.<table>``
elasticsearch       ``elasticsearch://<host>:<port>``                ``<index>``
servicenow          ``servicenow://<instance>.service-now.com``      ``<table>``
files               ``file``                                         ``<absolute path or glob>``
==================  ===============================================  ==============================

A connector from a plugin names its own datasets with a classmethod
``openlineage_dataset(config) -> (namespace, name)``; without one its section's ``type``, host
and table (or index, or path) are used. Names never hold credentials: hosts with a user are
refused by the config loader before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import attrs

from drivetrain.config import SystemConfig

__all__ = ["Dataset", "dataset_of"]


@attrs.frozen
class Dataset:
    """One OpenLineage dataset: where it lives and what it is called there."""

    namespace: str
    """``scheme://authority`` of the system (or ``file`` for the local file system)."""
    name: str
    """The table, index or path inside that namespace."""


def _text(system: SystemConfig, key: str, default: str = "") -> str:
    value = system.get(key)
    return default if value is None else str(value)


def _duckdb(system: SystemConfig) -> Dataset:
    path = (system.path("path") or system.base_dir / "warehouse.duckdb").resolve()
    return Dataset(f"duckdb://{path.as_posix()}", f"{_text(system, 'schema', 'main')}.{_text(system, 'table')}")


def _snowflake(system: SystemConfig) -> Dataset:
    account = _text(system, "account") or _text(system, "host", "unknown")
    parts = (_text(system, "database"), _text(system, "schema", "PUBLIC"), _text(system, "table"))
    return Dataset(f"snowflake://{account.lower()}", ".".join(p.upper() for p in parts if p))


def _mysql(system: SystemConfig) -> Dataset:
    return Dataset(f"mysql://{_text(system, 'host', 'localhost')}:{_text(system, 'port', '3306')}",
                   f"{_text(system, 'database')}.{_text(system, 'table')}")


def _elasticsearch(system: SystemConfig) -> Dataset:
    hosts = system.get("hosts") or [system.get("endpoint") or "localhost"]
    url = urlsplit(str(hosts[0]) if "://" in str(hosts[0]) else f"http://{hosts[0]}")
    port = url.port or (443 if url.scheme == "https" else 9200)
    return Dataset(f"elasticsearch://{url.hostname}:{port}", _text(system, "index"))


def _servicenow(system: SystemConfig) -> Dataset:
    server = _text(system, "host") or f"{_text(system, 'instance')}.service-now.com"
    return Dataset(f"servicenow://{server}", _text(system, "table"))


def _files(system: SystemConfig) -> Dataset:
    raw = _text(system, "path")
    path = system.path("path") if raw else None
    return Dataset("file", path.as_posix() if path is not None else raw)


NAMERS: dict[str, Callable[[SystemConfig], Dataset]] = {
    "duckdb": _duckdb,
    "snowflake": _snowflake,
    "mysql": _mysql,
    "mariadb": _mysql,
    "elasticsearch": _elasticsearch,
    "servicenow": _servicenow,
    "files": _files,
}


def _generic(system: SystemConfig) -> Dataset:
    host = next((_text(system, k) for k in ("host", "instance", "account", "endpoint") if system.get(k)), "")
    authority = urlsplit(host).netloc if "://" in host else host
    name = next((_text(system, k) for k in ("table", "index", "path", "collection") if system.get(k)), system.json_path)
    return Dataset(f"{system.type}://{authority or 'local'}", name)


def dataset_of(system: SystemConfig, role: str) -> Dataset:
    """The dataset a config section names (``role``: source, warehouse or archive).

    A plugin connector's ``openlineage_dataset(config)`` wins; built-in types use the table
    above; anything else gets ``<type>://<host>`` and its table, index or path.
    """
    from drivetrain.plugins import connector_class

    try:
        cls = connector_class(role, system.type, json_path=system.json_path, source_file=system.source_file)
    except Exception:  # noqa: BLE001 - naming a dataset must never stop a run
        cls = None
    own = getattr(cls, "openlineage_dataset", None)
    if own is not None:
        namespace, name = own(system)
        return Dataset(str(namespace), str(name))
    return NAMERS.get(system.type, _generic)(system)
