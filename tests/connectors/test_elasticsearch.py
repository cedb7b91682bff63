"""The Elasticsearch source, through the real elasticsearch client over HTTP against the emulator.

The emulator reports the installed client's major version, as a matching cluster would. The
same file runs with an 8.x client (``PYTHONPATH`` pointing at one) and a 9.x client.
"""

from __future__ import annotations

import json
import socket
import sys
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import elasticsearch
import jsonschema
import pyarrow as pa
import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.elasticsearch import OPTIONS_SCHEMA, ElasticsearchSource
from drivetrain.errors import ConfigError, MissingExtraError, PermanentError, TransientError
from drivetrain.secrets import resolve_credentials
from drivetrain.window import Window
from tests.emulators.elasticsearch import EsEmulator

CLIENT_MAJOR = int(elasticsearch.__versionstr__.split(".")[0])
SERVER_VERSION = {8: "8.15.0", 9: "9.1.0"}.get(CLIENT_MAJOR, f"{CLIENT_MAJOR}.0.0")
TS = pa.timestamp("us", tz="UTC")
START = datetime(2025, 11, 15, 10, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=1))
NEXT_WINDOW = Window(START + timedelta(hours=1), START + timedelta(hours=2))
PASSWORD = "s3cret-Pa55word"
MakeSource = Callable[..., ElasticsearchSource]


def start_emulator(version: str) -> EsEmulator:
    try:
        return EsEmulator.start(version=version)
    except OSError as exc:
        pytest.fail(f"the Elasticsearch emulator could not listen on 127.0.0.1: {exc}")


def section(url: str, **options: Any) -> dict[str, Any]:
    return {
        "type": "elasticsearch",
        "endpoint": url,
        "index": "genetic_tests",
        "query_field": "@timestamp",
        **options,
    }


def config_of(options: dict[str, Any]) -> SystemConfig:
    return SystemConfig.from_section("source_system", options, base_dir=Path("."))


@pytest.fixture
def make_source(es: EsEmulator) -> Iterator[MakeSource]:
    made: list[ElasticsearchSource] = []

    def make(
        url: str | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        environ: dict[str, str] | None = None,
        **options: Any,
    ) -> ElasticsearchSource:
        credentials = None
        if environ is not None or user is not None:
            env = environ or {"TEST_ES_USER": user or "", "TEST_ES_PASSWORD": password or ""}
            options["credentials_ref"] = "test_es"
            credentials = resolve_credentials("test_es", environ=env)
        source = ElasticsearchSource(config_of(section(url or es.url, **options)), credentials)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def docs_every(n: int, *, span_minutes: float = 60, prefix: str = "d") -> list[dict[str, Any]]:
    return [
        {"_id": f"{prefix}{i:05d}", "@timestamp": at(i * span_minutes / n), "value": i}
        for i in range(n)
    ]


def extract_all(source: ElasticsearchSource, window: Window = WINDOW) -> pa.Table:
    batches = list(source.extract(window))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def client_for(es: EsEmulator) -> elasticsearch.Elasticsearch:
    """The official client on the emulator, without the client's own retries."""
    return elasticsearch.Elasticsearch(es.url, max_retries=0)


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


