"""Airflow connections as a source of credentials for ``credentials_ref``.

Under Airflow, a pipeline's config names a connection id instead of environment variables::

    "stage_system": {"type": "snowflake", "credentials_ref": "snowflake_prod", ...}

The operators install :func:`connection_credentials` as a drivetrain credentials resolver
before they build any connector, so ``snowflake_prod`` is looked up with
``BaseHook.get_connection`` (the metadata database, ``AIRFLOW_CONN_*`` variables or whatever
secrets backend the deployment configured). A ref with no such connection falls through to the
environment variables as usual.

The connection's fields become drivetrain's credential keys:

============  ==============================================================
connection    credential key
============  ==============================================================
login         ``user``
password      ``password``
host          ``host``
port          ``port``
schema        ``database``; or ``schema`` when the extras name a ``database``
extra (JSON)  one key per entry, lower-cased; ``extra__<type>__`` prefixes
              dropped; nested values as JSON text
============  ==============================================================

Values stay out of logs: drivetrain wraps every non-plain key (password, token, private
key...) in a :class:`~drivetrain.secrets.Secret`, and Airflow masks connection passwords in
task logs on its own.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from drivetrain.errors import TransientError
from drivetrain.secrets import redact, register_resolver, unregister_resolver

__all__ = ["connection_credentials", "install_connection_resolver", "uninstall_connection_resolver"]

log = logging.getLogger("drivetrain.airflow")

#: Old-style provider extras carry their connection type as a prefix: ``extra__snowflake__role``.
_PROVIDER_PREFIX = re.compile(r"^extra__[a-z0-9_]+?__")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def connection_values(
    *,
    login: str | None,
    password: str | None,
    host: str | None,
    port: int | str | None,
    schema: str | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, str]:
    """Map an Airflow connection's fields to drivetrain credential keys (see the module doc).

    Fields that are empty are left out; the connection's own fields win over extras of the
    same name.
    """
    values: dict[str, str] = {}
    for key, value in (extra or {}).items():
        name = _PROVIDER_PREFIX.sub("", str(key).lower())
        if value is not None and value != "":
            values[name] = _text(value)
    fields = {"user": login, "password": password, "host": host, "port": port}
    fields["schema" if "database" in values else "database"] = schema
    for key, value in fields.items():
        if value is not None and value != "":
            values[key] = _text(value)
    return values


def connection_credentials(ref: str) -> dict[str, str] | None:
    """Credentials for ``ref`` from the Airflow connection with that id, or None.

    None when Airflow is not installed or has no connection ``ref`` (the environment is tried
    next). This is a drivetrain resolver: see :func:`drivetrain.secrets.register_resolver`.

    :raises TransientError: the lookup itself failed (secrets backend unreachable...).
    """
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        return None
    try:
        conn = BaseHook.get_connection(ref)
    except AirflowNotFoundException:
        return None
    except Exception as exc:
        raise TransientError(
            f"could not look up the Airflow connection {ref!r} for credentials_ref: "
            f"{type(exc).__name__}: {redact(str(exc))}"
        ) from exc
    try:
        extra = conn.extra_dejson
    except Exception:  # noqa: BLE001 - malformed extra JSON: use the plain fields only
        log.warning("the extra field of Airflow connection %r is not a JSON object; ignoring it", ref)
        extra = {}
    values = connection_values(
        login=conn.login,
        password=conn.password,
        host=conn.host,
        port=conn.port,
        schema=conn.schema,
        extra=extra if isinstance(extra, Mapping) else {},
    )
    log.debug("credentials_ref %r resolved from an Airflow connection (keys: %s)", ref, ", ".join(sorted(values)))
    return values or None


def install_connection_resolver() -> None:
    """Make ``credentials_ref`` look up Airflow connections first (idempotent)."""
    register_resolver(connection_credentials)


def uninstall_connection_resolver() -> None:
    """Undo :func:`install_connection_resolver` (tests; no error when not installed)."""
    unregister_resolver(connection_credentials)
