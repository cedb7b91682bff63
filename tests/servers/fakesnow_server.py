"""A fakesnow server for tests: the real Snowflake connector talks HTTP to it.

fakesnow's server (``fakesnow.server.app``) answers the connector's login, query and upload
requests from an in-memory DuckDB. :class:`FakeSnowServer` runs it under uvicorn in a thread
on a free port, with one fix and three additions Snowflake has and fakesnow lacks:

- NULL timestamps are sent as NULL (fakesnow 0.12 encodes them as 1970-01-01 in Arrow results);
- UPDATE, DELETE and MERGE take the table's lock until the transaction ends, as in Snowflake:
  a second session's UPDATE/DELETE/MERGE on that table waits for the COMMIT or ROLLBACK (or
  for SYSTEM$ABORT_SESSION of the holder), then sees what was committed. It waits at most the
  session's LOCK_TIMEOUT (the login's session parameter; Snowflake's default 43200 s) and is
  then cancelled with 000630; a 21st statement queued on one table is refused at once with
  000625. fakesnow alone lets DuckDB detect the collision afterwards and fail the second
  writer with an HTTP 500 (see :class:`TableLocks`);

- the login response carries a numeric ``sessionId`` (the connector's ``session_id``) and a
  ``masterToken``, so the connector's ``close()`` logs out as it does from Snowflake;
- ``SELECT SYSTEM$ABORT_SESSION(?)`` ends that session and rolls back its open transaction,
  releasing what it holds (fakesnow would otherwise keep a killed client's transaction forever);
  a clean logout (the connector's ``close()``) rolls back and releases the same way;
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


#: Snowflake's default LOCK_TIMEOUT (12 hours) for a session whose login does not set it.
DEFAULT_LOCK_TIMEOUT = 43200.0
#: Statements that may queue for one table's lock; Snowflake refuses the next with 000625.
MAX_LOCK_WAITERS = 20


class TableLocks:
    """Snowflake's table locks, which fakesnow (DuckDB underneath) does not have.

    In Snowflake an UPDATE, DELETE or MERGE locks its target table until its transaction ends
    (at once for an autocommit statement). Another session's UPDATE, DELETE or MERGE on that
    table waits in a queue for the lock, up to its LOCK_TIMEOUT, then is cancelled (000630); a
    statement that would be the 21st waiter is refused at once (000625). INSERT takes no such
    lock. Reads never wait. Isolation is READ COMMITTED: a statement that got the lock sees what
    the holder committed. DuckDB gives a transaction one snapshot from its BEGIN, so when a
    transaction's first statement had to wait, its DuckDB transaction is begun again before the
    statement runs, which is what READ COMMITTED shows that statement (later statements of a
    transaction that waited after it had read keep DuckDB's older snapshot).

    The holder is fakesnow's connection object (one per session). SYSTEM$ABORT_SESSION and a
    clean logout release what the session held.

    Keep waits in tests well under a minute: Snowflake answers a statement still running after
    about 45 s with "in progress" and the connector polls for the result, but fakesnow answers
    only when the statement ends, and the connector re-sends a request unanswered after 60 s.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._holder: dict[str, Any] = {}
        self._waiting: dict[str, int] = {}
        self._in_transaction: dict[int, bool] = {}
        self._fresh: dict[int, bool] = {}
        self.timeouts: dict[int, float] = {}
        """id(fakesnow connection) -> its session's LOCK_TIMEOUT in seconds."""
        self.waits: list[tuple[str, float]] = []
        """(table, seconds waited) for every statement that had to wait, for tests."""

    def held_by(self, conn: Any) -> list[str]:
        with self._cond:
            return sorted(t for t, h in self._holder.items() if h is conn)

    def waiters(self, table: str) -> int:
        with self._cond:
            return self._waiting.get(table.upper(), 0)

    def run(self, conn: Any, command: str, execute: Any) -> Any:
        """Run one statement of ``conn``'s session under Snowflake's locking rules."""
        import sqlglot
        from sqlglot import exp

        try:
            statement = sqlglot.parse_one(command, read="snowflake")
        except sqlglot.errors.ParseError:
            return execute()  # fakesnow reports the syntax error
        key = id(conn)
        if isinstance(statement, exp.Transaction):
            result = execute()
            with self._cond:
                self._in_transaction[key], self._fresh[key] = True, True
            return result
        if isinstance(statement, exp.Commit | exp.Rollback):
            try:
                return execute()
            finally:
                self.release(conn)
        table = self._target(statement, conn) if isinstance(statement, exp.Update | exp.Delete | exp.Merge) else None
        if table is not None and self._acquire(conn, table) and self._fresh.get(key):
            conn._duck_conn.execute("ROLLBACK")  # noqa: SLF001 - READ COMMITTED for the statement that waited
            conn._duck_conn.execute("BEGIN TRANSACTION")  # noqa: SLF001
        try:
            return execute()
        finally:
            with self._cond:
                self._fresh[key] = False
                in_transaction = self._in_transaction.get(key, False)
            if table is not None and not in_transaction:
                self.release(conn)

    @staticmethod
    def _target(statement: Any, conn: Any) -> str | None:
        from sqlglot import exp

        table = statement.this if isinstance(statement.this, exp.Table) else statement.find(exp.Table)
        if table is None:
            return None
        parts = [table.catalog or conn.database or "", table.db or conn.schema or "", table.name]
        return ".".join(p.upper() for p in parts)

    def _acquire(self, conn: Any, table: str) -> bool:
        """Take ``table``'s lock for ``conn``; True when it had to wait for another session."""
        import snowflake.connector.errors as sf_errors

        timeout = self.timeouts.get(id(conn), DEFAULT_LOCK_TIMEOUT)
        with self._cond:
            holder = self._holder.get(table)
            if holder is None or holder is conn:
                self._holder[table] = conn
                return False
            if self._waiting.get(table, 0) >= MAX_LOCK_WAITERS:
                raise sf_errors.ProgrammingError(
                    msg=f"Statement has locked table '{table}' and this lock has not yet been released. Your statement "
                        f"was aborted because the number of waiters for this lock exceeds the {MAX_LOCK_WAITERS} statements limit.",
                    errno=625, sqlstate="57014",
                )
            self._waiting[table] = self._waiting.get(table, 0) + 1
            started = time.monotonic()
            try:
                free = self._cond.wait_for(lambda: self._holder.get(table) is None, timeout=timeout)
            finally:
                self._waiting[table] -= 1
            if not free:
                raise sf_errors.ProgrammingError(
                    msg=f"Statement reached its statement or warehouse timeout of {timeout:g} second(s) and was canceled.",
                    errno=630, sqlstate="57014",
                )
            self._holder[table] = conn
            self.waits.append((table, time.monotonic() - started))
            return True

    def release(self, conn: Any) -> None:
        """End ``conn``'s transaction as far as locks go: free what it holds, wake the waiters."""
        with self._cond:
            for table in [t for t, h in self._holder.items() if h is conn]:
                del self._holder[table]
            self._in_transaction[id(conn)] = False
            self._fresh[id(conn)] = False
            self._cond.notify_all()


LOCKS = TableLocks()


def _table_locks() -> None:
    """Patch fakesnow's cursor so every statement goes through :data:`LOCKS`."""
    import fakesnow.cursor as fc

    original = fc.FakeSnowflakeCursor.execute
    if getattr(original, "table_locks", False):
        return

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        return LOCKS.run(self._conn, command, lambda: original(self, command, *args, **kwargs))  # noqa: SLF001

    execute.table_locks = True  # type: ignore[attr-defined]
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
        LOCKS.release(conn)
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
            parameters = dict(sent["data"].get("SESSION_PARAMETERS") or {})
            with server._lock:
                server._tokens[session_id] = token
                server._info[token] = (session_id, database.upper() if database else None)
                server.logins[session_id] = parameters
            if "LOCK_TIMEOUT" in parameters:
                LOCKS.timeouts[id(fs.sessions[token])] = float(parameters["LOCK_TIMEOUT"])
            payload["data"]["sessionId"] = session_id
            # Snowflake's login answer carries a master token; without one the connector's close()
            # never logs out (it skips the DELETE /session request)
            payload["data"].setdefault("masterToken", token)
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

        async def session(request: Any) -> Any:
            if request.query_params.get("delete"):
                # a clean logout (the connector's close()) rolls back what the session left open
                token = (request.headers.get("Authorization") or "")[17:-1]
                conn = fs.sessions.get(token)
                if conn is not None:
                    with contextlib.suppress(Exception):  # no transaction open
                        conn._duck_conn.rollback()  # noqa: SLF001 - the emulator's own state
                    LOCKS.release(conn)
            return await fs.session(request)

        own = {"/session/v1/login-request": login, "/queries/v1/query-request": query, "/session": session}
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
        _table_locks()
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