class TestCount:
    def test_counts_the_documents_of_the_window(self, es, make_source):
        es.add_documents(
            "genetic_tests", docs_every(50) + docs_every(7, prefix="late", span_minutes=30)
        )
        es.add_documents("genetic_tests", [{"@timestamp": at(-1)}, {"@timestamp": at(61)}])
        assert make_source().count(WINDOW) == 57

    def test_sends_a_half_open_range_on_the_query_field(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        make_source().count(WINDOW)
        request = es.requests_to("/_count")[0]  # the window; the next two tally documents of no window
        bounds = request.body["query"]["range"]["@timestamp"]
        assert bounds["gte"].startswith("2025-11-15T10:00:00") and bounds["lt"].startswith(
            "2025-11-15T11:00:00"
        )
        assert bounds["format"] == "strict_date_optional_time" and "lte" not in bounds

    def test_a_document_exactly_at_end_belongs_to_the_next_window(self, es, make_source):
        es.add_documents("genetic_tests", [{"_id": "edge", "@timestamp": "2025-11-15T11:00:00Z"}])
        source = make_source(include_id=True)
        assert source.count(WINDOW) == 0 and extract_all(source, WINDOW).num_rows == 0
        assert source.count(NEXT_WINDOW) == 1
        assert extract_all(source, NEXT_WINDOW).column("_id").to_pylist() == ["edge"]

    def test_count_and_extract_agree_on_mixed_timestamp_forms(self, es, make_source):
        stamps = [
            "2025-11-15T09:59:59.999Z",
            "2025-11-15T10:00:00Z",
            "2025-11-15T12:30:00+02:00",
            "2025-11-15T10:59:59.999999999Z",
            1763200800000,
            "2025-11-15T11:00:00.000Z",
            "2025-11-15T05:30:00-05:00",
            "2025-11-15",
        ]
        es.add_documents(
            "genetic_tests",
            [{"@timestamp": s} for s in stamps],
            mapping={"properties": {"@timestamp": {"type": "date_nanos"}}},
        )
        source = make_source()
        assert source.count(WINDOW) == extract_all(source).num_rows == 5

    def test_an_unmapped_query_field_is_an_error_not_an_empty_window(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        with pytest.raises(PermanentError, match="not mapped"):
            make_source(query_field="@timestmap").count(WINDOW)


class TestExtract:
    def test_batches_never_exceed_batch_size(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(2500))
        sizes = [batch.num_rows for batch in make_source(batch_size=300).extract(WINDOW)]
        assert sizes == [300] * 8 + [100]

    def test_documents_sharing_one_timestamp_are_each_extracted_once(self, es, make_source):
        es.add_documents(
            "genetic_tests", [{"_id": f"same{i}", "@timestamp": at(5)} for i in range(1000)]
        )
        ids = extract_all(make_source(batch_size=300, include_id=True)).column("_id").to_pylist()
        assert len(ids) == 1000 and len(set(ids)) == 1000

    def test_rows_come_in_query_field_order(self, es, make_source):
        docs = docs_every(400)
        es.add_documents("genetic_tests", docs[::2] + docs[1::2])
        stamps = extract_all(make_source(batch_size=64)).column("@timestamp").to_pylist()
        assert stamps == sorted(stamps) and len(stamps) == 400

    def test_query_field_is_a_utc_microsecond_timestamp(self, es, make_source):
        es.add_documents(
            "genetic_tests",
            [{"@timestamp": "2025-11-15T12:15:30.123456789+02:00"}],
            mapping={"properties": {"@timestamp": {"type": "date_nanos"}}},
        )
        table = extract_all(make_source())
        assert table.schema.field("@timestamp").type == TS
        assert table.column("@timestamp").to_pylist() == [
            datetime(2025, 11, 15, 10, 15, 30, 123456, tzinfo=UTC)
        ]

    def test_every_batch_of_an_extract_has_the_same_schema(self, es, make_source):
        docs = docs_every(20)
        docs[-1]["rare"] = {"only": "here"}
        es.add_documents("genetic_tests", docs)
        schemas = {batch.schema for batch in make_source(batch_size=5).extract(WINDOW)}
        assert len(schemas) == 1 and "rare" in next(iter(schemas)).names

    def test_include_id_adds_the_id_column(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        assert extract_all(make_source(include_id=True)).column("_id").to_pylist() == [
            "d00000",
            "d00001",
            "d00002",
        ]
        assert "_id" not in extract_all(make_source()).column_names

    def test_the_point_in_time_is_closed_after_the_extract(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(10))
        extract_all(make_source(batch_size=3))
        assert es.open_pits == 0 and len(es.requests_to("/_pit")) == 2

    def test_the_point_in_time_is_closed_when_the_caller_stops_early(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(10))
        batches = make_source(batch_size=3).extract(WINDOW)
        next(batches)
        assert es.open_pits == 1
        batches.close()
        assert es.open_pits == 0

    def test_documents_indexed_during_the_extract_do_not_shift_pages(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(30))
        batches = make_source(batch_size=10, include_id=True).extract(WINDOW)
        first = next(batches)
        es.add_documents(
            "genetic_tests", [{"_id": f"new{i}", "@timestamp": at(0)} for i in range(5)]
        )
        ids = first.column("_id").to_pylist() + [
            i for b in batches for i in b.column("_id").to_pylist()
        ]
        assert ids == [f"d{i:05d}" for i in range(30)]

    def test_a_configured_tiebreaker_follows_the_query_field(self, es, make_source):
        mapping = {"properties": {"event_id": {"type": "keyword"}}}
        es.add_documents(
            "genetic_tests",
            [{"event_id": f"e{i:03d}", "@timestamp": at(1)} for i in range(25)],
            mapping,
        )
        table = extract_all(make_source(batch_size=10, tiebreaker="event_id"))
        assert table.column("event_id").to_pylist() == [f"e{i:03d}" for i in range(25)]
        sort = es.requests_to("/_search")[0].body["sort"]
        assert list(sort[0]) == ["@timestamp"] and sort[1] == {"event_id": {"order": "asc"}}

    def test_pages_ask_for_no_total_and_no_partial_results(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        extract_all(make_source())
        request = es.requests_to("/_search")[0]
        assert request.body["track_total_hits"] is False and request.body["size"] == 5000
        assert (
            request.query.get(
                "allow_partial_search_results",
                str(request.body.get("allow_partial_search_results")),
            ).lower()
            == "false"
        )


class TestColumns:
    NESTED = [
        {
            "_id": "a",
            "@timestamp": at(1),
            "patient": {"id": 7, "name": {"first": "Ada", "last": "L"}},
            "test": {"code": "BRCA1", "panels": [{"p": 1}, {"p": 2}]},
            "status": "done",
        },
        {
            "_id": "b",
            "@timestamp": at(2),
            "patient": {"id": 8, "name": {"first": "Bo"}},
            "status": "new",
        },
    ]

    def test_fields_flatten_nested_documents(self, es, make_source):
        es.add_documents("genetic_tests", self.NESTED)
        fields = {
            "patient_id": "patient.id",
            "first_name": "patient.name.first",
            "panels": "test.panels",
        }
        table = extract_all(make_source(fields=fields))
        assert table.column_names[:4] == ["@timestamp", "patient_id", "first_name", "panels"]
        assert table.schema.field("patient_id").type == pa.int64()
        assert table.column("patient_id").to_pylist() == [7, 8]
        assert table.column("first_name").to_pylist() == ["Ada", "Bo"]
        assert json.loads(table.column("panels")[0].as_py()) == [{"p": 1}, {"p": 2}]
        assert table.column("panels")[1].as_py() is None

    def test_fields_asks_the_server_for_the_declared_paths_only(self, es, make_source):
        es.add_documents("genetic_tests", self.NESTED)
        extract_all(make_source(fields={"patient_id": "patient.id"}))
        assert es.requests_to("/_search")[0].body["_source"] == ["patient.id"]

    def test_nested_objects_are_kept_as_json_without_fields(self, es, make_source):
        es.add_documents("genetic_tests", self.NESTED)
        table = extract_all(make_source())
        assert table.column_names[:4] == ["@timestamp", "patient", "status", "test"]
        assert json.loads(table.column("patient")[0].as_py()) == self.NESTED[0]["patient"]
        assert json.loads(table.column("test")[0].as_py())["panels"] == [{"p": 1}, {"p": 2}]
        assert table.column("_drivetrain_error").null_count == 2

    def test_columns_take_their_types_from_the_mapping(self, es, make_source):
        mapping = {
            "properties": {
                "n": {"type": "long"},
                "ok": {"type": "boolean"},
                "seen": {"type": "date"},
                "code": {"type": "keyword"},
            }
        }
        es.add_documents(
            "genetic_tests",
            [{"@timestamp": at(1), "n": "42", "ok": "true", "seen": 1763200800000, "code": 5}],
            mapping,
        )
        table = extract_all(make_source())
        types = {f.name: f.type for f in table.schema}
        assert (types["n"], types["ok"], types["seen"], types["code"]) == (
            pa.int64(),
            pa.bool_(),
            TS,
            pa.string(),
        )
        assert table.to_pylist()[0] | {"@timestamp": None} == {
            "@timestamp": None,
            "n": 42,
            "ok": True,
            "seen": datetime(2025, 11, 15, 10, tzinfo=UTC),
            "code": "5",
            "_drivetrain_error": None,
            "_drivetrain_raw": None,
        }

    def test_a_value_that_does_not_fit_its_column_marks_the_row_instead_of_vanishing(
        self, es, make_source
    ):
        mapping = {"properties": {"score": {"type": "long"}}}
        es.add_documents(
            "genetic_tests",
            [
                {"_id": "ok", "@timestamp": at(1), "score": 3},
                {"_id": "bad", "@timestamp": at(2), "score": [1, 2]},
            ],
            mapping,
        )
        rows = extract_all(make_source(include_id=True)).to_pylist()
        assert [r["_id"] for r in rows] == ["ok", "bad"]
        assert rows[0]["_drivetrain_error"] is None and rows[1]["score"] is None
        assert "score" in rows[1]["_drivetrain_error"]
        assert json.loads(rows[1]["_drivetrain_raw"])["score"] == [1, 2]

    def test_keys_outside_a_non_dynamic_mapping_are_kept_in_unmapped(self, es, make_source):
        mapping = {
            "dynamic": False,
            "properties": {"@timestamp": {"type": "date"}, "kept": {"type": "keyword"}},
        }
        es.add_documents(
            "genetic_tests", [{"@timestamp": at(1), "kept": "x", "loose": {"a": 1}}], mapping
        )
        row = extract_all(make_source()).to_pylist()[0]
        assert row["kept"] == "x" and json.loads(row["_unmapped"]) == {"loose": {"a": 1}}


class TestErrors:
    def test_point_in_time_expiring_mid_extract_is_transient(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(100))
        batches = make_source(batch_size=10).extract(WINDOW)
        got = [next(batches), next(batches)]
        es.expire_pits()
        with pytest.raises(TransientError, match="point in time expired") as caught:
            list(batches)
        assert sum(b.num_rows for b in got) == 20 and "pit_keep_alive" in str(caught.value)

    def test_point_in_time_expiring_after_some_pages_is_transient(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(100))
        es.expire_pits(after_pages=3)
        with pytest.raises(TransientError, match="point in time"):
            extract_all(make_source(batch_size=10))

    def test_throttling_429_is_transient(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(10))
        es.fail_next(5, status=429, path="/_search")
        with pytest.raises(TransientError, match="es_rejected_execution_exception"):
            extract_all(make_source(max_retries=1))
        assert es.open_pits == 0

    def test_one_429_is_retried_by_the_client_without_losing_or_repeating_rows(
        self, es, make_source
    ):
        es.add_documents("genetic_tests", docs_every(50))
        source = make_source(batch_size=10, include_id=True)
        batches = source.extract(WINDOW)
        first = next(batches)
        es.fail_next(1, status=429, path="/_search")
        ids = first.column("_id").to_pylist() + [
            i for b in batches for i in b.column("_id").to_pylist()
        ]
        assert ids == [f"d{i:05d}" for i in range(50)]

    def test_unavailable_cluster_503_is_transient(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        es.fail_next(5, status=503, path="/_count")
        with pytest.raises(TransientError, match="HTTP 503"):
            make_source(max_retries=0).count(WINDOW)

    def test_missing_index_is_permanent(self, es, make_source):
        es.add_documents("other_index", docs_every(3))
        source = make_source(index="genetic_tests")
        with pytest.raises(PermanentError, match="no such index"):
            source.count(WINDOW)
        with pytest.raises(PermanentError, match="no such index"):
            extract_all(source)

    def test_a_bad_sort_field_is_permanent(self, es, make_source):
        es.add_documents("genetic_tests", [{"@timestamp": at(1), "note": "free text"}])
        with pytest.raises(PermanentError, match="HTTP 400"):
            extract_all(make_source(tiebreaker="note"))
        assert es.open_pits == 0

    def test_wrong_password_is_permanent_and_the_password_is_never_shown(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        es.require_auth("reader", "the-right-one")
        source = make_source(user="reader", password=PASSWORD)
        for attempt in (lambda: source.count(WINDOW), source.check, lambda: extract_all(source)):
            with pytest.raises(PermanentError, match="authentication failed") as caught:
                attempt()
            assert es.url in str(caught.value)
            assert PASSWORD not in full_text(caught.value)
        assert PASSWORD not in repr(source.credentials) and PASSWORD not in source.describe()

    def test_right_password_is_accepted(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        es.require_auth("reader", PASSWORD)
        assert make_source(user="reader", password=PASSWORD).count(WINDOW) == 3

    def test_api_key_authentication(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        es.require_api_key("a2V5LWlkOmtleS1zZWNyZXQ=")
        source = make_source(environ={"TEST_ES_API_KEY": "a2V5LWlkOmtleS1zZWNyZXQ="})
        assert source.count(WINDOW) == 3

    def test_connection_refused_is_transient_and_names_the_host(self, make_source):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(TransientError, match="cannot reach") as caught:
            make_source(url, max_retries=0).count(WINDOW)
        assert url in str(caught.value)

    def test_a_connection_dropped_mid_extract_is_transient(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(30))
        batches = make_source(batch_size=10, max_retries=0).extract(WINDOW)
        next(batches)
        es.drop_next(1, path="/_search")
        with pytest.raises(TransientError):
            list(batches)

    def test_a_request_timeout_is_transient(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        es.stall_next(1, seconds=1.0, path="/_count")
        with pytest.raises(TransientError, match="no answer in time"):
            make_source(request_timeout=0.2, max_retries=0).count(WINDOW)

    def test_a_server_that_is_not_elasticsearch_is_permanent(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        es.send_product_header = False
        with pytest.raises(PermanentError, match="X-Elastic-Product"):
            make_source().check()

    def test_a_cluster_one_major_older_than_the_client_is_permanent_with_advice(self, make_source):
        older = start_emulator(f"{CLIENT_MAJOR - 1}.19.0")
        try:
            older.add_documents("genetic_tests", docs_every(3))
            with pytest.raises(PermanentError, match="media_type_header_exception") as caught:
                make_source(older.url).check()
            assert "Install the client whose major version matches" in str(caught.value)
        finally:
            older.stop()


class TestIncompleteAnswers:
    """What Elasticsearch does that a one-shard, never-failing cluster would not show."""

    def test_by_default_the_point_in_time_keeps_its_id(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(25))
        assert extract_all(make_source(batch_size=10)).num_rows == 25
        searches = es.requests_to("/_search")
        assert len(searches) == 3 and len({r.body["pit"]["id"] for r in searches}) == 1
        assert es.open_pits == 0

    def test_each_page_is_asked_with_the_id_the_previous_answer_gave(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(25))
        es.rotate_pit_ids()
        table = extract_all(make_source(batch_size=10, include_id=True))
        assert table.column("_id").to_pylist() == [f"d{i:05d}" for i in range(25)]
        sent = [r.body["pit"]["id"] for r in es.requests_to("/_search")]
        assert len(sent) == len(set(sent)) == 3  # a new id every page
        assert es.open_pits == 0  # the newest id was the one closed
        assert es.requests_to("/_pit")[-1].body["id"] not in sent

    def test_a_count_missing_a_failed_shard_is_transient_not_a_smaller_count(self, es, make_source):
        es.add_documents("genetic_tests-a", docs_every(10))
        es.add_documents("genetic_tests-b", docs_every(10, prefix="e"))
        source = make_source(index="genetic_tests-*")
        assert source.count(WINDOW) == 20
        es.fail_shards_next(1, path="/_count")
        with pytest.raises(TransientError, match=r"partial answer \(1 of 2 shards failed"):
            source.count(WINDOW)
        assert source.count(WINDOW) == 20

    def test_a_count_whose_only_shard_failed_is_transient(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(10))
        es.fail_shards_next(1, path="/_count")
        with pytest.raises(TransientError, match="all shards failed"):
            make_source(max_retries=0).count(WINDOW)

    def test_a_page_missing_a_failed_shard_fails_the_extract_and_yields_nothing_partial(self, es, make_source):
        es.add_documents("genetic_tests-a", docs_every(20))
        es.add_documents("genetic_tests-b", docs_every(20, prefix="e"))
        batches = make_source(index="genetic_tests-*", batch_size=10, max_retries=0).extract(WINDOW)
        first = next(batches)
        es.fail_shards_next(1, path="/_search")
        with pytest.raises(TransientError, match="missing shards"):
            next(batches)
        assert first.num_rows == 10 and es.open_pits == 0

    def test_a_page_that_ran_out_of_time_fails_the_extract(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(30))
        batches = make_source(batch_size=10, max_retries=0).extract(WINDOW)
        first = next(batches)
        es.time_out_next(1, path="/_search")
        with pytest.raises(TransientError, match="search_timeout_exception|Time exceeded|HTTP 504"):
            next(batches)
        assert first.num_rows == 10 and es.open_pits == 0


class TestCheck:
    def test_check_lists_what_it_verified(self, es, make_source):
        es.add_documents(
            "genetic_tests", docs_every(3), {"properties": {"event_id": {"type": "keyword"}}}
        )
        done = make_source(tiebreaker="event_id", fields={"v": "value"}).check()
        assert (
            done[0]
            == f"connected to Elasticsearch {SERVER_VERSION} at {es.url} (cluster 'drivetrain-emulator')"
        )
        assert done[1:] == [
            "index 'genetic_tests' exists",
            "query field '@timestamp' is mapped as date",
            "tiebreaker 'event_id' is mapped as keyword",
            "1 fields paths are mapped",
        ]

    def test_check_fails_on_a_missing_index(self, es, make_source):
        with pytest.raises(PermanentError, match="does not exist"):
            make_source().check()

    def test_check_fails_when_the_query_field_is_not_a_date(self, es, make_source):
        es.add_documents("genetic_tests", [{"@timestamp": "yesterday"}])
        with pytest.raises(PermanentError, match="must be a date"):
            make_source().check()

    def test_check_fails_on_an_unmapped_fields_path(self, es, make_source):
        es.add_documents("genetic_tests", docs_every(3))
        with pytest.raises(PermanentError, match="patient.idd"):
            make_source(fields={"pid": "patient.idd"}).check()

    def test_nothing_is_sent_before_first_use(self, es, make_source):
        make_source()
        assert es.requests == []


class TestOptions:
    def test_the_schema_accepts_every_documented_option(self, tmp_path):
        options = section(
            "https://es.example.com:9200",
            credentials_ref="es_prod",
            batch_size=500,
            tiebreaker="event_id",
            fields={"pid": "patient.id"},
            include_id=True,
            pit_keep_alive="2m",
            request_timeout=10,
            max_retries=1,
            verify_certs=True,
            ca_certs="ca.pem",
        )
        jsonschema.Draft202012Validator(OPTIONS_SCHEMA).validate(options)
        config_of(options).validate_against(OPTIONS_SCHEMA)
        parsed = ElasticsearchSource(config_of(options)).options
        assert parsed.fields == (("pid", "patient.id"),) and parsed.ca_certs == Path("ca.pem")

    def test_the_schema_rejects_an_unknown_key(self):
        with pytest.raises(ConfigError, match="query_feild"):
            config_of(section("http://x:9200", query_feild="ts")).validate_against(OPTIONS_SCHEMA)

    def test_the_schema_asks_for_exactly_one_of_endpoint_and_hosts(self):
        options = {k: v for k, v in section("").items() if k != "endpoint"}
        with pytest.raises(ConfigError, match="exactly one of 'endpoint' or 'hosts'"):
            config_of(options).validate_against(OPTIONS_SCHEMA)

    def test_batch_size_defaults_to_5000(self):
        assert ElasticsearchSource(config_of(section("http://x:9200"))).options.batch_size == 5000

    def test_batch_size_above_10000_is_refused(self):
        with pytest.raises(ConfigError, match="batch_size"):
            ElasticsearchSource(config_of(section("http://x:9200", batch_size=10_001)))

    def test_hosts_get_a_default_port_from_their_scheme(self):
        options = section("https://es.example.com", hosts=None)
        options.pop("hosts")
        assert ElasticsearchSource(config_of(options)).options.hosts == (
            "https://es.example.com:443",
        )
        many = {k: v for k, v in section("").items() if k != "endpoint"} | {
            "hosts": ["http://a", "http://b:9201"]
        }
        assert ElasticsearchSource(config_of(many)).options.hosts == (
            "http://a:80",
            "http://b:9201",
        )

    def test_endpoint_and_hosts_are_exclusive(self):
        with pytest.raises(ConfigError, match="exactly one"):
            ElasticsearchSource(config_of(section("http://a:9200", hosts=["http://b:9200"])))

    def test_credentials_in_the_endpoint_are_refused_without_echoing_them(self):
        with pytest.raises(ConfigError, match="credentials_ref") as caught:
            ElasticsearchSource(
                config_of(section(f"https://reader:{PASSWORD}@es.example.com:9200"))
            )
        assert PASSWORD not in full_text(caught.value)

    def test_fields_cannot_reuse_a_column_the_source_adds(self):
        with pytest.raises(ConfigError, match="fields._id"):
            ElasticsearchSource(config_of(section("http://x:9200", fields={"_id": "id"})))

    def test_credentials_without_a_password_are_a_config_error(self, es, make_source):
        source = make_source(environ={"TEST_ES_USER": "reader"})
        with pytest.raises(ConfigError, match="credentials_ref: .* need USER and PASSWORD"):
            source.count(WINDOW)

    def test_a_missing_client_library_names_the_extra(self, es, make_source, monkeypatch):
        monkeypatch.setitem(sys.modules, "elasticsearch", None)
        with pytest.raises(MissingExtraError, match=r"drivetrain\[elasticsearch\]"):
            make_source().count(WINDOW)


class TestEmulatorProtocol:
    """The emulator answers version headers the way a real cluster does."""

    @staticmethod
    def call(
        url: str, accept: str, content_type: str | None = None
    ) -> tuple[int, dict[str, Any], Any]:
        data = b'{"query": {"match_all": {}}}' if content_type else None
        headers = {"Accept": accept} | ({"Content-Type": content_type} if content_type else {})
        request = urllib.request.Request(
            f"{url}/_search" if data else url, data=data, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, dict(response.headers), json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.load(error)

    def test_every_response_names_the_product_even_errors(self, es):
        for accept in (
            "application/json",
            "application/vnd.elasticsearch+json; compatible-with=99",
        ):
            _status, headers, _body = self.call(es.url, accept)
            assert headers["X-Elastic-Product"] == "Elasticsearch"

    def test_a_newer_api_version_is_refused_with_the_real_error_shape(self):
        server = start_emulator("8.15.0")
        try:
            status, _headers, body = self.call(
                server.url, "application/vnd.elasticsearch+json; compatible-with=9"
            )
        finally:
            server.stop()
        assert status == 400 and body["status"] == 400
        assert body["error"]["type"] == "media_type_header_exception"
        assert (
            body["error"]["root_cause"][0]["reason"]
            == "Invalid media-type value on headers [Accept, Content-Type]"
        )
        assert body["error"]["caused_by"] == {
            "type": "status_exception",
            "reason": "Accept version must be either version 8 or 7, but found 9. "
            "Accept=application/vnd.elasticsearch+json; compatible-with=9",
        }

    def test_the_previous_api_version_is_accepted(self):
        server = start_emulator("9.1.0")
        try:
            status, headers, body = self.call(
                server.url, "application/vnd.elasticsearch+json; compatible-with=8"
            )
        finally:
            server.stop()
        assert status == 200 and body["version"]["number"] == "9.1.0"
        assert headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=8"

    def test_a_version_on_one_header_only_is_refused(self, es):
        status, _headers, body = self.call(
            es.url,
            f"application/vnd.elasticsearch+json; compatible-with={es.major}",
            "application/json",
        )
        assert status == 400
        assert body["error"]["caused_by"]["reason"].startswith(
            "A compatible version is required on both"
        )

    def test_the_installed_client_is_refused_by_an_older_major(self):
        server = start_emulator(f"{CLIENT_MAJOR - 1}.19.0")
        try:
            client = elasticsearch.Elasticsearch(server.url, max_retries=0)
            with pytest.raises(elasticsearch.BadRequestError) as caught:
                client.info()
            client.close()
        finally:
            server.stop()
        assert caught.value.meta.status == 400
        assert caught.value.body["error"]["type"] == "media_type_header_exception"

    def test_partial_results_come_back_flagged_when_the_search_allows_them(self, es):
        es.add_documents("a", docs_every(4))
        es.add_documents("b", docs_every(4, prefix="e"))
        with client_for(es) as client:
            es.fail_shards_next(1)
            failed = client.search(index="a,b", size=100)
            es.time_out_next(1)
            slow = client.search(index="a,b", size=6)
        assert failed["_shards"]["failed"] == 1 and failed["_shards"]["successful"] == 1
        assert failed["_shards"]["failures"][0]["index"] == "b" and len(failed["hits"]["hits"]) == 4
        assert slow["timed_out"] is True and len(slow["hits"]["hits"]) == 3 and slow["_shards"]["failed"] == 0

    def test_a_retired_point_in_time_id_no_longer_answers(self, es):
        es.add_documents("a", docs_every(4))
        es.rotate_pit_ids()
        with client_for(es) as client:
            first = client.open_point_in_time(index="a", keep_alive="1m")["id"]
            newer = client.search(pit={"id": first}, size=1)["pit_id"]
            assert newer != first
            with pytest.raises(elasticsearch.NotFoundError, match="No search context found"):
                client.search(pit={"id": first}, size=1)
            assert client.close_point_in_time(id=newer)["num_freed"] == 1

    def test_the_pit_adds_the_shard_doc_tiebreaker_to_sort_values(self, es):
        es.add_documents("genetic_tests", docs_every(3))
        client = elasticsearch.Elasticsearch(es.url)
        try:
            pit = client.open_point_in_time(index="genetic_tests", keep_alive="1m")["id"]
            hits = client.search(pit={"id": pit}, sort=[{"@timestamp": "asc"}], size=2)["hits"][
                "hits"
            ]
            after = client.search(
                pit={"id": pit}, sort=[{"@timestamp": "asc"}], size=2, search_after=hits[-1]["sort"]
            )["hits"]["hits"]
            client.close_point_in_time(id=pit)
        finally:
            client.close()
        assert [len(h["sort"]) for h in hits] == [2, 2] and hits[0]["sort"][0] == 1763200800000
        assert [h["_id"] for h in hits + after] == ["d00000", "d00001", "d00002"]
