"""A real Airflow 3 deployment on LocalExecutor: scheduler, DAG processor and API server processes.

One scenario, run once (about five minutes): a daily pipeline whose ``start_date`` is two days
ago. While the DAG is still paused, a manual run is triggered with conf ``window_start`` five
days back (and no logical date). Then the DAG is unpaused with catchup, so the scheduler makes
the runs of the last two days; the first of them fails (a marker file makes
stage_to_target_transfer fail for that window). A manual trigger with the logical date of
yesterday is refused by Airflow, since that window has its DAG run. Then the marker goes, the
failed DAG run is cleared, and a backfill with ``--reprocess-behavior completed`` is created
for yesterday. The drive table must hold exactly the windows those runs name. A second DAG,
without catchup, gets a manual trigger with a logical date four days back (the reported case:
it loaded the current window): it must load the window that date starts; a trigger before its
start date is refused by `airflow dags trigger` instead of ending "success" with no task.

Two Airflow traps decide the shape (see docs/airflow.md): a manual run whose logical date is
before the DAG's start date gets no task instances and ends "success" at once; and a manual run
with a logical date the scheduler has not reached yet makes the scheduler compute its next run
from that manual run's data interval (the trigger time), skipping the windows in between.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from drivetrain import RunRecord, RunStatus
from drivetrain.airflow import AIRFLOW_RUN_KEY
from tests.sdk.factory import make_pipeline_dir, make_rows

from .deployment import AIRFLOW, MARKED_PIPELINE, airflow_env, deployed, finished

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DAY = timedelta(days=1)
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
FAILING = TODAY - 2 * DAY
YESTERDAY = TODAY - DAY
MANUAL = TODAY - 5 * DAY
DAG_ID = "pipeline_af_sched"
#: A second DAG, without catchup: the reported case of a manual trigger with an old logical date.
LATEST_DAG_ID = "pipeline_af_latest"
OLD = TODAY - 4 * DAY


@attrs.frozen
class Deployment:
    """The deployment, and the folder of the pipeline with catchup."""

    base: Any
    folder: Path

    @property
    def env(self) -> dict[str, str]:
        return self.base.env

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.base.airflow(*args, timeout=timeout)

    def dag_runs(self, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        return self.base.dag_runs(dag_id)

    def wait_for(self, what: str, done: Any, timeout: float = 900, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        return self.base.wait_for(what, done, dag_id=dag_id, timeout=timeout)

    def drive_rows(self, name: str = "af_sched") -> list[RunRecord]:
        return self.base.drive_rows(self.base.home / "pipelines" / name)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    rows = [row for start, prefix in ((FAILING, "F"), (YESTERDAY, "Y"), (MANUAL, "M"))
            for row in make_rows(40, start=start, hours=24, prefix=prefix, invalid_every=0, duplicates=0)]
    folder = make_pipeline_dir(
        home / "pipelines" / "af_sched", rows,
        pipeline_metadata__pipeline_name="af_sched",
        dag_schedule={"frequency": "daily", "timezone": "UTC", "start_date": FAILING.date().isoformat(), "catchup": True},
        query_window={"type": "daily", "duration": "1d"},
    )
    (folder / "pipeline.py").write_text(textwrap.dedent(MARKED_PIPELINE))
    (folder / "fail_window").write_text(FAILING.isoformat())
    latest = make_pipeline_dir(
        home / "pipelines" / "af_latest", make_rows(40, start=OLD, hours=24, invalid_every=0, duplicates=0),
        pipeline_metadata__pipeline_name="af_latest",
        dag_schedule={"frequency": "daily", "timezone": "UTC", "start_date": (TODAY - 5 * DAY).date().isoformat(),
                      "catchup": False},
        query_window={"type": "daily", "duration": "1d"},
    )
    for pipeline_folder in (folder, latest):
        (home / "dags" / f"{pipeline_folder.name}_dag.py").write_text(
            f"from drivetrain.airflow import build_dag\n\ndag = build_dag({str(pipeline_folder)!r})\n")
    with deployed(home, airflow_env(home)) as base:
        yield Deployment(base, folder)


@attrs.frozen
class Outcome:
    first: list[dict[str, Any]]
    """DAG runs after catch-up and the manual trigger."""
    second: list[dict[str, Any]]
    """DAG runs after the clear and the backfill."""
    rows: list[RunRecord]
    """The drive table at the end, oldest first."""
    refused: subprocess.CompletedProcess[str]
    """The manual trigger of a window that already has its DAG run."""
    latest_runs: list[dict[str, Any]]
    """The DAG runs of the DAG without catchup."""
    latest_rows: list[RunRecord]
    """Its drive table."""
    too_early: subprocess.CompletedProcess[str]
    """A manual trigger of that DAG with a logical date before its start date."""
    latest_runs_after: list[dict[str, Any]]
    """That DAG's runs after it."""

    def attempts(self, start: datetime) -> list[RunRecord]:
        return [r for r in self.rows if r.query_window_start_timestamp == start]


