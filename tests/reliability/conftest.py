"""Servers and emulators for the reliability suite, one of each per test session.

Each fixture fails the test with a clear message when its server cannot start; none skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.emulators.elasticsearch import EsEmulator
from tests.emulators.servicenow import SnEmulator


@pytest.fixture(scope="session")
def es_server() -> Iterator[EsEmulator]:
    import elasticsearch

    major = int(elasticsearch.__versionstr__.split(".")[0])
    try:
        emulator = EsEmulator.start(version={8: "8.15.0", 9: "9.1.0"}.get(major, f"{major}.0.0"))
    except OSError as exc:
        pytest.fail(f"the Elasticsearch emulator could not listen on 127.0.0.1: {exc}", pytrace=False)
    yield emulator
    emulator.stop()


@pytest.fixture
def es(es_server: EsEmulator) -> Iterator[EsEmulator]:
    es_server.reset()
    yield es_server
    es_server.reset()


@pytest.fixture(scope="session")
def sn_server() -> Iterator[SnEmulator]:
    emulator = SnEmulator()
    try:
        emulator.start()
    except OSError as exc:
        pytest.fail(f"the ServiceNow emulator could not listen on 127.0.0.1: {exc}", pytrace=False)
    yield emulator
    emulator.stop()


@pytest.fixture
def sn(sn_server: SnEmulator) -> Iterator[SnEmulator]:
    sn_server.reset()
    yield sn_server
    sn_server.reset()


@pytest.fixture
def sf_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Snowflake credentials in the environment (children started by the test inherit them)."""
    from tests.connectors.snowflake.conftest import ENV

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return ENV


@pytest.fixture
def sf_database() -> str:
    return f"R_{uuid.uuid4().hex[:12].upper()}"
