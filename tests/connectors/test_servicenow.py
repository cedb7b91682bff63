"""The ServiceNow source, through the real pysnow client over HTTP against the emulator."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.config import SystemConfig
from drivetrain.connectors.servicenow import ServiceNowSource
from drivetrain.connectors.servicenow import source as source_module
from drivetrain.errors import ConfigError, MissingExtraError, PermanentError, TransientError
from drivetrain.secrets import resolve_credentials
from drivetrain.window import Window
from tests.emulators.servicenow import SnEmulator

TS = pa.timestamp("us", tz="UTC")
WINDOW = Window(datetime(2025, 11, 15, 10, tzinfo=UTC), datetime(2025, 11, 15, 11, tzinfo=UTC))
MakeSource = Callable[..., ServiceNowSource]


def section(host: str, **options: Any) -> dict[str, Any]:
    return {
        "type": "servicenow",
        "host": host,
        "use_ssl": False,
        "table": "incident",
        "credentials_ref": "test_sn",
        **options,
    }


def config_of(options: dict[str, Any]) -> SystemConfig:
    return SystemConfig.from_section(
        "source_system", options, base_dir=Path("."), source_file="config.json"
    )


@pytest.fixture
def make_source(sn: SnEmulator) -> Iterator[MakeSource]:
    made: list[ServiceNowSource] = []

    def make(
        password: str | None = None, host: str | None = None, **options: Any
    ) -> ServiceNowSource:
        creds = resolve_credentials(
            "test_sn",
            environ={
                "TEST_SN_USER": sn.user,
                "TEST_SN_PASSWORD": password or sn.password,
            },
        )
        source = ServiceNowSource(config_of(section(host or sn.host, **options)), creds)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the waits between throttled attempts instead of sleeping."""
    waited: list[float] = []
    monkeypatch.setattr(source_module, "_sleep", waited.append)
    return waited


def at(minute: int, second: int = 0, hour: int = 10) -> str:
    return f"2025-11-15 {hour:02d}:{minute:02d}:{second:02d}"


def incidents(n: int, when: Callable[[int], str] = lambda i: at(i % 60)) -> list[dict[str, Any]]:
    return [
        {
            "number": f"INC{i:07d}",
            "short_description": f"issue {i}",
            "sys_updated_on": when(i),
            "sys_created_on": "2025-11-01 08:00:00",
        }
        for i in range(n)
    ]


def read_all(source: ServiceNowSource, window: Window = WINDOW) -> list[pa.RecordBatch]:
    return list(source.extract(window))


def rows(batches: list[pa.RecordBatch]) -> list[dict[str, Any]]:
    return pa.Table.from_batches(batches).to_pylist() if batches else []


