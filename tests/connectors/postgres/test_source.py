"""The PostgreSQL source against a real server started for this session: options, check,
the window predicate, batches, projections, views and queries."""

from __future__ import annotations

from datetime import UTC, date, datetime

import jsonschema
import pytest

from drivetrain.connectors.postgres.config import OPTIONS_SCHEMA
from drivetrain.errors import ConfigError, PermanentError
from tests.servers.postgres import PostgresServer

from .conftest import EVENTS, READERS, make_source, read_all, window


class TestOptions:
    def test_defaults_apply_to_a_minimal_section(self, pg: PostgresServer) -> None:
        options = make_source(pg).options
        assert (options.batch_size, options.source_timezone, options.columns, options.schema,
                options.reader) == (10_000, "UTC", None, "public", "auto")

    def test_postgresql_is_accepted_as_the_type(self, pg: PostgresServer) -> None:
        section = {"type": "postgresql", "database": "d", "table": "t", "query_field": "ts"}
        jsonschema.validate(section, OPTIONS_SCHEMA)
        assert make_source(pg, type="postgresql").options.table == "events"

    def test_schema_rejects_an_unknown_key(self) -> None:
        section = {"type": "postgres", "database": "d", "table": "t", "query_field": "ts", "tabel": "x"}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(section, OPTIONS_SCHEMA)

    def test_schema_requires_the_query_field(self) -> None:
        with pytest.raises(jsonschema.ValidationError, match="query_field"):
            jsonschema.validate({"type": "postgres", "database": "d", "table": "t"}, OPTIONS_SCHEMA)

    def test_table_and_query_together_are_a_config_error(self, pg: PostgresServer) -> None:
        with pytest.raises(ConfigError, match="exactly one"):
            make_source(pg, query="SELECT * FROM events")

    def test_neither_table_nor_query_is_a_config_error(self, pg: PostgresServer) -> None:
        with pytest.raises(ConfigError, match="exactly one"):
            make_source(pg, table=None)

    def test_an_identifier_with_sql_in_it_is_a_config_error(self, pg: PostgresServer) -> None:
        with pytest.raises(ConfigError, match="table"):
            make_source(pg, table='events"; DROP TABLE events; --')

    def test_an_unknown_time_zone_is_a_config_error(self, pg: PostgresServer) -> None:
        with pytest.raises(ConfigError, match="source_timezone"):
            make_source(pg, source_timezone="Mars/Olympus")

    def test_a_column_listed_twice_is_a_config_error(self, pg: PostgresServer) -> None:
        with pytest.raises(ConfigError, match="twice"):
            make_source(pg, columns=["id", "ID"])

    def test_a_query_ending_in_a_semicolon_is_a_config_error(self, pg: PostgresServer) -> None:
        with pytest.raises(ConfigError, match="query"):
            make_source(pg, table=None, query="SELECT * FROM events;")

    def test_nothing_connects_before_first_use(self) -> None:
        from drivetrain.config import SystemConfig
        from drivetrain.connectors.postgres import PostgresSource

        section = {"type": "postgres", "host": "127.0.0.1", "port": 1, "database": "d",
                   "table": "t", "query_field": "ts"}
        config = SystemConfig.from_section("source_system", section, source_file="config.json")
        assert repr(PostgresSource(config)) == "<PostgresSource 127.0.0.1:1/d.public.t>"


