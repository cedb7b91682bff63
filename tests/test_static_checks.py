"""The repository stays clean under mypy and ruff, as CONTRIBUTING.md promises.

Each tool runs as a subprocess of this interpreter (so the virtualenv's copy and the
repository's pyproject.toml settings are used), from the repository root. A tool that reports
anything, or is not installed, fails the test with the tool's own output.

mypy runs through ``scripts/typecheck``, which checks the code as the ``drivetrain`` package it
installs as (a tree of links laid out like the wheel), not as the ``sdk``/``connectors`` folders:
checked as folders, every ``from drivetrain... import`` would be an unresolved import, ``Any``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Type-checks the package as ``drivetrain`` (see its docstring); CONTRIBUTING.md names it too.
TYPECHECK = ROOT / "scripts" / "typecheck"


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """``python <args>`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    command = "python " + " ".join(str(arg) for arg in result.args[1:])
    return f"`{command}` exited {result.returncode}:\n{result.stdout}{result.stderr}"


class TestStaticChecks:
    def test_mypy_finds_no_type_errors_in_the_drivetrain_package(self, tmp_path: Path) -> None:
        result = run_python(str(TYPECHECK), "--tree", str(tmp_path / "tree"))
        assert result.returncode == 0, report(result)

    def test_ruff_finds_no_lint_problems(self) -> None:
        result = run_python("-m", "ruff", "check", ".")
        assert result.returncode == 0, report(result)
