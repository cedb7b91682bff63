"""The alerting plugin end to end: real runs, real hooks, local SMTP and webhook servers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.monitoring.plugin import check_freshness, duration_alert, failure_alert
from drivetrain.testing import FaultPlugin

from .conftest import make_folder
from .servers import SmtpServer, WebhookServer


def run_first_window(folder, faults=None, **overrides):
    with Pipeline.load(folder, overrides=overrides or None) as pipeline:
        runner = pipeline.runner(heartbeat_seconds=0.2)
        if faults is None:
            return runner.run(pipeline.grid.first())
        with faults.installed():
            return runner.run(pipeline.grid.first())


def by_kind(smtp):
    return {m.message["X-Drivetrain-Alert"]: m for m in smtp.received}


class TestFailedRun:
    @pytest.fixture(scope="class")
    def servers(self, tmp_path_factory):
        """One failing run, with the alerting plugin and both notifiers, shared by the class."""
        from drivetrain.monitoring import plugin
        from drivetrain.plugins import get_plugin_manager, reset_plugin_manager

        smtp, webhook = SmtpServer(), WebhookServer()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DRIVETRAIN_SMTP_HOST", "127.0.0.1")
            env.setenv("DRIVETRAIN_SMTP_PORT", str(smtp.port))
            env.setenv("DRIVETRAIN_SMTP_SENDER", "drivetrain@example.com")
            env.setenv("DRIVETRAIN_SLACK_WEBHOOK_URL", webhook.url())
            reset_plugin_manager()
            if not get_plugin_manager().is_registered(plugin):
                get_plugin_manager().register(plugin)
            try:
                record = run_first_window(make_folder(tmp_path_factory.mktemp("failed") / "lab"),
                                          FaultPlugin(fail={"stage_to_target_transfer": 1}))
            finally:
                reset_plugin_manager()
        smtp.close()
        webhook.close()
        assert record.pipeline_status is RunStatus.FAILED
        return record, smtp, webhook

    @pytest.fixture
    def failed(self, servers):
        return servers[0]

    @pytest.fixture
    def smtp(self, servers):
        return servers[1]

    @pytest.fixture
    def webhook(self, servers):
        return servers[2]

    def test_email_names_the_failed_phase_the_error_and_how_to_resume(self, failed, smtp):
        mail = by_kind(smtp)["failure"]
        assert "lab FAILED at stage_to_target_transfer" in mail.message["Subject"]
        assert "PermanentError: injected failure in stage_to_target_transfer" in mail.body
        assert failed.pipeline_id in mail.body
        assert "drivetrain run lab --window-start 2025-11-15T00:00:00Z" in mail.body

    def test_email_goes_to_the_owner_and_notification_emails_once_each(self, failed, smtp):
        assert by_kind(smtp)["failure"].recipients == ["owner@example.com", "oncall@example.com"]

    def test_slack_gets_the_alert_in_the_pipelines_channel(self, failed, webhook):
        failures = [p for p in webhook.payloads() if "FAILED at stage_to_target_transfer" in p["text"]]
        assert len(failures) == 1 and failures[0]["channel"] == "#data-alerts"

    def test_a_slow_phase_alerts_during_the_run(self, failed, smtp):
        mail = by_kind(smtp)["duration"]
        assert "source_to_stage_transfer took" in mail.message["Subject"]
        assert "its expected 5ms" in mail.message["Subject"]


class TestNotifierFailures:
    def test_a_run_ends_as_it_would_when_every_notifier_is_down(self, tmp_path, notify_env, alerting, smtp, webhook, caplog):
        smtp.close()
        webhook.status = 500
        with caplog.at_level(logging.WARNING, logger="drivetrain.alerts"):
            record = run_first_window(make_folder(tmp_path / "lab"))
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases_completed[-1] == "stage_cleaning"
        assert "could not send the duration alert for lab through email" in caplog.text
        assert "could not send the duration alert for lab through slack" in caplog.text


class TestSwitches:
    def test_no_failure_alert_when_alert_on_failure_is_off(self, history):
        with Pipeline.load(history.folder, overrides={"monitoring.alert_on_failure": False}) as pipeline:
            assert failure_alert(history.runs[1], pipeline.config) is None

    def test_no_failure_alert_for_a_run_that_succeeded(self, history):
        with history.pipeline() as pipeline:
            assert failure_alert(history.runs[0], pipeline.config) is None

    def test_no_duration_alert_when_alert_on_duration_exceed_is_off(self, history):
        record = history.runs[0]
        with Pipeline.load(history.folder, overrides={"monitoring.alert_on_duration_exceed": False}) as pipeline:
            assert duration_alert(record, "source_to_stage_transfer", record.phases["source_to_stage_transfer"], pipeline.config) is None

    def test_the_multiplier_decides_what_is_too_slow(self, history):
        record = history.runs[0]
        state = record.phases["source_to_stage_transfer"]
        with Pipeline.load(history.folder, overrides={"monitoring.duration_multiplier_threshold": 1000}) as pipeline:
            assert duration_alert(record, "source_to_stage_transfer", state, pipeline.config) is None
        with history.pipeline() as pipeline:
            assert duration_alert(record, "source_to_stage_transfer", state, pipeline.config) is not None

    def test_a_phase_within_its_expected_duration_does_not_alert(self, history):
        record = history.runs[0]
        with history.pipeline() as pipeline:
            assert duration_alert(record, "audit", record.phases["audit"], pipeline.config) is None

    def test_a_skipped_phase_does_not_alert(self, history):
        record = history.runs[2]  # the resumed run skipped the load
        state = record.phases["source_to_stage_transfer"]
        assert state.status.value == "SKIPPED"
        with history.pipeline() as pipeline:
            assert duration_alert(record, "source_to_stage_transfer", state, pipeline.config) is None


class TestFreshnessCheck:
    def test_stale_data_is_sent_to_every_notifier(self, history, notify_env, alerting, smtp, webhook):
        with history.pipeline() as pipeline:
            alert = check_freshness(pipeline, now=datetime.now(UTC) + timedelta(hours=2))
        assert alert is not None and alert.kind == "stale_data"
        mail = by_kind(smtp)["stale_data"]
        assert "lab: data is stale" in mail.message["Subject"] and "threshold 1h" in mail.message["Subject"]
        assert "Data loaded through:" in mail.body and "2025-11-15 04:00:00Z" in mail.body
        assert len(webhook.received) == 1

    def test_fresh_data_sends_nothing(self, history, notify_env, alerting, smtp):
        with history.pipeline() as pipeline:
            assert check_freshness(pipeline) is None
        assert smtp.received == []

    def test_nothing_is_checked_when_alert_on_stale_data_is_off(self, history, notify_env, alerting, smtp):
        with Pipeline.load(history.folder, overrides={"monitoring.alert_on_stale_data": False}) as pipeline:
            assert check_freshness(pipeline, now=datetime.now(UTC) + timedelta(days=30)) is None
        assert smtp.received == []

    def test_a_pipeline_that_never_succeeded_is_stale_after_its_first_window(self, tmp_path, clean_env):
        with Pipeline.load(make_folder(tmp_path / "lab")) as pipeline:
            pipeline.drive_store().ensure()
            alert = check_freshness(pipeline, send=False)
        assert alert is not None and "no successful run yet" in alert.subject
