"""Result alerts end to end: the success summary, the low-success-rate alert (per pipeline and
for the fleet), through the real hooks to the local SMTP and webhook servers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from drivetrain import Pipeline, RunRecord, RunStatus
from drivetrain.durations import LOAD_RATE
from drivetrain.monitoring.cli import report_command
from drivetrain.monitoring.plugin import notify_result
from drivetrain.monitoring.run_alerts import check_success_rate, fleet_success_alert, rate_of
from drivetrain.testing import FaultPlugin

from .conftest import make_folder
from .servers import SmtpServer


def run(folder: Path, index: int, *, fail: str | None = None, **overrides: object) -> RunRecord:
    with Pipeline.load(folder, overrides=overrides or None) as pipeline:
        window = pipeline.grid.first()
        for _ in range(index):
            window = pipeline.grid.next(window)
        if fail is None:
            return pipeline.runner().run(window)
        with FaultPlugin(fail={fail: 1}).installed():
            return pipeline.runner().run(window)


def kinds(smtp: SmtpServer) -> list[str]:
    """Alert kinds received, leaving out duration alerts (the test pipeline's load is slow on purpose)."""
    return [m.message["X-Drivetrain-Alert"] for m in smtp.received if m.message["X-Drivetrain-Alert"] != "duration"]


def mail(smtp: SmtpServer, kind: str):  # type: ignore[no-untyped-def]
    [found] = [m for m in smtp.received if m.message["X-Drivetrain-Alert"] == kind]
    return found


class TestSuccessSummary:
    def test_a_successful_run_sends_its_summary_when_asked(self, tmp_path, notify_env, alerting, smtp, webhook):
        folder = make_folder(tmp_path / "lab", monitoring__notify_on_success=True)
        record = run(folder, 0)
        assert record.pipeline_status is RunStatus.SUCCESS
        summary = mail(smtp, "success_summary")
        assert "lab SUCCESS, window [2025-11-15 00:00:00Z, 2025-11-15 01:00:00Z)" in summary.message["Subject"]
        target = record.phases["target_count"].phase_specific_details["count"]
        assert f"Target count: {target}" in " ".join(summary.body.split()) and "records/s" in summary.body
        assert summary.recipients == ["owner@example.com", "oncall@example.com"]
        assert any("SUCCESS" in p["text"] for p in webhook.payloads())

    def test_no_summary_by_default(self, tmp_path, notify_env, alerting, smtp):
        run(make_folder(tmp_path / "lab"), 0)
        assert "success_summary" not in kinds(smtp)

    def test_the_load_rate_is_stored_in_the_transfer_details(self, tmp_path):
        record = run(make_folder(tmp_path / "lab"), 0)
        for phase in ("source_to_stage_transfer", "stage_to_target_transfer"):
            rate = record.phases[phase].phase_specific_details[LOAD_RATE]
            assert isinstance(rate, float) and rate > 0


class TestLowSuccessRate:
    def test_the_failure_that_takes_the_rate_below_the_threshold_alerts_once(self, tmp_path, notify_env, alerting, smtp, webhook):
        folder = make_folder(tmp_path / "lab")
        run(folder, 0)
        run(folder, 1, fail="stage_to_target_transfer")  # 1 of 2: 50% < 90%
        rate = mail(smtp, "low_success_rate")
        assert "lab: success rate 50.0% over the last 7d, below 90%" in rate.message["Subject"]
        run(folder, 2, fail="stage_to_target_transfer")  # still below: no second alert
        assert kinds(smtp).count("low_success_rate") == 1
        assert kinds(smtp).count("failure") == 2
        assert any("success rate 50.0%" in p["text"] for p in webhook.payloads())

    def test_the_threshold_is_configurable(self, tmp_path, notify_env, alerting, smtp):
        folder = make_folder(tmp_path / "lab", monitoring__success_rate_threshold=40)
        run(folder, 0)
        run(folder, 1, fail="stage_to_target_transfer")  # 50% is not below 40%
        assert "low_success_rate" not in kinds(smtp)

    def test_it_can_be_turned_off(self, tmp_path, notify_env, alerting, smtp):
        folder = make_folder(tmp_path / "lab", monitoring__alert_on_low_success_rate=False)
        run(folder, 0)
        run(folder, 1, fail="stage_to_target_transfer")
        assert kinds(smtp) == ["failure"]

    def test_a_failure_a_retry_fixed_does_not_count_against_the_rate(self, tmp_path):
        folder = make_folder(tmp_path / "lab")
        run(folder, 0)
        run(folder, 1, fail="stage_to_target_transfer")
        run(folder, 1)
        with Pipeline.load(folder) as pipeline:
            since = pipeline.grid.first().start - timedelta(days=3650)
            assert rate_of(pipeline, since).percent == 100.0
            assert check_success_rate(pipeline) is None

    def test_notify_result_returns_what_it_sends_for_a_failed_run(self, tmp_path):
        folder = make_folder(tmp_path / "lab")
        run(folder, 0)
        failed = run(folder, 1, fail="stage_to_target_transfer")
        with Pipeline.load(folder) as pipeline:
            alerts = notify_result(failed, pipeline, send=False)
        assert [a.kind for a in alerts] == ["failure", "low_success_rate"]


class TestFleet:
    def test_report_send_alerts_alerts_for_the_pipelines_together(self, tmp_path, notify_env, alerting, smtp):
        one = make_folder(tmp_path / "one" / "lab")
        two = make_folder(tmp_path / "two" / "lab", pipeline_metadata__pipeline_name="lab_two",
                          pipeline_metadata__owner_email="two@example.com", monitoring__success_rate_threshold=10)
        run(one, 0)
        run(one, 1)
        run(two, 0, fail="stage_to_target_transfer")
        smtp.received.clear()
        result = CliRunner().invoke(report_command, [str(one), str(two), "--send-alerts", "--fleet-threshold", "80"],
                                    catch_exceptions=False)
        assert "sent: all pipelines (lab, lab_two): success rate 66.7% over the last 7d, below 80%" in result.stderr
        fleet = [m for m in smtp.received if "all pipelines" in m.message["Subject"]]
        assert sorted(fleet[0].recipients) == ["oncall@example.com", "owner@example.com", "two@example.com"]
        assert "sent: lab_two: success rate" in result.stderr  # 0% is below its own 10%

    def test_no_fleet_alert_above_the_threshold(self, tmp_path):
        one, two = make_folder(tmp_path / "one" / "lab"), make_folder(tmp_path / "two" / "lab")
        run(one, 0)
        run(two, 0)
        with Pipeline.load(one) as a, Pipeline.load(two) as b:
            assert fleet_success_alert([a, b]) is None
