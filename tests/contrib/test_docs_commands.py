"""The commands and queries shown in getting-started.md and runbook.md, run for real.

Getting started runs top to bottom in a scratch folder with its own HOME, through the
installed ``drivetrain`` console script: the demo, then a scaffolded pipeline. The runbook's
commands then run against the demo's output, with its placeholders (``$PIPELINE``,
``$RUN_ID``...) set to the demo's failed run, and its DuckDB queries run on the demo's file.
(Its Snowflake queries run on the lab_results tables, in test_lab_results.py.) A command that
exits non-zero, an option the CLI no longer has, or a column the drive table does not have
fails here, so the docs and the CLI cannot drift apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest

from tests.sdk.factory import attach_drive

from . import doc_blocks

SCRIPT = Path(sys.executable).with_name("drivetrain")
GETTING_STARTED = doc_blocks.commands("getting-started.md")
RUNBOOK = doc_blocks.commands("runbook.md")
#: What the runbook's placeholders stand for here: the demo's failed 13:00 run.
PLACEHOLDERS = {
    "PIPELINE": "./demo-output",
    "RUN_ID": "demo_20251115T130000Z_run1",
    "WINDOW": "2025-11-15T13:00:00Z",
    "FROM": "2025-11-15",
    "TO": "2025-11-16",
}


@attrs.frozen
class Ran:
    """One command line as bash ran it."""

    command: str
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"$ {self.command}\n-> {self.returncode}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


@attrs.frozen
class Session:
    """A scratch folder and the results of every command run in it, by command line."""

    folder: Path
    results: dict[str, Ran]


def run_lines(lines: list[str], folder: Path, extra_env: dict[str, str] | None = None) -> dict[str, Ran]:
    """Run each line with bash in ``folder``, ``drivetrain`` being the installed script."""
    env = {**os.environ, "HOME": str(folder / "home"), "NO_COLOR": "1", **(extra_env or {})}
    env["PATH"] = f"{SCRIPT.parent}{os.pathsep}{env.get('PATH', '')}"
    results = {}
    for line in lines:
        done = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        results[line] = Ran(line, done.returncode, done.stdout, done.stderr)
    return results


@pytest.fixture(scope="module")
def getting_started(tmp_path_factory: pytest.TempPathFactory) -> Session:
    folder = tmp_path_factory.mktemp("getting-started")
    (folder / "home").mkdir()
    return Session(folder, run_lines(GETTING_STARTED, folder))


@pytest.fixture(scope="module")
def runbook(getting_started: Session) -> Session:
    return Session(getting_started.folder, run_lines(RUNBOOK, getting_started.folder, PLACEHOLDERS))


@pytest.fixture(scope="module")
def demo_file(runbook: Session) -> Iterator[Any]:
    """The demo's DuckDB file, read-only, once every command has run, with its drive file attached."""
    out = runbook.folder / "demo-output"
    with duckdb.connect(str(out / "warehouse.duckdb"), read_only=True) as conn:
        attach_drive(conn, out)  # drive.sqlite (the default), its tables readable by name
        yield conn


class TestGettingStarted:
    def test_the_page_shows_the_demo_and_a_pipeline_of_ones_own(self) -> None:
        assert GETTING_STARTED[0].startswith("drivetrain demo")
        assert any(c.startswith("drivetrain new ") for c in GETTING_STARTED)

    @pytest.mark.parametrize("command", GETTING_STARTED)
    def test_each_command_succeeds(self, getting_started: Session, command: str) -> None:
        ran = getting_started.results[command]
        assert ran.returncode == 0, ran

    def test_the_failed_demo_run_it_shows_is_the_one_the_demo_makes(self, getting_started: Session) -> None:
        shown = next(r for c, r in getting_started.results.items() if "show demo_20251115T130000Z_run1" in c)
        assert "phase failed  stage_to_target_transfer" in shown.stdout

    def test_the_resumed_demo_run_it_shows_carries_the_first_attempts_phases(self, getting_started: Session) -> None:
        shown = next(r for c, r in getting_started.results.items() if "demo_20251115T130000Z_run2" in c)
        assert shown.stdout.count("completed by demo_20251115T130000Z_run1") == 3, shown

    def test_the_backfill_runs_the_three_sample_hours(self, getting_started: Session) -> None:
        backfill = next(r for c, r in getting_started.results.items() if "--from" in c)
        assert backfill.stdout.count("SUCCESS") == 3, backfill


class TestRunbookCommands:
    def test_the_placeholders_defined_on_the_page_are_the_ones_set_here(self) -> None:
        assert doc_blocks.placeholders("runbook.md") == set(PLACEHOLDERS)

    @pytest.mark.parametrize("command", RUNBOOK)
    def test_each_command_uses_only_the_page_placeholders(self, command: str) -> None:
        assert doc_blocks.variables_used(command) <= set(PLACEHOLDERS)

    @pytest.mark.parametrize("command", RUNBOOK)
    def test_each_command_succeeds_on_the_demo(self, runbook: Session, command: str) -> None:
        ran = runbook.results[command]
        assert ran.returncode == 0, ran

    def test_resuming_the_window_runs_it_again(self, runbook: Session) -> None:
        resumed = runbook.results['drivetrain run "$PIPELINE" --window-start "$WINDOW"']
        assert "SUCCESS  demo_20251115T130000Z_run3" in resumed.stdout, resumed


class TestDuckDBQueries:
    """Every ``-- DuckDB:`` block of the two pages, on the demo's file."""

    QUERIES = [(page, title, statement) for page in ("getting-started.md", "runbook.md")
               for title, statements in doc_blocks.sql(page, "DuckDB") for statement in statements]

    def test_the_pages_have_duckdb_queries(self) -> None:
        assert len(self.QUERIES) >= 10

    @pytest.mark.parametrize(("page", "title", "statement"), QUERIES, ids=[f"{p}:{t}" for p, t, _ in QUERIES])
    def test_each_query_runs(self, demo_file: Any, page: str, title: str, statement: str) -> None:
        demo_file.execute(statement).fetchall()

    @pytest.mark.parametrize("title", [t for p, t, s in QUERIES if "demo_20251115T130000Z_run1" in s or "FAILED" in s])
    def test_queries_about_the_failed_run_find_it(self, demo_file: Any, title: str) -> None:
        for _page, query_title, statement in self.QUERIES:
            if query_title == title:
                assert demo_file.execute(statement).fetchall(), statement
