"""Fixtures of the reliability suite: Snowflake credentials and databases.

The servers and emulators (``mariadb``, ``fakesnow_server``, ``es``, ``sn``...) come from
tests/conftest.py, the one place test servers are started.
"""

from __future__ import annotations

import uuid

import pytest


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
