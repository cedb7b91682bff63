"""Translate pymysql exceptions into drivetrain's TransientError / PermanentError.

Everything the source does with pymysql runs inside :func:`mysql_errors`, so nothing above the
connector sees a driver exception. The decision rests on the MySQL / MariaDB error number:

- lost or refused connections, timeouts, lock waits, deadlocks, killed or interrupted
  queries, a server shutting down, too many connections: **transient**, a retry may succeed;
- bad credentials, missing database / table / column / index, SQL errors, missing privileges,
  and any other server error: **permanent**, someone has to fix something first.

Messages name the system and ``host:port/database.table``, add the server's own text and say
what to do. The password is never part of a message: the server does not echo it, and
:func:`mysql_errors` blanks it out anyway should it ever appear.
"""

from __future__ import annotations

import ssl
from contextlib import AbstractContextManager
from typing import Any

from drivetrain.connectors.sqlsource.text import driver_errors

#: Error numbers worth retrying, with a hint on what is going on.
TRANSIENT_CODES: dict[int, str] = {
    1040: "the server has too many connections; retry later or raise max_connections",
    1053: "the server is shutting down; retry once it is back",
    1158: "a network read failed; retry",
    1159: "a network read timed out; retry",
    1160: "a network write failed; retry",
    1161: "a network write timed out (net_write_timeout); retry",
    1203: "the user has too many connections; retry later",
    1205: "a lock wait timed out; retry once the blocking transaction is done",
    1213: "a deadlock rolled the statement back; retry",
    1226: "the user exceeded a resource limit; retry later",
    1317: "the query was interrupted (KILL QUERY); retry",
    1927: "the connection was killed on the server; retry",
    1969: "the statement hit max_statement_time; retry or raise the limit",
    2002: "the server socket cannot be reached; check the server is running",
    2003: "the server cannot be reached; check host, port and that it is running",
    2006: "the server went away; retry",
    2013: "the connection was lost mid-query (killed, timed out or server restart); retry",
    2055: "the connection was lost; retry",
    3024: "the statement hit max_execution_time; retry or raise the limit",
}

#: Error numbers that will not go away by retrying, with what to fix.
PERMANENT_CODES: dict[int, str] = {
    1044: "the user may not use this database; grant SELECT on it",
    1045: "authentication failed; check the user and password behind credentials_ref",
    1049: "the database does not exist; check 'database' in source_system",
    1054: "a column does not exist; check 'query_field' and 'columns'",
    1064: "the server rejected the SQL; check the configured identifiers",
    1142: "the user may not read this table; grant SELECT on it",
    1143: "the user may not read a column; grant SELECT on it or drop it from 'columns'",
    1146: "the table does not exist; check 'database' and 'table' in source_system",
    1176: "the index named in 'force_index' does not exist on this table",
    1698: "access denied for this user; check the credentials behind credentials_ref",
}


def classify(exc: BaseException) -> tuple[bool, int | None, str]:
    """Say whether a pymysql exception is transient, its error number, and a hint.

    Client-side failures without a number in the table (errors 2000-2999, pymysql's
    InterfaceError on a dropped connection, OS socket errors) count as transient; unknown
    server errors count as permanent.
    """
    cause = getattr(exc, "original_exception", None)  # pymysql keeps the OS error of a connect
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        cause, ssl.SSLCertVerificationError
    ):
        return (
            False,
            None,
            (
                "the server's TLS certificate was rejected; check ssl.ca, and the host name "
                "against the certificate (or set ssl.verify_identity to false)"
            ),
        )
    code = None
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if args and isinstance(args[0], int):
        code = args[0]
    if code in TRANSIENT_CODES:
        return True, code, TRANSIENT_CODES[code]
    if code in PERMANENT_CODES:
        return False, code, PERMANENT_CODES[code]
    kind = type(exc).__name__
    if code is not None and 2000 <= code < 3000:
        return True, code, "client-side connection problem; retry"
    if kind == "InterfaceError" or isinstance(exc, OSError | TimeoutError):
        return True, code, "the connection is no longer usable; retry"
    return False, code, "fix the cause reported by the server before retrying"


def _server_text(exc: BaseException) -> str:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[1], str):
        return args[1]
    return str(exc) or type(exc).__name__


def mysql_errors(address: str, action: str, *, secret: str | None = None) -> AbstractContextManager[None]:
    """Turn pymysql (and socket) exceptions raised inside the block into drivetrain errors.

    :param address: ``host:port/database.table`` named in the message.
    :param action: what was being done ("counting rows", "reading rows"...).
    :param secret: the password, blanked out of the message should the driver echo it.
    """
    return driver_errors(
        f"MySQL {address}", action, is_driver_error=_is_driver_error, classify=classify,
        text=_server_text, secrets=(secret,),
    )


def _is_driver_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError):
        return True
    return type(exc).__module__.startswith("pymysql")
