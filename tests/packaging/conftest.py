"""A built wheel and sdist, and a clean virtualenv with the wheel installed (slow; needs PyPI).

The build runs ``python -m build`` on the repository as a packager would (isolated, fresh
setuptools from the index); the venv is made with ``python -m venv`` and gets the wheel and
its dependencies with pip from the index, so it holds nothing of the development checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from tests.packaging.build import build

ROOT = Path(__file__).resolve().parents[2]


@attrs.frozen
class Dist:
    folder: Path
    log: str

    @property
    def wheel(self) -> Path:
        return next(self.folder.glob("drivetrain-*.whl"))

    @property
    def sdist(self) -> Path:
        return next(self.folder.glob("drivetrain-*.tar.gz"))


@attrs.frozen
class Venv:
    root: Path

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name

    def run(self, *args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(HOME=str(cwd), NO_COLOR="1")
        return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)


def run(*args: str | Path, cwd: Path = ROOT, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    done = build("--outdir", out)
    if done.returncode != 0:
        pytest.fail(f"python -m build failed:\n{done.stdout}\n{done.stderr}")
    return Dist(out, done.stdout + done.stderr)


@pytest.fixture(scope="session")
def venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("venv") / "env"
    made = run(sys.executable, "-m", "venv", root)
    assert made.returncode == 0, made.stderr
    env = Venv(root)
    installed = env.run(env.bin("python"), "-m", "pip", "install", "--quiet", f"{dist.wheel}[test]", cwd=root.parent)
    if installed.returncode != 0:
        pytest.fail(f"pip install of the wheel into a clean venv failed:\n{installed.stdout}\n{installed.stderr}")
    return env
