"""A wire-level Elasticsearch emulator for tests: the real client talks HTTP to it.

It speaks the part of the REST API a windowed source uses, shaped the way the real server
shapes it, including the parts the official client checks:

- every response carries ``X-Elastic-Product: Elasticsearch`` (the client refuses a server
  without it);
- ``Accept`` / ``Content-Type`` of the form ``application/vnd.elasticsearch+json;
  compatible-with=N`` are accepted for the server's major and the one before it, anything else
  gets the server's 400 ``media_type_header_exception`` (so a 9.x client fails on an 8.x
  emulator exactly as it fails on an 8.x cluster);
- ``GET /``, ``HEAD /``, ``HEAD /{index}``, ``GET /{index}/_mapping``, ``GET|POST
  /{index}/_count``, ``POST /{index}/_pit``, ``GET|POST [/{index}]/_search`` (``pit``,
  ``sort`` with ``format``, ``search_after``, ``size``, ``_source``, ``track_total_hits``, the
  implicit ``_shard_doc`` tiebreaker under a point in time), ``DELETE /_pit``;
- errors as ``{"error": {"root_cause": [...], "type": ..., "reason": ...}, "status": N}``.

A point in time freezes the documents it sees; documents added later are invisible to it.
Each index is one shard, so ``_shard_doc`` is ``(index ordinal << 32) | position``.

Incomplete answers, each only when a test asks for it (by default every answer is complete and a
point in time keeps its id), shaped as Elasticsearch shapes them:

- :meth:`~EsEmulator.rotate_pit_ids`: every search under a point in time answers with a new
  ``pit_id``. Elasticsearch may do so on any search (the id names the shard copies holding the
  search contexts, which can change) and tells clients to send the newest; here the id a search
  was sent stops working at once, so a client that keeps its first id fails as on a cluster
  whose contexts moved (``search_context_missing_exception``).
- :meth:`~EsEmulator.fail_shards_next`: a ``_count`` or ``_search`` loses a shard (the last of
  those it spans). A count answers 200 with the surviving shards' count and ``_shards.failed``
  / ``failures``; so does a search that allows partial results (the cluster default), while a
  search sent ``allow_partial_search_results=false`` gets the 503 Elasticsearch returns
  instead; when every shard of the request failed both get ``all shards failed``.
- :meth:`~EsEmulator.time_out_next`: a ``_search`` runs out of its time. Allowing partial
  results it answers 200 with ``timed_out: true`` and only the hits collected before (every
  shard still counted successful, as Elasticsearch counts them); with
  ``allow_partial_search_results=false`` it fails with a search timeout (504).

Test API: :meth:`EsEmulator.start`, :meth:`~EsEmulator.stop`, :attr:`~EsEmulator.url`,
:meth:`~EsEmulator.add_documents`, :meth:`~EsEmulator.reset`, and fault injection:
:meth:`~EsEmulator.expire_pits`, :meth:`~EsEmulator.fail_next`, :meth:`~EsEmulator.drop_next`,
:meth:`~EsEmulator.stall_next`, :meth:`~EsEmulator.rotate_pit_ids`,
:meth:`~EsEmulator.fail_shards_next`, :meth:`~EsEmulator.time_out_next`,
:meth:`~EsEmulator.require_auth`, :meth:`~EsEmulator.require_api_key`. Every request is kept
in :attr:`~EsEmulator.requests`. Standard library only.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import copy
import fnmatch
import itertools
import json
import operator
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

_NANOS = 1_000_000_000
_MAX_WINDOW = 10_000
_DATE_TYPES = {"date", "date_nanos"}
_COMPAT = re.compile(r"application/vnd\.elasticsearch\+[a-z-]+\s*;\s*compatible-with=(\d+)")
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_DURATION = re.compile(r"^(\d+)(nanos|micros|ms|s|m|h|d)$")
_RANGE_OPS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
_UNIT_SECONDS = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


class EsError(Exception):
    """An error response, shaped as Elasticsearch shapes it."""

    def __init__(self, status: int, type_: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        cause = {"type": type_, "reason": reason, **extra}
        root = extra.pop("root_cause", None) or [{"type": type_, "reason": reason}]
        cause.pop("root_cause", None)
        self.status = status
        self.body = {"error": {"root_cause": root, **cause}, "status": status}


def parse_date(value: Any) -> int | None:
    """Epoch nanoseconds for an ISO 8601 string or epoch milliseconds; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value * 1_000_000)
    if not isinstance(value, str):
        return None
    if re.fullmatch(r"-?\d+", value):
        return int(value) * 1_000_000
    match = _ISO.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        seconds = calendar.timegm(
            (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
        )
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds * _NANOS + int((fraction or "0").ljust(9, "0"))


def format_date(nanos: int, *, min_digits: int = 3, max_digits: int = 9) -> str:
    """Print epoch nanoseconds as ``strict_date_optional_time(_nanos)`` does, in UTC."""
    seconds, fraction = divmod(nanos, _NANOS)
    tm = time.gmtime(seconds)
    digits = f"{fraction:09d}"[:max_digits]
    while len(digits) > min_digits and digits.endswith("0"):
        digits = digits[:-1]
    return (
        f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}.{digits}Z"
    )


