"""The ``source_system`` section of a PostgreSQL source, checked and typed.

The config loader validates the section against :data:`OPTIONS_SCHEMA` first; :func:`parse_options`
then turns it into a frozen :class:`PostgresOptions` and re-checks what a JSON Schema cannot
(one of ``table`` / ``query``, duplicate columns, the time zone name, file paths), naming the key
in each error.
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

#: What a schema, table or column name may contain. Names are also double-quoted in SQL, so
#: this is a second line of defence, not the only one.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

#: Values of the ``reader`` key.
READERS = ("auto", "adbc", "psycopg")

_IDENT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": IDENTIFIER.pattern, "maxLength": 63}

OPTIONS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "PostgreSQL source",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "database", "query_field"],
    "properties": {
        "type": {
            "enum": ["postgres", "postgresql"],
            "description": "'postgres' (or its alias 'postgresql').",
        },
        "credentials_ref": {
            "type": "string",
            "description": "Names the credentials holding 'user' and 'password' "
            "(environment variables REF_USER, REF_PASSWORD or an Airflow connection).",
        },
        "host": {"type": "string", "minLength": 1, "description": "Server host. Default 'localhost'."},
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "description": "Server TCP port. Default 5432.",
        },
        "database": {"type": "string", "minLength": 1, "description": "Database to connect to."},
        "schema": {**_IDENT_SCHEMA, "description": "Schema holding the table. Default 'public'."},
        "table": {
            **_IDENT_SCHEMA,
            "description": "Table (or view) to read. Give 'table' or 'query', not both.",
        },
        "query": {
            "type": "string",
            "minLength": 1,
            "description": "A SELECT whose rows are read instead of a table. It becomes a "
            "sub-select with the window predicate around it, so it must not end in ';'; a '%' "
            "in it is taken literally. Give 'table' or 'query', not both.",
        },
        "query_field": {
            **_IDENT_SCHEMA,
            "description": "timestamp, timestamptz or date column that places a row in a "
            "window: rows with start <= query_field < end are read.",
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
            "description": "Columns to read, in this order. Default: every column. The query "
            "field is always read, appended when not listed.",
        },
        "source_timezone": {
            "type": "string",
            "description": "IANA zone that timestamp (without time zone) and date values are "
            "written in. timestamptz columns name instants and need none. Default 'UTC'.",
        },
        "connect_timeout": {
            "type": "integer",
            "minimum": 1,
            "description": "Seconds to wait for a connection. Default 10.",
        },
        "statement_timeout": {
            "type": "integer",
            "minimum": 0,
            "description": "Seconds a count or a fetch of the extract may take on the server "
            "(0: no limit). Default 0.",
        },
        "reader": {
            "enum": ["auto", "adbc", "psycopg"],
            "description": "How the extract reads rows. 'adbc' streams binary COPY into Arrow "
            "in C (adbc-driver-postgresql, part of the postgres extra), about three times faster; "
            "'psycopg' reads a server-side cursor in Python. Both yield the same rows and "
            "values. 'auto' takes adbc when it is installed. Default 'auto'.",
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
class PostgresOptions:
    """Everything the PostgreSQL source reads from its config section, with defaults applied."""

    database: str
    """Database connected to."""
    query_field: str
    """timestamp / timestamptz / date column compared with the window bounds."""
    table: str | None = None
    """Table or view read one window at a time (None when ``query`` is given)."""
    query: str | None = None
    """A SELECT read one window at a time instead of a table."""
    schema: str = "public"
    """Schema holding ``table``."""
    host: str = "localhost"
    """Server host name or address."""
    port: int = 5432
    """Server TCP port."""
    batch_size: int = 10_000
    """Rows fetched and emitted per record batch."""
    columns: tuple[str, ...] | None = None
    """Projection, in output order; None reads every column."""
    source_timezone: str = "UTC"
    """Zone of timestamp-without-time-zone and date values."""
    connect_timeout: int = 10
    """Seconds allowed to connect."""
    statement_timeout: int = 0
    """Seconds a statement may run on the server; 0 for no limit."""
    ssl: SSLOptions | None = None
    """TLS settings, or None for a plain connection."""
    reader: str = "auto"
    """Extract reader: "auto", "adbc" or "psycopg"."""

    @property
    def relation(self) -> str:
        """``schema.table``, or ``(query)`` for a query source."""
        return f"{self.schema}.{self.table}" if self.table else "(query)"

    @property
    def address(self) -> str:
        """``host:port/database.schema.table``: names the data in messages (never credentials)."""
        return f"{self.host}:{self.port}/{self.database}.{self.relation}"


def parse_options(config: SystemConfig) -> PostgresOptions:
    """Build :class:`PostgresOptions` from a ``source_system`` section.

    :raises ConfigError: naming the key, for anything the schema lets through but we refuse.
    """

    def ident(key: str, value: Any) -> str:
        if not isinstance(value, str) or not IDENTIFIER.match(value):
            raise config.error(key, f"{value!r} is not a plain identifier (letters, digits, _ and $)")
        return value

    def number(key: str, default: int, minimum: int = 1) -> int:
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise config.error(key, f"must be a whole number of at least {minimum}, got {value!r}")
        return value

    table, query = config.get("table"), config.get("query")
    if (table is None) == (query is None):
        raise config.error("table", "give either 'table' or 'query' (a SELECT), exactly one")
    if query is not None:
        if not isinstance(query, str) or not query.strip():
            raise config.error("query", "must be a SELECT statement")
        query = query.strip()
        if query.endswith(";"):
            raise config.error("query", "must not end in ';' (it is wrapped in the window predicate)")

    columns = config.get("columns")
    if columns is not None:
        if isinstance(columns, str) or not columns:
            raise config.error("columns", "must be a non-empty list of column names")
        columns = tuple(ident(f"columns[{i}]", c) for i, c in enumerate(columns))
        if len({c.lower() for c in columns}) != len(columns):
            raise config.error("columns", "lists a column twice")

    zone = config.get("source_timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise config.error("source_timezone", f"{zone!r} is not an IANA time zone") from None

    reader = config.get("reader", "auto")
    if reader not in READERS:
        raise config.error("reader", f"{reader!r} is not one of {', '.join(READERS)}")
    host = config.get("host", "localhost")
    if not isinstance(host, str) or not host:
        raise config.error("host", "must be a host name or address")
    if credentials_in_url(host):
        raise config.error("host", CREDENTIALS_IN_URL)
    database = config.require("database")
    if not isinstance(database, str) or not database:
        raise config.error("database", "must be a database name")
    return PostgresOptions(
        database=database,
        query_field=ident("query_field", config.require("query_field")),
        table=None if table is None else ident("table", table),
        query=query,
        schema=ident("schema", config.get("schema", "public")),
        host=host,
        port=number("port", 5432),
        batch_size=number("batch_size", 10_000),
        columns=columns,
        source_timezone=zone,
        connect_timeout=number("connect_timeout", 10),
        statement_timeout=number("statement_timeout", 0, minimum=0),
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
