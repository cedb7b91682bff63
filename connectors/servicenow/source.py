"""The ServiceNow source: counts and extracts one table, window by window, through pysnow.

``count`` asks the Aggregate API (``/api/now/stats/<table>``, ``sysparm_count=true``) and
``extract`` pages through the Table API (``/api/now/table/<table>``) with
``sysparm_offset`` / ``sysparm_limit``; both send the same encoded window filter (see
:mod:`.query`). Each page becomes one Arrow batch (see :mod:`.batches`).

Offset paging is only exact while the window's records stay put, so extract guards it:

- it counts the window first, and raises :class:`TransientError` if the rows it read differ
  from that count, or if a page's ``X-Total-Count`` differs from it;
- every page after the first starts one row early and checks that this row is the last one
  already read; a record that left or entered the window before the read position shifts the
  pages and is caught at the next page instead of being skipped or read twice.

A record updated during the extract moves to a later window (its ``sys_updated_on`` changes),
so a retry of the window reads a consistent set again. Row-level read ACLs that hide records
from the integration user also make the counts disagree: that user must see every record.

``fingerprint`` (taken only with ``query_window.settle_horizon``) is one more Aggregate API
call over the same filter; see :meth:`ServiceNowSource.fingerprint` for what it catches.

What offset paging cannot see: between the same two pages, one record leaving the part already
read while another enters it (a back-dated import, say). The shift cancels out, the counts
agree, and the newcomer is missed until the window is run again. With ``sys_updated_on`` as the
query field, ordinary updates only ever enter a window at "now", ahead of the read position.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from drivetrain.base import Source
from drivetrain.errors import MissingExtraError, PermanentError, TransientError
from drivetrain.unplaceable import Unplaceable

from .batches import BatchBuilder, stored_value
from .config import OPTIONS_SCHEMA, ServiceNowOptions
from .errors import Throttled, servicenow_errors
from .query import paging_query, window_filter

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import SystemConfig
    from drivetrain.secrets import Credentials
    from drivetrain.window import Window

T = TypeVar("T")

log = logging.getLogger(__name__)

#: What :meth:`ServiceNowSource.fingerprint` asks of the Aggregate API besides the count.
FINGERPRINT_AGGREGATES = (("sum", "sys_mod_count"), ("max", "sys_created_on"), ("max", "sys_updated_on"))
_FINGERPRINT_PARAMETERS = {
    "sysparm_count": "true",
    "sysparm_sum_fields": "sys_mod_count",
    "sysparm_max_fields": "sys_created_on,sys_updated_on",
}

#: Waits between throttled attempts go through this name, so tests can record them.
_sleep: Callable[[float], None] = time.sleep


class ServiceNowSource(Source):
    """Reads a ServiceNow table through the REST Table API with basic authentication.

    Credentials (from ``credentials_ref``): ``user`` and ``password``. The client is created
    on first use; :meth:`close` ends its HTTP session.
    """

    type_name: ClassVar[str] = "servicenow"
    options_schema: ClassVar[dict[str, Any]] = OPTIONS_SCHEMA

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self.options = ServiceNowOptions.from_config(config)
        self._client: Any = None
        self._query_field_checked = False
        self._lost: Unplaceable | None = None
        #: Why this table cannot be fingerprinted, once the instance has said so.
        self._no_fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"<ServiceNowSource {self.describe()}>"

    def describe(self) -> str:
        """``servicenow acme.service-now.com/incident``: no secrets."""
        return f"servicenow {self.options.server}/{self.options.table}"

    # -- lifecycle ---------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._client is None:
            try:
                import pysnow
            except ImportError as exc:
                raise MissingExtraError("pysnow", "servicenow") from exc
            creds = self.credentials
            user = creds.reveal("user") if creds is not None else None
            password = creds.reveal("password") if creds is not None else None
            if not user or not password:
                ref = self.config.credentials_ref or "(none)"
                raise PermanentError(
                    f"ServiceNow at {self.options.server} needs a user and a password: set "
                    f"them under credentials_ref {ref!r} (e.g. {ref.upper()}_USER and "
                    f"{ref.upper()}_PASSWORD)"
                )
            with servicenow_errors(self.options.server, self.options.table):
                self._client = pysnow.Client(
                    instance=self.options.instance,
                    host=self.options.host,
                    user=user,
                    password=password,
                    use_ssl=self.options.use_ssl,
                )
        return self._client

    def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    def _resource(self, api: str) -> Any:
        return self._connect().resource(
            api_path=f"/{api}/{self.options.table}", timeout=self.options.request_timeout
        )

    # -- requests ----------------------------------------------------------------------------

    def _call(self, action: Callable[[], T]) -> T:
        """Run one request, retrying HTTP 429 with backoff; translate every driver error."""
        opts = self.options
        attempt = 0
        while True:
            try:
                with servicenow_errors(opts.server, opts.table):
                    return action()
            except Throttled as exc:
                if attempt >= opts.max_retries_429:
                    raise Throttled(
                        f"ServiceNow at {opts.server} still throttled table {opts.table!r} "
                        f"after {attempt} retries (HTTP 429); retry later or raise the "
                        f"integration user's rate limit",
                        exc.retry_after,
                    ) from exc
                delay = exc.retry_after
                if delay is None:
                    delay = opts.backoff * 2**attempt
                _sleep(min(delay, opts.max_backoff))
                attempt += 1

    def _table_page(
        self,
        query: str,
        *,
        offset: int,
        limit: int,
        fields: tuple[str, ...] | None = None,
        display_value: bool | str = False,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One Table API page: its records and the ``X-Total-Count`` header, if sent."""
        resource = self._resource("table")

        def fetch() -> tuple[list[dict[str, Any]], int | None]:
            response = resource.get(
                query=query,
                limit=limit,
                offset=offset,
                fields=list(fields or ()),
                display_value=display_value,
                exclude_reference_link=True,
            )
            rows = list(response.all())
            total = response.headers.get("X-Total-Count")
            return rows, int(total) if total and total.isdigit() else None

        return self._call(fetch)

    def _check_query_field(self) -> str:
        """Fail if the query field is not in the table's records; say what was checked.

        ServiceNow ignores a condition on an unknown field by default and returns every
        record instead, so a misspelt query field would silently select the whole table.
        """
        opts = self.options
        rows, _ = self._table_page("", offset=0, limit=1)
        if not rows:
            self._query_field_checked = True
            return f"query field {opts.query_field!r} not verified: table is empty"
        if opts.query_field not in rows[0]:
            raise PermanentError(
                f"table {opts.table!r} on {opts.server} has no readable field "
                f"{opts.query_field!r} (unknown, or hidden from this user by an ACL); "
                f"ServiceNow would ignore the window filter: fix query_field"
            )
        self._query_field_checked = True
        return f"query field {opts.query_field!r} exists"

    # -- the Source interface ----------------------------------------------------------------

    def check(self) -> list[str]:
        """One small authenticated read of the table, then the query field's presence."""
        opts = self.options
        field = self._check_query_field()
        return [f"connected to {opts.base_url}", f"table {opts.table!r} readable", field]

    def count(self, window: Window) -> int:
        """Records in ``[window.start, window.end)``, from the Aggregate API.

        Also tallies the records whose query field is empty (they belong to no window) for
        :meth:`unplaceable`.
        """
        total = self._window_count(window)
        self._lost = self._tally_unplaceable()
        return total

    def unplaceable(self) -> Unplaceable | None:
        """Records the last :meth:`count` found with an empty query field."""
        return self._lost

    def _window_count(self, window: Window) -> int:
        if not self._query_field_checked:
            self._check_query_field()
        return self._stats_count(window_filter(self.options, window))

    def _tally_unplaceable(self) -> Unplaceable:
        opts = self.options
        query = f"{opts.query_field}ISEMPTY" + (f"^{opts.extra_query}" if opts.extra_query else "")
        lost = Unplaceable()
        lost.add(f"{opts.query_field}: empty", f"table {opts.table}", n=self._stats_count(query))
        return lost

    def _stats_count(self, query: str) -> int:
        return _count_of(self._stats(query, {"sysparm_count": "true"}), self.options)

    def _stats(self, query: str, parameters: dict[str, str]) -> Any:
        """One Aggregate API answer (its ``result``) for ``query``."""
        resource = self._resource("stats")
        resource.parameters.add_custom(parameters)

        def fetch() -> Any:
            return resource.get(query=query, limit=1, offset=0).one()

        return self._call(fetch)

    def fingerprint(self, window: Window) -> str | None:
        """``<count>|<sum of sys_mod_count>|<max sys_created_on>|<max sys_updated_on>`` of the
        window's records, from one Aggregate API call over :meth:`count`'s filter; ``0`` for an
        empty window.

        The platform sets these system fields on every write, so the fingerprint changes when:

        - a record is created into the window (its ``sys_created_on`` is later than any record
          the window held), even when another one left it and the count is the same;
        - a record in the window is updated and stays in it, as it does when the query field is
          not ``sys_updated_on`` (``sys_mod_count`` goes up by one, ``sys_updated_on`` moves);
        - a record leaves and another one enters by an update (the sum of ``sys_mod_count``
          differs, or the latest ``sys_updated_on`` does).

        It cannot see changes made without those fields moving: an import or script that writes
        the system fields itself (``autoSysFields(false)``, a restored or replicated record with
        its old values), or a delete and a back-dated insert whose values happen to give the same
        sum and maxima.

        None (counts only) when the instance answers without one of the fields (a database view
        or remote table without them, or a field ACL) or refuses the aggregate (HTTP 400 or
        403); the reason is logged once and this source stops asking. A lost connection or a
        server error raises as usual.
        """
        if self._no_fingerprint is not None:
            return None
        if not self._query_field_checked:
            self._check_query_field()
        try:
            result = self._stats(window_filter(self.options, window), _FINGERPRINT_PARAMETERS)
        except PermanentError as exc:
            if not _refused(exc):
                raise
            self._without_fingerprint(f"the instance refused the aggregate ({exc})")
            return None
        count = _count_of(result, self.options)
        if count == 0:
            return "0"
        stats = result["stats"]
        parts = [str(count)]
        for name, field in FINGERPRINT_AGGREGATES:
            values = stats.get(name)
            value = values.get(field) if isinstance(values, dict) else None
            if not isinstance(value, str):
                self._without_fingerprint(f"the instance answered without the {name} of {field}")
                return None
            parts.append(value)
        return "|".join(parts)

    def _without_fingerprint(self, why: str) -> None:
        opts = self.options
        self._no_fingerprint = why
        log.warning(
            "ServiceNow table %r on %s cannot be fingerprinted: %s; settling compares counts only, "
            "so a record deleted and another created in the same window go unnoticed",
            opts.table, opts.server, why,
        )

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        """The window's records, sorted on the query field then ``sys_id``, page by page."""
        opts = self.options
        expected = self._window_count(window)
        query = paging_query(opts, window)
        builder = BatchBuilder(opts, window)
        read = 0
        last_id: Any = None
        while True:
            overlap = 1 if read else 0
            limit = opts.batch_size + overlap
            rows, total = self._table_page(
                query,
                offset=read - overlap,
                limit=limit,
                fields=opts.request_fields,
                display_value=opts.display_value,
            )
            # The instance's total says when to stop; without it, a short page does.
            last_page = len(rows) < limit if total is None else read + len(rows) - overlap >= total
            if total is not None and total != expected:
                raise self._drift(window, expected, f"the instance now counts {total}")
            if overlap:
                if not rows or _sys_id(rows[0]) != last_id:
                    raise self._drift(window, expected, f"the rows shifted after row {read}")
                rows = rows[1:]
            if rows and opts.query_field not in rows[0]:
                raise PermanentError(
                    f"records of table {opts.table!r} on {opts.server} lack the query field "
                    f"{opts.query_field!r}: fix query_field (or its ACL)"
                )
            if not rows:
                break
            yield builder.build(rows)
            read += len(rows)
            last_id = _sys_id(rows[-1])
            if last_page:
                break
        if read != expected:
            raise self._drift(window, expected, f"{read} rows were read")

    def _drift(self, window: Window, expected: int, what: str) -> TransientError:
        return TransientError(
            f"ServiceNow table {self.options.table!r} on {self.options.server} changed while "
            f"window [{window.start.isoformat()}, {window.end.isoformat()}) was read: it "
            f"counted {expected} records at the start but {what} (records added, updated or "
            f"deleted during the extract, or hidden by row ACLs); retry the window"
        )


def _count_of(result: Any, options: ServiceNowOptions) -> int:
    """``stats.count`` of an Aggregate API answer."""
    try:
        return int(result["stats"]["count"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentError(
            f"ServiceNow at {options.server} answered the count of table "
            f"{options.table!r} without stats.count: is the Aggregate API allowed?"
        ) from exc


def _refused(exc: PermanentError) -> bool:
    """True for an HTTP 400 or 403 answer: the instance will not aggregate those fields."""
    import requests

    cause = exc.__cause__
    response = cause.response if isinstance(cause, requests.HTTPError) else None
    return response is not None and response.status_code in (400, 403)


def _sys_id(record: dict[str, Any]) -> Any:
    return stored_value(record.get("sys_id"))
