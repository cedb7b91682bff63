"""Fixtures shared by the whole suite: a fresh plugin manager per test, and every test server.

This is the one place servers and emulators are started: MariaDB, fakesnow, moto (S3 with a
fault-injecting proxy), the Elasticsearch and ServiceNow emulators. Each starts once per session;
tests keep apart with databases of their own, or through the per-test fixtures (``es``, ``sn``,
``s3``) that reset the shared one before and after. The server classes live in tests/servers
and tests/emulators. A server that cannot start fails the tests that need it, with the reason;
it never skips them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator

import pytest

from drivetrain.plugins import reset_plugin_manager
from tests.emulators.elasticsearch import EsEmulator
from tests.emulators.servicenow import SnEmulator
from tests.servers import serving
from tests.servers.fakesnow_server import FakeSnowServer
from tests.servers.fakesnow_server import ServerError as SnowServerError
from tests.servers.mariadb import MariaDBServer
from tests.servers.mariadb import ServerError as MariaServerError
from tests.servers.moto_server import (
    ACCESS_KEY_ID,
    BUCKET,
    SECRET_ACCESS_KEY,
    FaultProxy,
    MotoServer,
    S3Env,
)
from tests.servers.moto_server import ServerError as MotoServerError
from tests.servers.postgres import PostgresServer
from tests.servers.postgres import ServerError as PostgresServerError


def pytest_unconfigure(config: pytest.Config) -> None:
    """No tracebacks from logging after the run ends.

    The Snowflake connector closes every connection still open at interpreter exit and logs that
    the (already stopped) fakesnow server refused; by then pytest has closed the streams it
    captured, so each such record printed a "Logging error" traceback under the summary.
    """
    logging.raiseExceptions = False


@pytest.fixture(autouse=True)
def fresh_plugin_manager():
    """Every test starts with a plugin manager built anew (no plugin left over from another)."""
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture(autouse=True, scope="session")
def own_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's validated-config markers go to a folder of its own, not the user's ~/.cache."""
    before = os.environ.get("DRIVETRAIN_CACHE_DIR")
    os.environ["DRIVETRAIN_CACHE_DIR"] = str(tmp_path_factory.mktemp("drivetrain-cache"))
    yield
    if before is None:
        os.environ.pop("DRIVETRAIN_CACHE_DIR", None)
    else:
        os.environ["DRIVETRAIN_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[FakeSnowServer]:
    """fakesnow in server mode: the real Snowflake connector talks HTTP to it."""
    with serving(FakeSnowServer().start, SnowServerError, "the fakesnow test server") as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """A throwaway MariaDB (Debian's mariadb-server; scripts/install-test-servers installs it)."""
    with serving(MariaDBServer.start, MariaServerError, "the MariaDB test server") as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL (Debian's postgresql; scripts/install-test-servers installs it)."""
    with serving(PostgresServer.start, PostgresServerError, "the PostgreSQL test server") as server:
        yield server


@pytest.fixture(scope="session", name="moto_server")
def moto_server_fixture() -> Iterator[MotoServer]:
    """One moto server for the whole session (see tests/servers/moto_server.py)."""
    try:
        server = MotoServer().start()
    except MotoServerError as exc:
        pytest.fail(f"cannot run the S3 tests: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session", name="s3_proxy")
def s3_proxy_fixture(moto_server: MotoServer) -> Iterator[FaultProxy]:
    """The fault-injecting proxy in front of moto, for the whole session."""
    proxy = FaultProxy(moto_server.url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


@pytest.fixture(name="s3")
def s3_fixture(moto_server: MotoServer, s3_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    """Empty moto with :data:`BUCKET`, no faults, and an AWS environment free of the host's."""
    import boto3

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # each injected fault fails its request at once
    moto_server.reset()
    s3_proxy.clear()
    client = boto3.client(
        "s3", endpoint_url=moto_server.url, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    client.create_bucket(Bucket=BUCKET)
    return S3Env(moto_server, s3_proxy, client)


def es_version() -> str:
    """The cluster version the emulator reports: that of the installed client's major, as a
    matching cluster would (the suite runs with an 8.x and a 9.x client)."""
    import elasticsearch

    major = int(elasticsearch.__versionstr__.split(".")[0])
    return {8: "8.15.0", 9: "9.1.0"}.get(major, f"{major}.0.0")


@pytest.fixture(scope="session")
def es_server() -> Iterator[EsEmulator]:
    """The Elasticsearch emulator (the real client over HTTP), one per session."""
    try:
        emulator = EsEmulator.start(version=es_version())
    except OSError as exc:
        pytest.fail(f"the Elasticsearch emulator could not listen on 127.0.0.1: {exc}", pytrace=False)
    yield emulator
    emulator.stop()


@pytest.fixture
def es(es_server: EsEmulator) -> Iterator[EsEmulator]:
    """The session's Elasticsearch emulator, empty before and after the test."""
    es_server.reset()
    yield es_server
    es_server.reset()


@pytest.fixture(scope="session")
def sn_server() -> Iterator[SnEmulator]:
    """The ServiceNow emulator (the real pysnow client over HTTP), one per session."""
    emulator = SnEmulator()
    try:
        emulator.start()
    except OSError as exc:
        pytest.fail(f"the ServiceNow emulator could not listen on 127.0.0.1: {exc}", pytrace=False)
    yield emulator
    emulator.stop()


@pytest.fixture
def sn(sn_server: SnEmulator) -> Iterator[SnEmulator]:
    """The session's ServiceNow emulator, empty before and after the test."""
    sn_server.reset()
    yield sn_server
    sn_server.reset()
