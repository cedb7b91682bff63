"""Translate snowflake-connector-python exceptions into TransientError / PermanentError.

Everything the connector does runs inside :func:`snowflake_errors`, so phases and the runner
never see a driver exception. The decision rests on the Snowflake error number, then on the
kind of exception:

- lock-wait queue overflow (000625), statement or lock timeouts (000630), cancelled statements,
  expired or vanished sessions (390111, 390112, 390114), HTTP 5xx / 429 / timeouts, lost
  connections and any other network failure: **transient**;
- missing objects (002003), missing privileges (003001), SQL errors, bad credentials, no active
  warehouse and anything else the server rejects: **permanent**.

Errors that leave the session unusable (expired, closed, connection-level SQLSTATE ``08xxx``)
are flagged so the session pool drops that session and the retry logs in afresh. Messages
never carry a secret: they pass through :func:`drivetrain.secrets.redact`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from drivetrain.errors import ConnectorError, PermanentError, TransientError
from drivetrain.secrets import redact

#: Error numbers worth retrying, with what is going on.
TRANSIENT_CODES: dict[int, str] = {
    604: "the statement was cancelled; retry",
    625: "more than 20 statements queued for a lock on the same table; retry later or run fewer writers at once",
    630: "the statement hit its statement or lock timeout; retry, or raise lock_timeout_seconds",
    390111: "the session no longer exists; a new session is opened on retry",
    390112: "the session expired; a new session is opened on retry",
    390114: "the session's authentication token expired; a new session is opened on retry",
    250001: "could not connect to Snowflake; check the network and the account's host",
    250002: "the connection was closed; a new session is opened on retry",
    250003: "a request to Snowflake failed; retry",
    251011: "logging in timed out; retry or raise login_timeout",
    252010: "downloading a result chunk failed; retry",
    253002: "a download from a stage failed; retry",
    253003: "an upload to a stage failed; retry",
}

#: Error numbers that retrying will not cure, with what to fix.
PERMANENT_CODES: dict[int, str] = {
    2003: "the object does not exist or the role may not see it; check database, schema, table and the role's grants",
    2043: "the object does not exist or the role may not use it; check the names and grants",
    3001: "the role lacks a privilege the statement needs; grant it (see the connector docs for the list)",
    904: "a column does not exist; check query_field, dedup_keys, merge_keys and rename",
    1003: "Snowflake rejected the SQL; check the configured identifiers",
    606: "no active warehouse; set 'warehouse' or a default warehouse for the user",
    100090: "a MERGE found several stage rows for one key; set dedup_keys equal to merge_keys",
    390100: "login failed: check the user and password behind credentials_ref",
    390144: "key-pair login failed: check the private key and the public key registered for the user",
    390189: "the role is not granted to this user; check 'role'",
    390201: "the database, schema or warehouse in config does not exist or is not authorized",
}

#: Error numbers after which the session cannot be used again.
_BROKEN_CODES = frozenset({390111, 390112, 390114, 250001, 250002, 250003})

_HTTP_TRANSIENT = frozenset({
    "InternalServerError", "ServiceUnavailableError", "GatewayTimeoutError", "BadGatewayError",
    "RequestTimeoutError", "TooManyRequests", "OtherHTTPRetryableError", "RequestExceedMaxRetryError",
})


def classify(exc: BaseException) -> tuple[bool, bool, str]:
    """Whether ``exc`` is transient, whether it broke the session, and a hint on what to do."""
    if isinstance(exc, OSError | TimeoutError):
        return True, True, "a network operation failed; retry"
    errno = getattr(exc, "errno", None)
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    kind = type(exc).__name__
    if errno in TRANSIENT_CODES:
        return True, errno in _BROKEN_CODES or sqlstate.startswith("08"), TRANSIENT_CODES[errno]
    if errno in PERMANENT_CODES:
        return False, False, PERMANENT_CODES[errno]
    text = str(exc)
    if any(code in text for code in ("390100", "390144", "Incorrect username or password")):
        return False, True, PERMANENT_CODES[390100]
    if kind in _HTTP_TRANSIENT:
        return True, True, "Snowflake answered with a server error; retry"
    if sqlstate.startswith("08"):
        return True, True, "the connection or session was lost; a new session is opened on retry"
    if kind in ("OperationalError", "InterfaceError"):
        return True, True, "the connection failed; retry"
    if kind in ("ForbiddenError", "BadRequest", "MethodNotAllowed", "MissingDependencyError"):
        return False, True, "Snowflake refused the request; check the account, host and credentials"
    return False, False, "fix the cause reported by Snowflake before retrying"


def is_driver_error(exc: BaseException) -> bool:
    """True for exceptions of snowflake-connector-python (and the OS errors below it)."""
    return isinstance(exc, OSError | TimeoutError) or type(exc).__module__.startswith("snowflake.")


@contextmanager
def snowflake_errors(where: str, on_broken: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn driver exceptions raised inside the block into drivetrain errors.

    :param where: what was being done and on what, for the message ("count DB.SCH.T").
    :param on_broken: called when the error left the session unusable (the pool drops it).
    """
    try:
        yield
    except ConnectorError:
        raise
    except Exception as exc:
        if not is_driver_error(exc):
            raise
        transient, broken, hint = classify(exc)
        if broken and on_broken is not None:
            on_broken()
        errno = getattr(exc, "errno", None)
        code = f" {errno:06d}" if isinstance(errno, int) and errno > 0 else ""
        text = redact(" ".join(str(getattr(exc, "msg", None) or exc).split()))
        message = f"Snowflake: {where} failed (error{code}: {text}); {hint}"
        raise (TransientError if transient else PermanentError)(message) from exc
