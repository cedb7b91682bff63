"""Notifiers: where alerts go. Email over SMTP and Slack incoming webhooks are built in.

A notifier is configured from environment variables, never from config.json (the config only
names recipients: ``pipeline_metadata.owner_email``, ``notification_emails`` and
``slack_channel``). One that is not configured stays silent.

================================  =======================================================
``DRIVETRAIN_SMTP_HOST``          SMTP server; email alerts are off without it
``DRIVETRAIN_SMTP_PORT``          default 25 (587 is usual with STARTTLS, 465 with SSL)
``DRIVETRAIN_SMTP_SENDER``        the From address (default ``drivetrain@<hostname>``)
``DRIVETRAIN_SMTP_USER``          log in with this user...
``DRIVETRAIN_SMTP_PASSWORD``      ...and password (a secret: never logged)
``DRIVETRAIN_SMTP_SECURITY``      ``none`` (default), ``starttls`` or ``ssl``
``DRIVETRAIN_SLACK_WEBHOOK_URL``  Slack incoming webhook; Slack alerts are off without it
                                  (a secret: never logged)
``DRIVETRAIN_NOTIFY_TIMEOUT``     seconds to wait for a server (default 10)
================================  =======================================================

Third-party notifiers subclass :class:`Notifier` and register through the
``drivetrain_register_notifiers`` hook; :func:`send` hands every alert to every configured one.
A notifier that fails is logged and skipped: an alert never fails a run.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import re
import socket
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from drivetrain.config.hosts import credentials_in_url
from drivetrain.errors import ConfigError, PermanentError, TransientError
from drivetrain.secrets import Secret, redact, register_secret

if TYPE_CHECKING:
    from email.message import EmailMessage

log = logging.getLogger("drivetrain.alerts")

FAILURE, DURATION, STALE = "failure", "duration", "stale_data"
LOW_SUCCESS_RATE, SUCCESS_SUMMARY = "low_success_rate", "success_summary"


def _tuple(value: Any) -> tuple[str, ...]:
    return tuple(value or ())


@attrs.frozen(kw_only=True)
class Alert:
    """Something an operator should hear about, and who should hear it."""

    kind: str
    """``failure``, ``duration``, ``stale_data``, ``low_success_rate`` or ``success_summary``."""
    pipeline: str
    subject: str
    """One line: what happened."""
    body: str
    """Plain text: the details and what to do."""
    run_id: str | None = None
    emails: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    """Addresses from the pipeline's metadata, owner first."""
    slack_channel: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)
    """JSON-able facts (phase, window, durations...) for notifiers that send structured data."""


class Notifier(abc.ABC):
    """Sends alerts somewhere. Subclasses implement :meth:`from_env` and :meth:`send`."""

    #: Name used in logs and in the ``drivetrain_register_notifiers`` mapping.
    name: ClassVar[str] = "notifier"

    @classmethod
    @abc.abstractmethod
    def from_env(cls, environ: Mapping[str, str]) -> Notifier | None:
        """The notifier configured by ``environ``, or None when it is not configured."""

    @abc.abstractmethod
    def send(self, alert: Alert) -> bool:
        """Deliver ``alert``; False when it has no recipient here. Raises ConnectorError on failure."""


def _timeout(environ: Mapping[str, str]) -> float:
    text = environ.get("DRIVETRAIN_NOTIFY_TIMEOUT", "10")
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"DRIVETRAIN_NOTIFY_TIMEOUT: {text!r} is not a number of seconds") from None


#: Control characters (CR and LF among them) that must never reach a mail header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def header_text(value: str) -> str:
    """``value`` as one header line: line breaks and other control characters become one space.

    A newline in a header value would start a header of its own (``Bcc: ...``); the email
    library refuses such values, which would lose the alert instead.
    """
    return " ".join(_CONTROL.sub(" ", value).split())