@pytest.fixture(scope="module")
def outcome(deployment: Deployment) -> Outcome:
    deployment.airflow("dags", "trigger", DAG_ID, "--conf", json.dumps({"window_start": MANUAL.isoformat()}))
    deployment.airflow("dags", "trigger", LATEST_DAG_ID, "--logical-date", OLD.isoformat())
    deployment.airflow("dags", "unpause", DAG_ID)
    deployment.airflow("dags", "unpause", LATEST_DAG_ID)
    first = deployment.wait_for("catch-up and the manual run", lambda runs: finished(runs, 3))
    latest = deployment.wait_for("the DAG without catchup", lambda runs: finished(runs, 2), dag_id=LATEST_DAG_ID)
    refused = subprocess.run([*AIRFLOW, "dags", "trigger", DAG_ID, "--logical-date", YESTERDAY.isoformat()],
                             env=deployment.env, capture_output=True, text=True, timeout=180)
    too_early = subprocess.run([*AIRFLOW, "dags", "trigger", LATEST_DAG_ID, "--logical-date", (OLD - 3 * DAY).isoformat()],
                               env=deployment.env, capture_output=True, text=True, timeout=180)
    (deployment.folder / "fail_window").unlink()
    deployment.airflow("tasks", "clear", DAG_ID, "--start-date", FAILING.isoformat(), "--end-date",
                       FAILING.isoformat(), "--yes")
    deployment.base.create_backfill(DAG_ID, "--from-date", YESTERDAY.isoformat(), "--to-date", YESTERDAY.isoformat(),
                                    "--reprocess-behavior", "completed")
    rows_done = lambda runs: finished(runs, 3) and len(deployment.drive_rows()) >= 5  # noqa: E731
    second = deployment.wait_for("the cleared run and the backfill", rows_done)
    return Outcome(first, second, deployment.drive_rows(), refused, latest, deployment.drive_rows("af_latest"), too_early,
                   deployment.dag_runs(LATEST_DAG_ID))


class TestRealScheduler:
    def test_catch_up_and_the_manual_run_end_as_expected(self, outcome):
        states = sorted((r["run_type"], (r["logical_date"] or "")[:10], r["state"]) for r in outcome.first)
        assert states == [
            ("manual", "", "success"),
            ("scheduled", FAILING.date().isoformat(), "failed"),
            ("scheduled", YESTERDAY.date().isoformat(), "success"),
        ], outcome.first

    def test_the_drive_table_holds_exactly_the_windows_the_runs_name(self, outcome):
        windows = sorted({(r.query_window_start_timestamp, r.query_window_end_timestamp) for r in outcome.rows})
        assert windows == [(MANUAL, MANUAL + DAY), (FAILING, FAILING + DAY), (YESTERDAY, TODAY)]

    def test_the_manual_run_loaded_the_window_its_conf_names(self, outcome):
        (row,) = outcome.attempts(MANUAL)
        assert row.pipeline_status is RunStatus.SUCCESS
        recorded = row.config_snapshot[AIRFLOW_RUN_KEY]
        assert recorded["run_type"] == "manual" and recorded["conf_window_start"] == MANUAL.isoformat()
        assert recorded["logical_date"] is None and recorded["window_rule"] == "conf window_start"

    def test_a_manual_trigger_with_an_old_logical_date_loads_that_window_not_the_current_one(self, outcome):
        """The reported case: --logical-date 2025-01-01T10:00 loaded the current window."""
        assert sorted((r["run_type"], r["state"]) for r in outcome.latest_runs) == [("manual", "success"),
                                                                                ("scheduled", "success")]
        windows = {r.config_snapshot[AIRFLOW_RUN_KEY]["run_type"]: r.query_window_start_timestamp for r in outcome.latest_rows}
        assert windows == {"manual": OLD, "scheduled": YESTERDAY}
        assert len(outcome.latest_rows) == 2

    def test_a_manual_trigger_before_the_start_date_is_refused_not_marked_successful(self, outcome):
        assert outcome.too_early.returncode != 0
        assert "should be >= start_date" in outcome.too_early.stdout + outcome.too_early.stderr
        assert len(outcome.latest_runs_after) == 2

    def test_a_manual_run_of_a_window_that_has_its_dag_run_is_refused(self, outcome):
        assert outcome.refused.returncode != 0, outcome.refused.stdout
        assert len(outcome.attempts(YESTERDAY)) == 2  # the scheduled run and the backfill, nothing else

    def test_the_cleared_run_resumed_its_failed_window(self, outcome):
        failed, resumed = outcome.attempts(FAILING)
        assert failed.pipeline_status is RunStatus.FAILED and failed.phase_failed == "stage_to_target_transfer"
        assert resumed.pipeline_status is RunStatus.SUCCESS and resumed.pipeline_retry_number == 1
        assert resumed.phases["source_count"].carried_from == failed.pipeline_id
        assert failed.config_snapshot[AIRFLOW_RUN_KEY]["run_id"] == resumed.config_snapshot[AIRFLOW_RUN_KEY]["run_id"]

    def test_the_backfill_reloaded_its_own_window_and_left_the_manual_run_alone(self, outcome):
        scheduled, backfilled = outcome.attempts(YESTERDAY)
        assert scheduled.config_snapshot[AIRFLOW_RUN_KEY]["run_type"] == "scheduled"
        assert backfilled.config_snapshot[AIRFLOW_RUN_KEY]["run_type"] == "backfill"
        assert backfilled.pipeline_status is RunStatus.SUCCESS
        assert len(outcome.attempts(MANUAL)) == 1

    def test_every_dag_run_ended_successfully(self, outcome):
        assert all(r["state"] == "success" for r in outcome.second), json.dumps(outcome.second, default=str)
