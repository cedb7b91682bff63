"""A Snowflake section (``stage_system``, ``target_system`` or ``drive_table``), checked and typed.

The config loader validates the section against :data:`OPTIONS_SCHEMA`; :func:`parse_options`
then merges the credentials named by ``credentials_ref`` and builds a frozen
:class:`SnowflakeOptions`. Secrets stay wrapped in :class:`~drivetrain.secrets.Secret` until
:meth:`SnowflakeOptions.connect_kwargs` hands them to the driver, so ``repr`` never shows them.

Credentials (environment ``REF_*`` variables or a resolver) may hold ``user`` and ``password``,
or ``private_key`` (PEM text) / ``private_key_path`` with an optional ``private_key_passphrase``
for key-pair authentication, or ``token`` for OAuth. They may also supply ``account``, ``host``,
``role``, ``warehouse`` and ``database`` when the section does not name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain._user_path import user_path
from drivetrain.secrets import Secret
from drivetrain.warehouse import check_identifier

if TYPE_CHECKING:
    from drivetrain.config import SystemConfig
    from drivetrain.secrets import Credentials

_IDENT = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$"}

OPTIONS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Snowflake warehouse (stage, target or drive table)",
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"const": "snowflake", "description": "A Snowflake account: stage, target and drive table (extra 'snowflake')."},
        "credentials_ref": {"type": "string", "description": "Names the credentials: user + password, or a private key."},
        "account": {"type": "string", "minLength": 1, "description": "Account identifier, e.g. 'myorg-myaccount'."},
        "user": {"type": "string", "minLength": 1, "description": "Login name; default: 'user' from the credentials."},
        "warehouse": {**_IDENT, "description": "Virtual warehouse that runs the statements."},
        "database": {**_IDENT, "description": "Database holding the table (upper-cased, as Snowflake does)."},
        "schema": {**_IDENT, "description": "Schema holding the table. Default PUBLIC."},
        "table": {**_IDENT, "description": "Table name (upper-cased, as Snowflake does)."},
        "role": {"type": "string", "minLength": 1, "description": "Role to assume after login."},
        "authenticator": {"type": "string", "minLength": 1, "description": "e.g. SNOWFLAKE_JWT, OAUTH, externalbrowser."},
        "host": {"type": "string", "minLength": 1, "description": "Override the account's host (proxies, emulators)."},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "protocol": {"enum": ["https", "http"], "description": "Default https."},
        "query_tag_prefix": {"type": "string", "maxLength": 200, "description": "Text put before the JSON QUERY_TAG of every statement."},
        "client_session_keep_alive": {"type": "boolean", "description": "Keep idle sessions alive (default true): a run can outlast 4 hours."},
        "login_timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds to log in. Default 60."},
        "network_timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds for one request, retries included. Default: the driver's."},
        "lock_timeout_seconds": {"type": "integer", "minimum": 0, "description": "Seconds a statement waits for a table lock (LOCK_TIMEOUT). Default 300."},
        "session_parameters": {"type": "object", "description": "Extra session parameters set at login, e.g. STATEMENT_TIMEOUT_IN_SECONDS."},
        "load_stage": {**_IDENT, "description": "Existing internal stage for bulk loads; default: a temporary stage per session."},
        "temp_table_prefix": {"type": "string", "description": "Accepted for configs written to the spec, and not used: each window is loaded through a transient table named after its table plus __LOAD_ and the run key, which the next run finds and drops if a crash left it."},
    },
}

#: Credential keys that may stand in for a missing option of the same name.
_FROM_CREDENTIALS = ("account", "user", "host", "role", "warehouse", "database", "schema")


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


@attrs.frozen(kw_only=True)
class SnowflakeOptions:
    """Everything needed to open a session, with defaults applied. Secrets print as ``<SECRET>``."""

    account: str
    """Account identifier (``org-account`` or a locator)."""
    user: str | None = None
    database: str
    """Default database of tables named without one (validated identifier)."""
    schema: str = "PUBLIC"
    """Default schema (validated identifier)."""
    warehouse: str | None = None
    role: str | None = None
    authenticator: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str | None = None
    query_tag_prefix: str = ""
    client_session_keep_alive: bool = True
    login_timeout: float = 60.0
    network_timeout: float | None = None
    lock_timeout_seconds: int = 300
    session_parameters: Mapping[str, Any] = attrs.field(factory=dict)
    load_stage: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    private_key: Secret | None = None
    """PEM text of a PKCS#8 private key."""
    private_key_path: Path | None = None
    private_key_passphrase: Secret | None = None

    @property
    def identity(self) -> tuple[str, str, int | None]:
        """What makes two sections the same account (push-down is possible between them)."""
        return (self.account.lower(), (self.host or "").lower(), self.port)

    def describe(self) -> str:
        where = f"{self.host}:{self.port}" if self.host else self.account
        return f"snowflake:{where}/{self.database}.{self.schema}"

    def connect_kwargs(self, session_parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``snowflake.connector.connect`` (holds secrets: never log it)."""
        kwargs: dict[str, Any] = {
            "account": self.account,
            "database": self.database,
            "schema": self.schema,
            "paramstyle": "qmark",
            "autocommit": True,
            "client_session_keep_alive": self.client_session_keep_alive,
            "login_timeout": self.login_timeout,
            "session_parameters": {**self.session_parameters, **session_parameters},
        }
        optional = {
            "user": self.user, "warehouse": self.warehouse, "role": self.role, "host": self.host,
            "port": self.port, "protocol": self.protocol, "network_timeout": self.network_timeout,
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        authenticator = self.authenticator
        if self.private_key is not None:
            kwargs["private_key"] = _der_private_key(self.private_key, self.private_key_passphrase)
            authenticator = authenticator or "SNOWFLAKE_JWT"
        elif self.private_key_path is not None:
            kwargs["private_key_file"] = str(self.private_key_path)
            if self.private_key_passphrase is not None:
                kwargs["private_key_file_pwd"] = self.private_key_passphrase.reveal()
            authenticator = authenticator or "SNOWFLAKE_JWT"
        elif self.token is not None:
            kwargs["token"] = self.token.reveal()
            authenticator = authenticator or "oauth"
        elif self.password is not None:
            kwargs["password"] = self.password.reveal()
        if authenticator:
            kwargs["authenticator"] = authenticator
        return kwargs


def _der_private_key(pem: Secret, passphrase: Secret | None) -> bytes:
    """The PKCS#8 DER bytes the driver wants, from PEM text (optionally encrypted)."""
    from cryptography.hazmat.primitives import serialization

    from drivetrain.errors import PermanentError

    try:
        key = serialization.load_pem_private_key(
            pem.reveal().encode(), password=passphrase.reveal().encode() if passphrase else None
        )
    except (ValueError, TypeError) as exc:
        # the message of cryptography never includes the key; keep only its class to be sure
        raise PermanentError(
            f"the private_key in the credentials cannot be read ({type(exc).__name__}); "
            "give a PEM PKCS#8 key and its private_key_passphrase if it is encrypted"
        ) from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def parse_options(config: SystemConfig, credentials: Credentials | None) -> SnowflakeOptions:
    """Build :class:`SnowflakeOptions` from a section and its credentials.

    :raises ConfigError: naming the key, for a missing account, database or login secret.
    """
    def pick(key: str) -> Any:
        value = config.get(key)
        if value is None and key in _FROM_CREDENTIALS and credentials is not None:
            value = credentials.reveal(key)
        return value

    def ident(key: str, value: Any) -> str:
        try:
            return check_identifier(value, key)
        except Exception:  # noqa: BLE001 - turned into a ConfigError naming the key
            raise config.error(key, f"{value!r} is not a plain identifier (letters, digits, _ and $)") from None

    account = pick("account")
    if not account:
        raise config.error("account", "required: the Snowflake account identifier (or 'account' in the credentials)")
    database = pick("database")
    if not database:
        raise config.error("database", "required: the database holding the tables (or 'database' in the credentials)")
    reveal = credentials.reveal if credentials is not None else (lambda key: None)
    key_path = reveal("private_key_path")
    password, token, private_key = reveal("password"), reveal("token"), reveal("private_key")
    authenticator = config.get("authenticator")
    if not (password or token or private_key or key_path or authenticator):
        ref = config.credentials_ref
        hint = f"set {ref.upper()}_PASSWORD (or _PRIVATE_KEY / _PRIVATE_KEY_PATH)" if ref else "set credentials_ref"
        raise config.error("credentials_ref", f"no password, private key or token for Snowflake: {hint}")
    port = pick("port")
    network_timeout = config.get("network_timeout")
    return SnowflakeOptions(
        account=str(account),
        user=pick("user"),
        database=ident("database", database),
        schema=ident("schema", pick("schema") or "PUBLIC"),
        warehouse=pick("warehouse"),
        role=pick("role"),
        authenticator=authenticator,
        host=pick("host"),
        port=int(port) if port is not None else None,
        protocol=config.get("protocol"),
        query_tag_prefix=str(config.get("query_tag_prefix") or ""),
        client_session_keep_alive=bool(config.get("client_session_keep_alive", True)),
        login_timeout=float(config.get("login_timeout", 60.0)),
        network_timeout=float(network_timeout) if network_timeout is not None else None,
        lock_timeout_seconds=int(config.get("lock_timeout_seconds", 300)),
        session_parameters=dict(config.get("session_parameters") or {}),
        load_stage=ident("load_stage", config.get("load_stage")) if config.get("load_stage") else None,
        password=_secret(password),
        token=_secret(token),
        private_key=_secret(private_key),
        private_key_path=config.base_dir / user_path(key_path) if key_path else None,
        private_key_passphrase=_secret(reveal("private_key_passphrase") or reveal("passphrase")),
    )