def _keep_alive_seconds(text: str) -> float:
    match = _DURATION.match(text or "")
    if not match:
        raise EsError(
            400,
            "illegal_argument_exception",
            f"failed to parse setting [keep_alive] with value [{text}] as a time value",
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _lookup(source: Any, path: str) -> list[Any]:
    """Every value at a dotted path, through nested objects, literal dotted keys and arrays."""
    if isinstance(source, list):
        return [value for item in source for value in _lookup(item, path)]
    if not isinstance(source, dict):
        return []
    if path in source:
        value = source[path]
        return [v for v in value if v is not None] if isinstance(value, list) else [value]
    found = []
    parts = path.split(".")
    for cut in range(1, len(parts)):
        head = ".".join(parts[:cut])
        if head in source:
            found.extend(_lookup(source[head], ".".join(parts[cut:])))
    return [value for value in found if value is not None]


def _infer(value: Any) -> dict[str, Any] | None:
    """Dynamic mapping of one value, as Elasticsearch's defaults would map it."""
    if isinstance(value, list):
        return next((m for m in map(_infer, value) if m is not None), None)
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, dict):
        return {"properties": {}}
    if isinstance(value, str):
        if _ISO.match(value) and "-" in value[:5]:
            return {"type": "date"}
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    return None


def _merge_dynamic(properties: dict[str, Any], doc: dict[str, Any], dynamic: Any) -> None:
    for key, value in doc.items():
        head, _, rest = key.partition(".")
        if rest:
            value, key = {rest: value}, head
        current = properties.get(key)
        if current is None:
            if str(dynamic).lower() in ("false", "runtime"):
                continue
            if str(dynamic).lower() == "strict":
                raise ValueError(f"mapping is strict and [{key}] is not mapped")
            current = _infer(value)
            if current is None:
                continue
            properties[key] = current
        inner = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)]
        if "properties" in current:
            for item in inner:
                _merge_dynamic(current["properties"], item, current.get("dynamic", dynamic))


def _resolve_field(mapping: dict[str, Any], path: str) -> tuple[str | None, str]:
    """The mapped type of a dotted path and where its value sits in ``_source``.

    A multi-field (``name.keyword``) reads its parent's value.
    """
    properties = mapping.get("properties", {})
    parts = path.split(".")
    for index, part in enumerate(parts):
        node = properties.get(part)
        if node is None:
            return None, path
        if index == len(parts) - 1:
            return node.get("type", "object"), path
        rest = ".".join(parts[index + 1 :])
        if rest in node.get("fields", {}):
            return node["fields"][rest].get("type"), ".".join(parts[: index + 1])
        properties = node.get("properties", {})
    return None, path


def _field_type(mapping: dict[str, Any], path: str) -> str | None:
    return _resolve_field(mapping, path)[0]


