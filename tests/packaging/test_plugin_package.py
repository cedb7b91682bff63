"""A plugin package from ``drivetrain new-plugin``, installed next to the drivetrain wheel in a fresh venv."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Venv

# building, and installing every dependency into a fresh venv, takes minutes on a busy machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def plugin(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("plugin")
    made = venv.run(venv.bin("drivetrain"), "new-plugin", "acme_lab", cwd=work)
    assert made.returncode == 0, made.stdout + made.stderr
    installed = venv.run(venv.bin("python"), "-m", "pip", "install", "--quiet", f"{work / 'acme_lab'}[test]", cwd=work)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return work / "acme_lab"


class TestInstalledPlugin:
    def test_its_own_test_passes(self, venv: Venv, plugin: Path) -> None:
        done = venv.run(venv.bin("python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=plugin)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 passed" in done.stdout

    def test_the_command_line_finds_and_runs_its_pipeline(self, venv: Venv, plugin: Path, tmp_path: Path) -> None:
        env_home = tmp_path / "data"
        done = venv.run("env", f"ACME_LAB_HOME={env_home}", venv.bin("drivetrain"), "run", "acme_lab_example",
                        "--window-start", "2025-01-01T00:00:00Z", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (env_home / "warehouse.duckdb").is_file()
        status = venv.run("env", f"ACME_LAB_HOME={env_home}", venv.bin("drivetrain"), "status", "acme_lab_example",
                          cwd=tmp_path)
        assert "SUCCESS" in status.stdout, status.stdout + status.stderr
