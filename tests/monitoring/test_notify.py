"""Notifiers against local servers: email through a real SMTP conversation, Slack through HTTP."""

from __future__ import annotations

import logging

import pytest

from drivetrain.errors import ConfigError, PermanentError, TransientError
from drivetrain.monitoring import notify
from drivetrain.monitoring.notify import Alert, EmailNotifier, SlackNotifier

from .servers import SmtpServer


def alert(**changes) -> Alert:
    values = {"kind": "failure", "pipeline": "lab", "subject": "lab FAILED at audit", "body": "Error: counts differ",
              "run_id": "lab_run1", "emails": ("owner@example.com", "oncall@example.com"), "slack_channel": "#data-alerts"}
    return Alert(**{**values, **changes})


def email(smtp, **env) -> EmailNotifier:
    settings = {"DRIVETRAIN_SMTP_HOST": "127.0.0.1", "DRIVETRAIN_SMTP_PORT": str(smtp.port),
                "DRIVETRAIN_SMTP_SENDER": "drivetrain@example.com", **env}
    notifier = EmailNotifier.from_env(settings)
    assert notifier is not None
    return notifier


class TestEmailNotifier:
    def test_is_off_without_a_host(self):
        assert EmailNotifier.from_env({}) is None

    def test_sends_to_every_recipient_with_subject_and_body(self, smtp):
        assert email(smtp).send(alert())
        [mail] = smtp.received
        assert mail.sender == "drivetrain@example.com"
        assert mail.recipients == ["owner@example.com", "oncall@example.com"]
        assert mail.message["Subject"] == "[drivetrain] lab FAILED at audit"
        assert mail.message["X-Drivetrain-Alert"] == "failure"
        assert "Error: counts differ" in mail.body

    def test_sends_nothing_when_the_pipeline_names_no_address(self, smtp):
        assert not email(smtp).send(alert(emails=()))
        assert smtp.received == []

    def test_logs_in_when_a_user_is_set(self):
        server = SmtpServer(users={"alerts": "pa55word-xyz"})
        try:
            notifier = email(server, DRIVETRAIN_SMTP_USER="alerts", DRIVETRAIN_SMTP_PASSWORD="pa55word-xyz")
            notifier.send(alert())
            assert [m.user for m in server.received] == ["alerts"]
        finally:
            server.close()

    def test_a_refused_login_is_permanent_and_never_shows_the_password(self):
        server = SmtpServer(users={"alerts": "right-password"})
        try:
            notifier = email(server, DRIVETRAIN_SMTP_USER="alerts", DRIVETRAIN_SMTP_PASSWORD="wrong-password-123")
            with pytest.raises(PermanentError) as caught:
                notifier.send(alert())
            assert "wrong-password-123" not in str(caught.value)
            assert "wrong-password-123" not in repr(notifier)
        finally:
            server.close()

    def test_an_unreachable_server_is_transient(self, smtp):
        notifier = email(smtp)
        smtp.close()
        with pytest.raises(TransientError):
            notifier.send(alert())

    def test_a_bad_port_is_a_config_error(self):
        with pytest.raises(ConfigError, match="DRIVETRAIN_SMTP_PORT"):
            EmailNotifier.from_env({"DRIVETRAIN_SMTP_HOST": "x", "DRIVETRAIN_SMTP_PORT": "smtp"})


class TestSlackNotifier:
    def test_is_off_without_a_webhook_url(self):
        assert SlackNotifier.from_env({}) is None

    def test_posts_the_alert_as_json_to_the_channel(self, webhook):
        notifier = SlackNotifier.from_env({"DRIVETRAIN_SLACK_WEBHOOK_URL": webhook.url()})
        assert notifier.send(alert())
        [payload] = webhook.payloads()
        assert payload["channel"] == "#data-alerts"
        assert "lab FAILED at audit" in payload["text"]
        assert "Error: counts differ" in payload["blocks"][1]["text"]["text"]
        assert webhook.received[0]["headers"]["Content-Type"] == "application/json"

    def test_a_server_error_is_transient(self, webhook):
        webhook.status, webhook.reply = 500, b"internal_error"
        notifier = SlackNotifier.from_env({"DRIVETRAIN_SLACK_WEBHOOK_URL": webhook.url()})
        with pytest.raises(TransientError, match="HTTP 500"):
            notifier.send(alert())

    def test_a_rejected_payload_is_permanent(self, webhook):
        webhook.status, webhook.reply = 404, b"no_service"
        notifier = SlackNotifier.from_env({"DRIVETRAIN_SLACK_WEBHOOK_URL": webhook.url()})
        with pytest.raises(PermanentError, match="no_service"):
            notifier.send(alert())

    def test_the_webhook_url_is_a_secret(self, webhook, caplog):
        url = webhook.url("/services/T1/B2/very-secret-token")
        notifier = SlackNotifier.from_env({"DRIVETRAIN_SLACK_WEBHOOK_URL": url})
        webhook.close()
        assert "very-secret-token" not in repr(notifier)
        with caplog.at_level(logging.WARNING, logger="drivetrain.alerts"):
            notify.send(alert(), [notifier])
        assert caplog.records and "very-secret-token" not in caplog.text

    def test_a_webhook_url_that_is_not_http_is_refused_without_echoing_it(self):
        with pytest.raises(ConfigError) as caught:
            SlackNotifier.from_env({"DRIVETRAIN_SLACK_WEBHOOK_URL": "hooks.slack.com/secret-part"})
        assert "secret-part" not in str(caught.value)


class TestSend:
    def test_every_configured_notifier_gets_the_alert(self, smtp, webhook, notify_env, alerting):
        assert sorted(notify.send(alert())) == ["email", "slack"]
        assert len(smtp.received) == 1 and len(webhook.received) == 1

    def test_a_failing_notifier_is_logged_and_the_others_still_send(self, smtp, webhook, notify_env, alerting, caplog):
        webhook.status = 503
        with caplog.at_level(logging.WARNING, logger="drivetrain.alerts"):
            delivered = notify.send(alert())
        assert delivered == ["email"]
        assert "could not send the failure alert for lab through slack" in caplog.text

    def test_no_notifier_configured_only_logs(self, clean_env, alerting, caplog):
        with caplog.at_level(logging.INFO, logger="drivetrain.alerts"):
            assert notify.send(alert()) == []
        assert "lab FAILED at audit" in caplog.text

    def test_a_misconfigured_notifier_is_left_out(self, clean_env, alerting, caplog):
        clean_env.setenv("DRIVETRAIN_SMTP_HOST", "127.0.0.1")
        clean_env.setenv("DRIVETRAIN_SMTP_SECURITY", "tls-please")
        with caplog.at_level(logging.WARNING, logger="drivetrain.alerts"):
            assert notify.configured_notifiers() == []
        assert "DRIVETRAIN_SMTP_SECURITY" in caplog.text

    def test_notifiers_are_registered_through_the_hook(self, alerting):
        from drivetrain.plugins import get_plugin_manager

        registered = {}
        for found in get_plugin_manager().hook.drivetrain_register_notifiers():
            registered.update(found)
        assert registered["email"] is EmailNotifier and registered["slack"] is SlackNotifier
