"""A fakesnow server for tests: the real Snowflake connector talks HTTP to it.

fakesnow's server (``fakesnow.server.app``) answers the connector's login, query and upload
requests from an in-memory DuckDB. :class:`FakeSnowServer` runs it under uvicorn in a thread
on a free port, with one fix and three additions Snowflake has and fakesnow lacks:

- NULL timestamps are sent as NULL (fakesnow 0.12 encodes them as 1970-01-01 in Arrow results);
- a write that collides with another session's open transaction fails at once with Snowflake's
  lock error 000625 (SQLSTATE 57014). Snowflake would make it wait for the lock; DuckDB under
  fakesnow raises a conflict, which fakesnow reports as an HTTP 500 that the connector retries
  for ``network_timeout`` before giving up. A lock error is what a client sees from Snowflake
  when such a wait cannot go on, so the code under test takes the same path;

- the login response carries a numeric ``sessionId`` (the connector's ``session_id``);
- ``SELECT SYSTEM$ABORT_SESSION(?)`` ends that session and rolls back its open transaction,
  releasing what it holds (fakesnow would otherwise keep a killed client's transaction forever);
- every login (its session parameters) and query request (database, session, SQL text, the
  QUERY_TAG statement parameter) is recorded, so tests can check what the connector sent.

Everything else is fakesnow's own behaviour. One server serves a whole test session; tests
keep apart by using a database of their own.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import logging
import re
import socket
import threading
import time
from collections import deque
from typing import Any

import attrs

STARTUP_TIMEOUT = 20.0
_ABORT = re.compile(r"^\s*SELECT\s+SYSTEM\$ABORT_SESSION\s*\(\s*\?\s*\)\s*$", re.IGNORECASE)


class ServerError(RuntimeError):
    """The server could not start; the message says why."""


@attrs.frozen
class Statement:
    """One query request as the server received it."""

    database: str | None
    session_id: int
    sql: str
    query_tag: str | None


def _timestamps_keep_nulls() -> None:
    """Patch fakesnow's Arrow encoding of timestamps so NULL stays NULL, as Snowflake sends it."""
    import fakesnow.arrow as fa
    import pyarrow as pa

    original = fa.timestamp_to_sf_struct
    if getattr(original, "keeps_nulls", False):
        return

    def encode(ts: Any) -> Any:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        struct = original(ts)
        if not ts.null_count:
            return struct
        return pa.StructArray.from_arrays(struct.flatten(), fields=list(struct.type), mask=ts.is_null())

    encode.keeps_nulls = True  # type: ignore[attr-defined]
    fa.timestamp_to_sf_struct = encode


def _conflicts_are_lock_errors() -> None:
    """Patch fakesnow's cursor: DuckDB write conflicts become Snowflake lock errors (000625)."""
    import duckdb
    import fakesnow.cursor as fc
    import snowflake.connector.errors as sf_errors

    original = fc.FakeSnowflakeCursor.execute
    if getattr(original, "lock_errors", False):
        return

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except duckdb.TransactionException as exc:
            text = str(exc)
            if "onflict" not in text and "transaction is aborted" not in text:
                raise
            raise sf_errors.ProgrammingError(
                msg=f"Statement was aborted: it needs a lock another transaction holds (emulated: {text})",
                errno=625, sqlstate="57014",
            ) from exc

    execute.lock_errors = True  # type: ignore[attr-defined]
    fc.FakeSnowflakeCursor.execute = execute


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeSnowServer:
    """fakesnow's ASGI app behind uvicorn, with session ids, session aborts and a request log."""

    def __init__(self) -> None:
        self.port = 0
        self.statements: deque[Statement] = deque(maxlen=200_000)
        self.logins: dict[int, dict[str, Any]] = {}
        """Session id -> the session parameters its login sent."""
        self._ids = itertools.count(1001)
        self._tokens: dict[int, str] = {}
        self._info: dict[str, tuple[int, str | None]] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # -- what tests pass to the connector ---------------------------------------------------

    def options(self, database: str, schema: str = "PUBLIC") -> dict[str, Any]:
        """A Snowflake config section (without table and credentials) pointing at this server."""
        return {
            "type": "snowflake", "account": "fakesnow", "host": "127.0.0.1", "port": self.port, "protocol": "http",
            "database": database, "schema": schema, "network_timeout": 1, "login_timeout": 10,
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }

    def statements_for(self, database: str) -> list[Statement]:
        with self._lock:
            return [s for s in self.statements if s.database == database.upper()]

    def abort_session(self, session_id: int) -> bool:
        """What SYSTEM$ABORT_SESSION does: roll back the session's transaction and end it."""
        import fakesnow.server as fs

        with self._lock:
            token = self._tokens.pop(session_id, None)
        conn = fs.sessions.pop(token, None) if token else None
        if conn is None:
            return False
        with contextlib.suppress(Exception):  # no transaction open
            conn._duck_conn.rollback()  # noqa: SLF001 - the emulator's own state
        return True

    # -- the app ----------------------------------------------------------------------------

    def _app(self) -> Any:
        import fakesnow.server as fs
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        server = self

        async def login(request: Any) -> Any:
            raw = await request.body()
            sent = json.loads(gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw)
            response = await fs.login_request(request)
            payload = json.loads(response.body)
            token = payload["data"]["token"]
            session_id = next(server._ids)
            database = request.query_params.get("databaseName")
            with server._lock:
                server._tokens[session_id] = token
                server._info[token] = (session_id, database.upper() if database else None)
                server.logins[session_id] = dict(sent["data"].get("SESSION_PARAMETERS") or {})
            payload["data"]["sessionId"] = session_id
            return JSONResponse(payload)

        async def query(request: Any) -> Any:
            raw = await request.body()
            gzipped = request.headers.get("Content-Encoding") == "gzip"
            body = json.loads(gzip.decompress(raw) if gzipped else raw)
            token = (request.headers.get("Authorization") or "")[17:-1]
            session_id, database = server._info.get(token, (0, None))
            tag = (body.get("parameters") or {}).get("QUERY_TAG")
            with server._lock:
                server.statements.append(Statement(database, session_id, body.get("sqlText", ""), tag))
            if _ABORT.match(body.get("sqlText", "")):
                target = int((body.get("bindings") or {}).get("1", {}).get("value", 0))
                done = server.abort_session(target)
                body["sqlText"] = f"SELECT '{'Session aborted' if done else 'No such session'}' AS STATUS"
                body.pop("bindings", None)
                data = json.dumps(body).encode()
                request._body = gzip.compress(data) if gzipped else data  # noqa: SLF001 - replay a rewritten body
            return await fs.query_request(request)

        own = {"/session/v1/login-request": login, "/queries/v1/query-request": query}
        routes = [Route(r.path, own[r.path], methods=["POST"]) if r.path in own else r for r in fs.routes]
        return Starlette(routes=routes)

    def start(self) -> FakeSnowServer:
        try:
            import uvicorn
        except ImportError as exc:
            raise ServerError(f"fakesnow's server needs uvicorn and starlette: pip install 'fakesnow[server]' ({exc})") from exc
        try:
            app = self._app()
        except ImportError as exc:
            raise ServerError(f"fakesnow is not installed: pip install 'fakesnow>=0.12,<0.13' ({exc})") from exc
        _timestamps_keep_nulls()
        _conflicts_are_lock_errors()
        logging.getLogger("fakesnow.server").setLevel(logging.CRITICAL)
        self.port = _free_port()
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, name="fakesnow server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServerError(f"the fakesnow server did not start on 127.0.0.1:{self.port} within {STARTUP_TIMEOUT:.0f}s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeSnowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
