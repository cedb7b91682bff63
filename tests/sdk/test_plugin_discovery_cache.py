"""The entry points found are remembered, and found again as soon as an installation changes.

Distributions are laid out as pip installs them (``tests/sdk/test_plugin_entry_points.py``'s
``install``) in folders put on ``sys.path``; the answer is compared with
``importlib.metadata.entry_points`` itself after every change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drivetrain.plugins import plugin_entry_points
from tests.sdk.test_plugin_entry_points import install, named


def found() -> list[tuple[str, str]]:
    return sorted((ep.name, ep.value) for ep in plugin_entry_points())


def cache_files() -> list[Path]:
    return sorted((Path(os.environ["DRIVETRAIN_CACHE_DIR"]) / "plugins").glob("*.json"))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder on ``sys.path`` (a second site-packages), and a cache folder of this test."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.setenv("DRIVETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DRIVETRAIN_CONFIG_CACHE", raising=False)
    monkeypatch.syspath_prepend(str(folder))
    return folder


class TestRemembered:
    def test_a_second_look_answers_the_same_from_the_cache(self, site: Path) -> None:
        install(site, "one-plugin", "[drivetrain]\none = one_mod\n")
        first = found()
        assert first == named("drivetrain") and ("one", "one_mod") in first
        assert len(cache_files()) == 1
        assert found() == first

    def test_a_warm_cache_does_not_import_importlib_metadata(self, tmp_path: Path) -> None:
        probe = ("import sys\nfrom drivetrain.plugins import plugin_entry_points\nplugin_entry_points()\n"
                 "print('importlib.metadata' in sys.modules, 'email' in sys.modules)")
        env = {**os.environ, "DRIVETRAIN_CACHE_DIR": str(tmp_path / "cache")}
        env.pop("DRIVETRAIN_CONFIG_CACHE", None)
        runs = [subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                               check=True).stdout.split() for _ in range(2)]
        assert runs == [["True", "True"], ["False", "False"]]  # the first scans, the second remembers

    def test_turned_off_nothing_is_written(self, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DRIVETRAIN_CONFIG_CACHE", "off")
        install(site, "one-plugin", "[drivetrain]\none = one_mod\n")
        assert found() == named("drivetrain")
        assert cache_files() == []


class TestFoundAgain:
    def test_a_distribution_installed_later_is_found(self, site: Path) -> None:
        install(site, "one-plugin", "[drivetrain]\none = one_mod\n")
        assert ("two", "two_mod") not in found()
        install(site, "two-plugin", "[drivetrain]\ntwo = two_mod\n")
        assert found() == named("drivetrain") and ("two", "two_mod") in found()

    def test_a_distribution_removed_is_forgotten(self, site: Path) -> None:
        install(site, "one-plugin", "[drivetrain]\none = one_mod\n")
        assert ("one", "one_mod") in found()
        info = site / "one_plugin-1.0.dist-info"
        for child in info.iterdir():
            child.unlink()
        info.rmdir()
        assert ("one", "one_mod") not in found()
        assert found() == named("drivetrain")

    def test_entry_points_rewritten_in_place_are_read_again(self, site: Path) -> None:
        install(site, "one-plugin", "[drivetrain]\none = one_mod\n")
        assert ("one", "one_mod") in found()
        (site / "one_plugin-1.0.dist-info" / "entry_points.txt").write_text("[drivetrain]\none = one_mod_v2\nmore = m\n")
        assert found() == named("drivetrain")
        assert ("one", "one_mod_v2") in found() and ("more", "m") in found()

    def test_a_distribution_that_starts_naming_the_group_in_place_is_found(self, site: Path) -> None:
        """``setup.py develop`` rewrites a project's egg-info in place: no folder changes its time."""
        install(site, "tool", "[console_scripts]\ntool = tool:main\n")
        assert ("late", "late_mod") not in found()
        folder_time = site.stat().st_mtime_ns
        (site / "tool-1.0.dist-info" / "entry_points.txt").write_text("[drivetrain]\nlate = late_mod\n")
        assert site.stat().st_mtime_ns == folder_time
        assert ("late", "late_mod") in found() and found() == named("drivetrain")

    def test_a_damaged_cache_file_is_scanned_again(self, site: Path) -> None:
        install(site, "one-plugin", "[drivetrain]\none = one_mod\n")
        first = found()
        for path in cache_files():
            path.write_text("{not json")
        assert found() == first
        assert json.loads(cache_files()[0].read_text())["entry_points"]

    def test_another_sys_path_has_its_own_answer(self, site: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        install(site, "one-plugin", "[drivetrain]\none = one_mod\n")
        assert ("one", "one_mod") in found()
        other = tmp_path / "other"
        install(other, "two-plugin", "[drivetrain]\ntwo = two_mod\n")
        monkeypatch.syspath_prepend(str(other))
        assert found() == named("drivetrain") and ("two", "two_mod") in found()

    def test_a_remembered_plugin_still_loads_and_registers(self, site: Path) -> None:
        from drivetrain.plugins import connector_types, reset_plugin_manager

        install(site, "acme-drivetrain", "[drivetrain]\nacme = acme_cached_plugin\n", module="acme_cached_plugin",
                type_name="acme_cached")
        found()  # remembered
        reset_plugin_manager()
        assert "acme_cached" in connector_types("source")
