"""Which window each kind of DAG run loads: a run's logical date is its window's start.

The rule is fed what Airflow itself produces: the DAG's own timetable for scheduled and
backfill runs, its manual inference for manual runs (from the trigger time, as ``airflow dags
trigger`` does, or from the logical date, as the REST API does), and Airflow's DagRun model in
the task context. Whole DAG runs go through ``dag.test()``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline
from drivetrain.airflow import (
    AIRFLOW_RUN_KEY,
    DagRunFacts,
    PipelineStartOperator,
    RunWindowError,
    window_for_run,
)
from tests.sdk.factory import DAY, make_pipeline_dir

from .conftest import run_dag

HOUR = timedelta(hours=1)
#: Instants the properties draw from: the pipelines' first year.
INSTANTS = st.datetimes(min_value=datetime(2025, 11, 15), max_value=datetime(2026, 11, 15), timezones=st.just(UTC))


@pytest.fixture(scope="module")
def hourly(tmp_path_factory) -> Pipeline:
    return Pipeline.load(make_pipeline_dir(tmp_path_factory.mktemp("hourly") / "lab"))


@pytest.fixture(scope="module")
def daily_berlin(tmp_path_factory) -> Pipeline:
    folder = make_pipeline_dir(
        tmp_path_factory.mktemp("daily") / "lab",
        dag_schedule={"frequency": "daily", "timezone": "Europe/Berlin", "start_date": "2025-11-15"},
        query_window={"type": "daily", "duration": "1d"},
    )
    return Pipeline.load(folder)


def timetable(pipeline: Pipeline):
    """Airflow's own timetable for the pipeline's DAG (the scheduler's side of it)."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    sched = pipeline.config.schedule
    return CronDataIntervalTimetable(sched.cron_expression, timezone=sched.timezone)


def scheduled_runs(pipeline: Pipeline, count: int) -> list[DagRunFacts]:
    """The first ``count`` runs Airflow's scheduler (or a backfill) makes for the pipeline."""
    from airflow.timetables.base import TimeRestriction

    sched = pipeline.config.schedule
    earliest = pendulum.datetime(sched.start_date.year, sched.start_date.month, sched.start_date.day, tz=sched.timezone)
    restriction = TimeRestriction(earliest=earliest, latest=None, catchup=True)
    runs, last = [], None
    for number in range(count):
        info = timetable(pipeline).next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        last = info.data_interval
        runs.append(DagRunFacts(
            run_type="scheduled" if number % 2 else "backfill", run_id=f"run{number}",
            logical_date=info.logical_date, data_interval_start=last.start, data_interval_end=last.end,
            run_after=info.run_after,
        ))
    return runs


def manual(pipeline: Pipeline, *, logical_date=None, triggered_at=None, conf=None, rest_api=False) -> DagRunFacts:
    """A manual run as Airflow makes it: the data interval inferred from the trigger time
    (``airflow dags trigger``) or from the logical date (REST API, UI, ``dags test``)."""
    triggered_at = triggered_at or datetime(2026, 12, 5, 8, 17, tzinfo=UTC)
    interval = None
    if logical_date is not None:
        interval = timetable(pipeline).infer_manual_data_interval(
            run_after=pendulum.instance(logical_date if rest_api else triggered_at))
    return DagRunFacts(
        run_type="manual", run_id="manual__x", logical_date=logical_date, run_after=triggered_at, conf=conf,
        data_interval_start=interval.start if interval else None, data_interval_end=interval.end if interval else None,
    )


class TestScheduledAndBackfillRuns:
    @pytest.mark.parametrize(("name", "count"), [("hourly", 60), ("daily_berlin", 150)])
    def test_consecutive_runs_load_consecutive_windows_none_skipped(self, request, name, count):
        """150 days from 2025-11-15 cross the change to summer time in Berlin (2026-03-29)."""
        pipeline = request.getfixturevalue(name)
        windows = [window_for_run(pipeline, facts)[0] for facts in scheduled_runs(pipeline, count)]
        assert windows[0] == pipeline.grid.first()
        assert all(pipeline.grid.next(a) == b for a, b in zip(windows, windows[1:], strict=False))

    def test_the_logical_date_of_each_run_is_its_window_start(self, daily_berlin):
        for facts in scheduled_runs(daily_berlin, 30):
            assert window_for_run(daily_berlin, facts)[0].start == facts.logical_date

    def test_an_interval_and_logical_date_that_disagree_fail_naming_both(self, hourly):
        facts = DagRunFacts(run_type="scheduled", logical_date=DAY + HOUR, data_interval_start=DAY,
                            data_interval_end=DAY + HOUR)
        with pytest.raises(RunWindowError, match=r"names two windows: .*2025-11-15T00:00.*logical date is 2025-11-15T01:00"):
            window_for_run(hourly, facts)


class TestManualRuns:
    def test_the_logical_date_is_the_window_start_whenever_it_was_triggered(self, hourly):
        """The reported case: --logical-date 2025-01-01T10:00 loaded the current window."""
        start = datetime(2025, 11, 16, 10, tzinfo=UTC)
        for rest_api in (False, True):
            window, rule = window_for_run(hourly, manual(hourly, logical_date=start, rest_api=rest_api))
            assert (window.start, window.end) == (start, start + HOUR)
            assert "logical date" in rule

    @settings(max_examples=60, deadline=None)
    @given(instant=INSTANTS, triggered=INSTANTS)
    def test_any_window_start_loads_that_window_property(self, daily_berlin, instant, triggered):
        wanted = daily_berlin.grid.window_at(instant)
        facts = manual(daily_berlin, logical_date=wanted.start, triggered_at=triggered)
        assert window_for_run(daily_berlin, facts)[0] == wanted

    def test_a_logical_date_between_window_starts_fails_naming_the_window_start(self, hourly):
        with pytest.raises(RunWindowError, match=r"2025-11-16T10:30:00\+00:00 is not the start of a window.*"
                                                 r"use 2025-11-16T10:00:00\+00:00"):
            window_for_run(hourly, manual(hourly, logical_date=datetime(2025, 11, 16, 10, 30, tzinfo=UTC)))

    @settings(max_examples=60, deadline=None)
    @given(triggered=INSTANTS)
    def test_without_a_logical_date_the_latest_window_ended_at_the_trigger_loads_property(self, daily_berlin, triggered):
        window, _ = window_for_run(daily_berlin, manual(daily_berlin, triggered_at=triggered))
        assert window.end <= triggered < daily_berlin.grid.next(window).end

    def test_conf_window_start_names_the_window(self, hourly):
        facts = manual(hourly, conf={"window_start": "2025-11-16T10:00:00Z"})
        window, rule = window_for_run(hourly, facts)
        assert window.start == datetime(2025, 11, 16, 10, tzinfo=UTC) and rule == "conf window_start"

    def test_conf_without_an_offset_is_read_in_the_schedule_zone(self, daily_berlin):
        window, _ = window_for_run(daily_berlin, manual(daily_berlin, conf={"window_start": "2025-11-20"}))
        assert window.start == datetime(2025, 11, 19, 23, tzinfo=UTC)

    def test_conf_and_logical_date_naming_different_windows_fail(self, hourly):
        facts = manual(hourly, logical_date=DAY, conf={"window_start": "2025-11-15T05:00:00Z"})
        with pytest.raises(RunWindowError, match="names two windows: conf window_start .* logical date is 2025-11-15T00:00"):
            window_for_run(hourly, facts)

    def test_conf_that_is_not_a_timestamp_fails_saying_what_to_give(self, hourly):
        with pytest.raises(RunWindowError, match="conf window_start: 5 is not a timestamp; give ISO 8601"):
            window_for_run(hourly, manual(hourly, conf={"window_start": 5}))
        with pytest.raises(RunWindowError, match="conf window_start: 'yesterday' is not a timestamp"):
            window_for_run(hourly, manual(hourly, conf={"window_start": "yesterday"}))


class TestFromContext:
    """The facts come from Airflow's own DagRun model, as the task runner builds the context."""

    @staticmethod
    def dag_run(run_type: str, logical_date, start, end, conf=None):
        from airflow.sdk.api.datamodels._generated import DagRun

        return DagRun(
            dag_id="pipeline_lab", run_id=f"{run_type}__1", logical_date=logical_date, data_interval_start=start,
            data_interval_end=end, run_after=end or DAY, start_date=None, end_date=None, run_type=run_type,
            state="running", conf=conf, consumed_asset_events=[], partition_key=None,
        )

    def test_the_row_records_the_dag_run(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "lab")
        run = self.dag_run("backfill", DAY + HOUR, DAY + HOUR, DAY + 2 * HOUR)
        run_id = PipelineStartOperator(task_id="initialize_pipeline", pipeline=folder).execute({"dag_run": run})
        with Pipeline.load(folder) as pipeline:
            record = pipeline.drive_store().get(run_id)
        assert record.query_window_start_timestamp == DAY + HOUR
        recorded = record.config_snapshot[AIRFLOW_RUN_KEY]
        assert recorded["run_id"] == "backfill__1" and recorded["run_type"] == "backfill"
        assert recorded["logical_date"] == (DAY + HOUR).isoformat() and recorded["dag_id"] == "pipeline_lab"

    def test_a_manual_run_whose_interval_came_from_the_trigger_time_loads_its_logical_date(self, tmp_path):
        folder = make_pipeline_dir(tmp_path / "lab")
        late = datetime(2026, 12, 5, 7, tzinfo=UTC)
        run = self.dag_run("manual", DAY + 3 * HOUR, late, late + HOUR)
        run_id = PipelineStartOperator(task_id="initialize_pipeline", pipeline=folder).execute({"dag_run": run})
        with Pipeline.load(folder) as pipeline:
            (record,) = pipeline.drive_store().history("lab")
        assert record.pipeline_id == run_id and record.query_window_start_timestamp == DAY + 3 * HOUR
        assert record.config_snapshot[AIRFLOW_RUN_KEY]["data_interval"] == [late.isoformat(), (late + HOUR).isoformat()]

    def test_a_disagreement_fails_the_task_before_any_row_is_written(self, tmp_path):
        from airflow.sdk.exceptions import AirflowFailException

        folder = make_pipeline_dir(tmp_path / "lab")
        run = self.dag_run("scheduled", DAY, DAY + HOUR, DAY + 2 * HOUR)
        with pytest.raises(AirflowFailException, match="names two windows"):
            PipelineStartOperator(task_id="initialize_pipeline", pipeline=folder).execute({"dag_run": run})
        with Pipeline.load(folder) as pipeline:
            assert pipeline.drive_store().history("lab") == []


class TestManualDagRuns:
    """``dag.test()`` makes real manual DAG runs."""

    def rows(self, deployed):
        with Pipeline.load(deployed.folder) as pipeline:
            return list(reversed(pipeline.drive_store().history(deployed.name)))

    def test_a_logical_date_loads_the_window_it_starts_and_the_row_names_the_run(self, deploy):
        deployed = deploy("af_manual")
        result = run_dag(deployed, DAY + 5 * HOUR)
        assert result.state == "success", result.tasks
        (row,) = self.rows(deployed)
        assert (row.query_window_start_timestamp, row.query_window_end_timestamp) == (DAY + 5 * HOUR, DAY + 6 * HOUR)
        recorded = row.config_snapshot[AIRFLOW_RUN_KEY]
        assert recorded["run_type"] == "manual" and recorded["run_id"].startswith("manual__")

    def test_conf_window_start_without_a_logical_date(self, deploy):
        deployed = deploy("af_conf")
        result = run_dag(deployed, None, run_after=DAY + 30 * HOUR, conf={"window_start": "2025-11-15T07:00:00Z"})
        assert result.state == "success", result.tasks
        (row,) = self.rows(deployed)
        assert row.query_window_start_timestamp == DAY + 7 * HOUR

    def test_no_logical_date_loads_the_latest_window_ended_at_the_trigger(self, deploy):
        deployed = deploy("af_latest")
        result = run_dag(deployed, None, run_after=DAY + 9 * HOUR + timedelta(minutes=20))
        assert result.state == "success", result.tasks
        (row,) = self.rows(deployed)
        assert (row.query_window_start_timestamp, row.query_window_end_timestamp) == (DAY + 8 * HOUR, DAY + 9 * HOUR)

    def test_a_logical_date_between_window_starts_fails_the_dag_run_and_loads_nothing(self, deploy):
        deployed = deploy("af_between")
        result = run_dag(deployed, DAY + 5 * HOUR + timedelta(minutes=30))
        assert result.state == "failed"
        assert result.tasks["initialize_pipeline"] == "failed"
        assert self.rows(deployed) == []
