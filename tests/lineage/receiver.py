"""A local OpenLineage receiver: keeps every event POSTed to it, checked against the spec.

Each event is rebuilt through the OpenLineage client's own generated model of the spec as it
arrives (:func:`tests.lineage.spec.spec_errors`); what breaks it is kept in ``problems`` by
event index, and :meth:`Receiver.invalid` adds the parent links across events.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

from tests.lineage.spec import link_errors, spec_errors


@attrs.define
class Receiver:
    """The running server: ``url`` for OPENLINEAGE_URL, ``events`` as received, in order."""

    url: str = ""
    events: list[dict[str, Any]] = attrs.field(factory=list)
    problems: dict[int, list[str]] = attrs.field(factory=dict)
    status: int = 200
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.rstrip("/").endswith("/api/v1/lineage"):
                    owner.receive(json.loads(body))
                self.send_response(owner.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def receive(self, event: Any) -> None:
        """Keep ``event``, and every way it breaks the spec."""
        with self._lock:
            errors = spec_errors(event)
            if errors:
                self.problems[len(self.events)] = errors
            self.events.append(event)

    def invalid(self) -> dict[str, list[str]]:
        """Every event that broke the spec, and the parent links that lead nowhere; empty when all is well."""
        found = {f"event {i}": errors for i, errors in self.problems.items()}
        links = link_errors(self.events)
        return {**found, "links": links} if links else found

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def of(self, job: str) -> list[dict[str, Any]]:
        """The events of one job, in order."""
        return [e for e in self.events if e["job"]["name"] == job]
