"""A small wire-level emulator of the ServiceNow REST Table and Aggregate APIs.

Enough of the real API for pysnow and the ServiceNow source to run unchanged against it:

- ``GET /api/now/table/<table>``: ``sysparm_query`` (conditions with ``>=``, ``<=``, ``>``,
  ``<``, ``=``, ``!=``, ``ISEMPTY``, ``ISNOTEMPTY`` joined by ``^`` (AND) and ``^OR``, plus
  ``ORDERBY<f>`` / ``ORDERBYDESC<f>``), ``sysparm_limit``, ``sysparm_offset``,
  ``sysparm_fields``, ``sysparm_display_value`` (false / true / all) and
  ``sysparm_exclude_reference_link``; answers ``{"result": [...]}`` with ``X-Total-Count`` and
  ``Link`` headers.
- ``GET /api/now/stats/<table>`` (the Aggregate API) with ``sysparm_query``, ``sysparm_count``
  and ``sysparm_sum_fields`` / ``sysparm_max_fields`` / ``sysparm_min_fields`` /
  ``sysparm_avg_fields``: ``{"result": {"stats": {"count": "6", "sum": {"sys_mod_count": "12"},
  "max": {"sys_updated_on": "2025-11-15 10:05:00"}}}}``, only the aggregates and fields asked,
  every value a string (see :func:`aggregate`).
- Basic authentication; failures shaped ``{"error": {"message", "detail"}, "status":
  "failure"}``; an unknown table answers 400 ``Invalid table <name>``.

Like a real instance with default settings, a condition on a field the table does not have is
ignored (the query then selects more), empty values never satisfy a comparison, and date-time
display values are written in the user's time zone (:attr:`SnEmulator.user_timezone`).

Stored records are dicts of strings; a field may instead hold ``{"value": ..., "display_value":
..., "link": ...}`` to give it a display value that differs from the stored one (references,
choices). Every record answers every field of its table (``""`` when it has none).
:meth:`SnEmulator.add_records` stores records as given, like an import that writes the system
fields itself; :meth:`SnEmulator.update_record` and :meth:`SnEmulator.delete_record` change them
as the platform does (an update sets ``sys_updated_on`` and adds one to ``sys_mod_count``).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

_CONDITION = re.compile(r"^([A-Za-z0-9_.]+?)(ISNOTEMPTY|ISEMPTY|>=|<=|!=|>|<|=)(.*)$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


class QueryError(ValueError):
    """An encoded query this emulator (or ServiceNow) refuses."""


def _value(field: Any) -> Any:
    return field.get("value") if isinstance(field, dict) and "value" in field else field


def _compare(left: Any, op: str, right: str) -> bool:
    if op == "ISEMPTY":
        return left in (None, "")
    if op == "ISNOTEMPTY":
        return left not in (None, "")
    if left in (None, ""):
        return False  # like SQL NULL: no comparison holds
    a: Any = left
    b: Any = right
    try:
        a, b = float(left), float(right)
    except (TypeError, ValueError):
        a, b = str(left), str(right)
    return {
        "=": a == b,
        "!=": a != b,
        ">=": a >= b,
        "<=": a <= b,
        ">": a > b,
        "<": a < b,
    }[op]


#: The Aggregate API's functions, each asked with ``sysparm_<name>_fields``.
AGGREGATES = ("avg", "min", "max", "sum")


def _number(values: list[Any]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def _aggregate_one(name: str, values: list[Any]) -> str:
    """One aggregate over the non-empty stored values of a field, written as ServiceNow does."""
    if not values:
        return ""  # SQL NULL: ServiceNow writes an empty value as ""
    numbers = _number(values)
    if name in ("sum", "avg"):
        if numbers is None:
            raise QueryError(f"cannot {name} non-numeric values")
        total = sum(numbers)
        if name == "avg":
            return f"{total / len(numbers):.4f}"  # the documented "1.0000" form
        return str(int(total)) if total.is_integer() else str(total)
    pick = max if name == "max" else min
    if numbers is not None:  # a number field: compared as numbers, answered as stored
        return str(pick(zip(numbers, values, strict=True), key=lambda pair: pair[0])[1])
    return str(pick(str(v) for v in values))  # text, date-times: the stored text (UTC sorts as it reads)


def aggregate(rows: list[dict[str, Any]], known: set[str], params: dict[str, str]) -> dict[str, Any]:
    """The ``stats`` object of an Aggregate API answer over ``rows``.

    ``count`` when ``sysparm_count=true``; for each ``sysparm_<aggregate>_fields`` an object
    holding the asked fields the table has. A field the table does not have is left out of the
    answer, as the instance leaves out conditions on unknown fields (ServiceNow's documentation
    does not say; this is the assumption the connector's fallback is tested against). Over no
    records an aggregate is ``""``.
    """
    stats: dict[str, Any] = {}
    if params.get("sysparm_count", "").lower() == "true":
        stats["count"] = str(len(rows))
    for name in AGGREGATES:
        fields = [f for f in params.get(f"sysparm_{name}_fields", "").split(",") if f]
        if fields:
            stats[name] = {
                field: _aggregate_one(
                    name, [v for v in (_value(r.get(field)) for r in rows) if v not in (None, "")]
                )
                for field in fields
                if field in known
            }
    return stats


def parse_query(query: str) -> tuple[list[list[tuple[str, str, str]]], list[tuple[str, bool]]]:
    """Split an encoded query into AND-ed groups of OR-ed conditions and an ordering."""
    groups: list[list[tuple[str, str, str]]] = []
    order: list[tuple[str, bool]] = []
    for token in query.split("^"):
        if token in ("", "EQ"):
            continue
        if token.startswith("ORDERBYDESC"):
            order.append((token[len("ORDERBYDESC") :], True))
        elif token.startswith("ORDERBY"):
            order.append((token[len("ORDERBY") :], False))
        elif token.startswith("NQ"):
            raise QueryError("NQ (new query) is not supported by this emulator")
        else:
            is_or = token.startswith("OR") and bool(groups)
            match = _CONDITION.match(token[2:] if is_or else token)
            if not match:
                raise QueryError(f"cannot parse condition {token!r}")
            condition = (match[1], match[2], match[3])
            if is_or:
                groups[-1].append(condition)
            else:
                groups.append([condition])
    return groups, order


class SnEmulator:
    """The emulator's state, fault injection and server lifecycle (one instance per session)."""

    def __init__(self, user: str = "drivetrain", password: str = "s3cret-pw") -> None:
        self.user = user
        self.password = password
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> SnEmulator:
        """Listen on 127.0.0.1 on a free port, serving from a background thread."""
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, daemon=True, name="sn-emulator")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, what the source's ``host`` option takes."""
        assert self._server is not None, "emulator not started"
        return f"127.0.0.1:{self._server.server_address[1]}"

    # -- data ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every table, fault, hook and logged request."""
        with self._lock:
            self.tables: dict[str, list[dict[str, Any]]] = {}
            self.columns: dict[str, list[str]] = {}
            self.requests: list[tuple[str, dict[str, str]]] = []
            self.user_timezone = "UTC"
            #: Send X-Total-Count with Table API pages (some proxies strip it).
            self.total_count_header = True
            #: Largest page served whatever sysparm_limit asks (None: no cap).
            self.max_page_size: int | None = None
            self._throttle: list[str | None] = []
            self._failures: list[tuple[int, str]] = []
            self._cuts = 0
            self._hooks: list[tuple[str, int, Callable[[], object]]] = []
            self._pages: dict[str, int] = {}

    def create_table(self, table: str, columns: list[str] | tuple[str, ...] = ()) -> None:
        """Make a table exist (possibly empty), with at least these columns."""
        with self._lock:
            self.tables.setdefault(table, [])
            known = self.columns.setdefault(table, ["sys_id"])
            known.extend(c for c in columns if c not in known)

    def add_records(self, table: str, rows: list[dict[str, Any]]) -> list[str]:
        """Append records (a ``sys_id`` is made up when missing); return their sys_ids."""
        with self._lock:
            self.create_table(table)
            ids = []
            for row in rows:
                record = {"sys_id": uuid.uuid4().hex, **row}
                self.tables[table].append(record)
                self.create_table(table, list(record))
                ids.append(_value(record["sys_id"]))
            return ids

    def update_record(
        self, table: str, sys_id: str, changes: dict[str, Any], at: datetime | None = None
    ) -> None:
        """Change a record as the platform does: the fields, then ``sys_updated_on`` (``at``,
        default now, UTC) and ``sys_mod_count`` (one more), where the table has them."""
        moment = (at or datetime.now(ZoneInfo("UTC"))).astimezone(ZoneInfo("UTC"))
        with self._lock:
            record = self._record(table, sys_id)
            record.update(changes)
            if "sys_updated_on" in self.columns[table]:
                record["sys_updated_on"] = moment.strftime("%Y-%m-%d %H:%M:%S")
            if "sys_mod_count" in self.columns[table]:
                record["sys_mod_count"] = str(int(_value(record.get("sys_mod_count")) or 0) + 1)
            self.create_table(table, list(changes))

    def delete_record(self, table: str, sys_id: str) -> None:
        """Delete a record."""
        with self._lock:
            self.tables[table].remove(self._record(table, sys_id))

    def _record(self, table: str, sys_id: str) -> dict[str, Any]:
        found = [r for r in self.tables[table] if _value(r.get("sys_id")) == sys_id]
        if not found:
            raise KeyError(f"no record {sys_id} in {table}")
        return found[0]

    # -- faults ----------------------------------------------------------------------------
    def throttle_next(self, n: int, retry_after: str | None = "0") -> None:
        """Answer the next ``n`` authenticated requests with 429 and this Retry-After."""
        with self._lock:
            self._throttle.extend([retry_after] * n)

    def fail_next(self, n: int, status: int = 503, message: str = "Service Unavailable") -> None:
        """Answer the next ``n`` authenticated requests with ``status`` and an error body."""
        with self._lock:
            self._failures.extend([(status, message)] * n)

    def cut_next(self, n: int = 1) -> None:
        """Send only half of the next ``n`` bodies, then drop the connection."""
        with self._lock:
            self._cuts += n

    def during_paging(self, table: str, action: Callable[[], object], after_pages: int = 1) -> None:
        """Run ``action`` once ``after_pages`` filtered Table API pages of ``table`` were served.

        Only requests with a ``sysparm_query`` count as pages (a connectivity check without
        one does not).
        """
        with self._lock:
            self._hooks.append((table, self._pages.get(table, 0) + after_pages, action))

    def insert_during_paging(
        self, table: str, record: dict[str, Any], after_pages: int = 1
    ) -> None:
        """Add ``record`` to ``table`` between two pages of an extract."""
        self.during_paging(table, lambda: self.add_records(table, [record]), after_pages)

    # -- request handling (called by the handler thread) ----------------------------------
    def _table_page(self, table: str, params: dict[str, str]) -> tuple[list[Any], int]:
        rows = self._select(table, params.get("sysparm_query", ""))
        offset = int(params.get("sysparm_offset") or 0)
        limit = int(params.get("sysparm_limit") or 10000)
        if self.max_page_size is not None:
            limit = min(limit, self.max_page_size)
        fields = [f for f in params.get("sysparm_fields", "").split(",") if f]
        mode = params.get("sysparm_display_value", "false").lower()
        keep_links = params.get("sysparm_exclude_reference_link", "false").lower() != "true"
        page = [
            self._render(r, table, fields, mode, keep_links) for r in rows[offset : offset + limit]
        ]
        if params.get("sysparm_query"):
            self._pages[table] = self._pages.get(table, 0) + 1
        return page, len(rows)

    def _run_hooks(self, table: str) -> None:
        due = [h for h in self._hooks if h[0] == table and h[1] <= self._pages.get(table, 0)]
        self._hooks = [h for h in self._hooks if h not in due]
        for _, _, action in due:
            action()

    def _select(self, table: str, query: str) -> list[dict[str, Any]]:
        groups, order = parse_query(query)
        known = set(self.columns[table])
        groups = [[c for c in g if c[0] in known] for g in groups]
        groups = [g for g in groups if g]  # conditions on unknown fields are ignored
        rows = [
            r
            for r in self.tables[table]
            if all(any(_compare(_value(r.get(f)), op, v) for f, op, v in g) for g in groups)
        ]
        for field, desc in reversed([o for o in order if o[0] in known]):
            rows.sort(key=functools.partial(_sort_key, field), reverse=desc)
        return rows

    def _display(self, field: Any) -> Any:
        if isinstance(field, dict) and "value" in field:
            return field.get("display_value")
        if isinstance(field, str) and _DATETIME.match(field):
            moment = datetime.strptime(field, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("UTC"))
            local = moment.astimezone(ZoneInfo(self.user_timezone))
            return local.strftime("%Y-%m-%d %H:%M:%S")
        return field

    def _render(
        self, record: dict[str, Any], table: str, fields: list[str], mode: str, keep_links: bool
    ) -> dict[str, Any]:
        names = [f for f in fields if f in self.columns[table]] if fields else self.columns[table]
        out: dict[str, Any] = {}
        for name in names:
            field = record.get(name, "")
            pair = isinstance(field, dict) and "value" in field
            link = field.get("link") if pair and keep_links else None
            if mode == "true":
                out[name] = self._display(field)
                continue
            if mode == "all":
                item = {"display_value": self._display(field), "value": _value(field)}
            else:
                item = {"value": _value(field)}
            if link:
                item["link"] = link
            out[name] = item if mode == "all" or link else item["value"]
        return out


