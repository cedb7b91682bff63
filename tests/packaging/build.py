"""``python -m build`` on the repository, one build at a time.

setuptools builds inside the repository (``build/``, ``drivetrain.egg-info``), so two builds at
once -- ``scripts/test`` runs the suite on several worker processes -- would rewrite each other's
files. Every test that builds drivetrain goes through :func:`build`, which holds a lock file in
``build/`` (ignored by git) for the length of the build.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def build(*args: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``python -m build ARGS ROOT`` while no other process of the suite builds."""
    lock_file = ROOT / "build" / ".test-build.lock"
    lock_file.parent.mkdir(exist_ok=True)
    with lock_file.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run([sys.executable, "-m", "build", *(str(a) for a in args), str(ROOT)],
                              capture_output=True, text=True, timeout=timeout, check=False)
