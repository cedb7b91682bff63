"""Translate psycopg exceptions into drivetrain's TransientError / PermanentError.

Everything the source does with psycopg runs inside :func:`postgres_errors`, so nothing above
the connector sees a driver exception. The decision rests on the SQLSTATE the server sent:

- connection failures (class 08), a server shutting down or restarting (57P01-57P03), a
  cancelled statement (57014, also a ``statement_timeout``), serialization failures and
  deadlocks (40001, 40P01), too many connections (53300), locks not available (55P03):
  **transient**, a retry may succeed;
- bad credentials (28xxx), a missing database, table or column (3D000, 42P01, 42703),
  missing privileges (42501), SQL errors and any other server error: **permanent**, someone has
  to fix something first.

A connection that fails before the server answers has no SQLSTATE: psycopg's message then
says whether the password was refused (permanent) or the host could not be reached (transient).
Messages name ``host:port/database.schema.table``, add the server's text and say what to do;
the password is never part of one (the server does not echo it, and it is blanked anyway).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from drivetrain.connectors.sqlsource.text import driver_errors

#: SQLSTATEs worth retrying, with a hint on what is going on.
TRANSIENT_STATES: dict[str, str] = {
    "53300": "the server has too many connections; retry later or raise max_connections",
    "57P01": "the server is shutting down; retry once it is back",
    "57P02": "the server crashed and is restarting; retry",
    "57P03": "the server is starting up; retry",
    "57014": "the statement was cancelled (statement_timeout or a cancel request); retry or "
    "raise statement_timeout",
    "40001": "a serialization failure rolled the statement back; retry",
    "40P01": "a deadlock rolled the statement back; retry",
    "55P03": "a lock was not available; retry once the blocking transaction is done",
}

#: SQLSTATEs that will not go away by retrying, with what to fix.
PERMANENT_STATES: dict[str, str] = {
    "28P01": "authentication failed; check the user and password behind credentials_ref",
    "28000": "the server refused this user; check credentials_ref and the server's pg_hba.conf",
    "3D000": "the database does not exist; check 'database' in source_system",
    "42P01": "the table does not exist; check 'schema' and 'table' (or 'query') in source_system",
    "42703": "a column does not exist; check 'query_field', 'columns' and 'query'",
    "42501": "the user may not read this relation; grant SELECT on it (and USAGE on its schema)",
    "42601": "the server rejected the SQL; check 'query'",
}

_AUTH_WORDS = ("password authentication failed", "no password supplied", "role", "pg_hba.conf")


def classify(exc: BaseException) -> tuple[bool, str | None, str]:
    """Say whether a psycopg exception is transient, its SQLSTATE, and a hint."""
    state = getattr(exc, "sqlstate", None)
    if state in TRANSIENT_STATES:
        return True, state, TRANSIENT_STATES[state]
    if state in PERMANENT_STATES:
        return False, state, PERMANENT_STATES[state]
    if state is not None and state.startswith("08"):
        return True, state, "the connection failed or broke; retry"
    if state is not None and state.startswith("28"):
        return False, state, PERMANENT_STATES["28000"]
    if state is None and type(exc).__name__ in ("OperationalError", "InterfaceError", "InternalError"):
        text = str(exc)
        if any(word in text for word in _AUTH_WORDS):
            return False, None, PERMANENT_STATES["28P01"]
        if "does not exist" in text and "database" in text:
            return False, None, PERMANENT_STATES["3D000"]
        if "certificate" in text or "SSL" in text:
            return False, None, "the TLS connection was refused; check 'ssl' and the server"
        return True, None, "the server cannot be reached; check host, port and that it is running"
    if isinstance(exc, OSError | TimeoutError):
        if "[libpq]" in str(exc) and "ERROR:" in str(exc):  # ADBC's stream: the statement failed
            return False, None, "fix the cause reported by the server before retrying"
        return True, None, "the connection is no longer usable; retry"
    return False, state, "fix the cause reported by the server before retrying"


def postgres_errors(
    address: str, action: str, *, secret: str | None = None, secrets: tuple[str, ...] = ()
) -> AbstractContextManager[None]:
    """Turn psycopg (and socket) exceptions raised inside the block into drivetrain errors.

    :param address: ``host:port/database.schema.table`` named in the message.
    :param action: what was being done ("counting rows", "reading rows"...).
    :param secret: the password, blanked out of the message should the driver echo it.
    :param secrets: more text to blank out (the password as quoted in a connection URL).
    """
    return driver_errors(
        f"PostgreSQL {address}", action, is_driver_error=_is_driver_error, classify=classify,
        text=_server_text, secrets=(secret, *secrets),
    )


def _server_text(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_driver_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError):
        return True
    return type(exc).__module__.startswith(("psycopg", "adbc_driver_manager"))
