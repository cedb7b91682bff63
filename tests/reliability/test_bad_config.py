"""A corpus of invalid pipeline configs, each refused with a ConfigError naming the JSON path.

Every file in ``configs/`` is a whole config.json that is wrong in one way; its
``_comment_expect`` key (a comment key, which the loader ignores) names the JSON path the error
must point at ("" for the document itself, when a whole section is missing) and a fragment of
what it must say. A config counts as refused only if the error
comes before anything runs: while loading, or while building the pipeline's connectors and
window grid, which is what ``drivetrain validate`` and every run do first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from drivetrain import Pipeline
from drivetrain.errors import ConfigError

CORPUS = sorted((Path(__file__).parent / "configs").glob("*.json"))


def build_everything(folder: Path) -> None:
    """Everything a run sets up before its first phase; none of it connects anywhere."""
    with Pipeline.load(folder) as pipeline:
        assert pipeline.grid is not None
        pipeline.source()
        pipeline.stage()
        pipeline.target()
        pipeline.drive_store()
        if pipeline.config.archive is not None:
            pipeline.archive()


def test_the_corpus_holds_at_least_40_configs() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_each_invalid_config_is_refused_naming_its_json_path(tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_MYSQL_USER", "lab")  # configs with a mysql source name these credentials
    monkeypatch.setenv("LAB_MYSQL_PASSWORD", "lab-Pa55word")
    expect = json.loads(path.read_text())["_comment_expect"]
    folder = tmp_path / "pipeline"
    folder.mkdir()
    shutil.copy(path, folder / "config.json")
    with pytest.raises(ConfigError) as caught:
        build_everything(folder)
    where = f"{folder / 'config.json'}: "
    prefix = where + f"{expect['path']}:" if expect["path"] else where  # "" is the whole document
    lines = [line for line in caught.value.problems if line.startswith(prefix)]
    assert lines, f"no problem names {expect['path']!r}: {caught.value.problems}"
    assert any(expect["says"] in line for line in lines), lines
    assert not list(folder.glob("*.duckdb")), "a refused config must not create the warehouse"
