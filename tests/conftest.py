"""Fixtures shared by the whole suite: a fresh plugin manager per test, and the test servers
that several folders use (one of each per session; tests keep apart with databases of their own).
A server that cannot start fails the tests that need it, with the reason; it never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivetrain.plugins import reset_plugin_manager
from tests.servers.fakesnow_server import FakeSnowServer
from tests.servers.fakesnow_server import ServerError as SnowServerError
from tests.servers.mariadb import MariaDBServer
from tests.servers.mariadb import ServerError as MariaServerError
from tests.servers.postgres import PostgresServer
from tests.servers.postgres import ServerError as PostgresServerError


@pytest.fixture(autouse=True)
def fresh_plugin_manager():
    """Every test starts with a plugin manager built anew (no plugin left over from another)."""
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[FakeSnowServer]:
    """fakesnow in server mode: the real Snowflake connector talks HTTP to it."""
    try:
        server = FakeSnowServer().start()
    except SnowServerError as exc:
        pytest.fail(f"cannot start the fakesnow test server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """A throwaway MariaDB (Debian's mariadb-server; scripts/install-test-servers installs it)."""
    try:
        server = MariaDBServer.start()
    except MariaServerError as exc:
        pytest.fail(f"cannot start the MariaDB test server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL (Debian's postgresql; scripts/install-test-servers installs it)."""
    try:
        server = PostgresServer.start()
    except PostgresServerError as exc:
        pytest.fail(f"cannot start the PostgreSQL test server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
