"""Local servers the alert tests talk to: a small SMTP server and a webhook receiver.

The SMTP server speaks enough of RFC 5321 for smtplib: EHLO/HELO, AUTH PLAIN and LOGIN,
MAIL, RCPT, DATA (with dot-unstuffing), RSET, NOOP, QUIT. It keeps every accepted message.
The webhook receiver keeps every POST and answers with a status the test chooses.
"""

from __future__ import annotations

import base64
import json
import socketserver
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.define
class Mail:
    """One message the SMTP server accepted."""

    sender: str
    recipients: list[str]
    data: bytes
    user: str | None

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]

    @property
    def body(self) -> str:
        return str(self.message.get_content())


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpTcpServer

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def readline(self) -> str | None:
        raw = self.rfile.readline(65536)
        return raw.decode("utf-8", "replace").rstrip("\r\n") if raw else None

    def handle(self) -> None:
        smtp = self.server.owner
        sender, recipients, user = None, [], None
        self.reply("220 localhost test SMTP ready")
        while (line := self.readline()) is not None:
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.reply("250-localhost")
                if smtp.users:
                    self.reply("250-AUTH PLAIN LOGIN")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 localhost")
            elif verb == "AUTH":
                user = self.auth(arg)
                if user is None:
                    self.reply("535 5.7.8 authentication failed")
                else:
                    self.reply("235 2.7.0 authenticated")
            elif verb == "MAIL":
                if smtp.users and user is None:
                    self.reply("530 5.7.0 authentication required")
                    continue
                sender, recipients = arg.split(":", 1)[1].strip().strip("<>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(arg.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while (data := self.rfile.readline(65536)) not in (b".\r\n", b""):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                smtp.received.append(Mail(sender or "", recipients, b"".join(lines), user))
                self.reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 command not implemented")

    def auth(self, arg: str) -> str | None:
        mechanism, _, initial = arg.partition(" ")
        smtp = self.server.owner
        if mechanism.upper() == "PLAIN":
            if not initial:
                self.reply("334 ")
                initial = self.readline() or ""
            _, user, password = base64.b64decode(initial).decode().split("\0")
        elif mechanism.upper() == "LOGIN":
            if initial:
                user = base64.b64decode(initial).decode()
            else:
                self.reply("334 " + base64.b64encode(b"Username:").decode())
                user = base64.b64decode(self.readline() or "").decode()
            self.reply("334 " + base64.b64encode(b"Password:").decode())
            password = base64.b64decode(self.readline() or "").decode()
        else:
            return None
        return user if smtp.users.get(user) == password else None


class _SmtpTcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: SmtpServer


class SmtpServer:
    """An SMTP server on 127.0.0.1 in a thread. ``users`` turns authentication on."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = dict(users or {})
        self.received: list[Mail] = []
        self._server = _SmtpTcpServer(("127.0.0.1", 0), _SmtpHandler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="test-smtp", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _WebhookHttpServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        owner = self.server.owner
        owner.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, reply = owner.status, owner.reply
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


class _WebhookHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: WebhookServer


class WebhookServer:
    """Receives POSTs like Slack's incoming webhooks; answers ``status`` with ``reply``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.reply = b"ok"
        self._server = _WebhookHttpServer(("127.0.0.1", 0), _WebhookHandler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="test-webhook", daemon=True)
        self._thread.start()

    def url(self, path: str = "/services/T0000/B0000/s3cr3tT0ken") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
