"""The public surface: what drivetrain exports, and what a built wheel contains."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import drivetrain
from tests.packaging.build import build

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_sorted_and_every_name_exists():
    assert drivetrain.__all__ == sorted(drivetrain.__all__, key=lambda n: (not n.isupper(), n))
    for name in drivetrain.__all__:
        assert hasattr(drivetrain, name), name


def test_every_public_class_and_function_has_a_docstring():
    missing = [n for n in drivetrain.__all__ if callable(getattr(drivetrain, n)) and not getattr(drivetrain, n).__doc__]
    assert missing == []


def test_every_hook_is_documented():
    from drivetrain import hookspecs

    hooks = [n for n in dir(hookspecs) if n.startswith("drivetrain_")]
    assert hooks and all(getattr(hookspecs, n).__doc__ for n in hooks)
    text = (ROOT / "docs" / "plugins.md").read_text()
    assert [h for h in hooks if h not in text] == []


@pytest.mark.slow
def test_wheel_holds_only_the_drivetrain_package(tmp_path):
    built = build("--wheel", "--outdir", tmp_path, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next(tmp_path.glob("drivetrain-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"drivetrain", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for expected in ("drivetrain/__init__.py", "drivetrain/connectors/duckdb/warehouse.py", "drivetrain/config/schema.json",
                     "drivetrain/contrib/__init__.py", "drivetrain/airflow/__init__.py",
                     "drivetrain/contrib/demo/config.json", "drivetrain/contrib/demo/dag.py"):
        assert expected in names
