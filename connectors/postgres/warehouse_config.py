"""A PostgreSQL warehouse section (``stage_system``, ``target_system`` or ``drive_table``), checked and typed.

The keys a server connection needs (host, port, database, ``credentials_ref``, ``ssl``) mean what
they mean for the PostgreSQL source; :func:`parse_options` builds a frozen
:class:`PostgresWarehouseOptions`. The password stays a :class:`~drivetrain.secrets.Secret`
until :meth:`PostgresWarehouseOptions.connect_kwargs` hands it to the driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.connectors.sqlsource import options as shared
from drivetrain.connectors.sqlsource.options import SSLOptions
from drivetrain.secrets import Secret
from drivetrain.sql.names import check_identifier

if TYPE_CHECKING:
    from drivetrain.config import SystemConfig
    from drivetrain.secrets import Credentials

_IDENT = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$", "maxLength": 63}

OPTIONS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "PostgreSQL warehouse (stage, target or drive table)",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "database"],
    "properties": {
        "type": {"enum": ["postgres", "postgresql"],
                 "description": "A PostgreSQL database: stage, target and drive table (extra 'postgres')."},
        "credentials_ref": shared.CREDENTIALS_REF_SCHEMA,
        "host": shared.HOST_SCHEMA,
        "port": shared.port_schema(5432),
        "database": {"type": "string", "minLength": 1, "description": "Database holding the tables."},
        "schema": {**_IDENT, "description": "Schema holding the table (created if missing). Default 'public'."},
        "table": {**_IDENT, "description": "Table name; stored lower-case, as PostgreSQL stores unquoted names."},
        "connect_timeout": {"type": "integer", "minimum": 1, "description": "Seconds to wait for a connection. Default 10."},
        "lock_timeout_seconds": {"type": "integer", "minimum": 0,
                                 "description": "Seconds a statement waits for a table lock (lock_timeout) before it fails "
                                 "with a transient error. Default 300."},
        "ssl": shared.SSL_SCHEMA,
        "temp_table_prefix": {"type": "string", "description": "Ignored: a window is loaded inside one transaction; "
                              "its batches pass through temporary tables of that session, named by drivetrain."},
    },
}


@attrs.frozen(kw_only=True)
class PostgresWarehouseOptions:
    """Everything needed to connect, with defaults applied. The password prints as ``<SECRET>``."""

    database: str
    host: str = "localhost"
    port: int = 5432
    schema: str = "public"
    """Default schema of tables named without one (validated identifier)."""
    user: str | None = None
    password: Secret | None = None
    connect_timeout: int = 10
    lock_timeout_seconds: int = 300
    ssl: SSLOptions | None = None

    @property
    def identity(self) -> tuple[str, int, str]:
        """What makes two sections the same database (push-down is possible between them)."""
        return (self.host.lower(), self.port, self.database)

    def describe(self) -> str:
        return f"postgres:{self.host}:{self.port}/{self.database}"

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (holds the password: never log it)."""
        kwargs: dict[str, Any] = {
            "host": self.host, "port": self.port, "dbname": self.database, "connect_timeout": self.connect_timeout,
            "application_name": "drivetrain",
            # a run keeps its lease's connection idle for hours: keep NAT and firewall entries alive
            "keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 10, "keepalives_count": 6,
            "options": f"-c TimeZone=UTC -c lock_timeout={self.lock_timeout_seconds * 1000}",
        }
        if self.user:
            kwargs["user"] = self.user
        if self.password is not None:
            kwargs["password"] = self.password.reveal()
        if self.ssl is None:
            kwargs["sslmode"] = "disable"
        else:
            kwargs["sslmode"] = "verify-full" if self.ssl.verify_identity else "verify-ca"
            kwargs["sslrootcert"] = str(self.ssl.ca) if self.ssl.ca else "system"
            if self.ssl.cert is not None:
                kwargs["sslcert"] = str(self.ssl.cert)
            if self.ssl.key is not None:
                kwargs["sslkey"] = str(self.ssl.key)
        return kwargs


def parse_options(config: SystemConfig, credentials: Credentials | None) -> PostgresWarehouseOptions:
    """Build :class:`PostgresWarehouseOptions` from a section and its credentials.

    :raises ConfigError: naming the key, for a bad identifier or a missing user.
    """
    def ident(key: str, default: str) -> str:
        value = config.get(key) or default
        try:
            return check_identifier(value, key)
        except Exception:  # noqa: BLE001 - turned into a ConfigError naming the key
            raise config.error(key, f"{value!r} is not a plain identifier (letters, digits, _ and $)") from None

    database = config.require("database")
    if not isinstance(database, str) or not database:
        raise config.error("database", "must be a database name")
    user = credentials.reveal("user") if credentials is not None else None
    if not user:
        ref = config.credentials_ref
        hint = f"set {ref.upper()}_USER and {ref.upper()}_PASSWORD" if ref else "set credentials_ref"
        raise config.error("credentials_ref", f"no user to connect to PostgreSQL as: {hint}")
    password = credentials.reveal("password") if credentials is not None else None
    return PostgresWarehouseOptions(
        database=database,
        host=shared.parse_host(config),
        port=int(config.get("port", 5432)),
        schema=ident("schema", "public").lower(),
        user=user,
        password=Secret(password) if password else None,
        connect_timeout=int(config.get("connect_timeout", 10)),
        lock_timeout_seconds=int(config.get("lock_timeout_seconds", 300)),
        ssl=shared.parse_ssl(config),
    )
