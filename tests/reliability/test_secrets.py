"""A known secret never shows: not in logs, errors, the drive table, the rejects or any report.

Each scenario runs a MySQL pipeline through the ``drivetrain`` command with debug logging, its
password given through the environment as in production, then asks every command that shows
runs (show, history, status, report as text, JSON and HTML) and dumps the drive and rejects
tables. The password must appear nowhere: not on success, not when the server refuses it, not
when the server cannot be reached by either MySQL reader (connectorx puts it in a URL).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.sdk.factory import make_rows
from tests.servers.mariadb import MariaDBServer

from .sources import MYSQL_REF, mysql_pipeline

SCRIPT = Path(sys.executable).with_name("drivetrain")
WINDOW = "2025-11-15T00:00:00Z"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: dict[str, str], cwd: Path, *args: str) -> tuple[str, str]:
    """(stdout, everything the command printed, labelled)."""
    if not SCRIPT.exists():
        pytest.fail(f"the drivetrain console script is not installed next to {sys.executable}: pip install -e .")
    done = subprocess.run([str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    return done.stdout, f"$ drivetrain {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


def tables(folder: Path) -> str:
    """Every row of every table in the pipeline's DuckDB file, as text."""
    out = []
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as conn:
        for (name,) in conn.execute("SELECT table_name FROM information_schema.tables").fetchall():
            out.append(f"-- {name}\n" + "\n".join(map(str, conn.execute(f'SELECT * FROM "{name}"').fetchall())))
    return "\n".join(out)


def everything_shown(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """Run the window with debug logs, then gather what each way of looking at it shows."""
    cwd = folder.parent
    shown = {"run": cli(env, cwd, "-vv", "run", str(folder), "--window-start", WINDOW)[1]}
    shown["run --json"] = cli(env, cwd, "-vv", "--log-format", "json", "run", str(folder),
                              "--window-start", WINDOW, "--json")[1]
    out, shown["history"] = cli(env, cwd, "history", str(folder), "--json")
    for run in json.loads(out or "[]"):
        shown[f"show {run['pipeline_id']}"] = cli(env, cwd, "show", run["pipeline_id"], "--dir", str(folder))[1]
    shown["status"] = cli(env, cwd, "status", str(folder))[1]
    shown["report --json"] = cli(env, cwd, "report", "--dir", str(folder), "--json")[1]
    html = cwd / "report.html"
    shown["report --html"] = cli(env, cwd, "report", "--dir", str(folder), "--html", str(html))[1]
    shown["report.html"] = html.read_text() if html.exists() else ""
    shown["tables"] = tables(folder)
    return shown


def assert_absent(secret: str, shown: dict[str, str]) -> None:
    leaks = [where for where, text in shown.items() if secret in text]
    assert not leaks, f"the secret appears in: {leaks}\n" + "\n".join(shown[w][:3000] for w in leaks)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {**os.environ, "HOME": str(home), "NO_COLOR": "1"}


def pipeline(tmp_path: Path, mariadb: MariaDBServer, env: dict[str, str], *, password: str, **changes: Any) -> Path:
    with pytest.MonkeyPatch.context() as patch:  # the folder only; the commands read ``env``
        folder = mysql_pipeline(tmp_path / "lab", mariadb, make_rows(120, hours=1, seed=3), patch, **changes)
    env[f"{MYSQL_REF.upper()}_USER"] = mariadb.user
    env[f"{MYSQL_REF.upper()}_PASSWORD"] = password
    return folder


@pytest.mark.slow
class TestKnownSecret:
    @pytest.mark.parametrize("reader", ["pymysql", "connectorx"])
    def test_a_successful_run_shows_the_password_nowhere(self, tmp_path: Path, mariadb: MariaDBServer,
                                                         env: dict[str, str], reader: str) -> None:
        folder = pipeline(tmp_path, mariadb, env, password=mariadb.password, source_system__reader=reader)
        shown = everything_shown(folder, env)
        assert "SUCCESS" in shown["run"], shown["run"][-3000:]
        assert_absent(mariadb.password, shown)

    def test_a_refused_password_shows_nowhere(self, tmp_path: Path, mariadb: MariaDBServer, env: dict[str, str]) -> None:
        wrong = "Wr0ng-Pa55word-for-drivetrain"
        folder = pipeline(tmp_path, mariadb, env, password=wrong)
        shown = everything_shown(folder, env)
        assert "FAILED" in shown["run"], shown["run"][-3000:]
        assert_absent(wrong, shown)

    @pytest.mark.parametrize("reader", ["pymysql", "connectorx"])
    def test_an_unreachable_server_shows_the_password_nowhere(self, tmp_path: Path, mariadb: MariaDBServer,
                                                              env: dict[str, str], reader: str) -> None:
        folder = pipeline(tmp_path, mariadb, env, password=mariadb.password, port=closed_port(),
                          source_system__reader=reader, retry={"max_retries": 0})
        shown = everything_shown(folder, env)
        assert "FAILED" in shown["run"], shown["run"][-3000:]
        assert_absent(mariadb.password, shown)
