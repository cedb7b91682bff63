"""The repository stays clean under mypy and ruff, as CONTRIBUTING.md promises.

Each tool runs as a subprocess of this interpreter (so the virtualenv's copy and the
repository's pyproject.toml settings are used), from the repository root. A tool that reports
anything, or is not installed, fails the test with the tool's own output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The folders that make up the ``drivetrain`` package (setup.py maps them to import names).
PACKAGE_FOLDERS = ("sdk", "connectors", "airflow_integration", "contrib_pipelines")


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m <args>`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    command = "python -m " + " ".join(result.args[2:])
    return f"`{command}` exited {result.returncode}:\n{result.stdout}{result.stderr}"


class TestStaticChecks:
    def test_mypy_finds_no_type_errors(self) -> None:
        result = run_tool("mypy", *PACKAGE_FOLDERS)
        assert result.returncode == 0, report(result)

    def test_ruff_finds_no_lint_problems(self) -> None:
        result = run_tool("ruff", "check", ".")
        assert result.returncode == 0, report(result)
