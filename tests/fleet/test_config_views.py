"""``drivetrain status`` reads pipeline folders through remembered config views, never stale ones.

Real pipelines in a pipelines home sharing one drive file, each run once; ``status`` is the real
command (click's runner, in this process, with the test's own cache folder). What is checked:
status answers the same with views as with full loads; a remembered view is what it reads; a
changed file, a changed ``${VAR}``, a changed drivetrain version or installed plugins each load
the config in full again (and a config that now fails shows as a config error); a folder with
code is always loaded in full; a failing config is never remembered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import drivetrain
from drivetrain import Pipeline, RunStatus
from drivetrain.cli import cli
from drivetrain.config import validated_cache, view
from tests.sdk.factory import make_pipeline_dir, make_rows


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("views")
    drive = str(home / "drive.duckdb")
    for name, tags in (("alpha", ["lab"]), ("beta", ["ops"])):
        folder = make_pipeline_dir(home / name, rows=make_rows(hours=1), pipeline_metadata__pipeline_name=name,
                                   pipeline_metadata__tags=tags, stage_system__drive_path=drive,
                                   target_system__drive_path=drive)
        with Pipeline.load(folder) as pipeline:
            assert pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first()).pipeline_status is RunStatus.SUCCESS
    return home


@pytest.fixture
def fleet(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the home (configs only change in the copy) and a cache folder of the test's own."""
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    monkeypatch.setenv("DRIVETRAIN_PIPELINES_HOME", str(copy))
    monkeypatch.setenv("DRIVETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DRIVETRAIN_CONFIG_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    return copy


def status(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["status", *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def rows(*args: str) -> dict[str, Any]:
    code, out = status("--json", *args)
    assert code == 0, out
    return {row["pipeline_name"]: row for row in json.loads(out)}


def views(fleet: Path) -> list[Path]:
    folder = fleet.parent / "cache" / "config-views"
    return sorted(folder.rglob("*.json")) if folder.exists() else []


def edit(folder: Path, section: str, key: str, value: Any) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config[section][key] = value
    path.write_text(json.dumps(config, indent=2))


def test_views_answer_as_full_loads(fleet: Path) -> None:
    first_table, first_json = status()[1], rows()  # the first call loads in full (and remembers)
    assert len(views(fleet)) == 2
    assert status() == (0, first_table) and rows() == first_json
    assert sorted(first_json) == ["alpha", "beta"] and rows("--tag", "ops").keys() == {"beta"}


def test_a_remembered_view_is_what_status_reads(fleet: Path) -> None:
    """Planted tags in a view are followed: the view is read, not the config (which is why a
    view is only written after a full load succeeded, and its name covers all it depends on)."""
    rows()
    for path in views(fleet):
        data = json.loads(path.read_text())
        data["metadata"]["tags"] = ["planted"]
        path.write_text(json.dumps(data))
    assert rows("--tag", "planted").keys() == {"alpha", "beta"}


def test_a_changed_file_is_loaded_in_full(fleet: Path) -> None:
    rows()
    edit(fleet / "beta", "pipeline_metadata", "tags", ["finance"])
    assert rows("--tag", "finance").keys() == {"beta"}
    edit(fleet / "beta", "query_window", "duration", "forever")
    code, out = status()
    assert code == 0 and "CONFIG ERROR" in out and "query_window.duration" in out


def test_a_changed_environment_variable_is_loaded_in_full(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit(fleet / "alpha", "query_window", "duration", "${ALPHA_WINDOW}")
    monkeypatch.setenv("ALPHA_WINDOW", "1h")
    assert rows()["alpha"]["pipeline_status"] == "SUCCESS"
    monkeypatch.setenv("ALPHA_WINDOW", "forever")
    code, out = status()
    assert "CONFIG ERROR" in out and "query_window.duration" in out
    monkeypatch.delenv("ALPHA_WINDOW")
    code, out = status()
    assert "CONFIG ERROR" in out and "ALPHA_WINDOW" in out


def test_another_drivetrain_version_or_plugin_set_is_loaded_in_full(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows()
    folder = (fleet / "alpha").resolve()
    assert view.cached_view(folder) is not None
    with monkeypatch.context() as patch:
        patch.setattr(drivetrain, "__version__", drivetrain.__version__ + ".post1")
        validated_cache._fingerprint.cache_clear()
        try:
            assert view.cached_view(folder) is None
        finally:
            patch.undo()
            validated_cache._fingerprint.cache_clear()
    assert view.cached_view(folder) is not None
    view._plugins.cache_clear()
    monkeypatch.setattr(view, "_plugins", lambda: "another_plugin=somewhere:Plugin 1.0")
    assert view.cached_view(folder) is None


def test_a_folder_with_code_is_always_loaded_in_full(fleet: Path) -> None:
    (fleet / "beta" / "pipeline.py").write_text("raise RuntimeError('broken user code')\n")
    code, out = status()
    assert "CONFIG ERROR" in out and "broken user code" in out
    assert [json.loads(p.read_text())["name"] for p in views(fleet)] == ["alpha"]


def test_a_failing_config_is_never_remembered(fleet: Path) -> None:
    edit(fleet / "beta", "dag_schedule", "timezone", "Mars/Olympus")
    assert "CONFIG ERROR" in status()[1] and "CONFIG ERROR" in status()[1]
    assert [json.loads(p.read_text())["name"] for p in views(fleet)] == ["alpha"]


def test_report_reads_views_too_and_answers_as_full_loads(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def timeless(value: Any) -> Any:  # ages and the period move with the clock
        if isinstance(value, dict):
            return {k: timeless(v) for k, v in value.items() if k not in ("age_seconds", "generated_at", "since")}
        return [timeless(v) for v in value] if isinstance(value, list) else value

    def report() -> dict[str, Any]:
        result = CliRunner().invoke(cli, ["report", "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return timeless(json.loads(result.stdout))  # type: ignore[no-any-return]

    monkeypatch.setenv("DRIVETRAIN_CONFIG_CACHE", "off")
    full = report()
    monkeypatch.delenv("DRIVETRAIN_CONFIG_CACHE")
    report()
    assert len(views(fleet)) == 2
    assert report() == full and full["success_rates"]
