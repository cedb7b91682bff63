"""Scale-out on CeleryExecutor: two workers as processes, the drive table in Snowflake (fakesnow).

One scenario, run once: a Redis broker (Debian's redis-server), the API server, DAG processor
and scheduler, and two Celery workers of one slot each. Three pipelines (files -> Snowflake
stage and target; the drive table in the same Snowflake database, shared by every worker), each
with two hourly windows made by Airflow's catchup, DAG shape "window". The first window of the
first pipeline holds in source_to_stage_transfer until the test has SIGKILLed the worker running
it (the whole worker: its Celery processes and the task); Airflow sees the task's heartbeat
stop, fails the try and retries it, necessarily on the other worker; the new attempt takes the
dead holder's lease over, closes its row as failed, and loads the window.

At the end every window has exactly one successful run, its target holds each valid row once,
and both workers ran tasks.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from drivetrain import RunRecord, RunStatus
from drivetrain.airflow import AIRFLOW_RUN_KEY
from tests.connectors.snowflake.conftest import CREDENTIALS_REF, ENV, sf_rows
from tests.sdk.factory import BASE_CONFIG, DAY, expected_target, make_pipeline_dir, make_rows
from tests.servers.fakesnow_server import FakeSnowServer

from .deployment import Deployment, airflow_env, deployed, finished, free_port, kill_tree

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

HOUR = timedelta(hours=1)
PIPELINES = ("cel_a", "cel_b", "cel_c")
WINDOWS = [DAY, DAY + HOUR]
DATABASE = "AIRFLOW_CELERY"

HOLDING_PIPELINE = """
    import os
    import time
    from pathlib import Path

    from drivetrain import Pipeline, SourceToStageTransfer

    HOLD = Path(__file__).with_name("hold")
    HELD = Path(__file__).with_name("held")


    class HoldingTransfer(SourceToStageTransfer):
        def run(self, ctx):
            if HOLD.exists():  # until the test kills this worker
                HELD.write_text(f"{os.getpid()} {os.environ.get('DRIVETRAIN_TEST_WORKER')}")
                deadline = time.monotonic() + 240
                while HOLD.exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
            return super().run(ctx)


    class HoldingLab(Pipeline):
        phase_classes = {"source_to_stage_transfer": HoldingTransfer}
"""

#: The task instance's hostname is the worker's name, so the test can tell the workers apart.
WORKER_NAME = """
    import os
    import socket


    def hostname():
        return os.environ.get("DRIVETRAIN_TEST_WORKER") or socket.getfqdn()
