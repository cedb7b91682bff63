"""The ``source_system`` section of a MySQL / MariaDB source, checked and typed.

The config loader validates the section against :data:`OPTIONS_SCHEMA` first; :func:`parse_options`
then turns it into a frozen :class:`MySQLOptions` and re-checks what a JSON Schema cannot
(identifier syntax, duplicate columns, the time zone name, file paths), naming the key in
each error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from drivetrain.config.hosts import CREDENTIALS_IN_URL, credentials_in_url

if TYPE_CHECKING:
    from drivetrain.config import SystemConfig

#: What a database, table, column or index name may contain. Names are also backquoted in SQL,
#: so this is a second line of defence, not the only one.
IDENTIFIER = re.compile(r"^[A-Za-z0-9_$]+$")

#: Values of the ``reader`` key.
READERS = ("auto", "connectorx", "pymysql")

_IDENT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": IDENTIFIER.pattern, "maxLength": 64}

OPTIONS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "MySQL / MariaDB source",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "database", "table", "query_field"],
    "properties": {
        "type": {"enum": ["mysql", "mariadb"], "description": "'mysql' (or its alias 'mariadb')."},
        "credentials_ref": {
            "type": "string",
            "description": "Names the credentials holding 'user' and 'password' "
            "(environment variables REF_USER, REF_PASSWORD or an Airflow connection).",
        },
        "host": {
            "type": "string",
            "minLength": 1,
            "description": "Server host. Default 'localhost'.",
        },
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "description": "Server TCP port. Default 3306.",
        },
        "database": {**_IDENT_SCHEMA, "description": "Database (schema) holding the table."},
        "table": {**_IDENT_SCHEMA, "description": "Table (or view) to read."},
        "query_field": {
            **_IDENT_SCHEMA,
            "description": "DATETIME, TIMESTAMP or DATE column that places a row in a window: "
            "rows with start <= query_field < end are read.",
        },
        "batch_size": {
            "type": "integer",
            "minimum": 1,
            "description": "Rows per Arrow record batch (and per fetch). Default 10000.",
        },
        "columns": {
            "type": "array",
            "items": _IDENT_SCHEMA,
            "minItems": 1,
            "uniqueItems": True,
            "description": "Columns to read, in this order. Default: every column of the "
            "table. The query field is always read, appended when not listed.",
        },
        "force_index": {
            **_IDENT_SCHEMA,
            "description": "Index the window query must use (FORCE INDEX). Useful when the "
            "optimizer scans the whole table for a small window. Default: none.",
        },
        "source_timezone": {
            "type": "string",
            "description": "IANA zone that naive DATETIME and DATE values are written in. "
            "TIMESTAMP columns are always read in UTC. Default 'UTC'.",
        },
        "connect_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds to wait for a connection. Default 10.",
        },
        "read_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds to wait for each server reply (a slow COUNT counts as "
            "one reply). Default 600.",
        },
        "net_write_timeout": {
            "type": "integer",
            "minimum": 1,
            "description": "Seconds the server waits while we pause reading an extract "
            "(for example while a batch is loaded downstream) before it aborts the stream. "
            "Default 600.",
        },
        "reader": {
            "enum": ["auto", "connectorx", "pymysql"],
            "description": "How the extract reads rows. 'connectorx' reads Arrow pages "
            "in Rust, several times faster (needs the mysql-fast extra), by primary-key ranges "
            "when the window's keys are dense; 'pymysql' is pure Python, one streamed "
            "statement. 'auto' takes connectorx when it is installed and can read the table "
            "(no 'ssl', no spatial columns), else pymysql. Both yield the same rows with the "
            "same values. Default 'auto'.",
        },
        "ssl": {
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
        },
    },
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


@attrs.frozen
class MySQLOptions:
    """Everything the MySQL source reads from its config section, with defaults applied."""

    database: str
    """Database (schema) holding the table."""
    table: str
    """Table or view read one window at a time."""
    query_field: str
    """DATETIME / TIMESTAMP / DATE column compared with the window bounds."""
    host: str = "localhost"
    """Server host name or address."""
    port: int = 3306
    """Server TCP port."""
    batch_size: int = 10_000
    """Rows fetched and emitted per record batch."""
    columns: tuple[str, ...] | None = None
    """Projection, in output order; None reads every column."""
    force_index: str | None = None
    """Index named in ``FORCE INDEX (...)``, or None to let the optimizer choose."""
    source_timezone: str = "UTC"
    """Zone of naive DATETIME / DATE values."""
    connect_timeout: float = 10.0
    """Seconds allowed to connect."""
    read_timeout: float = 600.0
    """Seconds allowed for each server reply."""
    net_write_timeout: int = 600
    """Seconds the server tolerates a paused reader during an extract."""
    ssl: SSLOptions | None = None
    """TLS settings, or None for a plain connection."""
    reader: str = "auto"
    """Extract reader: "auto", "connectorx" or "pymysql"."""

    @property
    def address(self) -> str:
        """``host:port/database.table``: names the data in messages (never credentials)."""
        return f"{self.host}:{self.port}/{self.database}.{self.table}"


def parse_options(config: SystemConfig) -> MySQLOptions:
    """Build :class:`MySQLOptions` from a ``source_system`` section.

    :raises ConfigError: naming the key, for anything the schema lets through but we refuse.
    """

    def ident(key: str, value: Any) -> str:
        if not isinstance(value, str) or not IDENTIFIER.match(value):
            raise config.error(
                key, f"{value!r} is not a plain identifier (letters, digits, _ and $)"
            )
        return value

    def number(key: str, default: float, kind: type = float) -> Any:
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise config.error(key, f"must be a positive number, got {value!r}")
        if kind is int and value != int(value):
            raise config.error(key, f"must be a whole number, got {value!r}")
        return kind(value)

    columns = config.get("columns")
    if columns is not None:
        if isinstance(columns, str) or not columns:
            raise config.error("columns", "must be a non-empty list of column names")
        columns = tuple(ident(f"columns[{i}]", c) for i, c in enumerate(columns))
        lowered = [c.lower() for c in columns]
        if len(set(lowered)) != len(lowered):
            raise config.error("columns", "lists a column twice (names are case-insensitive)")

    zone = config.get("source_timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise config.error("source_timezone", f"{zone!r} is not an IANA time zone") from None

    reader = config.get("reader", "auto")
    if reader not in READERS:
        raise config.error("reader", f"{reader!r} is not one of {', '.join(READERS)}")
    if reader == "connectorx" and config.get("ssl") is not None:
        raise config.error(
            "reader", "the connectorx reader cannot apply 'ssl'; use 'pymysql' or 'auto'"
        )
    force_index = config.get("force_index")
    host = config.get("host", "localhost")
    if not isinstance(host, str) or not host:
        raise config.error("host", "must be a host name or address")
    if credentials_in_url(host):
        raise config.error("host", CREDENTIALS_IN_URL)
    return MySQLOptions(
        database=ident("database", config.require("database")),
        table=ident("table", config.require("table")),
        query_field=ident("query_field", config.require("query_field")),
        host=host,
        port=number("port", 3306, int),
        batch_size=number("batch_size", 10_000, int),
        columns=columns,
        force_index=None if force_index is None else ident("force_index", force_index),
        source_timezone=zone,
        connect_timeout=number("connect_timeout", 10.0),
        read_timeout=number("read_timeout", 600.0),
        net_write_timeout=number("net_write_timeout", 600, int),
        ssl=_parse_ssl(config),
        reader=reader,
    )


def _parse_ssl(config: SystemConfig) -> SSLOptions | None:
    section = config.get("ssl")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise config.error("ssl", "must be an object with ca, cert, key, verify_identity")

    def path(key: str) -> Path | None:
        value = section.get(key)
        if value is None:
            return None
        resolved = Path(value).expanduser()
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
