"""Failures of the PostgreSQL source: each becomes a TransientError or PermanentError that names
host, relation or column and says what to fix, never the password."""

from __future__ import annotations

import socket
import sys

import pytest

from drivetrain.connectors.postgres import PostgresSource
from drivetrain.connectors.postgres.errors import postgres_errors
from drivetrain.errors import MissingExtraError, PermanentError, TransientError
from tests.servers.postgres import PASSWORD, PostgresServer

from .conftest import READERS, make_source, window

#: A window's worth of rows made on the server, far more than any socket buffer holds.
BIG_QUERY = (
    "SELECT g AS id, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 microsecond' AS ts,"
    " repeat('x', 200) AS pad FROM generate_series(1, 3000000) g"
)


def terminate(server: PostgresServer, like: str) -> int:
    """pg_terminate_backend on the drivetrain role's sessions running a statement like ``like``."""
    with server.admin() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s"
            " AND query LIKE %s AND pid <> pg_backend_pid()",
            (server.user, like),
        ).fetchall()
    return len(rows)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestErrors:
    @pytest.mark.parametrize("reader", READERS)
    def test_a_connection_killed_mid_extract_is_transient(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader, table=None, query=BIG_QUERY, query_field="ts", batch_size=1000) as src:
            batches = src.extract(window(0, 10))
            received = next(batches).num_rows
            assert terminate(pg, "%") >= 1  # the extract's session (a COPY, or idle between FETCHes)
            with pytest.raises(TransientError, match="reading rows"):
                for batch in batches:
                    received += batch.num_rows
        assert received < 3_000_000

    @pytest.mark.parametrize("reader", READERS)
    def test_connections_dropped_between_windows_are_opened_again(self, pg: PostgresServer, reader: str) -> None:
        with make_source(pg, reader=reader) as src:
            assert src.count(window(0, 10)) == sum(b.num_rows for b in src.extract(window(0, 10))) == 10
            assert terminate(pg, "%") >= 1  # the idle shared connection (and adbc's kept one)
            assert src.count(window(10, 20)) == sum(b.num_rows for b in src.extract(window(10, 20))) == 10

    @pytest.mark.parametrize("reader", READERS)
    def test_a_statement_failing_mid_extract_is_permanent(self, pg: PostgresServer, reader: str) -> None:
        query = BIG_QUERY.replace("AS pad", "AS pad, 1 / (g - 200000) AS boom")  # fails at row 200,000
        src = make_source(pg, reader=reader, table=None, query=query, query_field="ts", batch_size=1000)
        with src, pytest.raises(PermanentError, match="division by zero"):
            list(src.extract(window(0, 10)))

    def test_a_wrong_password_is_permanent_and_not_shown(self, pg: PostgresServer) -> None:
        wrong = "not-the-Right-pw-42"
        with make_source(pg, password=wrong) as src, pytest.raises(PermanentError) as info:
            src.count(window(0, 10))
        message = str(info.value)
        assert "password" in message and "credentials_ref" in message and "127.0.0.1" in message
        assert wrong not in message + repr(info.value) and PASSWORD not in message

    @pytest.mark.parametrize("reader", READERS)
    def test_a_wrong_password_in_the_extract_is_not_shown(self, pg: PostgresServer, reader: str) -> None:
        wrong = "also:wrong@pw/42"
        with make_source(pg, reader=reader) as src:
            src.count(window(0, 1))  # the table is known; only the extract connects anew
            src.credentials = make_source(pg, password=wrong).credentials
            with pytest.raises(PermanentError) as info:
                list(src.extract(window(0, 10)))
        assert wrong not in str(info.value) and "also%3Awrong" not in str(info.value)

    def test_an_unknown_database_is_permanent(self, pg: PostgresServer) -> None:
        with make_source(pg, database="nodb") as src, pytest.raises(PermanentError, match="nodb.*'database'"):
            src.count(window(0, 10))

    def test_an_unknown_column_in_a_query_is_permanent(self, pg: PostgresServer) -> None:
        query = "SELECT id, created_at, nope FROM events"
        with make_source(pg, table=None, query=query) as src, pytest.raises(PermanentError, match="42703.*nope"):
            src.count(window(0, 10))

    def test_a_table_the_user_may_not_read_is_permanent(self, pg: PostgresServer) -> None:
        with pg.admin() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS secret_events (id int, ts timestamptz)")
            conn.execute(f"REVOKE SELECT ON secret_events FROM {pg.user}")
        src = make_source(pg, table="secret_events", query_field="ts")
        with src, pytest.raises(PermanentError, match="42501.*grant SELECT"):
            src.count(window(0, 10))

    def test_a_refused_connection_is_transient_and_names_the_host(self, pg: PostgresServer) -> None:
        port = closed_port()
        with make_source(pg, port=port, connect_timeout=2) as src, pytest.raises(TransientError) as info:
            src.count(window(0, 10))
        assert f"127.0.0.1:{port}" in str(info.value) and "host, port" in str(info.value)

    def test_a_statement_timeout_is_transient(self, pg: PostgresServer) -> None:
        query = "SELECT created_at, pg_sleep(2) AS nap FROM events"
        src = make_source(pg, table=None, query=query, statement_timeout=1)
        with src, pytest.raises(TransientError, match="57014"):
            src.count(window(0, 10))

    def test_missing_credentials_are_permanent(self, pg: PostgresServer) -> None:
        src = PostgresSource(make_source(pg).config)
        with pytest.raises(PermanentError, match="credentials_ref"):
            src.count(window(0, 10))

    def test_repr_and_describe_hold_no_secret(self, pg: PostgresServer) -> None:
        with make_source(pg) as src:
            src.count(window(0, 1))
            assert PASSWORD not in repr(src) + src.describe() + repr(src.credentials)

    def test_a_password_echoed_by_the_driver_is_blanked(self) -> None:
        import psycopg

        with pytest.raises(PermanentError) as info, postgres_errors("h:1/d.s.t", "x", secret="s3cr3t!"):
            raise psycopg.ProgrammingError("syntax error near 's3cr3t!'")
        assert "s3cr3t!" not in str(info.value)

    def test_our_own_errors_pass_through(self) -> None:
        with pytest.raises(TransientError, match="^as is$"), postgres_errors("h:1/d.s.t", "x"):
            raise TransientError("as is")

    def test_a_missing_client_library_names_the_extra(
        self, pg: PostgresServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        src = make_source(pg)
        monkeypatch.setitem(sys.modules, "psycopg", None)  # what an absent package looks like
        with pytest.raises(MissingExtraError, match=r"drivetrain\[postgres\]"):
            src.count(window(0, 1))

    def test_a_missing_adbc_driver_names_the_extra(
        self, pg: PostgresServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
        with make_source(pg) as src:
            assert src.extract_reader() == "psycopg"  # auto falls back to the named cursor
            assert sum(b.num_rows for b in src.extract(window(0, 10))) == 10
        with make_source(pg, reader="adbc") as src, pytest.raises(MissingExtraError, match="postgres"):
            src.extract_reader()
