"""Against the stock fakesnow server, unpatched, in a process of its own.

The suite's own wrapper (tests/servers/fakesnow_server.py) fixes fakesnow's encoding of NULL
timestamps (it sends 1970-01-01); that fix must not hide our own reliance on the driver's
NULLs. Here ``fakesnow -s`` runs as shipped: leases are decided on the server, so runs work,
and ``validate`` says what is wrong with the server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus

from .conftest import CREDENTIALS_REF
from .scenario import make_snowflake_pipeline, register_snowflake


class StockServer:
    """``fakesnow -s -p PORT`` as a child process; what the connector needs to reach it."""

    def __init__(self, port: int) -> None:
        self.port = port

    def options(self, database: str, schema: str = "PUBLIC") -> dict[str, Any]:
        return {
            "type": "snowflake", "account": "fakesnow", "host": "127.0.0.1", "port": self.port, "protocol": "http",
            "database": database, "schema": schema, "network_timeout": 1, "login_timeout": 10,
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StockServer]:
    script = Path(sys.executable).with_name("fakesnow")
    if not script.exists() and shutil.which("fakesnow") is None:
        pytest.fail("the fakesnow command is not installed: pip install -e '.[dev]'")
    port = _free_port()
    # its output (a line per request) goes to a file: into a pipe nobody reads, the server
    # blocked once the pipe's 64 KB were full, and the run talking to it hung
    log = tmp_path_factory.mktemp("stock-fakesnow") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(script if script.exists() else "fakesnow"), "-s", "-p", str(port)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the stock fakesnow server did not start on port {port}:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.1)
        yield StockServer(port)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def folder(tmp_path: Path, stock_server: StockServer, database: str, sf_env: dict[str, str]) -> Path:
    register_snowflake()
    return make_snowflake_pipeline(tmp_path / "lab", stock_server, database)  # type: ignore[arg-type]


class TestStockServer:
    def test_the_server_really_returns_null_timestamps_as_values(self, stock_server: StockServer, database: str) -> None:
        import snowflake.connector

        kwargs = {k: v for k, v in stock_server.options(database).items()
                  if k in ("account", "host", "port", "protocol", "database", "schema", "network_timeout")}
        with snowflake.connector.connect(user="fake", password="snow", **kwargs) as conn:
            value = conn.cursor().execute("SELECT CAST(NULL AS TIMESTAMP_TZ)").fetchone()[0]
        assert value is not None  # what the rest of this file is about

    def test_a_lease_taken_is_held_and_verified(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            store = pipeline.drive_store()
            store.ensure()
            window = pipeline.grid.first()
            lease = store.acquire_lease("lab", window.start, window.end, "host-a:1:x", 60)
            store.verify_lease(lease)
            assert store.current_lease("lab", window.start) == lease
            renewed = store.renew_lease(lease, 60)  # what the run's heartbeat does, on the server's clock
            store.verify_lease(renewed)
            assert store.current_lease("lab", window.start) == renewed
            store.release_lease(renewed)
            assert store.current_lease("lab", window.start) is None

    def test_a_run_succeeds(self, folder: Path) -> None:
        # No heartbeat during this short run: stock fakesnow fails the second of two sessions
        # updating one row at once ("Conflict on update!", HTTP 500; DuckDB's optimistic
        # concurrency) where Snowflake queues it behind the first's lock, so a heartbeat meeting
        # a phase's drive write failed the run about one time in three. The suite's wrapper
        # imitates the queue (TableLocks), and the heartbeat tests run there; the renewal itself
        # is checked on the stock server above.
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner(heartbeat_seconds=600).run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases[record.phase_failed or "audit"].error_message

    def test_validate_says_the_server_returns_null_timestamps_as_values(self, folder: Path) -> None:
        script = Path(sys.executable).with_name("drivetrain")
        done = subprocess.run([str(script), "validate", str(folder)], capture_output=True, text=True, timeout=120)
        assert "returns a NULL timestamp as" in done.stdout, done.stdout + done.stderr
        assert CREDENTIALS_REF  # credentials come from the environment (sf_env)

    def test_the_command_line_run_exits_0(self, folder: Path) -> None:
        script = Path(sys.executable).with_name("drivetrain")
        done = subprocess.run([str(script), "run", str(folder), "--window-start", "2025-11-15T00:00:00Z"],
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert done.stdout.startswith("SUCCESS"), done.stdout
