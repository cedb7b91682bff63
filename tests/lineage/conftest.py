from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lineage.receiver import Receiver

OPENLINEAGE_ENV = ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE_DISABLED", "OPENLINEAGE_NAMESPACE",
                   "OPENLINEAGE_ENDPOINT", "OPENLINEAGE_API_KEY", "AIRFLOW_CTX_DAG_ID")


def receiving(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Receiver:
    """A started receiver, with the OpenLineage client pointed at it through OPENLINEAGE_URL."""
    for name in OPENLINEAGE_ENV:
        monkeypatch.delenv(name, raising=False)
    # no openlineage.yml from the working folder or the home folder may redirect the events
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    server = Receiver().start()
    monkeypatch.setenv("OPENLINEAGE_URL", server.url)
    return server


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """A running receiver; every event it received must keep the OpenLineage spec (checked at teardown)."""
    server = receiving(monkeypatch, tmp_path_factory)
    yield server
    server.stop()
    assert server.invalid() == {}, "events that break the OpenLineage spec"
