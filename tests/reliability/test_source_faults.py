"""Source faults through the runner, with the real MySQL, Elasticsearch and ServiceNow sources.

The connection is broken for real: a proxy in front of MariaDB resets the extract's TCP
connection a fixed number of bytes into the result (a server-side KILL would come too late: on
localhost the whole result sits in socket buffers long before the client reads it), the
Elasticsearch emulator drops the search request after batch 3 unanswered, the ServiceNow
emulator cuts the page after batch 3 half way. Once, the phase's retry reads the window again and the target is
exact; every time, the run ends FAILED at the transfer with a readable error and the next run
resumes the window. A stream that ends early without an error is caught by the audit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.base import Source
from drivetrain.testing import FaultySource
from tests.sdk.factory import DAY, expected_target, make_rows, target_rows
from tests.servers.mariadb import MariaDBServer

from .proxy import ProxyProcess
from .sources import es_pipeline, mysql_pipeline, sn_pipeline, whole_seconds

WINDOW = (DAY, DAY.replace(hour=1))
RETRY = {"max_retries": 2, "backoff_strategy": "exponential", "backoff_seconds": 0.01}


class BreakAfter(Source):
    """Passes a real source's batches through; after ``batches`` of them, breaks its connection."""

    type_name = "break-after"

    def __init__(self, inner: Source, batches: int, breaker: Callable[[], None], times: int) -> None:
        super().__init__(inner.config, inner.credentials)
        self.inner, self.batches, self.breaker, self.remaining = inner, batches, breaker, times

    def count(self, window: Any) -> int:
        return self.inner.count(window)

    def extract(self, window: Any) -> Iterator[Any]:
        for n, batch in enumerate(self.inner.extract(window)):
            if n == self.batches and self.remaining > 0:
                self.remaining -= 1
                self.breaker()
            yield batch


def rows() -> list[dict[str, Any]]:
    return make_rows(2400, hours=1, seed=5, invalid_every=0, duplicates=0)


@attrs.frozen
class Scenario:
    """One kind of source, and how to break its connection for real."""

    folder: Path
    overrides: dict[str, Any]
    data: list[dict[str, Any]]
    """The rows as the source keeps them."""
    fault: Callable[[int], Callable[[Source], Source] | None]
    """Break the connection ``times`` times; returns how to wrap the source, if at all."""


@pytest.fixture(scope="module")
def mysql_proxy(mariadb: MariaDBServer) -> Iterator[ProxyProcess]:
    try:
        proxy = ProxyProcess(mariadb.host, mariadb.port)
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"cannot start the resetting proxy in front of MariaDB: {exc}", pytrace=False)
    yield proxy
    proxy.stop()


@pytest.fixture(params=["mysql-pymysql", "mysql-connectorx", "elasticsearch", "servicenow"])
def scenario(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scenario]:
    kind = request.param
    data = rows()
    if kind.startswith("mysql"):
        proxy: ProxyProcess = request.getfixturevalue("mysql_proxy")
        folder = mysql_pipeline(tmp_path / "lab", request.getfixturevalue("mariadb"), data, monkeypatch,
                                padding=400, port=proxy.port, retry=RETRY)

        def reset_mid_result(times: int) -> None:
            proxy.arm(after_bytes=300_000, times=times)  # the window's result is about 1.1 MB

        yield Scenario(folder, {"source_system.reader": kind.split("-")[1]}, data, reset_mid_result)
        proxy.disarm()
    elif kind == "elasticsearch":
        es = request.getfixturevalue("es")
        folder = es_pipeline(tmp_path / "lab", es, data, retry=RETRY)
        yield Scenario(folder, {"source_system.max_retries": 0}, data,
                       lambda times: lambda src: BreakAfter(src, 3, lambda: es.drop_next(1, path="_search"), times))
    else:
        sn = request.getfixturevalue("sn")
        folder = sn_pipeline(tmp_path / "lab", sn, data, monkeypatch, retry=RETRY)
        yield Scenario(folder, {}, whole_seconds(data), lambda times: lambda src: BreakAfter(src, 3, lambda: sn.cut_next(1), times))


def run(scenario: Scenario, wrap: Callable[[Source], Source] | None = None) -> Any:
    with Pipeline.load(scenario.folder, overrides=scenario.overrides or None) as pipeline:
        if wrap is not None:
            pipeline.use(source=wrap(pipeline.source()))
        return pipeline.runner().run(pipeline.grid.window_starting(WINDOW[0]))


def assert_exact(scenario: Scenario) -> None:
    expected = expected_target(scenario.data, *WINDOW)
    assert target_rows(scenario.folder, *WINDOW) == sorted((k, v["result"]) for k, v in expected.items())


class TestBrokenConnection:
    def test_a_connection_broken_once_is_retried_and_the_target_is_exact(self, scenario: Scenario) -> None:
        record = run(scenario, scenario.fault(1))
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases["source_to_stage_transfer"].error_message
        assert record.phases["source_to_stage_transfer"].retry_number == 1
        assert_exact(scenario)

    def test_a_connection_broken_every_time_fails_the_transfer_readably(self, scenario: Scenario) -> None:
        record = run(scenario, scenario.fault(100))
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "source_to_stage_transfer"
        state = record.phases["source_to_stage_transfer"]
        assert state.retry_number == RETRY["max_retries"]
        assert "gave up after 3 attempt(s)" in state.error_message
        assert "Traceback" not in state.error_message and len(state.error_message) < 1000, state.error_message

    def test_after_failing_for_good_the_next_run_resumes_the_window(self, scenario: Scenario) -> None:
        run(scenario, scenario.fault(100))
        scenario.fault(0)
        record = run(scenario)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.pipeline_retry_number == 1
        assert record.phases["source_count"].status.value == "COMPLETED", "the count runs again with the extract it is compared with"
        assert_exact(scenario)


class TestShortStream:
    def test_a_stream_ending_early_without_an_error_is_caught_by_the_audit(self, scenario: Scenario) -> None:
        record = run(scenario, lambda src: FaultySource(src, truncate_at_batch=10))
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "audit"
        assert "source -> stage lost" in record.phases["audit"].error_message

    def test_the_next_run_of_a_window_short_at_the_audit_loads_it_whole(self, scenario: Scenario) -> None:
        run(scenario, lambda src: FaultySource(src, truncate_at_batch=10))
        record = run(scenario)
        assert record.pipeline_status is RunStatus.SUCCESS, {n: s.error_message for n, s in record.phases.items() if s.error_message}
        assert_exact(scenario)
