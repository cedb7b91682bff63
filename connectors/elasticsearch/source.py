"""The Elasticsearch source: count and extract one half-open window of an index.

``count`` and ``extract`` filter with the same range query on the query field,
``{"range": {qf: {"gte": start, "lt": end}}}``, so they agree. A document whose query field is
missing, or was not indexed because it could not be read (``ignore_malformed``), matches no
range and so belongs to no window: both leave it out alike, and ``count`` tallies such
documents (every document minus those with a value in all of time) for
:meth:`ElasticsearchSource.unplaceable`, so the drive table shows them. A document with several
values in the query field matches every window one of its values falls in.

``extract`` pages through a point in time (PIT) with ``search_after``, sorted on the query
field, then the ``tiebreaker`` if configured, then the PIT's implicit ``_shard_doc``: the order
is total and stable, so no document is skipped or repeated however many share a timestamp.
Each page becomes one Arrow record batch of at most ``batch_size`` rows (see
:mod:`.columns` for the columns). A PIT that expires mid-way, a shard failure or a lost
connection raises; a short page is only taken as the end when every shard answered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain.base import Source
from drivetrain.errors import ConfigError, MissingExtraError, PermanentError, TransientError
from drivetrain.unplaceable import Unplaceable

from .columns import ColumnPlan, field_types
from .config import OPTIONS_SCHEMA, EsOptions
from .errors import es_errors, scrub

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import SystemConfig
    from drivetrain.secrets import Credentials
    from drivetrain.window import Window

logger = logging.getLogger(__name__)

_SECRET_KEYS = ("password", "api_key", "token")
_SORTABLE_TIEBREAKERS = {"keyword", "long", "integer", "short", "byte", "unsigned_long", "date"}


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ElasticsearchSource(Source):
    """Reads an Elasticsearch index window by window with the official client (8.x or 9.x).

    The client's major version must match the cluster's (a 9.x client is refused by an 8.x
    cluster; an 8.x client works with 8.x and 9.x clusters).
    """

    type_name: ClassVar[str] = "elasticsearch"
    options_schema: ClassVar[Mapping[str, Any]] = OPTIONS_SCHEMA

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self.options = EsOptions.from_config(config)
        self._client: Any = None
        self._query_field_checked = False
        self._lost: Unplaceable | None = None

    # -- connection --------------------------------------------------------------------------

    def describe(self) -> str:
        return f"elasticsearch {self.options.display} index {self.options.index}"

    def _secrets(self) -> list[str]:
        if self.credentials is None:
            return []
        return [v for key in _SECRET_KEYS if (v := self.credentials.reveal(key))]

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return es_errors(self.options.display, action, self._secrets())

    def _auth(self) -> dict[str, Any]:
        creds = self.credentials
        if creds is None:
            return {}
        ref = getattr(creds, "ref", None) or self.config.credentials_ref
        if creds.reveal("api_key"):
            return {"api_key": creds.reveal("api_key")}
        if creds.reveal("token"):
            return {"bearer_auth": creds.reveal("token")}
        user = creds.reveal("user") or creds.reveal("username")
        password = creds.reveal("password")
        if user and password:
            return {"basic_auth": (user, password)}
        raise self.config.error(
            "credentials_ref",
            f"credentials {ref!r} need USER and PASSWORD, or API_KEY, or TOKEN",
        )

    def _connect(self) -> Any:
        """The client, created on first use."""
        if self._client is not None:
            return self._client
        try:
            from elasticsearch import Elasticsearch
        except ImportError as exc:
            raise MissingExtraError("elasticsearch", "elasticsearch") from exc
        kwargs: dict[str, Any] = {
            "request_timeout": self.options.request_timeout,
            "max_retries": self.options.max_retries,
            "retry_on_timeout": True,
            **self._auth(),
        }
        if self.options.uses_tls:
            kwargs["verify_certs"] = self.options.verify_certs
            if self.options.ca_certs is not None:
                kwargs["ca_certs"] = str(self.options.ca_certs)
        try:
            self._client = Elasticsearch(list(self.options.hosts), **kwargs)
        except (ValueError, TypeError) as exc:
            message = scrub(str(exc), self._secrets())
            raise ConfigError(
                f"Elasticsearch client rejected the connection options: {message}"
            ) from None
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing is best effort; the pool is dropped either way
                logger.debug("closing the Elasticsearch client failed", exc_info=True)

    # -- checks ------------------------------------------------------------------------------

    def _mapping(self, client: Any) -> dict[str, Any]:
        with self._errors(f"reading the mapping of {self.options.index!r}"):
            return dict(client.indices.get_mapping(index=self.options.index).body)

    def _require_query_field(self, mappings: Mapping[str, Any]) -> str:
        """The query field's type; PermanentError unless it is a date field where mapped.

        Indices of a pattern that do not map it are fine (none of their documents is in any
        window); an index that maps it as something else, or no index mapping it, is not.
        """
        qf, index = self.options.query_field, self.options.index
        if not mappings:
            raise PermanentError(
                f"Elasticsearch at {self.options.display}: {index!r} matches no index; check index"
            )
        types = {node.get("type", "object") for node in field_types(mappings).get(qf, {}).values()}
        if not types:
            raise PermanentError(
                f"Elasticsearch at {self.options.display}: query_field {qf!r} is not mapped in "
                f"{index!r}; check query_field (a range on an unmapped field matches nothing, "
                "which would look like an empty window)"
            )
        if not types <= {"date", "date_nanos"}:
            raise PermanentError(
                f"Elasticsearch at {self.options.display}: query_field {qf!r} is mapped as "
                f"{'/'.join(sorted(types))}; it must be a date or date_nanos field"
            )
        self._query_field_checked = True
        return "/".join(sorted(types))

    def check(self) -> list[str]:
        """Connect, then check the index exists and the query field (and tiebreaker) are mapped."""
        client = self._connect()
        done = []
        with self._errors("connecting"):
            info = client.info()
        version = info.get("version", {}).get("number", "?")
        done.append(
            f"connected to Elasticsearch {version} at {self.options.display} "
            f"(cluster {info.get('cluster_name', '?')!r})"
        )
        with self._errors(f"checking that index {self.options.index!r} exists"):
            exists = bool(client.indices.exists(index=self.options.index))
        if not exists:
            raise PermanentError(
                f"Elasticsearch at {self.options.display}: index {self.options.index!r} does not "
                "exist; check the index option"
            )
        done.append(f"index {self.options.index!r} exists")
        mappings = self._mapping(client)
        kind = self._require_query_field(mappings)
        done.append(f"query field {self.options.query_field!r} is mapped as {kind}")
        types = field_types(mappings)
        if self.options.tiebreaker:
            found = {
                str(n.get("type", "object"))
                for n in types.get(self.options.tiebreaker, {}).values()
            }
            if not found or not found <= _SORTABLE_TIEBREAKERS:
                raise PermanentError(
                    f"Elasticsearch at {self.options.display}: tiebreaker "
                    f"{self.options.tiebreaker!r} must be a mapped keyword or numeric field "
                    f"(found {'/'.join(sorted(found)) or 'no mapping'})"
                )
            done.append(
                f"tiebreaker {self.options.tiebreaker!r} is mapped as {'/'.join(sorted(found))}"
            )
        if self.options.fields:
            unmapped = [path for _name, path in self.options.fields if path not in types]
            if unmapped:
                raise PermanentError(
                    f"Elasticsearch at {self.options.display}: fields paths {unmapped} are not in "
                    "the index mapping; check the paths in fields"
                )
            done.append(f"{len(self.options.fields)} fields paths are mapped")
        return done

    # -- count and extract -------------------------------------------------------------------

    def _range(self, window: Window) -> dict[str, Any]:
        bounds = {
            "gte": _iso(window.start),
            "lt": _iso(window.end),
            "format": "strict_date_optional_time",
        }
        return {"range": {self.options.query_field: bounds}}

    def _require_complete(self, response: Mapping[str, Any], action: str) -> None:
        shards = response.get("_shards") or {}
        if response.get("timed_out") or shards.get("failed"):
            raise TransientError(
                f"Elasticsearch at {self.options.display}: {action} got a partial answer "
                f"({shards.get('failed', 0)} of {shards.get('total', '?')} shards failed, "
                f"timed_out={bool(response.get('timed_out'))}); retrying later should help"
            )

    def count(self, window: Window) -> int:
        """Documents whose query field lies in ``[window.start, window.end)``."""
        client = self._connect()
        if not self._query_field_checked:
            self._require_query_field(self._mapping(client))
        action = f"counting documents of {self.options.index!r} in {window}"
        with self._errors(action):
            response = client.count(index=self.options.index, query=self._range(window))
        self._require_complete(response, action)
        self._lost = self._tally_unplaceable(client)
        return int(response["count"])

    def unplaceable(self) -> Unplaceable | None:
        """Documents the last :meth:`count` found without a usable query field."""
        return self._lost

    def _tally_unplaceable(self, client: Any) -> Unplaceable:
        index, field = self.options.index, self.options.query_field
        action = f"counting documents of {index!r} without a usable {field!r}"
        every_time = {"gte": "0001-01-01T00:00:00Z", "lt": "9999-12-31T23:59:59Z",
                      "format": "strict_date_optional_time"}
        with self._errors(action):
            total = client.count(index=index, query={"match_all": {}})
            placed = client.count(index=index, query={"range": {field: every_time}})
        self._require_complete(total, action)
        self._require_complete(placed, action)
        lost = Unplaceable()
        missing = int(total["count"]) - int(placed["count"])
        if missing > 0:
            lost.add(f"{field}: missing, or not indexed as a date (ignore_malformed)", f"index {index}",
                     n=missing)
        return lost

    def _sort(self) -> list[dict[str, Any]]:
        qf = {
            "order": "asc",
            "format": "strict_date_optional_time_nanos",
            "unmapped_type": "date",
        }
        sort: list[dict[str, Any]] = [{self.options.query_field: qf}]
        if self.options.tiebreaker:
            sort.append({self.options.tiebreaker: {"order": "asc"}})
        return sort

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        """The window's documents, in query-field order, one batch per page.

        Opens a point in time, pages with ``search_after`` and closes the point in time at the
        end, on error, and when the caller stops early.
        """
        client = self._connect()
        index, keep_alive = self.options.index, self.options.pit_keep_alive
        with self._errors(f"opening a point in time on {index!r}"):
            pit_id = client.open_point_in_time(index=index, keep_alive=keep_alive)["id"]
        try:
            mappings = self._mapping(client)
            self._require_query_field(mappings)
            plan = ColumnPlan.build(self.options, mappings)
            request: dict[str, Any] = {
                "query": self._range(window),
                "sort": self._sort(),
                "size": self.options.batch_size,
                "track_total_hits": False,
                "allow_partial_search_results": False,
            }
            if plan.source_filter is not None:
                request["source"] = plan.source_filter
            pages = rows = 0
            while True:
                action = f"reading page {pages + 1} of {index!r} for {window}"
                with self._errors(action):
                    response = client.search(
                        pit={"id": pit_id, "keep_alive": keep_alive}, **request
                    )
                self._require_complete(response, action)
                pit_id = response.get("pit_id") or pit_id
                hits = response["hits"]["hits"]
                if not hits:
                    break
                pages, rows = pages + 1, rows + len(hits)
                yield plan.to_batch(hits)
                if len(hits) < self.options.batch_size:
                    break
                request["search_after"] = hits[-1]["sort"]
            logger.debug("extracted %d documents in %d pages from %s", rows, pages, index)
        finally:
            self._close_pit(client, pit_id)

    def _close_pit(self, client: Any, pit_id: str) -> None:
        """Release the point in time; a failure only costs server memory until it expires."""
        try:
            client.close_point_in_time(id=pit_id)
        except Exception as exc:
            status = getattr(getattr(exc, "meta", None), "status", None)
            if status == 404:
                return  # already expired
            logger.warning(
                "could not close the Elasticsearch point in time on %s (%s); it expires after %s",
                self.options.display,
                type(exc).__name__,
                self.options.pit_keep_alive,
            )
