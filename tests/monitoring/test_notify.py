"""Notifiers against local servers: email through a real SMTP conversation, Slack through HTTP."""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain.errors import ConfigError, PermanentError, TransientError
from drivetrain.monitoring import notify
from drivetrain.monitoring.notify import Alert, EmailNotifier, SlackNotifier, slack_text

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

    def test_a_password_in_the_host_is_refused_without_echoing_it(self):
        with pytest.raises(ConfigError, match="DRIVETRAIN_SMTP_HOST: holds a user or password") as caught:
            EmailNotifier.from_env({"DRIVETRAIN_SMTP_HOST": "alerts:Sm7p-pass@mail.example.com"})
        assert "Sm7p-pass" not in str(caught.value)

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


HOSTILE = "x```\n<!channel> <https://evil.example/pay|click here> @here & `rm` <@U0123> @everyone"


def slack_texts(payload: dict) -> list[str]:
    return [payload["text"], *(block["text"]["text"] for block in payload["blocks"])]


class TestHostileTextInSlack:
    @pytest.fixture
    def payload(self, webhook) -> dict:
        notifier = SlackNotifier.from_env({"DRIVETRAIN_SLACK_WEBHOOK_URL": webhook.url()})
        assert notifier.send(alert(pipeline=f"lab{HOSTILE}", subject=f"lab FAILED at audit: {HOSTILE}",
                                   body=f"Pipeline: lab\nError: {HOSTILE}\nOwner: {HOSTILE}"))
        [payload] = webhook.payloads()
        return payload

    def test_no_text_can_mention_anyone_or_link_anywhere(self, payload):
        for text in slack_texts(payload):
            assert "<" not in text and ">" not in text
            for mention in ("@here", "@everyone", "@channel"):
                assert mention not in text

    def test_the_error_cannot_close_its_code_block(self, payload):
        body = payload["blocks"][1]["text"]["text"]
        assert body.startswith("```") and body.endswith("```") and body.count("```") == 2
        assert "`" not in payload["blocks"][0]["text"]["text"] + payload["text"]

    def test_the_text_stays_readable_and_slack_does_no_preprocessing(self, payload):
        body = payload["blocks"][1]["text"]["text"]
        assert "&lt;!channel&gt; &lt;https://evil.example/pay|click here&gt;" in body
        assert " &amp; " in body
        assert all(block["text"]["verbatim"] is True for block in payload["blocks"])

    def test_the_subject_stays_on_one_line(self, payload):
        assert "\n" not in payload["text"] and "\n" not in payload["blocks"][0]["text"]["text"]


def unescape(text: str) -> str:
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            .replace("\u02cb", "`").replace("\u2060", ""))


class TestSlackTextProperty:
    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet=st.characters(blacklist_characters="\u02cb\u2060", blacklist_categories=("Cs",))))
    def test_escaped_text_holds_no_markup_and_reads_as_the_original(self, text):
        safe = slack_text(text)
        assert not set("<>`") & set(safe)
        assert re.fullmatch(r"([^&]|&(amp|lt|gt);)*", safe, re.DOTALL)
        assert unescape(safe) == text


class TestHostileTextInEmail:
    def test_a_line_break_in_the_subject_cannot_add_a_header(self, smtp):
        assert email(smtp).send(alert(subject="lab FAILED\r\nBcc: thief@example.com\r\nX-Evil: 1", pipeline="lab\nBcc: x@y.z"))
        [mail] = smtp.received
        assert mail.recipients == ["owner@example.com", "oncall@example.com"]
        assert mail.message["Subject"] == "[drivetrain] lab FAILED Bcc: thief@example.com X-Evil: 1"
        assert mail.message["Bcc"] is None and mail.message["X-Evil"] is None
        assert mail.message["X-Drivetrain-Pipeline"] == "lab Bcc: x@y.z"

    def test_a_recipient_smuggling_another_is_left_out_and_the_rest_still_get_it(self, smtp, caplog):
        with caplog.at_level(logging.WARNING, logger="drivetrain.alerts"):
            assert email(smtp).send(alert(emails=("owner@example.com\r\nBcc: thief@example.com", "a@b.c, thief@example.com",
                                                  "oncall@example.com")))
        [mail] = smtp.received
        assert mail.recipients == ["oncall@example.com"]
        assert caplog.text.count("leaving out the alert recipient") == 2  # each bad one, once

    def test_the_body_keeps_hostile_text_as_plain_text(self, smtp):
        assert email(smtp).send(alert(body=f"Error: {HOSTILE}"))
        [mail] = smtp.received
        assert HOSTILE in mail.body.replace("\r\n", "\n")


class TestHostileErrorEndToEnd:
    def test_a_failed_run_whose_error_holds_markup_alerts_without_it(self, tmp_path, notify_env, alerting, smtp, webhook):
        from drivetrain import Pipeline, RunStatus
        from drivetrain.testing import FaultPlugin

        from .conftest import make_folder

        faults = FaultPlugin(fail={"stage_to_target_transfer": 1}, message=f"bad value {HOSTILE}")
        with Pipeline.load(make_folder(tmp_path / "lab")) as pipeline, faults.installed():
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.FAILED
        [payload] = [p for p in webhook.payloads() if "FAILED at stage_to_target_transfer" in p["text"]]
        body = payload["blocks"][1]["text"]["text"]
        assert "bad value x" in body and body.count("```") == 2
        assert not any(("<" in text or "@here" in text) for text in slack_texts(payload))
        [mail] = [m for m in smtp.received if m.message["X-Drivetrain-Alert"] == "failure"]
        assert "<!channel>" in mail.body  # plain text email shows the error as it was
