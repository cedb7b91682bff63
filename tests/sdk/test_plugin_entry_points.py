"""Plugins installed as distributions: found through the ``drivetrain`` entry-point group.

Each test lays out distributions (a ``*.dist-info`` folder with METADATA and entry_points.txt,
and the plugin's module) in folders put on ``sys.path``, as pip installs them.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from drivetrain.plugins import connector_types, plugin_entry_points

PLUGIN_MODULE = '''
from drivetrain import hookimpl

@hookimpl
def drivetrain_register_connectors():
    return {"source:{type_name}": "drivetrain.testing:MemorySource"}
'''


def install(site: Path, dist: str, entry_points: str, *, module: str | None = None, type_name: str = "") -> None:
    """A distribution ``dist`` in the folder ``site`` (its plugin module too, when named)."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module:
        (site / f"{module}.py").write_text(PLUGIN_MODULE.replace("{type_name}", type_name))


def named(group: str) -> list[tuple[str, str]]:
    return sorted((ep.name, ep.value) for ep in metadata.entry_points(group=group))


class TestPluginEntryPoints:
    def test_a_plugin_installed_as_a_distribution_registers_its_connectors(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install(tmp_path, "acme-drivetrain", "[drivetrain]\nacme = acme_dt_plugin\n", module="acme_dt_plugin",
                type_name="acme_rows")
        monkeypatch.syspath_prepend(str(tmp_path))
        assert "acme_rows" in connector_types("source")

    def test_the_same_entry_points_as_importlib_metadata(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        install(tmp_path / "a", "one-plugin", "[drivetrain]\none = one_mod\n\n[console_scripts]\none = one_mod:main\n")
        install(tmp_path / "a", "tool-only", "[console_scripts]\ndrivetrain-helper = tool:main\n")
        install(tmp_path / "a", "two-plugins", "[other]\nx = y\n[drivetrain]\ntwo = two_mod\nthree = three_mod:plugin\n")
        monkeypatch.syspath_prepend(str(tmp_path / "a"))
        assert sorted((ep.name, ep.value) for ep in plugin_entry_points()) == named("drivetrain")
        assert ("two", "two_mod") in named("drivetrain")

    def test_a_copy_hidden_by_an_earlier_one_on_the_path_is_ignored(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install(tmp_path / "first", "dup-plugin", "[console_scripts]\ndup = dup:main\n")
        install(tmp_path / "second", "dup-plugin", "[drivetrain]\ndup = dup_mod\n")
        monkeypatch.syspath_prepend(str(tmp_path / "second"))
        monkeypatch.syspath_prepend(str(tmp_path / "first"))
        assert named("drivetrain") == sorted((ep.name, ep.value) for ep in plugin_entry_points())
        assert "dup" not in [ep.name for ep in plugin_entry_points()]

    def test_only_the_first_copy_counts_when_both_name_the_group(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install(tmp_path / "first", "twice-plugin", "[drivetrain]\ntwice = twice_new\n")
        install(tmp_path / "second", "twice-plugin", "[drivetrain]\ntwice = twice_old\n")
        monkeypatch.syspath_prepend(str(tmp_path / "second"))
        monkeypatch.syspath_prepend(str(tmp_path / "first"))
        mine = [(ep.name, ep.value) for ep in plugin_entry_points() if ep.name == "twice"]
        assert mine == [("twice", "twice_new")] == [p for p in named("drivetrain") if p[0] == "twice"]
