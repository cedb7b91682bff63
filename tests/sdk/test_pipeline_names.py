"""A pipeline reference means the same pipeline wherever it is used: the spelling decides.

A bare name is a registered pipeline or a folder under DRIVETRAIN_PIPELINES_HOME, never a
folder of the working directory; a path looks like one; a name matching two pipelines is an
error naming both.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivetrain import Pipeline, PipelineNotFound
from drivetrain.pipeline_names import HOME_ENV, AmbiguousPipelineName, locate, looks_like_path
from tests.sdk.factory import make_pipeline_dir

CONTRIB = Path(__file__).resolve().parents[2] / "contrib_pipelines"


@pytest.fixture
def parent_of_demo(tmp_path, monkeypatch):
    """The working directory holds a folder ``demo`` with a config of its own (the reported case)."""
    make_pipeline_dir(tmp_path / "demo", pipeline_metadata__pipeline_name="demo")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home_of_pipelines"
    folder.mkdir()
    monkeypatch.setenv(HOME_ENV, str(folder))
    return folder


class TestBareNames:
    def test_a_registered_name_ignores_a_folder_of_that_name_in_the_working_directory(self, parent_of_demo, caplog):
        with caplog.at_level(logging.WARNING), Pipeline.load("demo") as pipeline:
            assert Path(pipeline.config.source_file).parent == CONTRIB / "demo"
        assert f"not the folder {parent_of_demo / 'demo'}" in caplog.text and "write ./demo" in caplog.text

    def test_a_path_names_the_folder(self, parent_of_demo):
        for reference in ("./demo", str(parent_of_demo / "demo"), "demo/config.json", Path("demo")):
            assert locate(reference).target == parent_of_demo / "demo"

    def test_a_name_under_the_pipelines_home_loads_from_any_working_directory(self, home, tmp_path, monkeypatch):
        make_pipeline_dir(home / "orders", pipeline_metadata__pipeline_name="orders")
        for cwd in (tmp_path, home, home / "orders"):
            monkeypatch.chdir(cwd)
            located = locate("orders")
            assert (located.kind, located.target) == ("home", home / "orders")

    def test_a_folder_of_the_working_directory_is_not_a_name_and_the_error_says_how_to_write_it(self, tmp_path, monkeypatch):
        make_pipeline_dir(tmp_path / "orders", pipeline_metadata__pipeline_name="orders")
        monkeypatch.chdir(tmp_path)
        with pytest.raises(PipelineNotFound, match=r"no pipeline 'orders': a bare name means a registered .*write ./orders"):
            Pipeline.load("orders")

    @pytest.mark.parametrize("reference", ["~no-such-user-zq/orders", "~no-such-user-zq"])
    def test_a_home_of_no_user_is_a_path_not_found_naming_it(self, reference):
        # Path.expanduser raises a bare RuntimeError for ~user with no such user; a shell keeps it
        with pytest.raises(PipelineNotFound, match=rf"no pipeline at '{reference}'"):
            Pipeline.load(reference)

    def test_a_config_path_under_the_home_of_no_user_is_read_as_written(self, tmp_path):
        from drivetrain.config import load_config

        folder = make_pipeline_dir(tmp_path / "lab", source_system__path="~no-such-user-zq/records.jsonl")
        path = load_config(folder / "config.json").source.path("path")
        assert path == folder / "~no-such-user-zq" / "records.jsonl"  # relative, as a shell reads it

    def test_an_unknown_name_lists_what_exists(self):
        with pytest.raises(PipelineNotFound, match=r"no pipeline 'dmeo'.*registered: demo, .*did you mean 'demo'"):
            Pipeline.load("dmeo")


class TestAmbiguousNames:
    def test_a_registered_name_and_a_home_folder_is_an_error_naming_both(self, home):
        make_pipeline_dir(home / "demo", pipeline_metadata__pipeline_name="demo")
        with pytest.raises(AmbiguousPipelineName) as caught:
            Pipeline.load("demo")
        message = str(caught.value)
        assert "ambiguous" in message and str(CONTRIB / "demo") in message and str(home / "demo") in message

    def test_the_same_name_under_two_homes_is_an_error_naming_both(self, tmp_path, monkeypatch):
        first, second = tmp_path / "a", tmp_path / "b"
        for root in (first, second):
            make_pipeline_dir(root / "orders", pipeline_metadata__pipeline_name="orders")
        monkeypatch.setenv(HOME_ENV, f"{first}:{second}")
        with pytest.raises(AmbiguousPipelineName, match=f"{first / 'orders'}.* and .*{second / 'orders'}"):
            locate("orders")

    def test_the_ambiguous_folder_is_still_reachable_as_a_path(self, home):
        make_pipeline_dir(home / "demo", pipeline_metadata__pipeline_name="demo")
        assert locate(str(home / "demo")).target == home / "demo"


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


class TestSpelling:
    @given(NAMES)
    def test_a_valid_pipeline_name_is_never_a_path_property(self, name):
        assert not looks_like_path(name)

    @given(NAMES, st.sampled_from(["./{}", "../{}", "/srv/{}", "~/{}", "pipelines/{}", "{}/config.json", "{}.json"]))
    def test_a_name_written_as_a_path_is_a_path_property(self, name, spelling):
        assert looks_like_path(spelling.format(name))