def _addresses(emails: tuple[str, ...]) -> list[str]:
    """The recipients that are one plain address each; anything else is logged and left out."""
    from email.errors import MessageError
    from email.headerregistry import Address

    out = []
    for email in emails:
        try:
            if _CONTROL.search(email) or "," in email:
                raise ValueError("holds a line break or a comma")
            out.append(str(Address(addr_spec=email.strip())))
        except (ValueError, IndexError, TypeError, MessageError) as exc:
            log.warning("leaving out the alert recipient %r: it is not one email address (%s)", header_text(email), exc)
    return out


@attrs.frozen(kw_only=True)
class EmailNotifier(Notifier):
    """Plain-text email through an SMTP server, to the owner and notification_emails."""

    name: ClassVar[str] = "email"
    host: str
    port: int = 25
    sender: str
    user: str | None = None
    password: Secret | None = None
    security: str = "none"
    """none, starttls or ssl."""
    timeout: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EmailNotifier | None:
        host = environ.get("DRIVETRAIN_SMTP_HOST")
        if not host:
            return None
        if credentials_in_url(host):
            raise ConfigError("DRIVETRAIN_SMTP_HOST: holds a user or password before '@' (the value is not shown); "
                              "give the host alone and log in with DRIVETRAIN_SMTP_USER and DRIVETRAIN_SMTP_PASSWORD")
        security = environ.get("DRIVETRAIN_SMTP_SECURITY", "none").lower()
        if security not in ("none", "starttls", "ssl"):
            raise ConfigError(f"DRIVETRAIN_SMTP_SECURITY: {security!r} is not one of none, starttls, ssl")
        port_text = environ.get("DRIVETRAIN_SMTP_PORT") or ("465" if security == "ssl" else "25")
        if not port_text.isdigit():
            raise ConfigError(f"DRIVETRAIN_SMTP_PORT: {port_text!r} is not a port number")
        password = environ.get("DRIVETRAIN_SMTP_PASSWORD")
        return cls(
            host=host, port=int(port_text),
            sender=environ.get("DRIVETRAIN_SMTP_SENDER") or f"drivetrain@{socket.gethostname()}",
            user=environ.get("DRIVETRAIN_SMTP_USER") or None,
            password=Secret(password) if password else None,
            security=security, timeout=_timeout(environ),
        )

    def message(self, alert: Alert, recipients: list[str] | None = None) -> EmailMessage:
        """The email for ``alert`` (no recipients: an empty To).

        :param recipients: the checked addresses, when the caller has them already.
        """
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["Subject"] = header_text(f"[drivetrain] {alert.subject}")
        msg["From"] = header_text(self.sender)
        msg["To"] = ", ".join(_addresses(alert.emails) if recipients is None else recipients)
        msg["X-Drivetrain-Alert"] = header_text(alert.kind)
        msg["X-Drivetrain-Pipeline"] = header_text(alert.pipeline)
        msg.set_content(alert.body)
        return msg

    def send(self, alert: Alert) -> bool:
        recipients = _addresses(alert.emails)
        if not recipients:
            return False
        import smtplib
        import ssl

        msg = self.message(alert, recipients)
        where = f"SMTP server {self.host}:{self.port}"
        try:
            if self.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.user and self.password is not None:
                    client.login(self.user, self.password.reveal())
                client.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(f"{where} refused the login of {self.user!r}: check DRIVETRAIN_SMTP_USER/PASSWORD") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"{where} refused every recipient ({', '.join(alert.emails)})") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"{where}: {redact(str(exc)) or type(exc).__name__}") from exc
        return True


