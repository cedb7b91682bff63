"""The ``source_system`` section of a MySQL / MariaDB source, checked and typed.

The config loader validates the section against :data:`OPTIONS_SCHEMA` first; :func:`parse_options`
then turns it into a frozen :class:`MySQLOptions` and re-checks what a JSON Schema cannot
(identifier syntax, duplicate columns, the time zone name, file paths), naming the key in
each error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.connectors.sqlsource import options as shared
from drivetrain.connectors.sqlsource.options import SSLOptions as SSLOptions  # re-exported

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
        "credentials_ref": shared.CREDENTIALS_REF_SCHEMA,
        "host": shared.HOST_SCHEMA,
        "port": shared.port_schema(3306),
        "database": {**_IDENT_SCHEMA, "description": "Database (schema) holding the table."},
        "table": {**_IDENT_SCHEMA, "description": "Table (or view) to read."},
        "query_field": {
            **_IDENT_SCHEMA,
            "description": "DATETIME, TIMESTAMP or DATE column that places a row in a window: "
            "rows with start <= query_field < end are read.",
        },
        "batch_size": shared.BATCH_SIZE_SCHEMA,
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
            "statement, along the primary key too when the window's keys are dense. 'auto' "
            "takes connectorx when it is installed and can read the table (no 'ssl', no spatial "
            "columns), else pymysql. Both yield the same rows with the same values, in the same "
            "order. Default 'auto'.",
        },
        "ssl": {
            **shared.SSL_SCHEMA,
            "type": ["object", "boolean"],
            "not": {"const": True},
            "description": "TLS. Not set: the pymysql connections are encrypted when the "
            "server offers TLS, without checking its certificate (what MySQL clients call "
            "ssl-mode PREFERRED), and plain otherwise; the connectorx reader's are plain. An object: TLS is required and the "
            "server certificate is verified, against 'ca' or the system's trusted roots. "
            "false: never TLS.",
        },
    },
}


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
    """TLS settings (TLS required and verified), or None."""
    ssl_disabled: bool = False
    """``"ssl": false``: never TLS. With neither this nor ``ssl``, TLS when the server offers it."""
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

    ident = shared.identifier_check(config, IDENTIFIER)

    def number(key: str, default: float, kind: type = float) -> Any:
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise config.error(key, f"must be a positive number, got {value!r}")
        if kind is int and value != int(value):
            raise config.error(key, f"must be a whole number, got {value!r}")
        return kind(value)

    columns = shared.parse_columns(config, ident, "lists a column twice (names are case-insensitive)")
    zone = shared.parse_zone(config)
    reader = shared.parse_reader(config, READERS)
    disabled = config.get("ssl") is False
    if reader == "connectorx" and config.get("ssl") is not None and not disabled:
        raise config.error(
            "reader", "the connectorx reader cannot apply 'ssl'; use 'pymysql' or 'auto'"
        )
    force_index = config.get("force_index")
    host = shared.parse_host(config)
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
        ssl=None if disabled else shared.parse_ssl(config),
        ssl_disabled=disabled,
        reader=reader,
    )

