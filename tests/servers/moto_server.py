"""S3 for tests: a moto server on localhost, and a fault-injecting HTTP proxy in front of it.

``moto_server`` (session) runs ``moto.server.ThreadedMotoServer`` on 127.0.0.1 with a free port.
``s3_proxy`` (session) forwards every request to it unchanged, unless a :class:`Fault` matches
the request: then it cuts the connection (optionally after reading part of the body, like a
network failure mid-upload), answers with an S3 error of its choosing, or runs a hook before
forwarding (say, to replace the object behind the client's back). Clients pointed at the proxy
are real boto3 clients; only the bytes on the wire are tampered with.

``s3`` (per test) resets moto, clears the faults and request log, creates :data:`BUCKET`, sets a
clean AWS environment and returns a :class:`S3Env` with a direct client and both URLs. The
fixtures are defined in tests/conftest.py, with every other test server; tests ask for ``s3``,
``s3_proxy`` or ``moto_server`` by name.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

BUCKET = "drivetrain-archive"
ACCESS_KEY_ID = "AKIADRIVETRAINTEST01"
SECRET_ACCESS_KEY = "dt-s3-Secret-Key-never-shown-0123456789"
STARTUP_TIMEOUT = 30.0
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
_ERROR_XML = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>drivetrain-proxy</RequestId></Error>'


class ServerError(RuntimeError):
    """moto could not be imported or started; the message says why."""


class MotoServer:
    """A moto S3 server in a thread of this process, on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        self._server: Any = None
        self.url = ""

    def start(self) -> MotoServer:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise ServerError(f"moto is not installed ({exc}): pip install 'moto[server]'") from exc
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        starter = threading.Thread(target=server.start, daemon=True)
        starter.start()
        starter.join(STARTUP_TIMEOUT)
        if starter.is_alive():
            raise ServerError(f"the moto server did not start within {STARTUP_TIMEOUT:.0f}s")
        host, port = server.get_host_and_port()
        self._server, self.url = server, f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        """Forget every bucket and object (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@attrs.define
class Fault:
    """What the proxy does to requests whose method and path (with query) match.

    :param action: ``"cut"`` closes the connection without an answer (after reading
        ``after_bytes`` of the body); ``"error"`` answers ``status`` with an S3 error ``code``;
        ``"hook"`` calls ``hook()`` and then forwards the request.
    :param times: how many matching requests to affect; None for all of them.
    """

    method: str
    path: str
    action: str = "cut"
    after_bytes: int = 0
    status: int = 500
    code: str = "InternalError"
    hook: Callable[[], None] | None = None
    times: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return method == self.method and re.search(self.path, path) is not None


class FaultProxy(ThreadingHTTPServer):
    """An HTTP/1.1 reverse proxy to ``upstream`` that applies the first matching :class:`Fault`.

    ``requests`` logs every (method, path) seen, the path percent-decoded (boto3 sends ``=`` in
    keys as ``%3D``); fault patterns are matched against that decoded path.
    """

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream.removeprefix("http://")
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()

    def fault_for(self, method: str, path: str) -> Fault | None:
        """Log the request (path percent-decoded) and return the first fault it triggers."""
        path = urllib.parse.unquote(path)
        with self.lock:
            self.requests.append((method, path))
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _body(self, limit: int | None = None) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(limit, length))

    def _cut(self, after_bytes: int) -> None:
        if after_bytes:
            self._body(after_bytes)
        # SO_LINGER 0: close with a reset, the way a dropped network path looks to a client.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        length = next((v for n, v in headers if n.lower() == "content-length"), None) if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        fault = self.server.fault_for(self.command, self.path)
        if fault is not None and fault.action == "cut":
            self._cut(fault.after_bytes)
            return
        body = self._body()
        if fault is not None and fault.action == "error":
            xml = _ERROR_XML.format(code=fault.code, message=f"injected by the test proxy ({fault.code})").encode()
            self._answer(fault.status, [("Content-Type", "application/xml")], xml)
            return
        if fault is not None and fault.hook is not None:
            fault.hook()
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=60)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            data = response.read()
            self._answer(response.status, response.getheaders(), data)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


@attrs.frozen
class S3Env:
    """What a test gets from the ``s3`` fixture."""

    moto: MotoServer
    """The server, for its URL and reset."""
    proxy: FaultProxy
    """The proxy in front of it: point clients here to inject faults."""
    client: Any
    """A boto3 client talking to moto directly, to inspect what was stored."""
    bucket: str = BUCKET
    """A bucket that exists at the start of each test."""

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]
