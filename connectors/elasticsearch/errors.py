"""Turn the Elasticsearch client's exceptions into drivetrain's Transient/Permanent errors.

Everything the source sends goes through :func:`es_errors`, so nothing above the connector
sees an ``elasticsearch`` or ``elastic_transport`` exception. Worth a retry: connection
refused or reset, timeouts, HTTP 408/429/5xx, a point in time that expired mid-extract.
Not worth one: authentication or permission failures, a missing index, a rejected query,
a server that is not Elasticsearch, a client whose major version the server refuses, TLS
failures. Messages name the hosts and what to do; secret values are blanked out of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from drivetrain.errors import ConnectorError, DrivetrainError, PermanentError, TransientError

_MASK = "<SECRET>"
_TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504})


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``<SECRET>``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


def server_error(body: Any) -> tuple[str, str, list[str]]:
    """(type, reason, root-cause types) of an Elasticsearch error body, as far as it has them."""
    if not isinstance(body, dict):
        return "", str(body or "")[:200], []
    error = body.get("error")
    if isinstance(error, str):
        return error, "", []
    if not isinstance(error, dict):
        return "", "", []
    reason = str(error.get("reason") or "")
    caused_by = error.get("caused_by")
    if isinstance(caused_by, dict) and caused_by.get("reason"):
        reason = f"{reason} (caused by {caused_by.get('type')}: {caused_by['reason']})"
    roots = [str(c.get("type", "")) for c in error.get("root_cause") or [] if isinstance(c, dict)]
    for shard in error.get("failed_shards") or []:
        shard_reason = shard.get("reason") if isinstance(shard, dict) else None
        if isinstance(shard_reason, dict):
            roots.append(str(shard_reason.get("type", "")))
    return str(error.get("type") or ""), reason, roots


def _describe_api_error(exc: Any, where: str, action: str) -> ConnectorError:
    from elasticsearch import UnsupportedProductError

    status = getattr(getattr(exc, "meta", None), "status", None) or getattr(exc, "status_code", 0)
    kind, reason, roots = server_error(getattr(exc, "body", None))
    detail = f"HTTP {status} {kind}: {reason}".rstrip(": ")
    head = f"Elasticsearch at {where}: {action} failed"
    if isinstance(exc, UnsupportedProductError):
        return PermanentError(
            f"{head}: the server did not identify itself as Elasticsearch (no "
            "'X-Elastic-Product: Elasticsearch' header). Check that endpoint points at an "
            "Elasticsearch cluster and not at a proxy or another product."
        )
    if "search_context_missing_exception" in roots or kind == "search_context_missing_exception":
        return TransientError(
            f"{head}: the point in time expired or was lost mid-extract ({detail}). The "
            "extract is incomplete; a retry starts it over. If pages are slow, raise "
            "pit_keep_alive."
        )
    if kind == "media_type_header_exception":
        from elasticsearch import __versionstr__

        return PermanentError(
            f"{head}: the server refused the API version of the installed client "
            f"(elasticsearch-py {__versionstr__}): {detail}. Install the client whose major "
            "version matches the server's, e.g. pip install 'elasticsearch>=8,<9' for an 8.x "
            "cluster."
        )
    if status == 401:
        return PermanentError(
            f"{head}: authentication failed ({detail}). Check the user and password, api_key "
            "or token behind credentials_ref."
        )
    if status == 403:
        return PermanentError(
            f"{head}: permission denied ({detail}). The user needs the read and "
            "view_index_metadata privileges on the index."
        )
    if status == 404 and (
        "index_not_found_exception" in roots or kind == "index_not_found_exception"
    ):
        return PermanentError(f"{head}: {reason or 'no such index'}. Check the index option.")
    if status in _TRANSIENT_STATUS or (isinstance(status, int) and status >= 500):
        return TransientError(
            f"{head}: the cluster is busy or unavailable ({detail}). Retrying later should help."
        )
    return PermanentError(
        f"{head}: the request was rejected ({detail}). Check index, query_field, tiebreaker "
        "and fields against the index mapping."
    )


def translate(exc: BaseException, where: str, action: str) -> ConnectorError | None:
    """The drivetrain error for a client exception, or None when ``exc`` is not one."""
    try:
        from elastic_transport import (
            ConnectionError as TransportConnectionError,
        )
        from elastic_transport import (
            ConnectionTimeout,
            SerializationError,
            TlsError,
            TransportError,
        )
        from elasticsearch import ApiError
    except ImportError:  # pragma: no cover - the source checks the import first
        return None
    head = f"Elasticsearch at {where}: {action} failed"
    if isinstance(exc, ApiError):
        return _describe_api_error(exc, where, action)
    if isinstance(exc, ConnectionTimeout):
        return TransientError(f"{head}: no answer in time ({exc}). Retrying later should help.")
    if isinstance(exc, TlsError):
        return PermanentError(
            f"{head}: TLS failed ({exc}). Check ca_certs and verify_certs, and that the "
            "endpoint scheme (http or https) matches the cluster."
        )
    if isinstance(exc, TransportConnectionError):
        return TransientError(
            f"{head}: cannot reach the cluster ({exc}). Check that it is up and reachable from "
            "here; retrying later may help."
        )
    if isinstance(exc, SerializationError):
        return TransientError(
            f"{head}: the response could not be read ({exc}); it may have been cut off."
        )
    if isinstance(exc, TransportError):
        return TransientError(f"{head}: {exc}. Retrying later may help.")
    return None


@contextmanager
def es_errors(where: str, action: str, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Translate client exceptions raised inside the block; other exceptions pass through.

    :param where: the hosts, for the message (never with credentials).
    :param action: what was being done, e.g. ``"counting documents"``.
    :param secrets: values to blank out of the message, in case a server echoes one.
    """
    try:
        yield
    except DrivetrainError:
        raise
    except Exception as exc:
        error = translate(exc, where, action)
        if error is None:
            raise
        message = scrub(str(error), list(secrets))
        raise type(error)(message) from exc
