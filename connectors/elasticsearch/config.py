"""The ``source_system`` options of an Elasticsearch source: JSON Schema and parsed values.

The schema lets the config loader reject a typo before a run starts; :class:`EsOptions` is
what the source reads. Credentials never live here: ``credentials_ref`` names them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from drivetrain.config.hosts import CREDENTIALS_IN_URL, credentials_in_url

if TYPE_CHECKING:
    from drivetrain.config import SystemConfig

#: The most hits one search may return (the server's default ``index.max_result_window``).
MAX_BATCH_SIZE = 10_000
DEFAULT_BATCH_SIZE = 5_000
#: Columns the source may add itself; ``fields`` cannot use these names.
RESERVED_COLUMNS = frozenset({"_id", "_unmapped", "_drivetrain_error", "_drivetrain_raw"})

_KEEP_ALIVE = re.compile(r"^[1-9][0-9]*(ms|s|m|h|d)$")

OPTIONS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Elasticsearch source",
    "description": "Reads one index (or alias, or pattern) window by window, filtered on a date field.",
    "type": "object",
    "properties": {
        "type": {"const": "elasticsearch"},
        "credentials_ref": {
            "type": "string",
            "description": "Names the credentials: REF_USER + REF_PASSWORD (basic auth), "
            "REF_API_KEY, or REF_TOKEN (bearer). Optional for an open cluster.",
        },
        "endpoint": {
            "type": "string",
            "description": "Cluster URL, e.g. https://es.example.com:9200 (port defaults to "
            "443/80 by scheme). Give this or hosts; never put credentials in it.",
        },
        "hosts": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "Several node URLs instead of endpoint.",
        },
        "index": {
            "type": "string",
            "minLength": 1,
            "description": "Index, alias, data stream or comma-separated pattern to read.",
        },
        "query_field": {
            "type": "string",
            "minLength": 1,
            "description": "Date or date_nanos field that places a document in a window, "
            "e.g. @timestamp. Windows are half-open: start <= value < end.",
        },
        "batch_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_BATCH_SIZE,
            "description": f"Hits per page and rows per Arrow batch (default {DEFAULT_BATCH_SIZE}).",
        },
        "tiebreaker": {
            "type": "string",
            "description": "A unique, sortable field (keyword or numeric) ordering documents that "
            "share a timestamp. Default: the point in time's implicit _shard_doc.",
        },
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "string", "minLength": 1},
            "description": "Output column -> dotted source path. When given, the output holds the "
            "query field, these columns (and _id if asked), nothing else. Default: one column "
            "per top-level key of the mapping, objects as JSON text.",
        },
        "include_id": {"type": "boolean", "description": "Add the _id column (default false)."},
        "pit_keep_alive": {
            "type": "string",
            "pattern": _KEEP_ALIVE.pattern,
            "x-message": "{value} is not a duration such as 30s, 5m or 1h",
            "description": "How long the point in time survives between two pages (default 5m).",
        },
        "request_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds to wait for one response (default 30).",
        },
        "max_retries": {
            "type": "integer",
            "minimum": 0,
            "description": "Client-level retries of one request on connection errors, timeouts "
            "and HTTP 429/502/503/504 (default 3). The phase's own retry comes on top.",
        },
        "verify_certs": {
            "type": "boolean",
            "description": "Verify TLS certificates (default true).",
        },
        "ca_certs": {
            "type": "string",
            "description": "CA bundle for TLS, relative to the config file's folder.",
        },
    },
    "required": ["type", "index", "query_field"],
    "allOf": [
        {
            "oneOf": [{"required": ["endpoint"]}, {"required": ["hosts"]}],
            "x-message": "give exactly one of 'endpoint' or 'hosts'",
        }
    ],
    "additionalProperties": False,
}


def _normalise_host(url: str) -> str:
    """``scheme://host:port[/path]`` with the port filled in; ValueError when unusable."""
    if not isinstance(url, str) or not url:
        raise ValueError("must be a URL such as https://es.example.com:9200")
    if credentials_in_url(url):
        raise ValueError(CREDENTIALS_IN_URL)
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL such as https://es.example.com:9200")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}{parts.path.rstrip('/')}"


