"""A fleet's configs are validated once per content: the cache of validated documents.

Real config files on disk, loaded through ``Pipeline.load``; the cache folder is the test's own
(``DRIVETRAIN_CACHE_DIR``). What is checked: a document that passed is remembered (and a
remembered document is not validated again), a changed file or a changed environment
variable is validated again, a failing document is never remembered, and the cache can be
turned off or be unwritable without a load failing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivetrain import Pipeline
from drivetrain.config import validated_cache
from drivetrain.errors import ConfigError
from tests.sdk.factory import make_pipeline_dir


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DRIVETRAIN_CACHE_DIR", str(folder))
    monkeypatch.delenv("DRIVETRAIN_CONFIG_CACHE", raising=False)
    return folder / "validated-configs"


def markers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def edit(folder: Path, change: dict[str, object]) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for dotted, value in change.items():
        section, key = dotted.split(".")
        config[section][key] = value
    path.write_text(json.dumps(config))


def test_a_valid_config_is_remembered_once_and_loads_the_same(tmp_path: Path, cache: Path) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", [])
    first = Pipeline.load(folder).config
    assert len(markers(cache)) == 1
    again = Pipeline.load(folder).config
    assert len(markers(cache)) == 1 and again == first and again.config_hash == first.config_hash


def test_a_remembered_document_is_not_validated_again(tmp_path: Path, cache: Path) -> None:
    """The marker is what is consulted: planted for a document the schema refuses, it lets that
    very document through (which is why only documents that passed are ever remembered)."""
    folder = make_pipeline_dir(tmp_path / "lab", [])
    edit(folder, {"pipeline_metadata.owner_email": 42})
    with pytest.raises(ConfigError, match="owner_email"):
        Pipeline.load(folder)
    assert markers(cache) == []
    validated_cache.remember(json.loads((folder / "config.json").read_text()))
    assert Pipeline.load(folder).config.metadata.owner_email == 42


def test_a_changed_file_is_validated_again(tmp_path: Path, cache: Path) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", [])
    Pipeline.load(folder)
    edit(folder, {"query_window.duration": "forever"})
    with pytest.raises(ConfigError, match=r"query_window\.duration"):
        Pipeline.load(folder)
    assert len(markers(cache)) == 1  # only the version that passed


def test_a_changed_environment_variable_is_validated_again(tmp_path: Path, cache: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", [])
    edit(folder, {"query_window.duration": "${LAB_WINDOW}"})
    monkeypatch.setenv("LAB_WINDOW", "1h")
    assert Pipeline.load(folder).config.query_window.duration == "1h"
    monkeypatch.setenv("LAB_WINDOW", "forever")
    with pytest.raises(ConfigError, match=r"query_window\.duration"):
        Pipeline.load(folder)
    monkeypatch.delenv("LAB_WINDOW")
    with pytest.raises(ConfigError, match="LAB_WINDOW"):
        Pipeline.load(folder)


def test_turned_off_or_unwritable_the_cache_is_not_used_and_loads_still_work(tmp_path: Path, cache: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", [])
    monkeypatch.setenv("DRIVETRAIN_CONFIG_CACHE", "off")
    Pipeline.load(folder)
    assert markers(cache) == [] and validated_cache.cache_folder() is None
    monkeypatch.delenv("DRIVETRAIN_CONFIG_CACHE")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("DRIVETRAIN_CACHE_DIR", str(blocker))
    assert Pipeline.load(folder).name == "lab"


def test_a_connector_section_that_passed_its_schema_is_remembered_and_a_failing_one_never(tmp_path: Path, cache: Path) -> None:
    """A connector's own schema check (``validate_against``) is remembered like the document:
    by the section, the connector's schema and the keys the core knows; a section it refuses is
    refused again on every load."""
    folder = make_pipeline_dir(tmp_path / "lab", [])
    with Pipeline.load(folder) as pipeline:
        pipeline.source()
    remembered = len(markers(cache))
    assert remembered >= 2  # the document, and the source section checked against the files schema
    with Pipeline.load(folder) as pipeline:
        assert pipeline.source().delimiter == ","
    assert len(markers(cache)) == remembered
    edit(folder, {"source_system.delimiter": ";;"})
    for _ in range(2):
        with Pipeline.load(folder) as pipeline, pytest.raises(ConfigError, match=r"source_system\.delimiter"):
            pipeline.source()
    assert len(markers(cache)) == remembered + 1  # the changed document only: its source section failed
