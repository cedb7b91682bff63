"""A real Airflow 3 deployment for slow tests and the catch-up benchmark: processes, not ``dag.test()``.

A temporary AIRFLOW_HOME with a SQLite metadata database, the DAG files the caller writes, and
the API server, DAG processor and scheduler (plus, for CeleryExecutor, workers) started as
processes of this interpreter. Commands that meet SQLite's "database is locked" while the
scheduler writes are tried again; the DAG runs and task instances are read straight from the
metadata database (no CLI start-up per poll).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from drivetrain import Pipeline, RunRecord

#: Airflow's command line, run by this interpreter (the console script may name another one).
AIRFLOW = [sys.executable, "-m", "airflow"]


class DeploymentError(AssertionError):
    """The deployment did not reach the state a test waited for; the message holds the logs."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_env(home: Path, *, executor: str = "LocalExecutor", parallelism: int = 2, **settings: str) -> dict[str, str]:
    """The environment of every Airflow process of a deployment in ``home`` (``dags/`` in it).

    :param settings: more ``AIRFLOW__SECTION__KEY`` values, as keyword arguments.
    """
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "PYTHONUNBUFFERED": "1",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        # SQLite waits 5 s for a lock by default; the scheduler, DAG processor, API server and task
        # processes of a busy machine hold it longer ("database is locked" mid-command).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": "drivetrain-test-secret",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        # Task processes talk to the API server; on a busy machine its answers take a while.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    })
    env.update(settings)
    return env


@attrs.frozen
class Deployment:
    home: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = attrs.field(factory=dict)
    """The processes started, by name (``scheduler``, ``worker1``...)."""

    @property
    def api_port(self) -> str:
        return self.env["AIRFLOW__API__PORT"]

    def airflow(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` command, again while SQLite says "database is locked"."""
        for _ in range(5):  # SQLite: the scheduler may hold the database for a moment ("database is locked")
            done = subprocess.run([*AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
            if done.returncode == 0 or "database is locked" not in done.stderr:
                break
            time.sleep(2)
        if check:
            assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def create_backfill(self, dag_id: str, *args: str, timeout: float = 600) -> None:
        """``airflow backfill create --dag-id DAG_ID ARGS``, again until a backfill of the DAG holds a DAG run.

        Airflow commits the backfill before it makes its DAG runs. When making them meets "database
        is locked", the backfill stays without a run (seen in CI: the test then waited for a run
        that never came), and every new ``create`` is refused (AlreadyRunningBackfill) until the
        scheduler marks that empty backfill complete; then it is created again.
        """
        deadline = time.monotonic() + timeout
        while True:
            done = self.airflow("backfill", "create", "--dag-id", dag_id, *args, check=False)
            if done.returncode == 0 or self._backfill_runs(dag_id):
                return
            if "AlreadyRunningBackfill" not in done.stderr or time.monotonic() > deadline:
                raise DeploymentError(f"airflow backfill create failed:\n{done.stdout}\n{done.stderr}\n{self.logs()}")
            time.sleep(2)

    def _backfill_runs(self, dag_id: str) -> int:
        """How many DAG runs the backfills of ``dag_id`` made."""
        rows = self.query("SELECT COUNT(*) AS runs FROM backfill b JOIN backfill_dag_run r ON r.backfill_id = b.id "
                          "WHERE b.dag_id = ? AND r.dag_run_id IS NOT NULL", dag_id)
        return int(rows[0]["runs"])

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of Airflow's metadata database (read only)."""
        with sqlite3.connect(f"file:{self.home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql, params)]

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG runs of ``dag_id`` in Airflow's metadata database."""
        return self.query("SELECT run_id, run_type, state, logical_date, start_date, end_date FROM dag_run "
                          "WHERE dag_id = ?", dag_id)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.home.glob("*.out")))

    def wait_until(self, what: str, read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 420) -> Any:
        """Poll ``read()`` every second until ``done`` says yes; fail with the process logs."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = read()
            except sqlite3.OperationalError:  # the table is not there yet, or locked for a moment
                value = None
            if value is not None and done(value):
                return value
            time.sleep(1)
        raise DeploymentError(f"timed out waiting for {what}; last seen: {value}\n{self.logs()}")

    def wait_for(self, what: str, done: Callable[[list[dict[str, Any]]], bool], *, dag_id: str,
                 timeout: float = 420) -> list[dict[str, Any]]:
        """Wait until the DAG runs of ``dag_id`` satisfy ``done``."""
        return self.wait_until(what, lambda: self.dag_runs(dag_id), done, timeout)

    def drive_rows(self, folder: Path) -> list[RunRecord]:
        """The drive table of the pipeline in ``folder``, oldest first."""
        with Pipeline.load(folder) as pipeline:
            return list(reversed(pipeline.drive_store().history(pipeline.name)))

    def start(self, *command: str, name: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """``airflow COMMAND`` as a process in its own session (so its whole tree can be killed),
        its output in ``HOME/NAME.out``."""
        name = name or command[0]
        log = (self.home / f"{name}.out").open("w")
        process = subprocess.Popen([*AIRFLOW, *command], env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=self.home, start_new_session=True)
        self.processes[name] = process
        return process


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def finished(runs: list[dict[str, Any]], count: int) -> bool:
    return len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs)


def kill_tree(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process and everything it started (its session's process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


@contextlib.contextmanager
def deployed(home: Path, env: dict[str, str], *, workers: int = 0) -> Iterator[Deployment]:
    """Migrate the database, serialise the DAGs, then run the API server, DAG processor and
    scheduler (and ``workers`` Celery workers, named ``worker1``...) until the block ends."""
    deployment = Deployment(home, env)
    deployment.airflow("db", "migrate", timeout=300)
    deployment.airflow("dags", "reserialize", timeout=300)
    try:
        deployment.start("api-server", "--port", deployment.api_port, "--workers", "1")
        # A task started before the API server listens fails at once ("connection refused").
        deployment.wait_until("the API server to listen", lambda: _listening(int(deployment.api_port)), bool,
                              timeout=300)
        deployment.start("dag-processor")
        deployment.start("scheduler")
        for number in range(1, workers + 1):
            name = f"worker{number}"
            deployment.start(
                "celery", "worker", "--concurrency", "1", "--celery-hostname", f"{name}@%h", "--skip-serve-logs",
                "--without-mingle", "--without-gossip", name=name,
                env={**env, "DRIVETRAIN_TEST_WORKER": name},
            )
        yield deployment
    finally:
        for process in deployment.processes.values():
            kill_tree(process, signal.SIGTERM)
        for process in deployment.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_tree(process)
                process.wait(timeout=30)


#: A pipeline whose stage-to-target transfer fails for the window named in the file
#: ``fail_window`` beside it: the tests fail a chosen window, then clear the file to resume it.
MARKED_PIPELINE = """
    from pathlib import Path

    from drivetrain import Pipeline, PermanentError, StageToTargetTransfer

    MARKER = Path(__file__).with_name("fail_window")


    class MarkedTransfer(StageToTargetTransfer):
        def run(self, ctx):
            if MARKER.exists() and MARKER.read_text().strip() == ctx.window.start.isoformat():
                raise PermanentError("injected failure: the target refused the load")
            return super().run(ctx)


    class MarkedLab(Pipeline):
        phase_classes = {"stage_to_target_transfer": MarkedTransfer}
"""
