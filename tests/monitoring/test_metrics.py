"""The six metrics and four dashboards, computed from a real drive table (see conftest.history)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from drivetrain.monitoring import metrics


@pytest.fixture(scope="module")
def computed(history):
    with history.pipeline() as pipeline:
        return metrics.compute(pipeline.drive_store(), ["lab"], days=7)


def one(items, **match):
    found = [i for i in items if all(getattr(i, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, items)
    return found[0]


class TestSuccessRate:
    def test_counts_each_outcome(self, computed):
        rate = one(computed.success_rates, pipeline="lab")
        assert (rate.runs, rate.succeeded, rate.skipped, rate.failed, rate.running) == (5, 2, 1, 2, 0)

    def test_skipped_runs_count_as_not_failing(self, computed):
        assert one(computed.success_rates, pipeline="lab").success_rate == pytest.approx(60.0)

    def test_average_run_length_covers_runs_that_did_not_fail(self, history, computed):
        ok = [r for r in history.runs if r.pipeline_status.value in ("SUCCESS", "SKIPPED")]
        expected = sum((r.pipeline_end_timestamp - r.pipeline_start_timestamp).total_seconds() for r in ok) / len(ok)
        assert one(computed.success_rates, pipeline="lab").avg_run_seconds == pytest.approx(expected, rel=1e-3)


class TestPhaseFailureRate:
    def test_failed_phases_are_counted_per_phase(self, computed):
        assert one(computed.phase_failures, phase="stage_to_target_transfer").failed == 1
        assert one(computed.phase_failures, phase="audit").failed == 1
        assert one(computed.phase_failures, phase="source_count").failed == 0

    def test_phases_carried_over_by_a_resumed_run_are_not_executions(self, computed):
        # the resumed run 3 skipped the load its failed attempt had completed
        load = one(computed.phase_failures, phase="source_to_stage_transfer")
        transfer = one(computed.phase_failures, phase="stage_to_target_transfer")
        assert (load.ran, transfer.ran) == (3, 4)

    def test_rate_is_failed_over_executions(self, computed):
        assert one(computed.phase_failures, phase="stage_to_target_transfer").failure_rate == pytest.approx(25.0)


class TestDurations:
    def test_expected_duration_is_read_from_the_runs(self, computed):
        load = one(computed.durations, phase="source_to_stage_transfer")
        assert (load.expected, load.expected_seconds, load.threshold) == ("5ms", 0.005, 2.0)

    def test_every_execution_over_the_multiplier_is_counted(self, computed):
        load = one(computed.durations, phase="source_to_stage_transfer")
        assert load.runs == 3 and load.over_threshold == 3
        assert load.avg_seconds >= 0.02 and load.avg_ratio >= 4.0

    def test_phases_within_their_expected_duration_are_not_over(self, computed):
        assert one(computed.durations, phase="audit").over_threshold == 0

    def test_phases_without_an_expected_duration_have_no_ratio(self, computed):
        count = one(computed.durations, phase="source_count")
        assert count.expected is None and count.avg_ratio is None and count.avg_seconds is not None


class TestCountMismatch:
    def test_audited_counts_add_up_over_every_audit(self, history, computed):
        audits = [r.phases["audit"].phase_specific_details for r in history.runs if r.phases["audit"].status.value in ("COMPLETED", "FAILED")]
        counts = one(computed.count_mismatches, pipeline="lab")
        assert counts.audits == len(audits) == 3
        assert counts.source_rows == sum(a["source_count"] for a in audits)
        assert counts.stage_rows == sum(a["stage_count"] for a in audits)
        assert counts.target_rows == sum(a["target_count"] for a in audits)

    def test_loss_percent_is_source_minus_stage_over_source(self, computed):
        counts = one(computed.count_mismatches, pipeline="lab")
        expected = (counts.source_rows - counts.stage_rows) * 100.0 / counts.source_rows
        assert counts.source_to_stage_loss_percent == pytest.approx(expected, abs=1e-3)
        assert counts.max_source_to_stage_loss_percent >= counts.avg_source_to_stage_loss_percent > 0

    def test_audit_pass_and_fail_are_counted(self, computed):
        counts = one(computed.count_mismatches, pipeline="lab")
        assert (counts.audits_passed, counts.audits_failed) == (2, 1)

    def test_rejected_rows_are_summed_over_completed_loads(self, history, computed):
        loads = [r.phases["source_to_stage_transfer"] for r in history.runs]
        rejected = sum(s.phase_specific_details["records_failed"] for s in loads if s.status.value == "COMPLETED")
        assert one(computed.count_mismatches, pipeline="lab").rejected == rejected > 0


class TestFreshness:
    def test_last_success_is_the_newest_run_that_did_not_fail(self, history, computed):
        fresh = one(computed.freshness, pipeline="lab")
        assert fresh.last_success_at == history.runs[3].pipeline_end_timestamp  # the skipped run
        assert fresh.data_through == history.runs[3].query_window_end_timestamp

    def test_data_is_stale_past_the_configured_threshold(self, history):
        with history.pipeline() as pipeline:
            later = metrics.compute(pipeline.drive_store(), ["lab"], now=datetime.now(UTC) + timedelta(hours=2))
        fresh = one(later.freshness, pipeline="lab")
        assert fresh.stale and fresh.threshold == "1h" and fresh.age_seconds > 3600

    def test_fresh_data_is_not_stale(self, computed):
        assert not one(computed.freshness, pipeline="lab").stale


class TestRetrySuccess:
    def test_failed_windows_that_a_later_run_completed_are_recovered(self, computed):
        retry = one(computed.retries, pipeline="lab")
        assert (retry.failed_windows, retry.recovered_windows, retry.still_failing) == (2, 1, 1)
        assert retry.retry_success_rate == pytest.approx(50.0)

    def test_in_phase_retries_of_transient_errors_are_counted(self, computed):
        retry = one(computed.retries, pipeline="lab")
        assert (retry.phase_retries, retry.phase_retries_recovered) == (1, 1)


class TestPeriod:
    def test_runs_before_the_period_are_left_out(self, history):
        with history.pipeline() as pipeline:
            later = metrics.compute(pipeline.drive_store(), since=datetime.now(UTC) + timedelta(minutes=5))
        assert later.success_rates == () and later.failed_runs == ()

    def test_freshness_and_latest_run_ignore_the_period(self, history):
        with history.pipeline() as pipeline:
            later = metrics.compute(pipeline.drive_store(), since=datetime.now(UTC) + timedelta(minutes=5))
        assert one(later.freshness, pipeline="lab").last_success_at is not None
        assert one(later.latest_runs, pipeline="lab").run_id == history.runs[-1].pipeline_id

    def test_other_pipelines_are_left_out_when_names_are_given(self, history):
        with history.pipeline() as pipeline:
            other = metrics.compute(pipeline.drive_store(), ["not_this_one"])
        assert other.pipelines == [] and other.latest_runs == ()


class TestDashboards:
    def test_health_is_red_when_the_latest_run_failed(self, history, computed):
        health = one(computed.health(), pipeline="lab")
        assert health.level == "alert"
        assert health.latest.run_id == history.runs[-1].pipeline_id and health.latest.phase_failed == "audit"
        assert "latest run failed at audit" in health.notes

    def test_health_is_green_for_a_pipeline_with_nothing_wrong(self):
        now = datetime.now(UTC)
        latest = metrics.LatestRun(pipeline="ok_pipe", run_id="r9", status="SUCCESS", started_at=now, ended_at=now,
                                   window_start=now, window_end=now, phase_failed=None, error_message=None,
                                   duration_multiplier=2.0, freshness_threshold="1h", alert_on_stale_data=True)
        rate = metrics.SuccessRate(pipeline="ok_pipe", runs=20, succeeded=20, skipped=0, failed=0, running=0,
                                   success_rate=100.0, avg_run_seconds=3.0)
        fresh = metrics.Freshness(pipeline="ok_pipe", last_success_at=now, data_through=now, age_seconds=5.0,
                                  threshold="1h", threshold_seconds=3600.0, stale=False, alert_on_stale_data=True)
        m = metrics.Metrics(generated_at=now, since=now - timedelta(days=7), sources=("x",), latest_runs=(latest,),
                            success_rates=(rate,), freshness=(fresh,))
        health = one(m.health(), pipeline="ok_pipe")
        assert (health.level, health.notes) == ("ok", ())

    def test_health_carries_the_failed_phase_error(self, computed):
        assert "source -> stage lost" in one(computed.health(), pipeline="lab").latest.error_message

    def test_failure_analysis_lists_failed_runs_with_phase_error_and_retry_result(self, history, computed):
        failed = {r.run_id: r for r in computed.failure_analysis()["failed_runs"]}
        transfer = failed[history.runs[1].pipeline_id]
        assert transfer.phase_failed == "stage_to_target_transfer" and "injected failure" in transfer.error_message
        assert transfer.recovered and not failed[history.runs[4].pipeline_id].recovered
        assert computed.failure_analysis()["failures_by_phase"] == {"stage_to_target_transfer": 1, "audit": 1}

    def test_performance_lists_phases_over_threshold(self, computed):
        assert [(d.pipeline, d.phase) for d in computed.performance()["over_threshold"]] == [("lab", "source_to_stage_transfer")]

    def test_daily_runs_are_grouped_by_target_date(self, computed):
        assert [(d.day.isoformat(), d.succeeded, d.skipped, d.failed) for d in computed.daily] == [("2025-11-15", 2, 1, 2)]

    def test_everything_is_json(self, computed):
        data = json.loads(json.dumps(computed.to_json()))
        assert set(data["dashboards"]) == {"pipeline_health", "failure_analysis", "performance", "data_quality"}
        assert data["success_rates"][0]["success_rate"] == pytest.approx(60.0)


class TestMerge:
    def test_metrics_of_two_drive_tables_combine(self, computed):
        other = metrics.Metrics(generated_at=computed.generated_at, since=computed.since, sources=("elsewhere",),
                                daily=(metrics.DailyRuns(day=computed.daily[0].day, succeeded=3, skipped=0, failed=0, running=0),))
        merged = computed.merge(other)
        assert merged.sources == (*computed.sources, "elsewhere")
        assert merged.daily[0].succeeded == computed.daily[0].succeeded + 3
        assert merged.success_rates == computed.success_rates
