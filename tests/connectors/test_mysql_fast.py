"""The MySQL source's connectorx reader against a real MariaDB server started for this module.

Every behaviour is checked against the pymysql reader on the same server: both must yield the
same batches (schema, values) for every table of the shared test data set, in the same order:
along the primary key when the window's keys are dense, else in (query
field, key) order (see ``same_rows``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivetrain.connectors.mysql import fast
from drivetrain.connectors.mysql.config import OPTIONS_SCHEMA
from drivetrain.errors import ConfigError, MissingExtraError, PermanentError, TransientError
from drivetrain.window import Window
from tests.connectors.test_mysql import (
    EVENTS,
    TIES,
    _load_dataset,
    make_source,
    read_all,
    statements_sent,
    window,
)
from tests.servers import serving
from tests.servers.mariadb import MariaDBServer, ServerError


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBServer]:
    with serving(MariaDBServer.start, ServerError, "the MariaDB test server") as server:
        _load_dataset(server)
        _load_more(server)
        yield server


def _load_more(server: MariaDBServer) -> None:
    """Tables whose query field is a TIMESTAMP or a DATE, with runs of equal values."""
    statements = [
        "CREATE TABLE stamped (id INT PRIMARY KEY, ts TIMESTAMP(6) NOT NULL, v VARCHAR(10),"
        " KEY idx_ts (ts))",
        "INSERT INTO stamped SELECT seq, TIMESTAMP'2025-01-01 00:00:00' + INTERVAL (seq DIV 3)"
        " SECOND, CONCAT('v', seq) FROM seq_1_to_3000",
        "CREATE TABLE daily (id BIGINT PRIMARY KEY, d DATE NOT NULL, KEY idx_d (d))",
        "INSERT INTO daily SELECT seq, DATE'2025-01-01' + INTERVAL (seq % 3) DAY"
        " FROM seq_1_to_2000",
        # a DATETIME and a DATE beside the query field, with a zero or invalid date far into the window
        "CREATE TABLE late_zero (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, dt DATETIME(6), d DATE,"
        " KEY idx_ts (ts))",
        "INSERT INTO late_zero SELECT seq, TIMESTAMP'2025-01-01 00:00:00' + INTERVAL seq SECOND,"
        " TIMESTAMP'2024-06-01 12:00:00.250000' + INTERVAL seq MINUTE, DATE'2024-01-01' + INTERVAL seq DAY"
        " FROM seq_1_to_3000",
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
        "UPDATE late_zero SET dt = '0000-00-00 00:00:00' WHERE id = 2400",
        "UPDATE late_zero SET d = '2024-02-30' WHERE id = 2600",
        "SET SESSION sql_mode = DEFAULT",
    ]
    conn = server.admin(database=server.database)
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


@pytest.fixture
def session_zone_plus_five(mariadb: MariaDBServer) -> Iterator[None]:
    """New sessions start in +05:00 (the pymysql reader sets its own to +00:00; connectorx not)."""
    admin = mariadb.admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL time_zone = '+05:00'")
        yield
    finally:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL time_zone = '+00:00'")
        admin.close()


@pytest.fixture(autouse=True)
def connectorx_installed() -> None:
    if not fast.installed():
        pytest.fail("connectorx is not installed: pip install 'drivetrain[mysql-fast]'", pytrace=False)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of a few hundred rows, so a small table spans many of them."""
    monkeypatch.setattr(fast, "PAGE_ROWS", 700)


def both(server: MariaDBServer, win: Window, **options: Any) -> tuple[pa.Table, pa.Table]:
    """The window read by the connectorx reader and by the pymysql reader."""
    with make_source(server, reader="connectorx", **options) as quick:
        assert quick.extract_reader() == "connectorx"
        fast_table = read_all(quick, win)
    with make_source(server, reader="pymysql", **options) as slow:
        slow_table = read_all(slow, win)
    return fast_table, slow_table