class TestCount:
    def test_count_equals_extracted_rows(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records("incident", incidents(45) + incidents(5, lambda i: at(i, hour=11)))
        source = make_source(batch_size=10)
        assert source.count(WINDOW) == 45
        assert sum(b.num_rows for b in read_all(source)) == 45

    def test_count_and_extract_send_the_same_filter(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(3))
        read_all(make_source(extra_query="active=true"))
        counted = [p["sysparm_query"] for path, p in sn.requests if path.endswith("stats/incident")]
        paged = [
            p["sysparm_query"]
            for path, p in sn.requests
            if path.endswith("table/incident") and p.get("sysparm_query")
        ]
        assert counted == [
            "sys_updated_on>=2025-11-15 10:00:00^sys_updated_on<2025-11-15 11:00:00^active=true"
        ]
        assert paged == [counted[0] + "^ORDERBYsys_updated_on^ORDERBYsys_id"]

    def test_empty_window_counts_zero_and_yields_no_batch(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(3, lambda i: at(i, hour=12)))
        source = make_source()
        assert source.count(WINDOW) == 0
        assert read_all(source) == []


def tracked(n: int, when: Callable[[int], str] = lambda i: at(i % 60)) -> list[dict[str, Any]]:
    """Incidents with the system fields the platform keeps: created at their update time, never
    updated since (``sys_mod_count`` 0)."""
    return [{**r, "sys_created_on": r["sys_updated_on"], "sys_mod_count": "0"} for r in incidents(n, when)]


def sys_id_of(sn: SnEmulator, number: str, table: str = "incident") -> str:
    return next(str(r["sys_id"]) for r in sn.tables[table] if r.get("number") == number)


class TestAggregateApi:
    """The emulator's Aggregate API answers as ServiceNow documents it, through the real pysnow."""

    def test_sum_and_max_answer_only_the_asked_fields_as_strings(self, sn: SnEmulator) -> None:
        import pysnow

        sn.add_records("incident", [{**r, "sys_mod_count": str(i)} for i, r in enumerate(tracked(4))])
        client = pysnow.Client(host=sn.host, use_ssl=False, user=sn.user, password=sn.password)
        resource = client.resource(api_path="/stats/incident")
        resource.parameters.add_custom({"sysparm_count": "true", "sysparm_sum_fields": "sys_mod_count",
                                        "sysparm_max_fields": "sys_created_on,number"})
        try:
            answer = resource.get(query="", limit=1, offset=0).one()
        finally:
            client.close()
        assert answer == {"stats": {"count": "4", "sum": {"sys_mod_count": "6"},
                                    "max": {"sys_created_on": at(3), "number": "INC0000003"}}}


class TestFingerprint:
    def test_one_stats_call_with_the_count_filter(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records("incident", tracked(3) + tracked(2, lambda i: at(i, hour=11)))
        source = make_source(extra_query="active=true")
        source.count(WINDOW)
        sent = len(sn.requests)
        assert source.fingerprint(WINDOW) == f"3|0|{at(2)}|{at(2)}"
        ((path, params),) = sn.requests[sent:]
        assert path == "/api/now/stats/incident"
        assert params["sysparm_query"] == (
            "sys_updated_on>=2025-11-15 10:00:00^sys_updated_on<2025-11-15 11:00:00^active=true")
        assert (params["sysparm_sum_fields"], params["sysparm_max_fields"]) == (
            "sys_mod_count", "sys_created_on,sys_updated_on")

    def test_is_the_same_while_the_window_holds_the_same_records(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", tracked(5))
        source = make_source()
        first = source.fingerprint(WINDOW)
        sn.add_records("incident", tracked(2, lambda i: at(i, hour=12)))  # another window's
        assert source.fingerprint(WINDOW) == first

    def test_changes_when_a_record_is_deleted_and_another_created_into_the_window(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", tracked(5))
        source = make_source()
        before, count = source.fingerprint(WINDOW), source.count(WINDOW)
        sn.delete_record("incident", sys_id_of(sn, "INC0000002"))
        sn.add_records("incident", [{"number": "INC0000099", "sys_updated_on": at(2, 30),
                                     "sys_created_on": at(50, hour=12), "sys_mod_count": "0"}])
        assert source.count(WINDOW) == count
        assert source.fingerprint(WINDOW) != before

    def test_changes_when_a_record_is_updated_in_place(self, sn: SnEmulator, make_source: MakeSource) -> None:
        """With a query field updates do not move (opened_at), an update keeps the record in its window."""
        sn.add_records("incident", [{**r, "opened_at": r["sys_updated_on"]} for r in tracked(5)])
        source = make_source(query_field="opened_at")
        before = source.fingerprint(WINDOW)
        sn.update_record("incident", sys_id_of(sn, "INC0000001"), {"short_description": "fixed"},
                         at=datetime(2025, 11, 15, 12, 30, tzinfo=UTC))
        assert source.count(WINDOW) == 5
        assert source.fingerprint(WINDOW) == f"5|1|{at(4)}|{at(30, hour=12)}" != before

    def test_an_empty_window_is_its_count_alone(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records("incident", tracked(2, lambda i: at(i, hour=12)))
        assert make_source().fingerprint(WINDOW) == "0"

    def test_is_none_and_said_once_when_the_table_lacks_the_fields(
        self, sn: SnEmulator, make_source: MakeSource, caplog: pytest.LogCaptureFixture
    ) -> None:
        sn.add_records("incident", incidents(3))  # no sys_mod_count: a database view, say
        source = make_source()
        with caplog.at_level("WARNING", logger="drivetrain.connectors.servicenow.source"):
            assert source.fingerprint(WINDOW) is None
            asked = len(sn.requests)
            assert source.fingerprint(WINDOW) is None
        assert len(sn.requests) == asked  # not asked again
        (said,) = caplog.messages
        assert "without the sum of sys_mod_count" in said and "counts only" in said

    @pytest.mark.parametrize("status", [400, 403])
    def test_is_none_when_the_instance_refuses_the_aggregate(
        self, sn: SnEmulator, make_source: MakeSource, status: int
    ) -> None:
        sn.add_records("incident", tracked(3))
        source = make_source()
        source.count(WINDOW)
        sn.fail_next(1, status, "Forbidden")
        assert source.fingerprint(WINDOW) is None

    def test_a_server_error_raises(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records("incident", tracked(3))
        source = make_source()
        source.count(WINDOW)
        sn.fail_next(1, 503)
        with pytest.raises(TransientError):
            source.fingerprint(WINDOW)


platform_writes = st.lists(
    st.one_of(st.tuples(st.just("create"), st.integers(0, 59)), st.tuples(st.just("update"), st.integers(0, 99)),
              st.tuples(st.just("delete"), st.integers(0, 99))),
    max_size=6,
)
"""Writes as the platform makes them, one second apart after every record already there: a
record created into the window (at that minute), an update of a record in it (the n-th, modulo
how many), a delete."""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=platform_writes, start=st.integers(1, 4))
def test_the_fingerprint_changes_exactly_when_the_windows_records_or_their_versions_do(
    sn: SnEmulator, make_source: MakeSource, writes: list[tuple[str, int]], start: int
) -> None:
    sn.reset()
    sn.add_records("incident", [{**r, "opened_at": r["sys_updated_on"]} for r in tracked(start)])
    source = make_source(query_field="opened_at")

    def held() -> set[tuple[str, str]]:
        return {(str(r["sys_id"]), str(r["sys_mod_count"])) for r in sn.tables["incident"]}

    before, records = source.fingerprint(WINDOW), held()
    clock = datetime(2025, 11, 15, 12, tzinfo=UTC)
    for n, (kind, arg) in enumerate(writes):
        clock += timedelta(seconds=1)
        now = clock.strftime("%Y-%m-%d %H:%M:%S")
        ids = [str(r["sys_id"]) for r in sn.tables["incident"]]
        if kind == "create":
            sn.add_records("incident", [{"number": f"NEW{n}", "opened_at": at(arg), "sys_created_on": now,
                                         "sys_updated_on": now, "sys_mod_count": "0"}])
        elif ids and kind == "update":
            sn.update_record("incident", ids[arg % len(ids)], {"short_description": f"edit {n}"}, at=clock)
        elif ids:
            sn.delete_record("incident", ids[arg % len(ids)])
    assert (source.fingerprint(WINDOW) != before) == (held() != records)


class TestWindowFilter:
    def test_window_is_half_open(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records(
            "incident",
            [
                {"number": "before", "sys_updated_on": "2025-11-15 09:59:59"},
                {"number": "start", "sys_updated_on": "2025-11-15 10:00:00"},
                {"number": "last", "sys_updated_on": "2025-11-15 10:59:59"},
                {"number": "end", "sys_updated_on": "2025-11-15 11:00:00"},
            ],
        )
        numbers = [r["number"] for r in rows(read_all(make_source()))]
        assert numbers == ["start", "last"]

    def test_bound_with_microseconds_rounds_up_to_the_next_second(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records(
            "incident",
            [
                {"number": "early", "sys_updated_on": "2025-11-15 10:00:00"},
                {"number": "kept", "sys_updated_on": "2025-11-15 10:00:01"},
            ],
        )
        start = datetime(2025, 11, 15, 10, 0, 0, 500_000, tzinfo=UTC)
        window = Window(start, start + timedelta(hours=1))
        assert [r["number"] for r in rows(read_all(make_source(), window))] == ["kept"]

    def test_extra_query_narrows_the_window(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records(
            "incident",
            [
                {"number": "on", "active": "true", "sys_updated_on": at(1)},
                {"number": "off", "active": "false", "sys_updated_on": at(2)},
            ],
        )
        source = make_source(extra_query="active=true")
        assert source.count(WINDOW) == 1
        assert [r["number"] for r in rows(read_all(source))] == ["on"]


class TestPaging:
    def test_many_pages_of_one_timestamp_keep_every_record_once(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        ids = sn.add_records("incident", incidents(37, lambda i: at(30)))
        got = [r["sys_id"] for r in rows(read_all(make_source(batch_size=4)))]
        assert sorted(got) == sorted(ids)
        assert len(got) == len(set(got))

    def test_pages_capped_by_the_instance_still_read_everything(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.max_page_size = 5
        sn.add_records("incident", incidents(17))
        assert sum(b.num_rows for b in read_all(make_source(batch_size=5))) == 17

    def test_batches_never_exceed_batch_size(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records("incident", incidents(23))
        sizes = [b.num_rows for b in read_all(make_source(batch_size=5))]
        assert sizes == [5, 5, 5, 5, 3]

    def test_records_come_sorted_on_query_field_then_sys_id(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(20, lambda i: at(i % 3)))
        got = rows(read_all(make_source(batch_size=6)))
        keys = [(r["sys_updated_on"], r["sys_id"]) for r in got]
        assert keys == sorted(keys)

    def test_query_field_is_a_utc_timestamp_column(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(2))
        batch = read_all(make_source())[0]
        assert batch.schema.field("sys_updated_on").type == TS
        assert batch.schema.field("sys_created_on").type == TS
        assert batch.schema.field("number").type == pa.string()
        assert batch.column("sys_updated_on")[0].as_py() == datetime(
            2025, 11, 15, 10, 0, tzinfo=UTC
        )

    def test_every_batch_has_the_same_schema(self, sn: SnEmulator, make_source: MakeSource) -> None:
        records = incidents(6)
        records[4]["closed_at"] = "2025-11-15 10:30:00"
        sn.add_records("incident", records)
        batches = read_all(make_source(batch_size=2, datetime_fields=["closed_at"]))
        assert len({b.schema for b in batches}) == 1
        assert batches[0].schema.field("closed_at").type == TS

    def test_fields_option_always_includes_query_field_and_sys_id(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(2))
        batch = read_all(make_source(fields=["number"]))[0]
        assert batch.schema.names == ["sys_updated_on", "sys_id", "number"]

    def test_reference_fields_arrive_as_plain_sys_ids(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records(
            "incident",
            [
                {
                    "sys_updated_on": at(1),
                    "caller_id": {
                        "value": "abc",
                        "display_value": "Ann",
                        "link": "http://x/api/now/table/sys_user/abc",
                    },
                }
            ],
        )
        assert rows(read_all(make_source()))[0]["caller_id"] == "abc"

    def test_unflattened_objects_are_kept_as_json_text(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", [{"sys_updated_on": at(1), "tags": ["db", {"p": 1}]}])
        assert rows(read_all(make_source()))[0]["tags"] == '["db",{"p":1}]'


class TestDisplayValue:
    @pytest.fixture
    def caller(self, sn: SnEmulator) -> None:
        sn.add_records(
            "incident",
            [
                {
                    "sys_updated_on": at(5),
                    "number": "INC1",
                    "caller_id": {"value": "u1", "display_value": "Ann Smith"},
                }
            ],
        )

    def test_false_gives_stored_values(self, caller: None, make_source: MakeSource) -> None:
        got = rows(read_all(make_source(display_value=False)))[0]
        assert got["caller_id"] == "u1"
        assert "dv_caller_id" not in got

    def test_true_gives_display_values(self, caller: None, make_source: MakeSource) -> None:
        got = rows(read_all(make_source(display_value=True)))[0]
        assert got["caller_id"] == "Ann Smith"

    def test_true_reads_display_date_times_in_the_configured_zone(
        self, sn: SnEmulator, caller: None, make_source: MakeSource
    ) -> None:
        sn.user_timezone = "America/Chicago"
        got = rows(read_all(make_source(display_value=True, timezone="America/Chicago")))[0]
        assert got["sys_updated_on"] == datetime(2025, 11, 15, 10, 5, tzinfo=UTC)

    def test_all_gives_value_and_dv_columns(
        self, sn: SnEmulator, caller: None, make_source: MakeSource
    ) -> None:
        sn.user_timezone = "Europe/Paris"
        batch = read_all(make_source(display_value="all"))[0]
        got = batch.to_pylist()[0]
        assert (got["caller_id"], got["dv_caller_id"]) == ("u1", "Ann Smith")
        assert got["sys_updated_on"] == datetime(2025, 11, 15, 10, 5, tzinfo=UTC)
        assert got["dv_sys_updated_on"] == "2025-11-15 11:05:00"
        names = batch.schema.names
        assert names.index("dv_caller_id") == names.index("caller_id") + 1

    def test_all_pages_like_false(self, sn: SnEmulator, make_source: MakeSource) -> None:
        ids = sn.add_records("incident", incidents(11, lambda i: at(20)))
        got = rows(read_all(make_source(display_value="all", batch_size=3)))
        assert sorted(r["sys_id"] for r in got) == sorted(ids)
        assert all(r["dv_sys_id"] == r["sys_id"] for r in got)

    def test_unreadable_query_field_is_flagged_not_dropped(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records(
            "incident",
            [
                {
                    "number": "odd",
                    "sys_updated_on": {"value": at(7), "display_value": "15/11/2025 10:07"},
                },
                {"number": "ok", "sys_updated_on": at(8)},
            ],
        )
        got = rows(read_all(make_source(display_value=True)))
        assert [r["number"] for r in got] == ["odd", "ok"]
        assert got[0]["sys_updated_on"] is None
        assert "sys_updated_on" in got[0]["_drivetrain_error"]
        assert '"odd"' in got[0]["_drivetrain_raw"]
        assert got[1]["_drivetrain_error"] is None


class TestThrottling:
    def test_429_is_retried_then_succeeds(
        self, sn: SnEmulator, make_source: MakeSource, sleeps: list[float]
    ) -> None:
        sn.add_records("incident", incidents(3))
        sn.throttle_next(2)
        assert sum(b.num_rows for b in read_all(make_source())) == 3
        assert len(sleeps) == 2

    def test_retry_after_is_honoured(
        self, sn: SnEmulator, make_source: MakeSource, sleeps: list[float]
    ) -> None:
        sn.add_records("incident", incidents(1))
        sn.throttle_next(2, retry_after="7")
        make_source().count(WINDOW)
        assert sleeps == [7.0, 7.0]

    def test_backoff_doubles_without_retry_after(
        self, sn: SnEmulator, make_source: MakeSource, sleeps: list[float]
    ) -> None:
        sn.add_records("incident", incidents(1))
        sn.throttle_next(3, retry_after=None)
        make_source(backoff=0.5, max_backoff=1.5).count(WINDOW)
        assert sleeps == [0.5, 1.0, 1.5]

    def test_persistent_429_raises_transient_error(
        self, sn: SnEmulator, make_source: MakeSource, sleeps: list[float]
    ) -> None:
        sn.add_records("incident", incidents(1))
        sn.throttle_next(10)
        with pytest.raises(TransientError, match="429"):
            make_source(max_retries_429=3).count(WINDOW)
        assert len(sleeps) == 3


class TestErrors:
    def test_bad_password_is_permanent_and_not_shown(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(1))
        source = make_source(password="wrong-horse-battery")
        with pytest.raises(PermanentError, match="401") as info:
            source.count(WINDOW)
        shown = f"{info.value} {info.value!r} {info.value.__cause__} {source!r} {source.describe()}"
        assert "wrong-horse-battery" not in shown
        assert sn.host in str(info.value)

    @pytest.mark.parametrize(
        ("status", "error"),
        [
            (400, PermanentError),
            (403, PermanentError),
            (404, PermanentError),
            (500, TransientError),
            (502, TransientError),
            (503, TransientError),
            (504, TransientError),
        ],
    )
    def test_http_status_maps_to_error_class(
        self, sn: SnEmulator, make_source: MakeSource, status: int, error: type[Exception]
    ) -> None:
        sn.add_records("incident", incidents(1))
        source = make_source()
        source.check()
        sn.fail_next(1, status, "Something went wrong")
        with pytest.raises(error, match=f"HTTP {status}") as info:
            source.count(WINDOW)
        assert type(info.value) is error
        assert sn.host in str(info.value)

    def test_unknown_table_is_permanent(self, sn: SnEmulator, make_source: MakeSource) -> None:
        with pytest.raises(PermanentError, match="Invalid table"):
            make_source(table="no_such_table").count(WINDOW)

    def test_connection_refused_is_transient(self, make_source: MakeSource) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(TransientError, match="could not reach"):
            make_source(host=f"127.0.0.1:{port}").count(WINDOW)

    def test_server_error_mid_extract_raises(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records("incident", incidents(10))
        sn.during_paging("incident", lambda: sn.fail_next(1, 503))
        with pytest.raises(TransientError, match="503"):
            read_all(make_source(batch_size=4))

    def test_body_cut_mid_page_raises(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records("incident", incidents(10))
        sn.during_paging("incident", lambda: sn.cut_next(1))
        with pytest.raises(TransientError, match="incomplete"):
            read_all(make_source(batch_size=4))

    def test_unknown_query_field_is_permanent(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(2))
        with pytest.raises(PermanentError, match="sys_updated"):
            make_source(query_field="sys_updated").count(WINDOW)

    def test_missing_pysnow_names_the_extra(
        self, sn: SnEmulator, make_source: MakeSource, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "pysnow", None)
        with pytest.raises(MissingExtraError, match=r"drivetrain\[servicenow\]"):
            make_source().count(WINDOW)

    def test_missing_credentials_are_permanent(self, sn: SnEmulator) -> None:
        source = ServiceNowSource(config_of(section(sn.host)), None)
        with pytest.raises(PermanentError, match="credentials_ref"):
            source.count(WINDOW)


class TestDrift:
    def test_record_inserted_behind_the_read_position_raises(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(12, lambda i: at(10 + i)))
        sn.insert_during_paging("incident", {"number": "late", "sys_updated_on": at(1)})
        with pytest.raises(TransientError, match="changed while"):
            read_all(make_source(batch_size=5))

    def test_record_inserted_ahead_of_the_read_position_raises(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(12, lambda i: at(10 + i)))
        sn.insert_during_paging("incident", {"number": "new", "sys_updated_on": at(59)})
        with pytest.raises(TransientError, match="changed while"):
            read_all(make_source(batch_size=5))

    def test_record_leaving_the_window_raises(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(12, lambda i: at(10 + i)))
        moved = sn.tables["incident"][1]
        sn.during_paging("incident", lambda: moved.update(sys_updated_on=at(0, hour=12)))
        with pytest.raises(TransientError, match="changed while"):
            read_all(make_source(batch_size=5))

    def test_shift_is_caught_at_the_next_page_without_total_count(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.total_count_header = False
        sn.add_records("incident", incidents(12, lambda i: at(10 + i)))
        moved = sn.tables["incident"][1]
        sn.during_paging("incident", lambda: moved.update(sys_updated_on=at(0, hour=12)))
        batches = make_source(batch_size=5).extract(WINDOW)
        assert next(batches).num_rows == 5
        with pytest.raises(TransientError, match="shifted after row 5"):
            next(batches)

    def test_unchanged_table_without_total_count_reads_fully(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.total_count_header = False
        sn.add_records("incident", incidents(12, lambda i: at(10 + i)))
        assert sum(b.num_rows for b in read_all(make_source(batch_size=5))) == 12


class TestCheck:
    def test_check_reports_what_it_verified(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records("incident", incidents(1))
        done = make_source().check()
        assert done == [
            f"connected to http://{sn.host}",
            "table 'incident' readable",
            "query field 'sys_updated_on' exists",
        ]

    def test_check_sends_one_small_request(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.add_records("incident", incidents(3))
        make_source().check()
        assert [p["sysparm_limit"] for _, p in sn.requests] == ["1"]

    def test_check_fails_on_unknown_query_field(
        self, sn: SnEmulator, make_source: MakeSource
    ) -> None:
        sn.add_records("incident", incidents(1))
        with pytest.raises(PermanentError, match="opened_on"):
            make_source(query_field="opened_on").check()

    def test_check_fails_on_bad_password(self, sn: SnEmulator, make_source: MakeSource) -> None:
        sn.create_table("incident")
        with pytest.raises(PermanentError, match="credentials"):
            make_source(password="nope-nope").check()


class TestConfig:
    def test_schema_accepts_a_full_section(self) -> None:
        full = section(
            "127.0.0.1:8080",
            query_field="sys_updated_on",
            batch_size=500,
            display_value="all",
            fields=["number"],
            extra_query="active=true",
            datetime_fields=["opened_at"],
            timezone="Europe/Paris",
            request_timeout=30,
            max_retries_429=2,
            backoff=0.5,
            max_backoff=10,
        )
        jsonschema.Draft202012Validator(ServiceNowSource.options_schema).validate(full)

    def test_schema_rejects_unknown_keys(self) -> None:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(section("h", tabel="x"), ServiceNowSource.options_schema)

    def test_instance_gives_service_now_url(self) -> None:
        options = {"type": "servicenow", "instance": "acme", "table": "incident"}
        source = ServiceNowSource(config_of(options))
        assert source.options.base_url == "https://acme.service-now.com"

    @pytest.mark.parametrize(
        "bad",
        [
            {"instance": "acme"},  # with host: both given
            {"batch_size": 10_001},
            {"display_value": "yes"},
            {"extra_query": "active=true^NQpriority=1"},
            {"extra_query": "ORDERBYnumber"},
            {"timezone": "Mars/Olympus"},
            {"table": "incident; drop"},
            {"use_ssl": "no"},
        ],
    )
    def test_invalid_options_raise_config_error(self, bad: dict[str, Any]) -> None:
        with pytest.raises(ConfigError):
            ServiceNowSource(config_of(section("127.0.0.1:1", **bad)))

    def test_a_timezone_that_internal_values_would_ignore_is_refused(self) -> None:
        with pytest.raises(ConfigError, match=r"source_system\.timezone: is only used with display_value"):
            ServiceNowSource(config_of(section("127.0.0.1:1", timezone="Europe/Paris")))
        assert ServiceNowSource(config_of(section("127.0.0.1:1", timezone="Europe/Paris", display_value=True)))

    def test_repr_and_describe_name_host_and_table_only(self) -> None:
        source = ServiceNowSource(config_of(section("127.0.0.1:9")))
        assert repr(source) == "<ServiceNowSource servicenow 127.0.0.1:9/incident>"
