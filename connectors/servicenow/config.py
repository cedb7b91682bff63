"""The ``source_system`` options of a ServiceNow source, their JSON Schema and their parsing.

The schema is what the config loader checks a section against (typos, wrong types); the
:class:`ServiceNowOptions` value object adds the checks a schema cannot express (``instance`` or
``host`` but not both, an ``extra_query`` that cannot widen the window, a known time zone).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from drivetrain.config.hosts import CREDENTIALS_IN_URL, credentials_in_url

if TYPE_CHECKING:
    from drivetrain.config import SystemConfig

#: ServiceNow pages are requested with ``sysparm_limit``; larger pages strain the instance.
MAX_BATCH_SIZE = 10_000

_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_FIELD = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
# Encoded-query pieces that would reorder the result or OR a whole new query onto ours.
_FORBIDDEN_IN_EXTRA = re.compile(r"(^|\^)(NQ|ORDERBY|ORDERBYDESC|GROUPBY|RLQUERY)")

OPTIONS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ServiceNow source",
    "description": "Reads one ServiceNow table through the Table API, one time window at a time.",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "table"],
    "properties": {
        "type": {"const": "servicenow", "description": "Selects this connector."},
        "credentials_ref": {
            "type": "string",
            "description": "Prefix of the secrets holding 'user' and 'password' (basic auth).",
        },
        "instance": {
            "type": "string",
            "pattern": "^[A-Za-z0-9-]+$",
            "description": "Instance name: 'acme' means https://acme.service-now.com. "
            "Give either instance or host.",
        },
        "host": {
            "type": "string",
            "description": "host[:port] instead of an instance name, e.g. '127.0.0.1:8080'.",
        },
        "use_ssl": {"type": "boolean", "description": "Use https. Default true."},
        "table": {
            "type": "string",
            "pattern": _NAME.pattern,
            "description": "Table to read, e.g. 'incident'.",
        },
        "query_field": {
            "type": "string",
            "pattern": _NAME.pattern,
            "description": "Date-time field that places a record in a window. "
            "Default 'sys_updated_on'.",
        },
        "batch_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_BATCH_SIZE,
            "description": "Rows per page (sysparm_limit) and per Arrow batch. Default 1000.",
        },
        "display_value": {
            "enum": [False, True, "all"],
            "description": "sysparm_display_value: false = stored values (default), "
            "true = display values (date-times must then use the yyyy-MM-dd HH:mm:ss format "
            "in the user's profile), 'all' = both (display values in 'dv_<field>' columns).",
        },
        "fields": {
            "type": "array",
            "items": {"type": "string", "pattern": _FIELD.pattern},
            "minItems": 1,
            "description": "Fields to read (sysparm_fields). Default: every field. "
            "The query field and sys_id are always added.",
        },
        "extra_query": {
            "type": "string",
            "description": "Encoded query ANDed onto the window filter, e.g. 'active=true'. "
            "NQ, ORDERBY and GROUPBY are refused.",
        },
        "datetime_fields": {
            "type": "array",
            "items": {"type": "string", "pattern": _FIELD.pattern},
            "description": "Fields emitted as timestamp[us, UTC] besides the query field. "
            "Default ['sys_created_on', 'sys_updated_on']; others stay text.",
        },
        "timezone": {
            "type": "string",
            "description": "Time zone of display date-times (display_value true): the "
            "integration user's profile zone. Stored values are always UTC. Default 'UTC'. "
            "Refused with display_value false, which ignores it. A query-field reading of the hour "
            "repeated when clocks go back is the instant inside the window the instance selected it for.",
        },
        "request_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds to wait for one HTTP answer. Default 60.",
        },
        "max_retries_429": {
            "type": "integer",
            "minimum": 0,
            "description": "Retries of a throttled (HTTP 429) request before giving up. Default 5.",
        },
        "backoff": {
            "type": "number",
            "minimum": 0,
            "description": "First wait in seconds after a 429 without Retry-After; doubles "
            "on each retry. Default 1.",
        },
        "max_backoff": {
            "type": "number",
            "minimum": 0,
            "description": "Longest single wait in seconds, Retry-After included. Default 60.",
        },
    },
}


def _tuple_or_none(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen
class ServiceNowOptions:
    """The parsed ``source_system`` section of a ServiceNow source."""

    table: str
    """Table read through ``/api/now/table/<table>``."""
    instance: str | None = None
    """Instance name (``acme`` -> ``acme.service-now.com``); exclusive with ``host``."""
    host: str | None = None
    """``host[:port]``; exclusive with ``instance``."""
    use_ssl: bool = True
    """Whether to speak https."""
    query_field: str = "sys_updated_on"
    """Date-time field filtered on ``[start, end)`` and sorted on."""
    batch_size: int = 1000
    """Page size (``sysparm_limit``) and largest Arrow batch."""
    display_value: bool | str = False
    """``False``, ``True`` or ``"all"``, passed as ``sysparm_display_value``."""
    fields: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    """Fields requested, or None for all; see :attr:`request_fields`."""
    extra_query: str | None = None
    """Encoded query ANDed onto the window filter."""
    datetime_fields: tuple[str, ...] = attrs.field(
        default=("sys_created_on", "sys_updated_on"), converter=tuple
    )
    """Fields converted to timestamps besides the query field."""
    timezone: str = "UTC"
    """Zone of display date-time strings (only used with ``display_value`` true)."""
    request_timeout: float = 60.0
    """Seconds to wait for one HTTP answer."""
    max_retries_429: int = 5
    """Retries of a 429 answer before raising TransientError."""
    backoff: float = 1.0
    """First wait after a 429 without Retry-After; doubles each time."""
    max_backoff: float = 60.0
    """Cap on any single wait."""

    @property
    def server(self) -> str:
        """The host name the client talks to, for messages (never carries credentials)."""
        return self.host or f"{self.instance}.service-now.com"

    @property
    def base_url(self) -> str:
        """``https://acme.service-now.com`` or ``http://127.0.0.1:8080``."""
        return f"{'https' if self.use_ssl else 'http'}://{self.server}"

    @property
    def request_fields(self) -> tuple[str, ...] | None:
        """``fields`` with the query field and ``sys_id`` added (needed to filter and page)."""
        if self.fields is None:
            return None
        extra = [f for f in (self.query_field, "sys_id") if f not in self.fields]
        return (*extra, *self.fields)

    @property
    def timestamp_fields(self) -> frozenset[str]:
        """Every field emitted as ``timestamp[us, UTC]``."""
        return frozenset((self.query_field, *self.datetime_fields))

    @classmethod
    def from_config(cls, config: SystemConfig) -> ServiceNowOptions:
        """Build the options from a ``source_system`` section, raising ConfigError on a problem.

        The section is checked against :data:`OPTIONS_SCHEMA` first, then for what a schema
        cannot say.
        """
        config.validate_against(OPTIONS_SCHEMA)
        opts = config.options
        instance, host = opts.get("instance"), opts.get("host")
        if bool(instance) == bool(host):
            raise config.error("instance", "give exactly one of 'instance' or 'host'")
        for key, value in (("instance", instance), ("host", host)):
            if isinstance(value, str) and credentials_in_url(value):
                raise config.error(key, CREDENTIALS_IN_URL)
        if host and ("@" in host or "/" in host):
            raise config.error("host", "give host[:port] only, without scheme, path or user")
        table = config.require("table")
        if not isinstance(table, str) or not _NAME.match(table):
            raise config.error("table", f"{table!r} is not a ServiceNow table name")
        display = opts.get("display_value", False)
        if not (isinstance(display, bool) or display == "all"):
            raise config.error("display_value", 'use false, true or "all"')
        batch_size = opts.get("batch_size", 1000)
        if type(batch_size) is not int or not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise config.error("batch_size", f"use a whole number from 1 to {MAX_BATCH_SIZE}")
        use_ssl = opts.get("use_ssl", True)
        if not isinstance(use_ssl, bool):
            raise config.error("use_ssl", "use true or false")
        timezone = opts.get("timezone", "UTC")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise config.error("timezone", f"unknown time zone {timezone!r}") from exc
        if "timezone" in opts and display is False:
            raise config.error("timezone", "is only used with display_value true or \"all\" (otherwise ServiceNow "
                                           "sends date-times in UTC and the zone is ignored); remove it or set display_value")
        extra = opts.get("extra_query")
        if extra is not None:
            extra = extra.strip().strip("^")
            if extra.endswith("^EQ") or extra == "EQ":
                extra = extra[:-2].rstrip("^")
            if _FORBIDDEN_IN_EXTRA.search(extra) or extra.startswith("OR"):
                raise config.error(
                    "extra_query",
                    "NQ, ORDERBY, GROUPBY, RLQUERY or a leading OR would let records outside "
                    "the window in or change the paging order: write plain ANDed conditions",
                )
        return cls(
            table=table,
            instance=instance,
            host=host,
            use_ssl=use_ssl,
            query_field=opts.get("query_field", "sys_updated_on"),
            batch_size=batch_size,
            display_value=display,
            fields=opts.get("fields"),
            extra_query=extra or None,
            datetime_fields=opts.get("datetime_fields", ("sys_created_on", "sys_updated_on")),
            timezone=timezone,
            request_timeout=float(opts.get("request_timeout", 60.0)),
            max_retries_429=int(opts.get("max_retries_429", 5)),
            backoff=float(opts.get("backoff", 1.0)),
            max_backoff=float(opts.get("max_backoff", 60.0)),
        )