def _sort_key(field: str, record: dict[str, Any]) -> tuple[int, Any]:
    value = _value(record.get(field))
    return (0, "") if value in (None, "") else (1, value)


def _error(message: str, detail: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    emulator: SnEmulator

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""

    def _send(
        self, status: int, body: Any, headers: dict[str, str] | None = None, cut: bool = False
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if cut:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.wfile.write(data)

    def _authenticated(self) -> bool:
        emu = self.emulator
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == emu.user and password == emu.password

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        emu = self.emulator
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with emu._lock:
            emu.requests.append((url.path, params))
            if not self._authenticated():
                self._send(
                    401, _error("User Not Authenticated", "Required to provide Auth information")
                )
                return
            if emu._throttle:
                retry_after = emu._throttle.pop(0)
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                self._send(429, _error("Too many requests", "Rate limit exceeded"), headers)
                return
            if emu._failures:
                status, message = emu._failures.pop(0)
                self._send(status, _error(message))
                return
            cut = emu._cuts > 0
            emu._cuts -= 1 if cut else 0
            match = re.fullmatch(r"/api/now/(table|stats)/([A-Za-z0-9_]+)", url.path)
            if not match:
                self._send(400, _error("Requested URI does not represent any resource"))
                return
            api, table = match.groups()
            if table not in emu.tables:
                self._send(400, _error(f"Invalid table {table}"))
                return
            try:
                if api == "stats":
                    rows = emu._select(table, params.get("sysparm_query", ""))
                    stats = aggregate(rows, set(emu.columns[table]), params)
                    self._send(200, {"result": {"stats": stats} if stats else {}}, cut=cut)
                    return
                page, total = emu._table_page(table, params)
            except QueryError as exc:
                self._send(400, _error(str(exc)))
                return
            self._send(200, {"result": page}, self._paging_headers(params, total), cut=cut)
            emu._run_hooks(table)

    def _paging_headers(self, params: dict[str, str], total: int) -> dict[str, str]:
        if params.get("sysparm_suppress_pagination_header", "").lower() == "true":
            return {}
        headers = {"X-Total-Count": str(total)} if self.emulator.total_count_header else {}
        limit = int(params.get("sysparm_limit") or 10000)
        offset = int(params.get("sysparm_offset") or 0)
        base = f"http://{self.emulator.host}{urlsplit(self.path).path}"

        def link(at: int, rel: str) -> str:
            query = urlencode({**params, "sysparm_offset": at, "sysparm_limit": limit})
            return f'<{base}?{query}>;rel="{rel}"'

        last = max(0, (total - 1) // limit * limit) if limit else 0
        links = [link(0, "first")]
        if offset > 0:
            links.append(link(max(0, offset - limit), "prev"))
        if offset + limit < total:
            links.append(link(offset + limit, "next"))
        links.append(link(last, "last"))
        return {**headers, "Link": ",".join(links)}
