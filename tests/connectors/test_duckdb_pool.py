"""The DuckDB connection pool: one connection per thread, kept for a run but given up on request."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from drivetrain.connectors.duckdb.connection import ConnectionPool

#: Another process: opens the same file through a pool (waiting its turn, up to the lock
#: timeout it is given), writes, exits.
OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from drivetrain.connectors.duckdb.connection import ConnectionPool

    pool = ConnectionPool(Path(sys.argv[1]), lock_timeout=float(sys.argv[2]))
    with pool.connect() as conn:
        conn.execute("INSERT INTO t VALUES (2)")
    print("written")
    """
)


@pytest.fixture
def pool(tmp_path: Path) -> ConnectionPool:
    pool = ConnectionPool(tmp_path / "w.duckdb", lock_timeout=60)
    with pool.connect() as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
    return pool


def other_process(pool: ConnectionPool, lock_timeout: float = 60) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", OTHER_PROCESS, str(pool.path), str(lock_timeout)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def file_is_free(path: Path) -> bool:
    """Whether another process can open the file right now."""
    probe = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
    return subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True).returncode == 0


class TestKeepOpen:
    def test_without_it_each_use_opens_the_file_again(self, pool: ConnectionPool) -> None:
        with pool.connect() as first:
            pass
        with pool.connect() as second:
            pass
        assert first is not second

    def test_a_kept_connection_serves_every_use_of_the_block(self, pool: ConnectionPool) -> None:
        with pool.keep_open():
            with pool.connect() as first:
                first.execute("INSERT INTO t VALUES (1)")
            with pool.connect() as second:
                assert second.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert first is second

    def test_the_file_is_free_again_when_the_block_ends(self, pool: ConnectionPool) -> None:
        with pool.keep_open():
            with pool.connect():
                pass
            assert not file_is_free(pool.path)
        assert file_is_free(pool.path)

    @pytest.mark.parametrize("pause", [0.05, 0.0])
    def test_a_waiting_process_gets_the_file_at_the_holders_next_idle_moment(self, pool: ConnectionPool, pause: float) -> None:
        """Even from a holder that uses the file again at once (statement after statement): it
        once opened it again first, round after round, until the waiter's lock timeout."""
        seen: list[object] = []
        with pool.keep_open():
            with pool.connect() as conn:
                seen.append(conn)
            other = other_process(pool, lock_timeout=20)
            try:
                deadline = time.monotonic() + 30
                while other.poll() is None and time.monotonic() < deadline:
                    with pool.connect() as conn:  # work between phases: idle for a moment after each
                        seen.append(conn)
                        conn.execute("SELECT count(*) FROM t").fetchone()
                    time.sleep(pause)
                out, err = other.communicate(timeout=60)
            finally:
                if other.poll() is None:
                    other.kill()
            assert other.returncode == 0, err
            assert out.strip() == "written"
            with pool.connect() as later:  # the holder opens the file again and sees the write
                assert later.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert later is not seen[0]  # it let go of the connection it kept

    def test_a_process_that_waits_says_so(self, pool: ConnectionPool) -> None:
        assert not pool.wanted_mark.exists()
        with pool.connect():
            other = other_process(pool)
            deadline = time.monotonic() + 30
            while not pool.wanted_mark.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            asked = pool.wanted_mark.exists()
        assert other.wait(timeout=60) == 0  # and once the holder left, it got the file
        assert asked


class TestLettingGoInTheMiddleOfWork:
    """A kept connection is given up while its thread does something else (a long phase that does
    not use the file), not only when the thread next uses it; never under a statement in flight."""

    def test_a_waiting_process_gets_the_file_while_the_holder_keeps_it_and_does_other_work(
            self, pool: ConnectionPool) -> None:
        with pool.keep_open():
            with pool.connect() as kept:
                kept.execute("INSERT INTO t VALUES (1)")
            assert not file_is_free(pool.path)  # kept after its use
            other = other_process(pool, lock_timeout=20)
            try:  # the holder's thread never touches the pool meanwhile: it waits for the other process
                out, err = other.communicate(timeout=60)
            finally:
                if other.poll() is None:
                    other.kill()
            assert other.returncode == 0, err
            assert out.strip() == "written"
            with pool.connect() as again:  # the next use opens the file again, and sees the other write
                assert again.execute("SELECT count(*) FROM t").fetchone() == (2,)
        assert again is not kept

    def test_a_transaction_in_flight_is_never_closed_under_it(self, pool: ConnectionPool) -> None:
        with pool.keep_open():
            with pool.connect() as conn:
                conn.execute("BEGIN TRANSACTION")
                conn.execute("INSERT INTO t VALUES (1)")
                other = other_process(pool)
                deadline = time.monotonic() + 30
                while not pool.wanted_mark.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert pool.wanted_mark.exists()  # asked for the file...
                time.sleep(0.3)  # ...and the watcher looked many times meanwhile
                assert other.poll() is None  # but the transaction keeps it
                conn.execute("INSERT INTO t VALUES (3)")
                conn.execute("COMMIT")
            out, err = other.communicate(timeout=60)  # let go when the last user left
            assert other.returncode == 0, err
            with pool.connect() as again:
                assert sorted(v for (v,) in again.execute("SELECT v FROM t").fetchall()) == [1, 2, 3]

    def test_the_watcher_stops_with_the_last_keeping_block(self, pool: ConnectionPool) -> None:
        import threading

        def watchers() -> int:
            return sum(t.name.startswith("drivetrain-watch") and t.is_alive() for t in threading.enumerate())

        before = watchers()
        with pool.keep_open(), pool.keep_open():
            assert watchers() == before + 1
        deadline = time.monotonic() + 10
        while watchers() > before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watchers() == before