@attrs.frozen
class EsOptions:
    """The parsed ``source_system`` section of an Elasticsearch source."""

    hosts: tuple[str, ...]
    """Node URLs with scheme and port, no credentials."""
    index: str
    """Index, alias or pattern to read."""
    query_field: str
    """The date field a window filters and sorts on."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Hits per search page, and so rows per Arrow batch."""
    tiebreaker: str | None = None
    """A unique sortable field after the query field; None relies on ``_shard_doc``."""
    fields: tuple[tuple[str, str], ...] = ()
    """(output column, dotted source path) pairs; empty means one column per top-level key."""
    include_id: bool = False
    """Whether to add the ``_id`` column."""
    pit_keep_alive: str = "5m"
    """Point-in-time keep-alive, renewed by every page."""
    request_timeout: float = 30.0
    """Seconds to wait for one response."""
    max_retries: int = 3
    """Client-level retries of one request."""
    verify_certs: bool = True
    """Verify TLS certificates."""
    ca_certs: Path | None = None
    """CA bundle path, already resolved against the config folder."""

    @property
    def uses_tls(self) -> bool:
        return any(host.startswith("https://") for host in self.hosts)

    @property
    def display(self) -> str:
        """The hosts as shown in messages (they never hold credentials)."""
        return ", ".join(self.hosts)

    @classmethod
    def from_config(cls, config: SystemConfig) -> EsOptions:
        """Read and check the section; raises ConfigError naming the key at fault."""
        endpoint, hosts = config.get("endpoint"), config.get("hosts")
        if (endpoint is None) == (hosts is None):
            raise config.error("endpoint", "give exactly one of endpoint or hosts")
        raw_hosts = [endpoint] if endpoint is not None else hosts
        key = "endpoint" if endpoint is not None else "hosts"
        if not isinstance(raw_hosts, list | tuple) or not raw_hosts:
            raise config.error(key, "must be a non-empty list of URLs")
        normalised = []
        for url in raw_hosts:
            try:
                normalised.append(_normalise_host(url))
            except ValueError as exc:
                raise config.error(key, str(exc)) from None

        index = config.require("index")
        query_field = config.require("query_field")
        for name, value in (("index", index), ("query_field", query_field)):
            if not isinstance(value, str) or not value.strip():
                raise config.error(name, "must be a non-empty string")

        # not config.get: the core default for sources (10000) is not this source's default
        batch_size = config.options.get("batch_size", DEFAULT_BATCH_SIZE)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise config.error("batch_size", "must be a whole number")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise config.error("batch_size", f"must be between 1 and {MAX_BATCH_SIZE}")

        tiebreaker = config.get("tiebreaker")
        if tiebreaker is not None and (not isinstance(tiebreaker, str) or not tiebreaker):
            raise config.error("tiebreaker", "must be a field name")

        fields = _parse_fields(config, query_field)

        keep_alive = config.get("pit_keep_alive", "5m")
        if not isinstance(keep_alive, str) or not _KEEP_ALIVE.match(keep_alive):
            raise config.error("pit_keep_alive", "must be a duration such as 30s, 5m or 1h")

        timeout = config.get("request_timeout", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise config.error("request_timeout", "must be a positive number of seconds")

        retries = config.get("max_retries", 3)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise config.error("max_retries", "must be a whole number, 0 or more")

        flags = {}
        for name in ("include_id", "verify_certs"):
            value = config.get(name, name == "verify_certs")
            if not isinstance(value, bool):
                raise config.error(name, "must be true or false")
            flags[name] = value

        ca_certs = config.get("ca_certs")
        ca_path = None
        if ca_certs is not None:
            if not isinstance(ca_certs, str) or not ca_certs:
                raise config.error("ca_certs", "must be a file path")
            ca_path = Path(ca_certs)
            if not ca_path.is_absolute():
                ca_path = Path(config.base_dir) / ca_path

        return cls(
            hosts=tuple(normalised),
            index=index.strip(),
            query_field=query_field.strip(),
            batch_size=batch_size,
            tiebreaker=tiebreaker,
            fields=fields,
            include_id=flags["include_id"],
            pit_keep_alive=keep_alive,
            request_timeout=float(timeout),
            max_retries=retries,
            verify_certs=flags["verify_certs"],
            ca_certs=ca_path,
        )


def _parse_fields(config: SystemConfig, query_field: str) -> tuple[tuple[str, str], ...]:
    raw = config.get("fields")
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise config.error("fields", "must map output column names to dotted source paths")
    pairs = []
    for column, path in raw.items():
        if not isinstance(path, str) or not path.strip():
            raise config.error(f"fields.{column}", "must be a dotted source path")
        if column in RESERVED_COLUMNS or column == query_field:
            raise config.error(
                f"fields.{column}",
                f"{column!r} is a column the source adds itself; choose another name",
            )
        pairs.append((str(column), path.strip()))
    return tuple(pairs)
