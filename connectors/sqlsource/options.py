"""Config pieces every SQL source reads the same way: ``ssl``, ``host``, ``columns``, the zone.

Each source's config module keeps its own JSON schema and options class and calls these checks,
so a key means the same thing, and is refused with the same message, in every SQL source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from drivetrain._user_path import user_path
from drivetrain.config.hosts import CREDENTIALS_IN_URL, credentials_in_url

if TYPE_CHECKING:
    from drivetrain.config import SystemConfig

#: JSON schema of the ``ssl`` key.
SSL_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Use TLS. The server certificate is always verified, against 'ca' "
    "or the system's trusted roots. Default: no TLS.",
    "properties": {
        "ca": {"type": "string", "description": "CA bundle file (PEM)."},
        "cert": {"type": "string", "description": "Client certificate file (PEM)."},
        "key": {"type": "string", "description": "Client private key file (PEM)."},
        "verify_identity": {
            "type": "boolean",
            "description": "Check that the certificate names the host. Default true.",
        },
    },
}

#: JSON schema of the ``credentials_ref`` key.
CREDENTIALS_REF_SCHEMA: Mapping[str, Any] = {
    "type": "string",
    "description": "Names the credentials holding 'user' and 'password' "
    "(environment variables REF_USER, REF_PASSWORD or an Airflow connection).",
}


#: JSON schema of the ``host`` key.
HOST_SCHEMA: Mapping[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "Server host. Default 'localhost'.",
}

#: JSON schema of the ``batch_size`` key.
BATCH_SIZE_SCHEMA: Mapping[str, Any] = {
    "type": "integer",
    "minimum": 1,
    "description": "Rows per Arrow record batch (and per fetch). Default 10000.",
}


def port_schema(default: int) -> Mapping[str, Any]:
    """JSON schema of the ``port`` key, the server's usual port being ``default``."""
    return {
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "description": f"Server TCP port. Default {default}.",
    }


@attrs.frozen
class SSLOptions:
    """TLS settings. Relative paths are resolved against the config file's folder."""

    ca: Path | None = None
    """CA bundle used to verify the server; None means the system's trusted roots."""
    cert: Path | None = None
    """Client certificate, for servers that require one."""
    key: Path | None = None
    """Private key of the client certificate."""
    verify_identity: bool = True
    """Whether the certificate must name the host we connect to."""


def parse_ssl(config: SystemConfig) -> SSLOptions | None:
    """The ``ssl`` section with its files resolved and checked, or None when absent.

    :raises ConfigError: naming ``ssl.<key>`` for a missing file or a key without its certificate.
    """
    section = config.get("ssl")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise config.error("ssl", "must be an object with ca, cert, key, verify_identity")

    def path(key: str) -> Path | None:
        value = section.get(key)
        if value is None:
            return None
        resolved = user_path(value)
        if not resolved.is_absolute():
            resolved = Path(config.base_dir) / resolved
        if not resolved.is_file():
            raise config.error(f"ssl.{key}", f"file {str(resolved)!r} does not exist")
        return resolved

    verify = section.get("verify_identity", True)
    if not isinstance(verify, bool):
        raise config.error("ssl.verify_identity", "must be true or false")
    options = SSLOptions(ca=path("ca"), cert=path("cert"), key=path("key"), verify_identity=verify)
    if options.key is not None and options.cert is None:
        raise config.error("ssl.key", "a client key needs its certificate in ssl.cert")
    return options


def identifier_check(config: SystemConfig, pattern: re.Pattern[str]) -> Callable[[str, Any], str]:
    """A check ``ident(key, value)`` returning ``value`` when it is a plain identifier."""

    def ident(key: str, value: Any) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise config.error(key, f"{value!r} is not a plain identifier (letters, digits, _ and $)")
        return value

    return ident


def parse_columns(
    config: SystemConfig, ident: Callable[[str, Any], str], twice: str
) -> tuple[str, ...] | None:
    """The ``columns`` projection, each name checked; ``twice`` is the message for a repeat."""
    columns = config.get("columns")
    if columns is None:
        return None
    if isinstance(columns, str) or not columns:
        raise config.error("columns", "must be a non-empty list of column names")
    names = tuple(ident(f"columns[{i}]", c) for i, c in enumerate(columns))
    if len({c.lower() for c in names}) != len(names):
        raise config.error("columns", twice)
    return names


def parse_zone(config: SystemConfig) -> str:
    """``source_timezone`` (default "UTC"), checked to be an IANA zone name."""
    zone = config.get("source_timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise config.error("source_timezone", f"{zone!r} is not an IANA time zone") from None
    return zone


def parse_reader(config: SystemConfig, readers: Sequence[str]) -> str:
    """``reader`` (default "auto"), checked to be one of ``readers``."""
    reader = config.get("reader", "auto")
    if reader not in readers:
        raise config.error("reader", f"{reader!r} is not one of {', '.join(readers)}")
    return reader


def parse_host(config: SystemConfig) -> str:
    """``host`` (default "localhost"): a name or address, never a URL carrying credentials."""
    host = config.get("host", "localhost")
    if not isinstance(host, str) or not host:
        raise config.error("host", "must be a host name or address")
    if credentials_in_url(host):
        raise config.error("host", CREDENTIALS_IN_URL)
    return host