def same_rows(quick: pa.Table, slow: pa.Table, query_field: str) -> bool:
    """The same rows in the same order, rows with equal query fields in key order: what the
    stage's "later copy wins" needs. With dense keys both readers read the window along the
    primary key, else in (query field, key) order."""
    order = [(query_field, "ascending"), ("id", "ascending")]
    return quick.equals(slow) and quick.sort_by(order).equals(slow.sort_by(order))


EVERYTHING = Window(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


class TestReaderChoice:
    def test_auto_takes_connectorx_for_a_table_it_can_page(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb) as src:
            assert src.extract_reader() == "connectorx"

    def test_auto_takes_pymysql_when_tls_is_configured(self, mariadb: MariaDBServer) -> None:
        if mariadb.certificates is None:
            pytest.fail("the test server has no TLS certificates: is openssl installed?")
        with make_source(mariadb, ssl={"ca": str(mariadb.certificates["ca"])}) as src:
            assert src.extract_reader() == "pymysql"

    def test_auto_takes_pymysql_without_an_order_to_page_on(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, table="noindex", query_field="ts") as src:
            assert src.extract_reader() == "pymysql"

    def test_auto_takes_pymysql_when_connectorx_is_missing(
        self, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "connectorx", None)  # what an absent package looks like
        with make_source(mariadb) as src:
            assert src.extract_reader() == "pymysql"
            assert read_all(src, window(0, 10)).num_rows == 10

    def test_pymysql_can_be_forced(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="pymysql") as src:
            assert src.extract_reader() == "pymysql"

    def test_forcing_connectorx_when_missing_names_the_extra(
        self, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "connectorx", None)
        src = make_source(mariadb, reader="connectorx")
        with src, pytest.raises(MissingExtraError, match=r"drivetrain\[mysql-fast\]"):
            list(src.extract(window(0, 10)))

    def test_forcing_connectorx_with_tls_is_a_config_error(self, mariadb: MariaDBServer) -> None:
        if mariadb.certificates is None:
            pytest.fail("the test server has no TLS certificates: is openssl installed?")
        with pytest.raises(ConfigError, match="reader"):
            make_source(mariadb, reader="connectorx", ssl={"ca": str(mariadb.certificates["ca"])})

    def test_an_unknown_reader_is_refused_by_the_schema(self) -> None:
        section = {"type": "mysql", "database": "d", "table": "t", "query_field": "ts",
                   "reader": "odbc"}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(section, OPTIONS_SCHEMA)

    def test_check_names_the_reader(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb) as src:
            assert any(line.startswith("extract reader: connectorx") for line in src.check())

    def test_check_warns_when_connectorx_cannot_page(self, mariadb: MariaDBServer) -> None:
        src = make_source(mariadb, table="composite", query_field="ts", reader="connectorx")
        with src:
            assert any("warning: extract reader: connectorx with one statement" in line
                       for line in src.check())


class TestSameBatchesAsPymysql:
    def test_a_window_of_events(self, mariadb: MariaDBServer) -> None:
        quick, slow = both(mariadb, window(1000, 4600))
        assert quick.num_rows == 3600 and quick.equals(slow)

    def test_every_column_type(self, mariadb: MariaDBServer) -> None:
        quick, slow = both(mariadb, window(0, 10), table="all_types", query_field="ts")
        assert quick.schema == slow.schema
        assert quick.to_pylist() == slow.to_pylist()

    def test_zero_and_invalid_dates_are_null(self, mariadb: MariaDBServer) -> None:
        quick, slow = both(mariadb, window(0, 10), table="lax_dates", query_field="ts")
        assert quick.equals(slow)
        assert quick.column("d").to_pylist()[:2] == [None, None]

    def test_null_and_zero_query_fields_are_in_no_window(self, mariadb: MariaDBServer) -> None:
        quick, slow = both(mariadb, EVERYTHING, table="bounds", query_field="ts")
        assert sorted(quick.column("id").to_pylist()) == [1, 2, 3, 4, 5]
        assert quick.equals(slow)

    def test_start_is_included_and_end_excluded(self, mariadb: MariaDBServer) -> None:
        quick, _ = both(mariadb, window(10, 20), table="bounds", query_field="ts")
        assert sorted(quick.column("id").to_pylist()) == [2, 3, 4]

    def test_timestamp_query_field_is_read_in_utc(self, mariadb: MariaDBServer) -> None:
        win = Window(datetime(2025, 1, 1, 0, tzinfo=UTC), datetime(2025, 1, 1, 1, tzinfo=UTC))
        quick, slow = both(mariadb, win, table="stamps", query_field="ts")
        assert quick.equals(slow)
        assert quick.column("ts").to_pylist() == [datetime(2025, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)]

    def test_datetime_in_the_source_time_zone(self, mariadb: MariaDBServer) -> None:
        win = Window(datetime(2025, 1, 1, 0, tzinfo=UTC), datetime(2025, 1, 1, 1, tzinfo=UTC))
        quick, slow = both(mariadb, win, table="paris", query_field="ts",
                           source_timezone="Europe/Paris")
        assert quick.equals(slow) and quick.column("id").to_pylist() == [2]

    def test_a_projection_keeps_its_order(self, mariadb: MariaDBServer) -> None:
        quick, slow = both(mariadb, window(0, 3), columns=["kind", "ID"])
        assert quick.column_names == ["kind", "ID", "created_at"] and quick.equals(slow)

    def test_an_empty_window_yields_no_batches(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="connectorx") as src:
            assert list(src.extract(window(-100, -10))) == []

    def test_one_statement_without_a_pageable_order(self, mariadb: MariaDBServer) -> None:
        quick, slow = both(mariadb, window(0, 60), table="composite", query_field="ts")
        assert quick.column("id").to_pylist() == [2, 3, 1, 4] and quick.equals(slow)


class TestDates:
    """DATETIME and DATE columns travel as they are (as text the server formatted each value and
    the reader parsed it again: 0.4 s of server CPU per 2M rows of issue 22's wide table)."""

    def test_datetime_and_date_columns_are_not_sent_as_text(self, mariadb: MariaDBServer) -> None:
        win = Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 0, 30, tzinfo=UTC))
        with make_source(mariadb, reader="connectorx", table="late_zero", query_field="ts") as src:
            sent = statements_sent(mariadb, lambda: read_all(src, win))
        pages = [s for s in sent if "`late_zero`" in s and "_c0" in s]
        assert pages and not any("AS CHAR" in s for s in pages), pages

    def test_a_zero_date_on_a_later_page_reads_every_row_once_as_pymysql_does(
        self, mariadb: MariaDBServer, small_pages: None
    ) -> None:
        win = Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
        quick, slow = both(mariadb, win, table="late_zero", query_field="ts", batch_size=100)
        assert quick.column("id").to_pylist() == list(range(1, 3001)) and quick.equals(slow)
        rows = {r["id"]: r for r in quick.to_pylist()}
        assert rows[2400]["dt"] is None and rows[2600]["d"] is None
        assert rows[2399]["dt"] == datetime(2024, 6, 3, 3, 59, 0, 250000, tzinfo=UTC)

    def test_a_source_that_met_a_zero_date_reads_dates_as_text_from_the_start(
        self, mariadb: MariaDBServer, small_pages: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        win = Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
        with make_source(mariadb, reader="connectorx", table="late_zero", query_field="ts",
                         batch_size=100) as src:
            first = read_all(src, win)
            sent = statements_sent(mariadb, lambda: read_all(src, win))
        pages = [s for s in sent if "`late_zero`" in s and "_c0" in s]
        assert all("CAST(`dt` AS CHAR)" in s and "CAST(`d` AS CHAR)" in s for s in pages), pages
        assert first.num_rows == 3000
        assert any("zero or invalid dates" in r.getMessage() for r in caplog.records)


class PageSpy:
    """connectorx itself, noting the rows of every page it reads."""

    def __init__(self) -> None:
        self.cx = fast.connectorx()
        self.pages: list[int] = []

    def read_sql(self, *args: Any, **kwargs: Any) -> Any:
        page = self.cx.read_sql(*args, **kwargs)
        self.pages.append(page.num_rows)
        return page


class TestPageBytes:
    """Pages hold about PAGE_BYTES of Arrow data: wide rows get pages of fewer rows (issue 22:
    2M rows of 330 bytes in pages of 100,000 rows held 95 MB more than needed)."""

    @given(most_batches=st.integers(1, 50), batch_size=st.integers(1, 5000), span=st.integers(0, 10**6),
           nbytes=st.integers(0, 10**10))
    def test_the_next_page_is_whole_batches_within_the_bounds(
        self, most_batches: int, batch_size: int, span: int, nbytes: int
    ) -> None:
        most = most_batches * batch_size
        size = fast.next_page_size(most, batch_size, span, nbytes)
        assert batch_size <= size <= most and size % batch_size == 0
        if span and nbytes and size > batch_size:  # not cut to one batch: holds at most PAGE_BYTES
            assert nbytes * size <= fast.PAGE_BYTES * span

    def test_wide_rows_are_read_in_shorter_pages_and_every_row_once(
        self, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(fast, "PAGE_ROWS", 2000)
        narrow, wide = PageSpy(), PageSpy()
        monkeypatch.setattr(fast, "connectorx", lambda: narrow)
        with make_source(mariadb, reader="connectorx", batch_size=100, columns=["id"]) as src:
            ids = read_all(src, window(0, 5000))
        monkeypatch.setattr(fast, "PAGE_BYTES", 30_000)
        monkeypatch.setattr(fast, "connectorx", lambda: wide)
        quick = read_all(make_source(mariadb, reader="connectorx", batch_size=100), window(0, 5000))
        monkeypatch.undo()
        with make_source(mariadb, reader="pymysql", batch_size=100) as slow:
            assert same_rows(quick, read_all(slow, window(0, 5000)), "created_at")
        assert ids.column("id").to_pylist() == list(range(1, 5001))
        assert narrow.pages == [500, 1500, 2000, 1000]  # a first quarter page measures; the rest of its range follows
        assert wide.pages[0] == 500 and max(wide.pages[1:]) < 500 and sum(wide.pages) == 5000, wide.pages


class TestPages:
    def test_pages_are_a_multiple_of_the_batch_size(self) -> None:
        assert (fast.page_rows(10_000), fast.page_rows(30_000), fast.page_rows(500_000)) == (
            100_000, 120_000, 500_000)

    def test_a_window_over_many_pages_reads_every_row_once_in_order(
        self, mariadb: MariaDBServer, small_pages: None
    ) -> None:
        quick, slow = both(mariadb, window(0, 5000), batch_size=300, columns=["id"])
        assert quick.column("id").to_pylist() == list(range(1, 5001)) and quick.equals(slow)

    def test_the_freed_heap_is_given_back_once_per_extract_not_per_page(
        self, mariadb: MariaDBServer, small_pages: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each page reuses the heap the page before it freed; trimming after every page made
        each one fault its memory in afresh (0.2-0.4 s of CPU per 2M rows of 330 bytes)."""
        trims = []
        give_back = fast.give_back_freed_memory
        monkeypatch.setattr(fast, "give_back_freed_memory", lambda: (trims.append(1), give_back()))
        pages = PageSpy()
        monkeypatch.setattr(fast, "connectorx", lambda: pages)
        with make_source(mariadb, reader="connectorx", batch_size=300, columns=["id"]) as src:
            ids = read_all(src, window(0, 5000))
        assert ids.column("id").to_pylist() == list(range(1, 5001))
        assert len(pages.pages) > 3 and len(trims) == 1, (pages.pages, trims)

    def test_a_page_ending_inside_a_run_of_equal_timestamps_continues_by_key(
        self, mariadb: MariaDBServer, small_pages: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(fast, "RANGE_DENSITY", 0)  # keys never dense enough: keyset pages
        quick, slow = both(mariadb, window(0, 60), table="ties", query_field="ts", batch_size=100)
        assert quick.column("id").to_pylist() == [10001, *range(1, TIES + 1), 10000]
        assert quick.equals(slow)

    def test_dense_keys_are_read_as_key_ranges_in_key_order(
        self, mariadb: MariaDBServer, small_pages: None
    ) -> None:
        quick, slow = both(mariadb, window(0, 60), table="ties", query_field="ts", batch_size=100)
        # 2,502 rows with keys 1..10001: dense enough; pages of 700 keys, most of them empty
        assert quick.column("id").to_pylist() == [*range(1, TIES + 1), 10000, 10001]
        assert same_rows(quick, slow, "ts")

    def test_sparse_keys_fall_back_to_keyset_pages(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="connectorx", table="ties", query_field="ts") as src:
            query = fast.build_query(src.options, src._table_info(), window(0, 60).start, window(0, 60).end)
        assert query.range_key == "`id`"
        assert query.key_ranges(1, 10001, 2502) is not None
        assert query.key_ranges(1, 10_001, 2000) is None  # more than 4 keys per row
        assert query.key_ranges(None, None, 0) is None  # an empty window

    def test_key_ranges_cover_every_key_once(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="connectorx") as src:
            query = fast.build_query(src.options, src._table_info(), window(0, 10).start, window(0, 10).end)
        step = query.page_rows
        assert step is not None
        ranges = query.key_ranges(5, 5 + 2 * step, 2 * step + 1)
        assert ranges == [(5, 4 + step), (5 + step, 4 + 2 * step), (5 + 2 * step, 5 + 2 * step)]
        assert query.range_sql(7, 9).endswith("AND `id` >= 7 AND `id` <= 9 ORDER BY `id`")
        assert "`_k0`" not in query.range_sql(7, 9)  # page keys are only read by keyset pages

    def test_a_timestamp_query_field_pages_by_epoch(
        self, mariadb: MariaDBServer, small_pages: None
    ) -> None:
        win = Window(datetime(2025, 1, 1, 0, 0, 10, tzinfo=UTC), datetime(2025, 1, 1, 0, 15, tzinfo=UTC))
        quick, slow = both(mariadb, win, table="stamped", query_field="ts", batch_size=100)
        assert quick.num_rows == (900 - 10) * 3 and quick.equals(slow)

    def test_a_timestamp_query_field_ignores_the_session_time_zone(
        self, mariadb: MariaDBServer, small_pages: None, session_zone_plus_five: None
    ) -> None:
        win = Window(datetime(2025, 1, 1, 0, 0, 10, tzinfo=UTC), datetime(2025, 1, 1, 0, 15, tzinfo=UTC))
        quick, slow = both(mariadb, win, table="stamped", query_field="ts", batch_size=100)
        assert quick.equals(slow)
        assert quick.column("ts")[0].as_py() == datetime(2025, 1, 1, 0, 0, 10, tzinfo=UTC)

    def test_a_date_query_field_pages_through_equal_days(
        self, mariadb: MariaDBServer, small_pages: None
    ) -> None:
        win = Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC))
        quick, slow = both(mariadb, win, table="daily", query_field="d", batch_size=100)
        assert quick.num_rows == 1333 and same_rows(quick, slow, "d")

    def test_batches_never_exceed_batch_size(self, mariadb: MariaDBServer, small_pages: None) -> None:
        with make_source(mariadb, reader="connectorx", batch_size=300, columns=["id"]) as src:
            sizes = [batch.num_rows for batch in src.extract(window(0, 2000))]
        assert max(sizes) <= 300 and sum(sizes) == 2000

    def test_next_page_starts_after_the_last_key(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="connectorx") as src:
            info = src._table_info()
            query = fast.build_query(src.options, info, window(0, 10).start, window(0, 10).end)
        text = query.page_sql((datetime(2025, 1, 1, 0, 0, 5), 6))
        assert ("AND ((`created_at` > '2025-01-01 00:00:05.000000') OR (`created_at` = "
                "'2025-01-01 00:00:05.000000' AND `id` > 6))") in text
        assert text.endswith(f"ORDER BY `created_at`, `id` LIMIT {fast.page_rows(10_000)}")

    def test_stopping_early_leaves_the_source_usable(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="connectorx") as src:
            batches = src.extract(window(0, EVENTS))
            first = next(batches)
            batches.close()
            assert (first.num_rows, src.count(window(0, 10))) == (10_000, 10)


class TestErrors:
    def test_a_wrong_password_is_permanent_and_not_shown(self, mariadb: MariaDBServer) -> None:
        wrong = "not-the-Right-pw-42"
        src = make_source(mariadb, reader="connectorx", password=wrong)
        with src, pytest.raises(PermanentError) as info:
            list(src.extract(window(0, 10)))
        assert "1045" in str(info.value) and wrong not in str(info.value)

    def test_a_server_error_on_a_later_page_is_translated(
        self, mariadb: MariaDBServer, small_pages: None
    ) -> None:
        admin = mariadb.admin()
        try:
            with make_source(mariadb, reader="connectorx", batch_size=100, columns=["id"]) as src:
                batches = src.extract(window(0, 5000))
                next(batches)
                with admin.cursor() as cursor:  # every statement of a new session now times out
                    cursor.execute("SET GLOBAL max_statement_time = 0.000001")
                with pytest.raises(TransientError, match="1969"):
                    list(batches)
        finally:
            with admin.cursor() as cursor:
                cursor.execute("SET GLOBAL max_statement_time = 0")
            admin.close()

    @pytest.mark.parametrize(
        ("text", "transient", "code"),
        [
            ("MySqlError { ERROR 1146 (42S02): Table 'd.t' doesn't exist }", False, 1146),
            ("MySqlError { ERROR 1205 (HY000): Lock wait timeout exceeded }", True, 1205),
            ("cx writer failed: Source(MySQLError(CodecError { IO error: `bytes remaining` }))",
             True, None),
            ("timed out waiting for connection: DriverError { Connection refused (os error 111) }",
             True, None),
            ("Could not retrieve `Option<Decimal>`: Couldn't convert the value", False, None),
        ],
    )
    def test_connectorx_messages_are_classified(self, text: str, transient: bool, code: int | None) -> None:
        assert fast.classify_text(text)[:2] == (transient, code)

    def test_a_conversion_failure_suggests_the_pymysql_reader(self) -> None:
        with pytest.raises(PermanentError, match='reader: "pymysql"'), fast.connectorx_errors(
            "h:1/d.t", "reading rows"
        ):
            raise RuntimeError("Could not retrieve `Option<NaiveDate>`: Couldn't convert the value")

    def test_secrets_are_blanked_from_messages(self) -> None:
        with pytest.raises(TransientError) as info, fast.connectorx_errors(
            "h:1/d.t", "connecting", secrets=("s3cr3t!", "s3cr3t%21")
        ):
            raise RuntimeError("connection to mysql://u:s3cr3t%21@h:1/d failed (os error 111)")
        assert "s3cr3t" not in str(info.value)

    def test_the_connection_url_encodes_credentials(self, mariadb: MariaDBServer) -> None:
        options = make_source(mariadb).options
        url = fast.connection_url(options, "us@r", "p:w/d@")
        assert url.startswith("mysql://us%40r:p%3Aw%2Fd%40@127.0.0.1:")


def _global_status(server: MariaDBServer, name: str) -> int:
    admin = server.admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
            return int(cursor.fetchone()[1])
    finally:
        admin.close()


class TestOneScanForCountAndExtract:
    """The window's count reads the key range the extract pages by: one index scan, not two."""

    @pytest.mark.parametrize("reader", ["connectorx", "pymysql"])
    def test_count_then_extract_scans_the_window_once(
        self, mariadb: MariaDBServer, small_pages: None, reader: str
    ) -> None:
        win = window(0, 5000)
        with make_source(mariadb, reader=reader, batch_size=300, columns=["id"]) as src:
            rows: list[Any] = []

            def count_and_extract() -> None:
                rows.append(src.count(win))
                rows.append(read_all(src, win).column("id").to_pylist())

            sent = statements_sent(mariadb, count_and_extract)
        scans = [s for s in sent if "COUNT(*)" in s and "`events`" in s]
        assert len(scans) == 1, scans
        assert rows == [5000, list(range(1, 5001))]
        assert any("`id` >= " in s and "ORDER BY `id`" in s for s in sent)  # read along the key

    def test_a_count_of_another_window_is_not_reused(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="connectorx", columns=["id"]) as src:
            assert src.count(window(0, 100)) == 100
            assert read_all(src, window(100, 250)).column("id").to_pylist() == list(range(101, 251))

    def test_a_count_serves_one_extract(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="connectorx", columns=["id"]) as src:
            assert src.count(window(0, 100)) == 100
            read_all(src, window(0, 100))
            sent = statements_sent(mariadb, lambda: read_all(src, window(0, 100)))
        assert len([s for s in sent if s.startswith("SELECT MIN(`id`), MAX(`id`), COUNT(*)")]) == 1

    def test_a_forced_index_is_counted_as_before(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="pymysql", force_index="idx_created") as src:
            sent = statements_sent(mariadb, lambda: src.count(window(0, 100)))
        assert any(s.startswith("SELECT COUNT(*)") for s in sent)
        assert not any("MIN(" in s for s in sent)


class TestExtractStatement:
    """extract_statement() is what the extract sends first; check() sends each form it may."""

    @pytest.mark.parametrize("reader", ["connectorx", "pymysql"])
    def test_it_is_the_statement_the_extract_sends(self, mariadb: MariaDBServer, reader: str) -> None:
        win = window(0, 50)
        with make_source(mariadb, reader=reader, columns=["id"]) as src:
            statement = src.extract_statement(win)
            sent = statements_sent(mariadb, lambda: read_all(src, win))
        extract = [s for s in sent if s.startswith("SELECT `id`") and "`events`" in s]
        assert "ORDER BY `id`" in statement.sql  # the window's keys are dense: read along them
        if reader == "connectorx":
            assert (extract[0], statement.params) == (statement.sql, ())
        else:
            assert statement.params[2:] == (1, 50)
            assert extract[0].replace("'", "") == statement.sql.replace("%s", "{}").format(
                *(str(p) for p in statement.params))

    def test_telling_it_leaves_the_count_for_the_extract(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="connectorx", columns=["id"]) as src:
            src.count(window(0, 100))

            def tell_and_extract() -> None:
                src.extract_statement(window(0, 100))
                read_all(src, window(0, 100))

            sent = statements_sent(mariadb, tell_and_extract)
        assert not [s for s in sent if s.startswith("SELECT MIN(`id`), MAX(`id`), COUNT(*)")]

    def test_check_sends_both_page_forms(self, mariadb: MariaDBServer) -> None:
        with make_source(mariadb, reader="connectorx") as src:
            sent = statements_sent(mariadb, src.check)
            lines = src.check()
        checked = [s for s in sent if s.startswith("SELECT * FROM (SELECT")]
        assert len(checked) == 2 and any("`id` >= 0 AND `id` <= 0" in s for s in checked), checked
        assert any(line.startswith("extract query accepted by the server (connectorx, pages of `id` ranges")
                   for line in lines), lines


class TestConnections:
    def test_a_page_opens_one_connection_and_none_through_the_socket(
        self, mariadb: MariaDBServer, small_pages: None
    ) -> None:
        with make_source(mariadb, reader="connectorx", batch_size=300, columns=["id"]) as src:
            src.count(window(0, 50))  # the shared connection is open before the counters are read
            aborted, connections = _global_status(mariadb, "Aborted_connects"), _global_status(mariadb, "Connections")
            sent = statements_sent(mariadb, lambda: read_all(src, window(0, 5000)))
        pages = len([s for s in sent if "ORDER BY `id`" in s])
        assert pages >= 7
        assert not any("@@socket" in s for s in sent)
        assert _global_status(mariadb, "Aborted_connects") == aborted
        # one per page, the admin connections of these checks, none more
        assert _global_status(mariadb, "Connections") - connections <= pages + 4
