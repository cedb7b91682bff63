"""Credentials written into a host or URL: found anywhere in a config, refused, never echoed.

``"host": "etl:pa55@db.example.com"`` or ``"endpoint_url": "https://key:secret@minio:9000"``
would put a password where drivetrain prints and stores config values: the validate output,
the drive table's config snapshot, alerts. Credentials belong behind ``credentials_ref``, so
every such value is a config error, and the message names the key but never shows the value.

One rule serves every connector, built-in or not. A value under a host- or URL-like key
(``host``, ``hosts``, ``instance``, ``account``, ``endpoint``, ``*_url``...) is checked in its
authority (what comes before the first ``/``, ``?`` or ``#``, after any ``scheme://``): an
``@`` there means a user, and so credentials. Any other value is checked only when it is a URL
with a password (``scheme://user:password@...``), so a path or a description naming an
address stays allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .problems import JsonPath, Problems

__all__ = ["CREDENTIALS_IN_URL", "credentials_in_url", "embedded_credential_problems", "is_host_key"]

#: Keys whose value names a host or a URL, compared lower-cased with '-' read as '_'.
HOST_KEYS = frozenset({
    "host", "hosts", "hostname", "server", "servers", "address", "instance", "account",
    "endpoint", "endpoints", "url", "urls", "uri", "dsn", "proxy",
})
_HOST_SUFFIXES = ("_host", "_hosts", "_hostname", "_url", "_urls", "_uri", "_endpoint", "_address", "_dsn")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")

CREDENTIALS_IN_URL = (
    "holds a user or password before '@' (the value is not shown); remove them and name the "
    "credentials with credentials_ref instead"
)


def is_host_key(key: object) -> bool:
    """Whether a config key names a host or a URL (``host``, ``endpoint_url``, ``hosts``...)."""
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return name in HOST_KEYS or name.endswith(_HOST_SUFFIXES)


def credentials_in_url(value: str, *, host_like: bool = True) -> bool:
    """Whether ``value`` carries a user (and perhaps a password) in its authority.

    :param host_like: the value sits under a host or URL key, so a bare ``user@host`` or
        ``user:pw@host`` without a scheme counts too. Elsewhere (a description, a path) only a
        URL with a password, ``scheme://user:pw@host``, counts.
    """
    match = _SCHEME.search(value)
    if match is None and not host_like:
        return False
    rest = value[match.end():] if match is not None else value
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _ = authority.rpartition("@")
    return bool(at) and (host_like or ":" in userinfo)


def embedded_credential_problems(value: Any, problems: Problems, path: JsonPath = (), *, host_like: bool = False) -> None:
    """Report every string, at any depth, that holds credentials in a host or URL."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            embedded_credential_problems(item, problems, path + (key,), host_like=is_host_key(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            embedded_credential_problems(item, problems, path + (i,), host_like=host_like)
    elif isinstance(value, str) and credentials_in_url(value, host_like=host_like):
        problems.add(path, CREDENTIALS_IN_URL, block=True)
