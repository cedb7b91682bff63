"""TLS: the server certificate is always verified, against ``ssl.ca``, and must name the host
unless ``ssl.verify_identity`` is false; both readers connect the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivetrain.errors import ConfigError, PermanentError
from tests.servers.postgres import PostgresServer

from .conftest import READERS, make_source, window


@pytest.fixture
def certificates(pg: PostgresServer) -> dict[str, Path]:
    assert pg.certificates is not None, "the test server could not make certificates (is openssl installed?)"
    return pg.certificates


@pytest.mark.parametrize("reader", READERS)
def test_the_server_is_read_over_tls_with_its_ca(pg: PostgresServer, certificates: dict[str, Path], reader: str) -> None:
    query = "SELECT created_at, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS tls FROM events"
    ssl = {"ca": str(certificates["ca"])}
    with make_source(pg, host="localhost", ssl=ssl, reader=reader, table=None, query=query) as src:
        assert src.count(window(0, 10)) == 10
        extracted = [tls for batch in src.extract(window(0, 10)) for tls in batch.column("tls").to_pylist()]
    assert extracted == [True] * 10  # the extract's own connection is encrypted too


def test_relative_paths_are_read_from_the_config_folder(pg: PostgresServer, certificates: dict[str, Path]) -> None:
    src = make_source(pg, host="localhost", ssl={"ca": certificates["ca"].name}, base_dir=certificates["ca"].parent)
    assert src.options.ssl is not None and src.options.ssl.ca == certificates["ca"]


def test_a_missing_ca_file_is_a_config_error(pg: PostgresServer) -> None:
    with pytest.raises(ConfigError, match=r"ssl\.ca"):
        make_source(pg, ssl={"ca": "nowhere.pem"})


@pytest.mark.parametrize("reader", READERS)
def test_a_host_not_named_by_the_certificate_is_refused(
    pg: PostgresServer, certificates: dict[str, Path], reader: str
) -> None:
    with make_source(pg, ssl={"ca": str(certificates["ca"])}, reader=reader) as src, pytest.raises(PermanentError) as info:
        src.count(window(0, 10))
    assert "127.0.0.1" in str(info.value) and "ssl" in str(info.value)


def test_another_authority_is_refused(pg: PostgresServer, certificates: dict[str, Path]) -> None:
    src = make_source(pg, host="localhost", ssl={"ca": str(certificates["other-ca"])})
    with src, pytest.raises(PermanentError, match="certificate"):
        src.count(window(0, 10))


@pytest.mark.parametrize("reader", READERS)
def test_verify_identity_false_accepts_another_host_name(
    pg: PostgresServer, certificates: dict[str, Path], reader: str
) -> None:
    ssl = {"ca": str(certificates["ca"]), "verify_identity": False}
    with make_source(pg, ssl=ssl, reader=reader) as src:
        assert src.count(window(0, 10)) == sum(b.num_rows for b in src.extract(window(0, 10))) == 10