"""


def snowflake_pipeline(root: Path, server: FakeSnowServer, name: str) -> Path:
    connection = {**server.options(DATABASE), "credentials_ref": CREDENTIALS_REF}
    stage = {**copy.deepcopy(BASE_CONFIG["stage_system"]), **connection, "table": f"stg_{name}"}
    stage.pop("path")
    target = {**copy.deepcopy(BASE_CONFIG["target_system"]), **connection, "table": name}
    target.pop("path")
    return make_pipeline_dir(
        root / name, make_rows(), stage_system=stage, target_system=target,
        pipeline_metadata__pipeline_name=name, dag_schedule__catchup=True,
    )


@attrs.frozen
class Outcome:
    deployment: Deployment
    folders: dict[str, Path]
    runs: dict[str, list[dict[str, Any]]]
    killed: str
    """The worker that was running the held task when it was killed."""
    tries: list[dict[str, Any]]
    """Every try of every task: dag_id, try_number, hostname, state."""
    rows: dict[str, list[RunRecord]]

    def attempts(self, name: str, start: Any) -> list[RunRecord]:
        return [r for r in self.rows[name] if r.query_window_start_timestamp == start]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(server):
        pytest.fail("redis-server is not installed: run scripts/install-test-servers (Debian package redis-server)")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.5)
        assert process.poll() is None, "redis-server exited at start"
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, fakesnow_server: FakeSnowServer, redis_url: str) -> Iterator[Outcome]:
    home = tmp_path_factory.mktemp("airflow-celery")
    (home / "dags").mkdir()
    (home / "lib").mkdir()
    (home / "lib" / "drivetrain_test_worker_name.py").write_text(textwrap.dedent(WORKER_NAME))
    folders = {name: snowflake_pipeline(home / "pipelines", fakesnow_server, name) for name in PIPELINES}
    held = folders[PIPELINES[0]]
    (held / "pipeline.py").write_text(textwrap.dedent(HOLDING_PIPELINE))
    (held / "hold").touch()
    for name, folder in folders.items():
        (home / "dags" / f"{name}_dag.py").write_text(textwrap.dedent(f"""
            from datetime import datetime, timedelta, timezone

            from drivetrain.airflow import build_dag

            dag = build_dag({str(folder)!r}, shape="window", end_date=datetime(2025, 11, 15, 1, tzinfo=timezone.utc),
                            default_args={{"retries": 1, "retry_delay": timedelta(seconds=2)}})
        """))
    env = airflow_env(
        home, executor="CeleryExecutor", parallelism=4,
        PYTHONPATH=os.pathsep.join(filter(None, [str(home / "lib"), os.environ.get("PYTHONPATH")])),
        AIRFLOW__CORE__HOSTNAME_CALLABLE="drivetrain_test_worker_name.hostname",
        AIRFLOW__CELERY__BROKER_URL=f"{redis_url}/0",
        AIRFLOW__CELERY__RESULT_BACKEND=f"{redis_url}/1",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="15",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2",
        **ENV,
    )
    with pytest.MonkeyPatch.context() as patch, deployed(home, env, workers=2) as deployment:
        for key, value in ENV.items():  # this process reads the drive table too
            patch.setenv(key, value)
        for name in PIPELINES:
            deployment.airflow("dags", "unpause", f"pipeline_{name}")
        text = deployment.wait_until("the held task to start", lambda: (held / "held").read_text()
                                     if (held / "held").exists() else None, bool, timeout=240)
        pid, killed = text.split()
        (held / "hold").unlink()
        kill_tree(deployment.processes[killed])
        if _alive(int(pid)):  # in case the task process left the worker's process group
            os.kill(int(pid), signal.SIGKILL)
        runs = {name: deployment.wait_for(f"the DAG runs of {name}", lambda r: finished(r, len(WINDOWS)),
                                          dag_id=f"pipeline_{name}", timeout=300) for name in PIPELINES}
        tries = deployment.query(
            "SELECT dag_id, try_number, hostname, state FROM task_instance UNION ALL "
            "SELECT dag_id, try_number, hostname, state FROM task_instance_history")
        rows = {name: deployment.drive_rows(folder) for name, folder in folders.items()}
        yield Outcome(deployment, folders, runs, killed, tries, rows)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class TestCelery:
    def test_every_dag_run_succeeds(self, outcome):
        for name, runs in outcome.runs.items():
            assert sorted((r["logical_date"][:16], r["state"]) for r in runs) == [
                ("2025-11-15 00:00", "success"), ("2025-11-15 01:00", "success")], (name, runs)

    def test_each_window_has_exactly_one_successful_run_and_its_rows_once(self, outcome, fakesnow_server):
        for name in PIPELINES:
            for start in WINDOWS:
                successes = [r for r in outcome.attempts(name, start) if r.pipeline_status is RunStatus.SUCCESS]
                assert len(successes) == 1, (name, start, outcome.attempts(name, start))
            expected = sorted((k, v["result"]) for k, v in expected_target(make_rows(), DAY, DAY + 2 * HOUR).items())
            assert _target(fakesnow_server, name) == expected, name

    def test_both_workers_ran_tasks(self, outcome):
        assert {t["hostname"] for t in outcome.tries if t["hostname"]} == {"worker1", "worker2"}, outcome.tries

    def test_the_killed_task_was_retried_on_the_other_worker_and_resumed_the_window(self, outcome):
        tries = sorted((t["try_number"], t["hostname"], t["state"]) for t in outcome.tries
                       if t["dag_id"] == f"pipeline_{PIPELINES[0]}" and t["hostname"] == outcome.killed)
        assert tries, outcome.tries
        dead, resumed = outcome.attempts(PIPELINES[0], DAY)
        assert dead.pipeline_status is RunStatus.FAILED and dead.phase_failed == "source_to_stage_transfer"
        assert "closed as FAILED by a later run" in dead.phases["source_to_stage_transfer"].error_message
        assert resumed.pipeline_status is RunStatus.SUCCESS and resumed.pipeline_retry_number == 1
        assert dead.config_snapshot[AIRFLOW_RUN_KEY]["run_id"] == resumed.config_snapshot[AIRFLOW_RUN_KEY]["run_id"]
        other = {t["hostname"] for t in outcome.tries if t["dag_id"] == f"pipeline_{PIPELINES[0]}"
                 and t["state"] == "success" and t["hostname"] != outcome.killed}
        assert other, outcome.tries


def _target(server: FakeSnowServer, name: str) -> list[tuple[str, str]]:
    return [tuple(r) for r in sf_rows(server, DATABASE, f'SELECT "test_id", "result" FROM {name.upper()} ORDER BY 1')]

