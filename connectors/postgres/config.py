"""The ``source_system`` section of a PostgreSQL source, checked and typed.

The config loader validates the section against :data:`OPTIONS_SCHEMA` first; :func:`parse_options`
then turns it into a frozen :class:`PostgresOptions` and re-checks what a JSON Schema cannot
(one of ``table`` / ``query``, duplicate columns, the time zone name, file paths), naming the key
in each error.
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
        "credentials_ref": shared.CREDENTIALS_REF_SCHEMA,
        "host": shared.HOST_SCHEMA,
        "port": shared.port_schema(5432),
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
        "batch_size": shared.BATCH_SIZE_SCHEMA,
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
        "ssl": shared.SSL_SCHEMA,
    },
}


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

    ident = shared.identifier_check(config, IDENTIFIER)

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

    columns = shared.parse_columns(config, ident, "lists a column twice")
    zone = shared.parse_zone(config)
    reader = shared.parse_reader(config, READERS)
    host = shared.parse_host(config)
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
        ssl=shared.parse_ssl(config),
        reader=reader,
    )