class TestTheGate:
    """Processes queue on ``<db>.locks/open.gate`` before opening the file."""

    def test_a_process_that_waits_too_long_names_the_holder(self, pool: ConnectionPool) -> None:
        import os

        with pool.connect():  # in use the whole time: never idle, so never given up
            other = other_process(pool, lock_timeout=1)
            out, err = other.communicate(timeout=60)
        assert other.returncode == 1
        assert f"the DuckDB file stayed locked by another process (held by PID {os.getpid()}) for 1s" in err
        assert "raise stage_system.lock_timeout_seconds" in err

    def test_without_a_place_for_the_gate_the_file_still_opens(self, tmp_path: Path) -> None:
        """A ``.locks`` that cannot be a folder (here a file of that name): DuckDB's own lock
        decides alone, and using the file again works as before."""
        path = tmp_path / "w.duckdb"
        path.with_name("w.duckdb.locks").write_text("not a folder")
        pool = ConnectionPool(path, lock_timeout=5)
        for _ in range(2):
            with pool.keep_open(), pool.connect() as conn, pool.connect() as inner:
                assert inner is conn
                conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
                conn.execute("INSERT INTO t VALUES (1)")
        assert file_is_free(path)
        with pool.connect() as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


#: Another process: holds the file (through a pool) until its standard input closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from drivetrain.connectors.duckdb.connection import ConnectionPool

    pool = ConnectionPool(Path(sys.argv[1]), lock_timeout=60)
    with pool.connect():
        print("holding", flush=True)
        sys.stdin.read()
    """
)


def holder(path: Path) -> subprocess.Popen[str]:
    """Another process holding ``path`` until its standard input is closed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding", proc.stderr.read() if proc.stderr else ""
    return proc


def let_go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0


def opening_threads() -> int:
    import threading

    return sum(t.name == "drivetrain-duckdb-open" and t.is_alive() for t in threading.enumerate())


class TestSession:
    """``pool.session()`` holds the connection for a block (a phase) and opens the file on a thread
    of its own: the block starts at once, its first statement waits for the opening."""

    def test_the_block_runs_while_another_process_still_holds_the_file(self, pool: ConnectionPool) -> None:
        """Before, entering the block opened the file: it waited here until the holder let go
        (and, past the lock timeout, gave up on holding the file for the block)."""
        other = holder(pool.path)
        try:
            with pool.session():
                still_held = other.poll() is None  # the block got here while the other process holds the file
                let_go(other)
                with pool.connect() as first:  # waits for the opening, which gets the file now
                    first.execute("INSERT INTO t VALUES (1)")
                with pool.connect() as second:
                    assert second.execute("SELECT count(*) FROM t").fetchone() == (1,)
                assert not file_is_free(pool.path)  # held for the whole block
        finally:
            if other.poll() is None:
                other.kill()
        assert still_held
        assert first is second
        assert file_is_free(pool.path)
        assert opening_threads() == 0

    def test_a_block_that_never_uses_the_file_lets_go_of_it(self, pool: ConnectionPool) -> None:
        with pool.session():
            pass
        assert file_is_free(pool.path)
        assert opening_threads() == 0

    def test_a_block_that_ends_while_the_file_is_locked_stops_waiting_for_it(self, pool: ConnectionPool) -> None:
        other = holder(pool.path)
        try:
            with pool.session():
                pass
            assert opening_threads() == 0  # not left waiting for the file
            assert other.poll() is None
        finally:
            let_go(other)
        assert file_is_free(pool.path)

    def test_a_session_inside_a_session_shares_its_connection(self, pool: ConnectionPool) -> None:
        with pool.session():
            with pool.session(), pool.connect() as inner:
                pass
            with pool.connect() as outer:
                assert outer is inner
            assert not file_is_free(pool.path)
        assert file_is_free(pool.path)

    def test_inside_a_kept_connection_it_uses_that_one(self, pool: ConnectionPool) -> None:
        with pool.keep_open():
            with pool.connect() as kept:
                pass
            with pool.session(), pool.connect() as used:
                pass
            assert used is kept
            assert not file_is_free(pool.path)

    def test_a_file_locked_past_the_timeout_is_not_held_and_each_statement_says_so(
            self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """As for a warehouse whose session cannot start (Pipeline.session): a warning, then each
        statement opens the file itself and gets the usual TransientError."""
        from drivetrain.errors import TransientError

        pool = ConnectionPool(tmp_path / "w.duckdb", lock_timeout=0.5)
        with pool.connect() as conn:
            conn.execute("CREATE TABLE t (v INTEGER)")
        other = holder(pool.path)
        try:
            with pool.session():
                with pytest.raises(TransientError, match="the DuckDB file stayed locked by another process"), pool.connect():
                    pass
                assert "not holding a connection open for this phase" in caplog.text
                let_go(other)
                with pool.connect() as conn:
                    conn.execute("INSERT INTO t VALUES (1)")
                assert file_is_free(pool.path)  # statement by statement now: nothing holds it between them
        finally:
            if other.poll() is None:
                other.kill()
        assert opening_threads() == 0

    def test_a_damaged_file_fails_the_first_statement_with_the_usual_message(self, tmp_path: Path) -> None:
        from drivetrain.errors import PermanentError

        path = tmp_path / "w.duckdb"
        path.write_bytes(b"not a database" * 1000)
        pool = ConnectionPool(path, lock_timeout=5)
        with pool.session(), pytest.raises(PermanentError, match="is not a DuckDB database"), pool.connect():
            pass
        assert opening_threads() == 0