@dataclass
class LoggedRequest:
    """One request the emulator received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class _Index:
    mapping: dict[str, Any] = field(default_factory=lambda: {"properties": {}})
    docs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _Pit:
    shards: list[tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]]]]
    expires_at: float


@dataclass
class _Fault:
    remaining: int
    status: int | None
    path: str | None
    error_type: str
    reason: str


_FAULT_SHAPES = {
    429: (
        "es_rejected_execution_exception",
        "rejected execution of search on EsThreadPoolExecutor[name = emulator/search, queue capacity = 1000]",
    ),
    500: ("exception", "internal error"),
    502: ("bad_gateway", "bad gateway"),
    503: ("unavailable_shards_exception", "primary shard is not active"),
    504: ("gateway_timeout", "gateway timeout"),
}


class EsEmulator:
    """A small Elasticsearch that runs in a thread on 127.0.0.1 (see the module docstring)."""

    def __init__(self, version: str = "9.1.0") -> None:
        self.version = version
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start(cls, version: str = "9.1.0") -> EsEmulator:
        """Start an emulator reporting ``version`` on a free port; raises if it cannot bind."""
        emulator = cls(version)
        emulator._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(emulator))
        emulator._server.daemon_threads = True
        emulator._thread = threading.Thread(
            target=emulator._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        emulator._thread.start()
        return emulator

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EsEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None, "emulator is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    # -- test API ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget indices, points in time, faults, auth requirements and the request log."""
        with self._lock:
            self.indices: dict[str, _Index] = {}
            self.pits: dict[str, _Pit] = {}
            self.requests: list[LoggedRequest] = []
            self.send_product_header = True
            self._faults: list[_Fault] = []
            self._interruptions: list[list[Any]] = []
            self._expire_after: int | None = None
            self._auth: set[str] | None = None
            self._rotate_pits = False
            self._shard_troubles: list[list[Any]] = []
            self._trouble: str | None = None

    def add_documents(
        self, index: str, docs: list[dict[str, Any]], mapping: dict[str, Any] | None = None
    ) -> None:
        """Index ``docs`` (an ``_id`` key sets the id) into ``index``, creating it if needed.

        ``mapping`` (``{"properties": ..., "dynamic": ...}``) is merged into the index's mapping;
        fields it does not name are mapped dynamically, as the real server would.
        """
        with self._lock:
            target = self.indices.setdefault(index, _Index())
            if mapping:
                target.mapping.update({k: v for k, v in mapping.items() if k != "properties"})
                target.mapping["properties"].update(copy.deepcopy(mapping.get("properties", {})))
            for doc in docs:
                source = dict(doc)
                doc_id = str(source.pop("_id", None) or f"doc-{next(self._ids)}")
                _merge_dynamic(
                    target.mapping["properties"], source, target.mapping.get("dynamic", True)
                )
                target.docs.append((doc_id, copy.deepcopy(source)))

    def expire_pits(self, after_pages: int = 0) -> None:
        """Expire every open point in time now, or after ``after_pages`` more searches."""
        with self._lock:
            if after_pages <= 0:
                self.pits.clear()
                self._expire_after = None
            else:
                self._expire_after = after_pages

    def fail_next(
        self,
        n: int = 1,
        status: int = 429,
        *,
        path: str | None = None,
        error_type: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests (whose path contains ``path``) with an error."""
        default_type, default_reason = _FAULT_SHAPES.get(status, ("exception", "injected"))
        with self._lock:
            self._faults.append(
                _Fault(n, status, path, error_type or default_type, reason or default_reason)
            )

    def drop_next(self, n: int = 1, *, path: str | None = None) -> None:
        """Close the connection without answering the next ``n`` requests matching ``path``."""
        with self._lock:
            self._interruptions.append([n, path, "drop"])

    def stall_next(self, n: int = 1, seconds: float = 1.0, *, path: str | None = None) -> None:
        """Wait ``seconds`` before answering the next ``n`` requests matching ``path``."""
        with self._lock:
            self._interruptions.append([n, path, seconds])

    def rotate_pit_ids(self, rotate: bool = True) -> None:
        """Answer every search under a point in time with a new id, retiring the one it was sent."""
        with self._lock:
            self._rotate_pits = rotate

    def fail_shards_next(self, n: int = 1, *, path: str | None = None) -> None:
        """Let one shard (the last one spanned) fail in each of the next ``n`` counts or searches
        whose path contains ``path``."""
        with self._lock:
            self._shard_troubles.append([n, path, "fail"])

    def time_out_next(self, n: int = 1, *, path: str | None = None) -> None:
        """Make each of the next ``n`` searches whose path contains ``path`` run out of time."""
        with self._lock:
            self._shard_troubles.append([n, path, "timeout"])

    def require_auth(self, user: str, password: str) -> None:
        """Refuse (401) requests without these basic-auth credentials."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        with self._lock:
            self._auth = (self._auth or set()) | {f"Basic {token}"}

    def require_api_key(self, api_key: str) -> None:
        """Refuse (401) requests without ``Authorization: ApiKey <api_key>``."""
        with self._lock:
            self._auth = (self._auth or set()) | {f"ApiKey {api_key}"}

    @property
    def open_pits(self) -> int:
        """How many points in time are open and not expired."""
        with self._lock:
            now = time.monotonic()
            return sum(1 for pit in self.pits.values() if pit.expires_at > now)

    def requests_to(self, fragment: str) -> list[LoggedRequest]:
        """The logged requests whose path contains ``fragment``."""
        with self._lock:
            return [r for r in self.requests if fragment in r.path]

    # -- request handling --------------------------------------------------------------------

    def handle(self, request: LoggedRequest) -> tuple[int, Any, dict[str, str]] | None:
        """Answer one request: (status, JSON body or None, extra headers); None drops it.

        The order is the real server's: media types, then authentication, then the work (where
        injected faults happen).
        """
        with self._lock:
            self.requests.append(request)
            interruption = self._take_interruption(request.path)
        if interruption == "drop":
            return None
        if interruption is not None:
            time.sleep(float(interruption))  # outside the lock: other requests go on
        with self._lock:
            headers: dict[str, str] = {}
            try:
                compat = self._check_media_types(request)
                if compat is not None:
                    headers["Content-Type"] = (
                        f"application/vnd.elasticsearch+json;compatible-with={compat}"
                    )
                if (
                    self._auth is not None
                    and request.headers.get("authorization") not in self._auth
                ):
                    headers["WWW-Authenticate"] = 'Basic realm="security", charset="UTF-8"'
                    raise self._auth_error(request)
                self._raise_fault(request.path)
                self._trouble = self._take_shard_trouble(request.path)
                status, body = self._route(request)
            except EsError as exc:
                status, body = exc.status, exc.body
            finally:
                self._trouble = None
            return status, body, headers

    def _take_shard_trouble(self, path: str) -> str | None:
        endpoint = "_search" if path.rstrip("/").endswith("_search") else "_count" if path.rstrip("/").endswith("_count") else None
        for item in self._shard_troubles:
            wanted = ("_search", "_count") if item[2] == "fail" else ("_search",)
            if item[0] > 0 and endpoint in wanted and (item[1] is None or item[1] in path):
                item[0] -= 1
                return str(item[2])
        return None

    def _take_interruption(self, path: str) -> str | float | None:
        for item in self._interruptions:
            if item[0] > 0 and (item[1] is None or item[1] in path):
                item[0] -= 1
                return item[2]
        return None

    def _raise_fault(self, path: str) -> None:
        for fault in self._faults:
            if fault.remaining > 0 and (fault.path is None or fault.path in path):
                fault.remaining -= 1
                raise EsError(fault.status or 500, fault.error_type, fault.reason)

    def _check_media_types(self, request: LoggedRequest) -> int | None:
        accept = request.headers.get("accept", "")
        content_type = request.headers.get("content-type", "") if request.body is not None else ""
        accept_v = _COMPAT.search(accept)
        content_v = _COMPAT.search(content_type)
        supported = (self.major, self.major - 1)

        def invalid(reason: str) -> EsError:
            return EsError(
                400,
                "media_type_header_exception",
                "Invalid media-type value on headers [Accept, Content-Type]",
                caused_by={"type": "status_exception", "reason": reason},
            )

        for name, header, found in (
            ("Accept", accept, accept_v),
            ("Content-Type", content_type, content_v),
        ):
            if found and int(found.group(1)) not in supported:
                raise invalid(
                    f"{name} version must be either version {supported[0]} or {supported[1]}, "
                    f"but found {found.group(1)}. {name}={header}"
                )
        if accept_v and content_v and accept_v.group(1) != content_v.group(1):
            raise invalid(
                "Content-Type and Accept version requests have to match. "
                f"Found Content-Type={content_type}, Accept={accept}"
            )
        if content_type and bool(accept_v) != bool(content_v):
            raise invalid(
                "A compatible version is required on both Content-Type and Accept headers if "
                "either one has requested a compatible version. "
                f"Accept={accept}, Content-Type={content_type}"
            )
        found = accept_v or content_v
        return int(found.group(1)) if found else None

    def _auth_error(self, request: LoggedRequest) -> EsError:
        header = request.headers.get("authorization", "")
        user = "_anonymous"
        if header.startswith("Basic "):
            with contextlib.suppress(ValueError):
                user = base64.b64decode(header[6:]).decode().partition(":")[0]
        if header.startswith("ApiKey "):
            reason = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
        else:
            reason = f"unable to authenticate user [{user}] for REST request [{request.path}]"
        return EsError(
            401,
            "security_exception",
            reason,
            header={"WWW-Authenticate": ['Basic realm="security", charset="UTF-8"', "ApiKey"]},
        )

    def _route(self, request: LoggedRequest) -> tuple[int, Any]:
        method, parts = (
            request.method,
            [unquote(p) for p in request.path.strip("/").split("/") if p],
        )
        if not parts:
            if method == "HEAD":
                return 200, None
            if method == "GET":
                return 200, self._info()
        elif parts == ["_search"] and method in ("GET", "POST"):
            return 200, self._search(None, request)
        elif parts == ["_pit"] and method == "DELETE":
            return self._close_pit(request)
        elif len(parts) == 1 and method == "HEAD":
            return (200 if self._resolve(parts[0], strict=False) else 404), None
        elif len(parts) == 2 and parts[1] == "_mapping" and method == "GET":
            return 200, {n: {"mappings": self.indices[n].mapping} for n in self._resolve(parts[0])}
        elif len(parts) == 2 and parts[1] == "_count" and method in ("GET", "POST"):
            return 200, self._count(parts[0], request)
        elif len(parts) == 2 and parts[1] == "_pit" and method == "POST":
            return 200, self._open_pit(parts[0], request)
        elif len(parts) == 2 and parts[1] == "_search" and method in ("GET", "POST"):
            return 200, self._search(parts[0], request)
        raise EsError(
            405 if parts and parts[-1].startswith("_") else 400,
            "illegal_argument_exception",
            f"emulator does not support [{method} {request.path}]",
        )

    def _info(self) -> dict[str, Any]:
        return {
            "name": "emulator-node",
            "cluster_name": "drivetrain-emulator",
            "cluster_uuid": "emulator-cluster-uuid",
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0" * 40,
                "build_date": "2025-01-01T00:00:00.000000000Z",
                "build_snapshot": False,
                "lucene_version": "10.0.0" if self.major >= 9 else "9.11.1",
                "minimum_wire_compatibility_version": f"{self.major - 1}.18.0",
                "minimum_index_compatibility_version": f"{self.major - 1}.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _resolve(self, expression: str, *, strict: bool = True) -> list[str]:
        names: list[str] = []
        for part in expression.split(","):
            if "*" in part or "?" in part:
                names.extend(sorted(n for n in self.indices if fnmatch.fnmatchcase(n, part)))
            elif part in self.indices:
                names.append(part)
            elif strict:
                raise EsError(
                    404,
                    "index_not_found_exception",
                    f"no such index [{part}]",
                    **{
                        "resource.type": "index_or_alias",
                        "resource.id": part,
                        "index_uuid": "_na_",
                        "index": part,
                    },
                )
            else:
                return []
        return list(dict.fromkeys(names))

    @staticmethod
    def _body(request: LoggedRequest) -> dict[str, Any]:
        return request.body if isinstance(request.body, dict) else {}

    def _count(self, expression: str, request: LoggedRequest) -> dict[str, Any]:
        names = self._resolve(expression)
        failed = self._failed_shards(names, allow_partial=True)
        query = self._body(request).get("query", {"match_all": {}})
        total = sum(
            1
            for name in names[: len(names) - len(failed)]
            for _id, source in self.indices[name].docs
            if _matches(query, source, self.indices[name].mapping)
        )
        return {"count": total, "_shards": _shards(len(names), failed)}

    def _failed_shards(self, names: list[str], *, allow_partial: bool) -> list[str]:
        """The indices (one shard each) this request lost: the last one when a shard failure is
        due; raises as Elasticsearch does when that leaves nothing or partial results are refused."""
        if self._trouble != "fail" or not names:
            return []
        lost = names[-1]
        cause = {"type": "no_shard_available_action_exception", "reason": f"[emulator][{lost}][0]: shard not available"}
        failure = {"shard": 0, "index": lost, "reason": cause}
        if len(names) == 1:
            raise EsError(503, "search_phase_execution_exception", "all shards failed", root_cause=[cause],
                          phase="query", grouped=True, failed_shards=[failure])
        if not allow_partial:
            raise EsError(503, "search_phase_execution_exception",
                          f"Search rejected due to missing shards [[{lost}][0]]. Consider using "
                          "`allow_partial_search_results` setting to bypass this error.",
                          root_cause=[cause], phase="query", grouped=True, failed_shards=[failure])
        return [lost]

    def _open_pit(self, expression: str, request: LoggedRequest) -> dict[str, Any]:
        if "keep_alive" not in request.query:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: [keep_alive] is not specified;",
            )
        keep_alive = _keep_alive_seconds(request.query["keep_alive"])
        names = self._resolve(expression)
        shards = [
            (n, copy.deepcopy(self.indices[n].mapping), list(self.indices[n].docs)) for n in names
        ]
        pit_id = base64.urlsafe_b64encode(f"pit-{next(self._ids)}".encode()).decode()
        self.pits[pit_id] = _Pit(shards, time.monotonic() + keep_alive)
        return {"id": pit_id, "_shards": _shards(len(names))}

    def _close_pit(self, request: LoggedRequest) -> tuple[int, Any]:
        pit_id = str(self._body(request).get("id"))
        if self.pits.pop(pit_id, None) is None:
            return 404, {"succeeded": True, "num_freed": 0}
        return 200, {"succeeded": True, "num_freed": 1}

    def _live_pit(self, spec: dict[str, Any]) -> tuple[str, _Pit]:
        pit_id = str(spec.get("id"))
        pit = self.pits.get(pit_id)
        if pit is None or pit.expires_at <= time.monotonic():
            self.pits.pop(pit_id, None)
            missing = {
                "type": "search_context_missing_exception",
                "reason": f"No search context found for id [{pit_id}]",
            }
            raise EsError(
                404,
                "search_phase_execution_exception",
                "all shards failed",
                root_cause=[missing],
                phase="query",
                grouped=True,
                failed_shards=[{"shard": -1, "index": None, "reason": missing}],
            )
        if "keep_alive" in spec:
            pit.expires_at = time.monotonic() + _keep_alive_seconds(spec["keep_alive"])
        return pit_id, pit

    def _search(self, expression: str | None, request: LoggedRequest) -> dict[str, Any]:
        body = self._body(request)
        pit_spec = body.get("pit")
        if pit_spec is not None and expression is not None:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: [indices] cannot be used with point in time. Do not specify any index with point in time.;",
            )
        allow = body.get("allow_partial_search_results", request.query.get("allow_partial_search_results", True))
        allow_partial = str(allow).lower() != "false"
        if pit_spec is not None:
            pit_id, pit = self._live_pit(pit_spec)
            shards = pit.shards
            if self._expire_after is not None:
                self._expire_after -= 1
                if self._expire_after <= 0:
                    self.pits.clear()
                    self._expire_after = None
        else:
            pit_id = None
            shards = [
                (n, self.indices[n].mapping, self.indices[n].docs)
                for n in self._resolve(expression or "*")
            ]
        size = int(body.get("size", request.query.get("size", 10)))
        if size > _MAX_WINDOW:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less than or equal to: [{_MAX_WINDOW}] but was [{size}].",
            )
        sorts = _sort_specs(body.get("sort"), shards, with_pit=pit_id is not None)
        failed = self._failed_shards([name for name, _m, _d in shards], allow_partial=allow_partial)
        timed_out = self._trouble == "timeout"
        if timed_out and not allow_partial:
            cause = {"type": "search_timeout_exception", "reason": "Time exceeded"}
            raise EsError(504, "search_phase_execution_exception", "all shards failed", root_cause=[cause],
                          phase="query", grouped=True, failed_shards=[{"shard": 0, "index": shards[0][0] if shards else None,
                                                                        "reason": cause}])
        query = body.get("query", {"match_all": {}})
        rows: list[tuple[list[Any], str, str, dict[str, Any]]] = []
        for ordinal, (name, mapping, docs) in enumerate(shards[: len(shards) - len(failed)]):
            for position, (doc_id, source) in enumerate(docs):
                if _matches(query, source, mapping):
                    key = [spec.key(source, mapping, (ordinal << 32) | position) for spec in sorts]
                    rows.append((key, name, doc_id, source))
        rows.sort(key=lambda row: _SortKey(sorts, row[0]))
        total = len(rows)
        after = body.get("search_after")
        if after is not None:
            if len(after) != len(sorts):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"search_after has {len(after)} value(s) but sort has {len(sorts)}.",
                )
            bound = [spec.parse_after(value) for spec, value in zip(sorts, after, strict=True)]
            rows = [row for row in rows if _compare(sorts, row[0], bound) > 0]
        hits = [
            {
                "_index": name,
                "_id": doc_id,
                "_score": None,
                **(
                    {"_source": src}
                    if (src := _filter_source(source, body.get("_source", True))) is not None
                    else {}
                ),
                **(
                    {"sort": [spec.render(k) for spec, k in zip(sorts, key, strict=True)]}
                    if body.get("sort") is not None or pit_id
                    else {}
                ),
            }
            for key, name, doc_id, source in rows[: size // 2 if timed_out else size]
        ]
        result: dict[str, Any] = {"took": 1, "timed_out": timed_out, "_shards": _shards(len(shards), failed)}
        if pit_id is not None:
            if self._rotate_pits:
                retired, pit_id = pit_id, base64.urlsafe_b64encode(f"pit-{next(self._ids)}".encode()).decode()
                self.pits[pit_id] = self.pits.pop(retired)
            result = {"pit_id": pit_id, **result}
        hits_block: dict[str, Any] = {"max_score": None, "hits": hits}
        track = body.get("track_total_hits", request.query.get("track_total_hits", True))
        if track not in (False, "false"):
            limit = _MAX_WINDOW if track in (True, "true") else int(track)
            hits_block["total"] = {
                "value": min(total, limit),
                "relation": "eq" if total <= limit else "gte",
            }
        result["hits"] = hits_block
        return result


def _shards(total: int, failed: list[str] | None = None) -> dict[str, Any]:
    """The ``_shards`` block; ``failed`` names the indices whose (only) shard failed."""
    failed = failed or []
    block: dict[str, Any] = {"total": total, "successful": total - len(failed), "skipped": 0, "failed": len(failed)}
    if failed:
        block["failures"] = [
            {"shard": 0, "index": name, "node": None,
             "reason": {"type": "no_shard_available_action_exception", "reason": f"[emulator][{name}][0]: shard not available"}}
            for name in failed
        ]
    return block


def _filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    if spec is False or spec == "false":
        return None
    if spec is True or spec is None or spec == "true":
        return source
    includes = [spec] if isinstance(spec, str) else list(spec)
    if not includes:
        return source
    kept: dict[str, Any] = {}
    for path in includes:
        head, _, rest = path.partition(".")
        if path in source:
            kept[path] = source[path]
        elif head in source:
            if not rest:
                kept[head] = source[head]
            elif isinstance(source[head], dict):
                inner = _filter_source(source[head], [rest])
                if inner:
                    kept.setdefault(head, {}).update(inner)
    return kept


def _matches(query: dict[str, Any], source: dict[str, Any], mapping: dict[str, Any]) -> bool:
    if not query:
        return True
    (kind, spec), *rest = query.items()
    if rest:
        raise EsError(
            400,
            "parsing_exception",
            f"[{kind}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]",
        )
    if kind == "match_all":
        return True
    if kind == "range":
        ((path, bounds),) = spec.items()
        field_type, source_path = _resolve_field(mapping, path)
        limits = {op: _comparable(bounds[op], field_type) for op in _RANGE_OPS if op in bounds}
        if any(v is None for v in limits.values()):
            raise EsError(400, "parse_exception", f"failed to parse date field {bounds}")
        values = [_comparable(v, field_type) for v in _lookup(source, source_path)]
        return any(
            v is not None and all(_RANGE_OPS[op](v, b) for op, b in limits.items()) for v in values
        )
    raise EsError(400, "parsing_exception", f"unknown query [{kind}]", line=1, col=11)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _comparable(value: Any, field_type: str | None) -> Any:
    """A value as the index compares it: dates as epoch nanoseconds at the field's resolution."""
    if field_type not in _DATE_TYPES:
        return value
    nanos = parse_date(value)
    if nanos is not None and field_type == "date":
        nanos -= nanos % 1_000_000  # a date field keeps milliseconds
    return nanos


@dataclass
class _SortSpec:
    path: str
    descending: bool
    field_type: str | None
    date_format: str | None

    def key(self, source: dict[str, Any], mapping: dict[str, Any], shard_doc: int) -> Any:
        if self.path == "_shard_doc":
            return shard_doc
        field_type, source_path = _resolve_field(mapping, self.path)
        values = [_comparable(v, field_type) for v in _lookup(source, source_path)]
        values = [v for v in values if v is not None]
        if not values:
            return None
        return max(values) if self.descending else min(values)

    def render(self, key: Any) -> Any:
        if key is None or self.field_type not in _DATE_TYPES:
            return key
        if self.date_format is None:
            return key if self.field_type == "date_nanos" else key // 1_000_000
        if self.date_format == "epoch_millis":
            return str(key // 1_000_000)
        if self.date_format == "strict_date_optional_time_nanos":
            return format_date(key)
        return format_date(key, max_digits=3)

    def parse_after(self, value: Any) -> Any:
        if self.field_type not in _DATE_TYPES or value is None:
            return value
        if isinstance(value, str) and self.date_format not in (None, "epoch_millis"):
            return parse_date(value)
        return int(value) * (
            1 if self.field_type == "date_nanos" and self.date_format is None else 1_000_000
        )


def _sort_specs(raw: Any, shards: list[Any], *, with_pit: bool) -> list[_SortSpec]:
    specs = []
    for item in _as_list(raw) if raw is not None else []:
        if isinstance(item, str):
            path, options = item, {}
        else:
            ((path, options),) = item.items()
            options = {"order": options} if isinstance(options, str) else options
        descending = options.get("order", "asc") == "desc"
        if path == "_shard_doc":
            if not with_pit:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "[_shard_doc] sort field cannot be used without [point in time]",
                )
            specs.append(_SortSpec(path, descending, "long", None))
            continue
        types = {_field_type(mapping, path) for _name, mapping, _docs in shards} - {None}
        if not types and "unmapped_type" not in options:
            raise EsError(
                400,
                "search_phase_execution_exception",
                "all shards failed",
                root_cause=[
                    {
                        "type": "query_shard_exception",
                        "reason": f"No mapping found for [{path}] in order to sort on",
                    }
                ],
            )
        if types & {"text", "object", "nested"}:
            reason = f"Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [{path}] in order to load field data by uninverting the inverted index."
            raise EsError(
                400,
                "search_phase_execution_exception",
                "all shards failed",
                root_cause=[{"type": "illegal_argument_exception", "reason": reason}],
            )
        field_type = "date_nanos" if "date_nanos" in types else next(iter(types), None)
        if options.get("numeric_type") == "date_nanos" and field_type == "date":
            field_type = "date_nanos"
        specs.append(_SortSpec(path, descending, field_type, options.get("format")))
    if with_pit and not any(spec.path == "_shard_doc" for spec in specs):
        specs.append(_SortSpec("_shard_doc", False, "long", None))
    return specs


@dataclass
class _SortKey:
    """Orders rows by their sort values as the request's sort specs say."""

    specs: list[_SortSpec]
    values: list[Any]

    def __lt__(self, other: _SortKey) -> bool:
        return _compare(self.specs, self.values, other.values) < 0


def _compare(specs: list[_SortSpec], left: list[Any], right: list[Any]) -> int:
    for spec, a, b in zip(specs, left, right, strict=True):
        if a == b:
            continue
        if a is None or b is None:  # missing values sort last in both orders
            return 1 if a is None else -1
        result = -1 if a < b else 1
        return -result if spec.descending else result
    return 0


def _handler_for(emulator: EsEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body go out as two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every request on a kept-alive connection
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = LoggedRequest(
                method=self.command,
                path=split.path,
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw.strip() else None,
            )
            try:
                answer = emulator.handle(request)
            except EsError as exc:
                answer = (exc.status, exc.body, {})
            if answer is None:
                self.close_connection = True
                return
            with contextlib.suppress(ConnectionError):  # the client gave up (after a stall)
                self._reply(*answer)

        def _reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if emulator.send_product_header:
                self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_HEAD = _serve

    return Handler