class TestCheck:
    def test_reports_connection_table_field_and_index(self, pg: PostgresServer) -> None:
        with make_source(pg) as src:
            lines = src.check()
        assert lines[0].startswith("connected to PostgreSQL 1")
        assert "table public.events exists (4 columns read)" in lines
        assert "query field created_at exists (timestamptz)" in lines
        assert "query field is indexed (idx_created)" in lines
        assert "extract query accepted by the server" in lines

    def test_warns_when_the_query_field_has_no_index(self, pg: PostgresServer) -> None:
        with make_source(pg, table="noindex", query_field="ts") as src:
            assert any(line.startswith("warning: no index starts with ts") for line in src.check())

    def test_a_missing_table_is_permanent(self, pg: PostgresServer) -> None:
        with make_source(pg, table="missing") as src, pytest.raises(PermanentError, match="public.missing"):
            src.check()

    def test_a_query_field_that_is_not_a_date_is_permanent(self, pg: PostgresServer) -> None:
        with make_source(pg, query_field="kind") as src, pytest.raises(PermanentError, match="'kind' is text"):
            src.check()

    def test_an_unknown_projected_column_is_permanent(self, pg: PostgresServer) -> None:
        with make_source(pg, columns=["id", "nope"]) as src, pytest.raises(PermanentError, match="'nope'"):
            src.check()


@pytest.mark.parametrize("reader", READERS)
class TestWindowPredicate:
    def test_count_equals_the_rows_extracted(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader) as src:
            assert src.extract_reader() == reader
            win = window(100, 5_100)
            table = read_all(src, win)
            assert src.count(win) == table.num_rows == 5_000
            assert table.column("id").to_pylist() == list(range(101, 5_101))

    @pytest.mark.parametrize("relation", ["bounds", "bounds_tz"])
    def test_start_is_included_and_end_excluded_to_the_microsecond(
        self, pg: PostgresServer, reader: str, relation: str
    ) -> None:
        # bounds_tz row 6 was written as 01:00:10+01, the instant 00:00:10 UTC
        inside = [2, 3, 4] if relation == "bounds" else [2, 3, 4, 6]
        with make_source(pg, reader=reader, table=relation, query_field="ts") as src:
            table = read_all(src, window(10, 20))
            assert sorted(table.column("id").to_pylist()) == inside
            assert src.count(window(10, 20)) == len(inside)
            assert datetime(2025, 1, 1, 0, 0, 10, 1, tzinfo=UTC) in table.column("ts").to_pylist()

    def test_null_and_infinite_query_fields_are_in_no_window(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader, table="bounds", query_field="ts") as src:
            everything = window(-10**8, 10**8)
            assert src.count(everything) == 5
            assert sorted(read_all(src, everything).column("id").to_pylist()) == [1, 2, 3, 4, 5]
            lost = src.unplaceable()
        assert lost is not None and lost.records == 3
        assert lost.reasons == {"ts: NULL": 1, "ts: infinite (no window)": 2}
        assert "public.bounds id=6: ts: NULL" in lost.sample

    def test_a_date_query_field_places_a_day_at_its_midnight(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader, table="days", query_field="day") as src:
            table = read_all(src, window(0, 86_400))
            assert table.to_pydict() == {"id": [2], "day": [date(2025, 1, 1)]}

    def test_an_empty_window_yields_no_batches(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader) as src:
            assert list(src.extract(window(-100, -50))) == []
            assert src.count(window(-100, -50)) == 0
            assert src.schema().names == ["id", "created_at", "kind", "payload"]


