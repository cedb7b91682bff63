"""TLS of the MySQL source's pymysql connections when ``ssl`` is not set, and ``"ssl": false``.

Not set: encrypted when the server offers TLS (unverified, as MySQL clients' ssl-mode
PREFERRED), plain when it does not, with one TLS context for the whole process instead of one
(and a CA bundle read) per connection. ``false``: never TLS.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pytest

from drivetrain.connectors.mysql import MySQLSource
from drivetrain.connectors.mysql.config import OPTIONS_SCHEMA
from drivetrain.errors import ConfigError, PermanentError
from tests.connectors.sql_sources import server_source
from tests.servers import serving
from tests.servers.mariadb import TLS_USER, MariaDBServer, ServerError


def make(server: MariaDBServer, user: str | None = None, **options: Any) -> MySQLSource:
    return server_source(MySQLSource, server, "mysql", options, ref="test_tls", user=user,
                         password=None, base_dir=Path("."))


def cipher(src: MySQLSource) -> str:
    """The TLS cipher of the source's connection ('' when plain)."""
    with src._shared("checking TLS") as conn, conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return str(cursor.fetchone()[1])


def rows_table(server: MariaDBServer) -> dict[str, str]:
    """A small table to check and read; returns the source options naming it."""
    admin = server.admin(database=server.database)
    try:
        with admin.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS tls_rows (id INT PRIMARY KEY,"
                           " ts DATETIME NOT NULL, KEY (ts))")
    finally:
        admin.close()
    return {"table": "tls_rows", "query_field": "ts"}


@pytest.fixture(scope="module")
def plain_server() -> Iterator[MariaDBServer]:
    """A server without TLS certificates: it offers no TLS."""
    with serving(lambda: MariaDBServer.start(tls=False), ServerError, "the MariaDB test server") as server:
        yield server


class TestNotSet:
    def test_encrypted_when_the_server_offers_tls(self, mariadb: MariaDBServer) -> None:
        with make(mariadb) as src:
            assert cipher(src) != ""

    def test_a_tls_only_user_gets_in(self, mariadb: MariaDBServer) -> None:
        with make(mariadb, user=TLS_USER) as src:
            assert cipher(src) != ""

    def test_plain_when_the_server_offers_none(self, plain_server: MariaDBServer) -> None:
        with make(plain_server) as src:
            assert cipher(src) == ""

    def test_one_context_for_every_connection(self, mariadb: MariaDBServer) -> None:
        with mock.patch.object(ssl, "create_default_context", wraps=ssl.create_default_context) as spy:
            contexts = set()
            for _ in range(3):
                with make(mariadb) as src:
                    conn = src._connect(decode=False)
                    contexts.add(id(conn.ctx))
                    conn.close()
        assert len(contexts) == 1
        assert spy.call_count == 0  # no CA bundle loaded per connection


class TestDisabled:
    def test_false_connects_in_plain_text(self, mariadb: MariaDBServer) -> None:
        with make(mariadb, ssl=False) as src:
            assert src.options.ssl is None and src.options.ssl_disabled
            assert cipher(src) == ""

    def test_false_keeps_out_a_user_that_requires_tls(self, mariadb: MariaDBServer) -> None:
        with make(mariadb, user=TLS_USER, ssl=False) as src, pytest.raises(PermanentError, match="1045"):
            cipher(src)

    def test_false_lets_the_connectorx_reader_be_chosen(self, mariadb: MariaDBServer) -> None:
        with make(mariadb, ssl=False, reader="connectorx", **rows_table(mariadb)) as src:
            assert src.extract_reader() == "connectorx"

    def test_true_is_refused_by_the_schema(self) -> None:
        section = {"type": "mysql", "database": "d", "table": "t", "query_field": "ts", "ssl": True}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(section, OPTIONS_SCHEMA)
        jsonschema.validate({**section, "ssl": False}, OPTIONS_SCHEMA)
        jsonschema.validate({**section, "ssl": {"verify_identity": False}}, OPTIONS_SCHEMA)

    def test_connectorx_with_tls_settings_is_still_refused(self, mariadb: MariaDBServer) -> None:
        with pytest.raises(ConfigError, match="reader"):
            make(mariadb, ssl={"verify_identity": False}, reader="connectorx")


def test_each_connection_sets_its_session_in_one_statement(mariadb: MariaDBServer) -> None:
    with make(mariadb, net_write_timeout=77) as src:
        conn = src._connect(decode=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT @@SESSION.time_zone, @@SESSION.net_write_timeout")
                assert cursor.fetchone() == ("+00:00", 77)
        finally:
            conn.close()


class TestCheckSaysWhichTLS:
    def test_unverified_by_default(self, mariadb: MariaDBServer) -> None:
        with make(mariadb, **rows_table(mariadb)) as src:
            assert "certificate not verified: set ssl" in src.check()[0]

    def test_verified_with_ssl_set(self, mariadb: MariaDBServer) -> None:
        assert mariadb.certificates is not None
        ssl_section = {"ca": str(mariadb.certificates["ca"])}
        with make(mariadb, host="localhost", ssl=ssl_section, **rows_table(mariadb)) as src:
            assert src.check()[0].endswith("server certificate verified)")

    def test_plain_when_turned_off(self, mariadb: MariaDBServer) -> None:
        with make(mariadb, ssl=False, **rows_table(mariadb)) as src:
            assert src.check()[0].endswith("(plain, no TLS)")

    def test_plain_when_the_server_offers_none(self, plain_server: MariaDBServer) -> None:
        with make(plain_server, **rows_table(plain_server)) as src:
            assert src.check()[0].endswith("(plain, no TLS: the server offers none)")
