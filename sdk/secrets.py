"""Credentials that never leak: resolution, masking and log redaction.

Config files only *name* credentials (``"credentials_ref": "mysql_prod"``); the values come
from the environment or from a registered resolver (an Airflow connection lookup, a vault...)
when a connector is built. Anything secret is wrapped in :class:`Secret`, whose ``repr`` and
``str`` are ``<SECRET>``, and every secret value resolved in this process is remembered so that
:func:`redact` and :class:`RedactingFilter` can blank it out of log lines and messages: whole
values only, in their encoded forms too (see :mod:`drivetrain.redaction`).

Environment variables follow the ref: ``credentials_ref`` ``"mysql_prod"`` reads every variable
starting with ``MYSQL_PROD_`` (``MYSQL_PROD_USER``, ``MYSQL_PROD_PASSWORD``...) and gives the keys
``user`` and ``password``. A ref that is a prefix of another (``mysql`` and ``mysql_prod``) also
sees the longer one's variables, so pick refs that do not nest.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from drivetrain.errors import ConfigError
from drivetrain.redaction import MASK, redact, register_pair, register_secret

__all__ = [
    "PLAIN_KEYS",
    "Credentials",
    "RedactingFilter",
    "Resolver",
    "Secret",
    "install_redaction",
    "redact",
    "register_resolver",
    "register_secret",
    "resolve_credentials",
    "unregister_resolver",
]

#: Credential keys whose values are not secret and stay plain strings.
PLAIN_KEYS = frozenset(
    {
        "user",
        "username",
        "account",
        "host",
        "port",
        "database",
        "schema",
        "role",
        "warehouse",
        "region",
        "endpoint",
    }
)

#: A resolver maps a credentials_ref to its key/value pairs, or None when it does not know it.
Resolver = Callable[[str], Mapping[str, str] | None]

#: Credential keys naming the user of HTTP Basic authentication (for :func:`register_pair`).
_USER_KEYS = ("user", "username")

_lock = threading.Lock()
_resolvers: list[Resolver] = []


class Secret:
    """A secret string: prints as ``<SECRET>``, gives its value only through :meth:`reveal`.

    Two secrets are equal when their values are. Creating one remembers the value for
    :func:`redact`.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a str")
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The secret value itself. Pass it to a driver; never log it."""
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


class Credentials(Mapping[str, "str | Secret"]):
    """Read-only mapping of lower-case keys to credential values.

    Keys in :data:`PLAIN_KEYS` (user, host, port...) map to plain strings, every other key to a
    :class:`Secret`. :meth:`reveal` gives the raw string whichever it is. ``repr`` masks secrets.

    :param ref: the ``credentials_ref`` these came from (for messages).
    :param values: raw key/value pairs; keys are lower-cased.
    """

    __slots__ = ("_items", "ref")

    def __init__(self, ref: str, values: Mapping[str, str]) -> None:
        self.ref = ref
        items: dict[str, str | Secret] = {}
        for key, value in values.items():
            name = str(key).lower()
            text = value if isinstance(value, str) else str(value)
            items[name] = text if name in PLAIN_KEYS else Secret(text)
        self._items = items
        password = items.get("password")
        for user_key in _USER_KEYS:
            user = items.get(user_key)
            if isinstance(user, str) and isinstance(password, Secret):
                register_pair(user, password.reveal())

    def __getitem__(self, key: str) -> str | Secret:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def reveal(self, key: str) -> str | None:
        """The raw string for ``key`` (secret or not), or None when it is absent."""
        value = self._items.get(key.lower())
        if isinstance(value, Secret):
            return value.reveal()
        return value

    def __repr__(self) -> str:
        shown = ", ".join(f"{key!r}: {value!r}" for key, value in self._items.items())
        return f"Credentials(ref={self.ref!r}, {{{shown}}})"


def register_resolver(resolver: Resolver) -> Resolver:
    """Add a credentials resolver; resolvers are tried in registration order, environment last.

    ``resolver(ref)`` returns a mapping of keys to string values, or None when it does not know
    ``ref``. Usable as a decorator. Registering the same function twice has no effect.
    """
    with _lock:
        if resolver not in _resolvers:
            _resolvers.append(resolver)
    return resolver


def unregister_resolver(resolver: Resolver) -> None:
    """Remove a resolver added with :func:`register_resolver` (no error when absent)."""
    with _lock:
        if resolver in _resolvers:
            _resolvers.remove(resolver)


def env_prefix(ref: str) -> str:
    """The environment variable prefix for ``ref``: upper-cased, non-alphanumerics as ``_``."""
    return re.sub(r"[^A-Za-z0-9]", "_", ref).upper() + "_"


def _from_environment(ref: str, environ: Mapping[str, str]) -> dict[str, str]:
    prefix = env_prefix(ref)
    found = {}
    for name, value in environ.items():
        if name.upper().startswith(prefix) and len(name) > len(prefix):
            found[name[len(prefix) :].lower()] = value
    return found


def resolve_credentials(
    ref: str,
    *,
    environ: Mapping[str, str] | None = None,
    json_path: str = "source_system.credentials_ref",
    source_file: str = "config.json",
) -> Credentials:
    """Find the credentials named ``ref``: registered resolvers, then plugins, then the environment.

    :param ref: the ``credentials_ref`` value from config.
    :param environ: where to look for ``REF_*`` variables; ``os.environ`` by default.
    :param json_path: where ``ref`` sits in config, for the error message.
    :param source_file: the config file, for the error message.
    :raises ConfigError: nothing provides credentials for ``ref``.
    """
    if not isinstance(ref, str) or not re.search(r"[A-Za-z0-9]", ref):
        raise ConfigError(
            f"{source_file}: {json_path}: {ref!r} is not a usable credentials_ref; "
            "use letters, digits and underscores",
            source=source_file,
        )
    with _lock:
        resolvers = list(_resolvers)
    for resolver in [*resolvers, _from_plugins]:
        values = resolver(ref)
        if values:
            return Credentials(ref, values)
    values = _from_environment(ref, os.environ if environ is None else environ)
    if values:
        return Credentials(ref, values)
    prefix = env_prefix(ref)
    raise ConfigError(
        f"{source_file}: {json_path}: no credentials found for {ref!r}; set environment "
        f"variables named {prefix}<KEY>, such as {prefix}USER and {prefix}PASSWORD",
        source=source_file,
    )


def _from_plugins(ref: str) -> Mapping[str, str] | None:
    """The ``drivetrain_resolve_credentials`` hook: the first plugin that knows ``ref``."""
    from drivetrain.plugins import get_plugin_manager

    return get_plugin_manager().hook.drivetrain_resolve_credentials(ref=ref)


class RedactingFilter(logging.Filter):
    """A logging filter that replaces remembered secret values in messages, args and tracebacks.

    The message is formatted with its args, redacted, and stored back with no args, so
    handlers further down see only the safe text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for the handler to report
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (the root by default).

    Filters on handlers see records from every child logger too. Safe to call again: a
    handler gets one filter. Handlers added afterwards are not covered; call it again.
    """
    target = logging.getLogger() if logger is None else logger
    installed: RedactingFilter | None = None
    for handler in target.handlers:
        existing = [f for f in handler.filters if isinstance(f, RedactingFilter)]
        if existing:
            installed = installed or existing[0]
            continue
        installed = installed or RedactingFilter()
        handler.addFilter(installed)
    return installed or RedactingFilter()