@pytest.mark.parametrize("reader", READERS)
class TestBatches:
    def test_batches_never_exceed_batch_size(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader, batch_size=999) as src:
            sizes = [b.num_rows for b in src.extract(window(0, EVENTS))]
        assert max(sizes) <= 999 and sum(sizes) == EVENTS

    def test_projection_keeps_its_order_and_adds_the_query_field(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader, columns=["kind", "id"]) as src:
            table = read_all(src, window(0, 3))
        assert table.column_names == ["kind", "id", "created_at"]
        assert table.column("kind").to_pylist() == ["odd", "even", "odd"]

    def test_a_view_is_read_like_a_table(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader, table="odd_events") as src:
            assert src.count(window(0, 10)) == 5
            assert read_all(src, window(0, 10)).column("id").to_pylist() == [1, 3, 5, 7, 9]

    def test_a_query_is_wrapped_in_the_window_predicate(self, pg: PostgresServer, reader: str) -> None:
        query = "SELECT id, created_at, upper(kind) AS kind FROM events WHERE kind LIKE 'ev%'"
        with make_source(pg, reader=reader, table=None, query=query) as src:
            assert src.count(window(0, 10)) == 5
            table = read_all(src, window(0, 10))
        assert table.column("id").to_pylist() == [2, 4, 6, 8, 10]
        assert set(table.column("kind").to_pylist()) == {"EVEN"}

    def test_a_percent_sign_in_a_query_is_an_operator_in_every_statement(
        self, pg: PostgresServer, reader: str
    ) -> None:
        query = ("SELECT id, CASE WHEN id % 1000 = 0 THEN NULL ELSE created_at END AS created_at"
                 " FROM events WHERE id % 2 = 0")
        with make_source(pg, reader=reader, table=None, query=query) as src:
            assert any(line.startswith("extract query accepted") for line in src.check())
            # ids 1..2000 fall in the window; the even ones but 1000 and 2000 (NULL) are read
            assert src.count(window(0, 2_000)) == 998
            assert read_all(src, window(0, 2_000)).num_rows == 998
            lost = src.unplaceable()
        assert lost is not None and lost.reasons == {"created_at: NULL": EVENTS // 1000}

    def test_mixed_case_names_are_found(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader, table="MixedCase", query_field="createdat") as src:
            assert read_all(src, window(0, 10)).column_names == ["Id", "CreatedAt"]

    def test_stopping_early_leaves_the_source_usable(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader, batch_size=100) as src:
            batches = src.extract(window(0, EVENTS))
            assert next(batches).num_rows == 100
            batches.close()  # type: ignore[attr-defined]
            assert src.count(window(0, 10)) == 10
            assert read_all(src, window(0, 10)).num_rows == 10


class TestFingerprint:
    """Which rows a window holds, for settling: one statement, stable while the rows are."""

    def test_the_same_rows_give_the_same_fingerprint_and_it_counts_them(self, pg: PostgresServer) -> None:
        with make_source(pg) as src:
            first, second = src.fingerprint(window(100, 5_100)), src.fingerprint(window(100, 5_100))
            other = src.fingerprint(window(100, 5_101))
        assert first == second and first is not None and first.startswith("5000:")
        assert other is not None and other != first

    def test_a_row_deleted_and_another_inserted_change_it_while_the_count_stays(self, pg: PostgresServer) -> None:
        with pg.admin() as conn:
            conn.execute("DROP TABLE IF EXISTS fp_events")
            conn.execute("CREATE TABLE fp_events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL)")
            conn.execute("INSERT INTO fp_events SELECT g, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second'"
                         " FROM generate_series(1, 20) g")
            conn.execute(f"GRANT SELECT ON fp_events TO {pg.user}")
        try:
            with make_source(pg, table="fp_events") as src:
                before = (src.count(window(0, 30)), src.fingerprint(window(0, 30)))
                with pg.admin() as conn:
                    conn.execute("DELETE FROM fp_events WHERE id = 5")
                    conn.execute("INSERT INTO fp_events VALUES (105, timestamptz '2025-01-01 00:00:07.5+00')")
                after = (src.count(window(0, 30)), src.fingerprint(window(0, 30)))
        finally:
            with pg.admin() as conn:
                conn.execute("DROP TABLE fp_events")
        assert before[0] == after[0] == 20
        assert before[1] != after[1]

    def test_a_query_without_a_primary_key_is_fingerprinted_by_its_columns(self, pg: PostgresServer) -> None:
        query = "SELECT id, created_at, upper(kind) AS kind FROM events WHERE kind LIKE 'ev%'"
        with make_source(pg, table=None, query=query) as src:
            fingerprint = src.fingerprint(window(0, 10))
        assert fingerprint is not None and fingerprint.startswith("5:")
