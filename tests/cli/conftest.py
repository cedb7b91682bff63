"""Fixtures for the command-line tests: the installed ``drivetrain`` script, run as a subprocess.

Every test runs the console script that ``pip install -e .`` put next to the Python running the
tests, in a temporary working folder with its own HOME (so nothing reads or writes the real
~/.drivetrain), and gets its exit status, stdout and stderr back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

SCRIPT = Path(sys.executable).with_name("drivetrain")
#: The day the scaffold's sample data covers (see drivetrain.cli._templates.SAMPLE_DAY).
SAMPLE_DAY = "2025-01-01"


@attrs.frozen
class Result:
    """What one invocation of the script did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"drivetrain {' '.join(self.args)} -> {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@attrs.frozen
class Cli:
    """Runs ``drivetrain ARGS...`` in ``cwd`` with HOME set to ``home``."""

    cwd: Path
    home: Path

    def __call__(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> Result:
        env = {**os.environ, "HOME": str(self.home), "NO_COLOR": "1"}
        done = subprocess.run([str(SCRIPT), *args], cwd=cwd or self.cwd, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        return Result(tuple(args), done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "HOME": str(self.home), "NO_COLOR": "1"}
        return subprocess.Popen([str(SCRIPT), *args], cwd=self.cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def _require_script() -> None:
    if not SCRIPT.exists():
        pytest.fail(f"the drivetrain console script is not installed next to {sys.executable}; "
                    "install the package first: pip install -e '.[dev]'")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    _require_script()
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    return Cli(cwd=work, home=home)


@pytest.fixture(scope="session")
def scaffold_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``drivetrain new shop`` folder made once; tests get copies (see ``shop``)."""
    _require_script()
    root = tmp_path_factory.mktemp("scaffold")
    made = Cli(cwd=root, home=root)("new", "shop")
    if made.returncode != 0:
        pytest.fail(f"drivetrain new failed:\n{made}")
    return root / "shop"


@pytest.fixture
def shop(cli: Cli, scaffold_template: Path) -> Path:
    """A fresh copy of the scaffolded files pipeline ``shop`` in the test's working folder."""
    folder = cli.cwd / "shop"
    shutil.copytree(scaffold_template, folder)
    return folder


def edit_config(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config, indent=2))


def add_invalid_order(folder: Path, hour: int) -> None:
    """Append an order the stage schema rejects (negative id) inside the given hour."""
    with open(folder / "data" / "sample.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"order_id": -1, "customer": "bad", "amount": 1.0, "status": "new",
                             "updated_at": f"{SAMPLE_DAY}T{hour:02d}:30:00Z"}) + "\n")


def strict_rejects(config: dict[str, Any]) -> None:
    """Any rejected record fails source_to_stage_transfer."""
    config["phases"]["source_to_stage_transfer"] = {"max_rejected_percent": 0}
