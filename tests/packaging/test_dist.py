"""The wheel and sdist a release would publish: built cleanly, valid metadata, and working once installed."""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import drivetrain

from .conftest import Dist, Venv, run

# building, and installing every dependency into a fresh venv, takes minutes on a busy machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


class TestBuild:
    def test_setuptools_warns_about_nothing(self, dist: Dist) -> None:
        assert "would be ignored" not in dist.log
        assert "Warning" not in dist.log.replace("byte-compiling is disabled", ""), dist.log

    def test_twine_check_passes_for_the_wheel_and_the_sdist(self, dist: Dist) -> None:
        done = run(sys.executable, "-m", "twine", "check", "--strict", dist.wheel, dist.sdist)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("PASSED") == 2

    def test_the_version_comes_from_the_package(self, dist: Dist) -> None:
        assert dist.wheel.name.startswith(f"drivetrain-{drivetrain.__version__}-")

    def test_the_metadata_is_ready_to_publish(self, dist: Dist) -> None:
        with zipfile.ZipFile(dist.wheel) as wheel:
            name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            meta = Parser().parsestr(wheel.read(name).decode())
        assert meta["License-Expression"] == "Apache-2.0"
        assert any(c.startswith("Development Status") for c in meta.get_all("Classifier"))
        urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
        assert {"Homepage", "Documentation", "Changelog", "Source", "Issues"} <= set(urls)
        root = Path(__file__).resolve().parents[2]
        for label in ("Documentation", "Changelog"):  # they name files of this repository
            assert (root / urls[label].split("/blob/main/", 1)[1]).is_file(), urls[label]

    def test_the_wheel_holds_the_contrib_pipelines_the_docs_and_main(self, dist: Dist) -> None:
        names = set(zipfile.ZipFile(dist.wheel).namelist())
        for path in ("drivetrain/__main__.py", "drivetrain/config/schema.json", "drivetrain/docs/index.md",
                     "drivetrain/docs/configuration.md", "drivetrain/contrib/lab_results/config.json",
                     "drivetrain/contrib/lab_results/pipeline.py", "drivetrain/contrib/demo/config.json",
                     "drivetrain/lineage/events.py"):
            assert path in names, path
        assert not [n for n in names if n.startswith(("tests/", "sdk/", "docs/"))]

    def test_the_sdist_keeps_the_changelog_licence_and_docs(self, dist: Dist) -> None:
        with tarfile.open(dist.sdist) as sdist:
            names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
        assert {"CHANGELOG.md", "LICENSE", "README.md", "docs/index.md", "contrib_pipelines/lab_results/config.json",
                "setup.py", "pyproject.toml"} <= names


class TestInstalled:
    def test_the_demo_runs_from_the_installed_package(self, venv: Venv, tmp_path: Path) -> None:
        done = venv.run(venv.bin("drivetrain"), "demo", "--dir", tmp_path / "demo", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "demo" / "warehouse.duckdb").is_file()

    def test_python_m_drivetrain_is_the_command_line(self, venv: Venv, tmp_path: Path) -> None:
        done = venv.run(venv.bin("python"), "-m", "drivetrain", "--version", cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.strip() == f"drivetrain, version {drivetrain.__version__}", done

    def test_help_points_at_docs_that_are_installed(self, venv: Venv, tmp_path: Path) -> None:
        helped = venv.run(venv.bin("drivetrain"), "--help", cwd=tmp_path)
        assert "drivetrain docs" in helped.stdout
        page = venv.run(venv.bin("drivetrain"), "docs", "configuration", cwd=tmp_path)
        assert page.returncode == 0, page.stderr
        assert page.stdout == (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
        listed = venv.run(venv.bin("drivetrain"), "docs", cwd=tmp_path)
        assert str(venv.root) in listed.stdout and "  lineage" in listed.stdout

    def test_the_test_extra_brings_pytest_for_the_scaffolded_test(self, venv: Venv, tmp_path: Path) -> None:
        assert venv.run(venv.bin("drivetrain"), "new", "shop", cwd=tmp_path).returncode == 0
        done = venv.run(venv.bin("python"), "-m", "pytest", "-q", "shop", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