_MENTION = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def slack_text(text: str) -> str:
    """``text`` safe to put in a Slack mrkdwn message, inside a code block or not.

    ``&``, ``<`` and ``>`` become entities, as Slack's formatting rules ask, so ``<!channel>``
    or ``<https://...|click>`` arrive as plain text. Backticks become a look-alike (U+02CB), so
    no text can close the code block it sits in or open one, and ``@channel``, ``@here`` and
    ``@everyone`` get a word joiner after the ``@`` so that no client reads them as mentions.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("`", "\u02cb")
    return _MENTION.sub("@\u2060\\1", text)


@attrs.frozen(kw_only=True)
class SlackNotifier(Notifier):
    """A message through a Slack incoming webhook (to the pipeline's slack_channel, if set)."""

    name: ClassVar[str] = "slack"
    webhook_url: Secret
    timeout: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SlackNotifier | None:
        url = environ.get("DRIVETRAIN_SLACK_WEBHOOK_URL")
        if not url:
            return None
        if not url.startswith(("https://", "http://")):
            raise ConfigError("DRIVETRAIN_SLACK_WEBHOOK_URL: must be an http(s) URL (the value is not shown: it is a secret)")
        register_secret(urllib.parse.urlsplit(url).path)  # the token part, should it appear alone
        return cls(webhook_url=Secret(url), timeout=_timeout(environ))

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON body: a text fallback and a block with the details.

        Alert text holds values from the data and from error messages, so it is escaped as
        Slack asks (see :func:`slack_text`) and marked ``verbatim``: it can neither mention
        anyone, nor link anywhere, nor leave its code block.
        """
        icon = {FAILURE: ":red_circle:", DURATION: ":hourglass:", STALE: ":warning:", LOW_SUCCESS_RATE: ":chart_with_downwards_trend:",
                SUCCESS_SUMMARY: ":white_check_mark:"}.get(alert.kind, ":bell:")
        subject = slack_text(header_text(alert.subject))
        data: dict[str, Any] = {
            "text": f"{icon} {subject}",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{subject}*", "verbatim": True}},
                {"type": "section", "text": {"type": "mrkdwn", "text": f"```{slack_text(alert.body)}```", "verbatim": True}},
            ],
        }
        if alert.slack_channel:
            data["channel"] = alert.slack_channel
        return data

    def send(self, alert: Alert) -> bool:
        import urllib.error
        import urllib.request

        body = json.dumps(self.payload(alert)).encode()
        request = urllib.request.Request(
            self.webhook_url.reveal(), data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "drivetrain"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - URL from the operator
                response.read()
        except urllib.error.HTTPError as exc:
            reply = redact(exc.read().decode("utf-8", "replace")[:200])
            error = TransientError if exc.code >= 500 or exc.code == 429 else PermanentError
            raise error(f"the Slack webhook answered HTTP {exc.code}: {reply}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientError(f"the Slack webhook could not be reached: {redact(str(reason))}") from None
        return True


BUILTIN_NOTIFIERS: dict[str, type[Notifier]] = {"email": EmailNotifier, "slack": SlackNotifier}


def configured_notifiers(environ: Mapping[str, str] | None = None) -> list[Notifier]:
    """Every registered notifier that ``environ`` (default: os.environ) configures.

    A notifier whose settings are wrong is logged and left out.
    """
    from drivetrain.plugins import get_plugin_manager

    environ = os.environ if environ is None else environ
    classes: dict[str, type[Notifier]] = {}
    for registered in reversed(get_plugin_manager().hook.drivetrain_register_notifiers()):
        classes.update(registered or {})
    out = []
    for name, cls in classes.items():
        try:
            notifier = cls.from_env(environ)
        except ConfigError as exc:
            log.error("notifier %s is misconfigured and will not send: %s", name, exc)
            continue
        if notifier is not None:
            out.append(notifier)
    return out


def send(alert: Alert, notifiers: list[Notifier] | None = None) -> list[str]:
    """Hand ``alert`` to every notifier and log it; returns the names that delivered it.

    The alert is logged at INFO on ``drivetrain.alerts``; a notifier that fails is logged at
    WARNING (without secrets) and never raises.
    """
    delivered = []
    for notifier in configured_notifiers() if notifiers is None else notifiers:
        try:
            if notifier.send(alert):
                delivered.append(notifier.name)
        except Exception as exc:  # noqa: BLE001 - an alert must never break a run
            log.warning("could not send the %s alert for %s through %s: %s", alert.kind, alert.pipeline, notifier.name, redact(str(exc)))
    log.info("alert (%s) %s: %s [%s]", alert.kind, alert.pipeline, alert.subject,
             f"sent by {', '.join(delivered)}" if delivered else "no notifier sent it")
    return delivered
