"""Translate what pysnow and requests raise into drivetrain's TransientError / PermanentError.

pysnow lets ``requests`` raise for an HTTP error status (the error body is not parsed), raises
its own exceptions for odd bodies, and lets ``requests`` connection errors through. Everything
is caught here, at the connector boundary, and re-raised with a message naming the instance and
the table (never the credentials) and saying what to do.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from drivetrain.errors import ConnectorError, PermanentError, TransientError

#: Statuses that may succeed later; any other 4xx is permanent, any other 5xx transient.
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Throttled(TransientError):
    """HTTP 429 from the instance's rate limiter; ``retry_after`` is its advice in seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


def retry_after_seconds(value: str | None) -> float | None:
    """Read a ``Retry-After`` header: seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _server_message(response: Any) -> str:
    """The ``error.message`` / ``error.detail`` ServiceNow puts in a failure body, shortened."""
    try:
        body = response.json()
        error = body.get("error") or {}
        parts = [str(error.get(k)) for k in ("message", "detail") if error.get(k)]
        text = ": ".join(parts)
    except (ValueError, AttributeError):
        text = (response.text or "").strip()
    text = " ".join(text.split())
    return text[:300] or response.reason or "no message"


def http_error(status: int, response: Any, server: str, table: str) -> ConnectorError:
    """The drivetrain error for an HTTP error status answered by ``server``."""
    said = _server_message(response)
    where = f"ServiceNow at {server}"
    if status == 429:
        return Throttled(
            f"{where} is throttling requests (HTTP 429: {said}); retry later or lower the "
            f"request rate of this integration user",
            retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status == 401:
        return PermanentError(
            f"{where} rejected the credentials (HTTP 401: {said}): check the user and "
            f"password under this source's credentials_ref"
        )
    if status == 403:
        return PermanentError(
            f"{where} denied access to table {table!r} (HTTP 403: {said}): give the "
            f"integration user read access (role or ACL) on the table"
        )
    if status in (400, 404):
        return PermanentError(
            f"{where} refused the request on table {table!r} (HTTP {status}: {said}): check "
            f"the table name, the query field and extra_query"
        )
    if status in _TRANSIENT_STATUSES or status >= 500:
        return TransientError(
            f"{where} failed with HTTP {status} ({said}) on table {table!r}; it will be retried"
        )
    return PermanentError(f"{where} answered HTTP {status} ({said}) on table {table!r}")


@contextlib.contextmanager
def servicenow_errors(server: str, table: str) -> Iterator[None]:
    """Run pysnow calls, translating every driver exception into the drivetrain error tree."""
    import pysnow.exceptions as snow
    import requests

    where = f"ServiceNow at {server}"
    try:
        yield
    except requests.HTTPError as exc:
        response = exc.response
        status = response.status_code if response is not None else 0
        raise http_error(status, response, server, table) from exc
    except requests.exceptions.SSLError as exc:
        raise PermanentError(
            f"TLS with {where} failed: check the certificate chain or use_ssl"
        ) from exc
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise TransientError(
            f"could not reach {where} (connection refused, reset or timed out): check that "
            f"the instance is up and reachable; it will be retried"
        ) from exc
    except (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
        json.JSONDecodeError,
        requests.exceptions.JSONDecodeError,
    ) as exc:
        raise TransientError(
            f"{where} sent an incomplete or non-JSON answer for table {table!r} (lost "
            f"connection, proxy error page or hibernating instance); it will be retried"
        ) from exc
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
        raise PermanentError(f"{where} is not a usable address: check instance/host") from exc
    except requests.RequestException as exc:
        raise TransientError(f"request to {where} failed ({type(exc).__name__})") from exc
    except snow.ResponseError as exc:
        raise PermanentError(
            f"{where} answered with an error for table {table!r}: {exc.message}: {exc.detail}"
        ) from exc
    except (snow.MissingResult, snow.UnexpectedResponseFormat, snow.EmptyContent) as exc:
        raise PermanentError(
            f"{where} did not answer like the ServiceNow REST API ({exc}): check instance/host"
        ) from exc
    except snow.PysnowException as exc:
        raise PermanentError(f"pysnow refused a request to {where}: {exc}") from exc
