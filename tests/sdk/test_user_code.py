"""A broken ``pipeline.py`` or user script is a ConfigError with the file and line, not a traceback."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from drivetrain.errors import ConfigError
from drivetrain.pipeline import Pipeline
from tests.sdk.factory import make_pipeline_dir

GOOD_HEAD = textwrap.dedent(
    """\
    from pathlib import Path

    from drivetrain import Pipeline

    """
)


def load_error(folder: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        Pipeline.from_folder(folder)
    return str(caught.value)


def write_pipeline(folder: Path, body: str) -> Path:
    path = folder / "pipeline.py"
    path.write_text(GOOD_HEAD + textwrap.dedent(body))
    return path


class TestBrokenPipelineModule:
    def test_a_syntax_error_names_the_file_the_line_and_the_text(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        path = write_pipeline(folder, "class Orders(Pipeline:\n    pass\n")
        message = load_error(folder)
        assert message.startswith(f"{path.resolve()}:5: SyntaxError")
        assert "class Orders(Pipeline:" in message
        assert "fix pipeline.py" in message

    def test_an_import_of_a_missing_module_names_the_line(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        path = write_pipeline(folder, "import no_such_module_here\n")
        message = load_error(folder)
        assert message.startswith(f"{path.resolve()}:5")
        assert "ModuleNotFoundError while importing it: No module named 'no_such_module_here'" in message

    def test_an_exception_at_import_time_names_the_line(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        path = write_pipeline(folder, "X = 1\nY = {}['missing']\n")
        message = load_error(folder)
        assert message.startswith(f"{path.resolve()}:6: KeyError while importing it")

    def test_a_syntax_error_in_a_module_it_imports_names_that_file(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        (folder / "helpers_broken_xyz.py").write_text("def f(:\n    pass\n")
        sys.path.insert(0, str(folder))
        try:
            path = write_pipeline(folder, "import helpers_broken_xyz\n")
            message = load_error(folder)
        finally:
            sys.path.remove(str(folder))
        assert message.startswith(f"{folder.resolve() / 'helpers_broken_xyz.py'}:1: SyntaxError")
        assert f"imported by {path.resolve()}" in message

    def test_sys_exit_at_import_is_reported_too(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        write_pipeline(folder, "import sys\nsys.exit(3)\n")
        assert "SystemExit while importing it: 3" in load_error(folder)

    def test_a_failed_import_leaves_no_half_module_behind(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        write_pipeline(folder, "raise RuntimeError('boom')\n")
        load_error(folder)
        assert f"drivetrain_pipelines.{folder.name}" not in sys.modules

    def test_an_exception_in_the_subclass_init_names_the_line(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        path = write_pipeline(folder, "class Orders(Pipeline):\n    def __init__(self, *a, **k):\n        raise ValueError('no')\n")
        message = load_error(folder)
        assert message.startswith(f"{path.resolve()}:7: ValueError while creating Orders: no")

    def test_the_folder_loads_once_the_file_is_fixed(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        write_pipeline(folder, "raise RuntimeError('boom')\n")
        load_error(folder)
        write_pipeline(folder, "class Fixed(Pipeline):\n    pass\n")
        assert type(Pipeline.from_folder(folder)).__name__ == "Fixed"


class TestBrokenUserScript:
    def test_a_syntax_error_in_a_user_script_names_the_file_and_line(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        scripts = folder / "user_scripts"
        scripts.mkdir()
        (scripts / "target_cleaning.py").write_text("def target_cleaning(config, record)\n    return {}\n")
        message = load_error(folder)
        assert message.startswith(f"{(scripts / 'target_cleaning.py').resolve()}:1: SyntaxError")

    def test_an_exception_in_a_user_script_names_the_file_and_line(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path)
        scripts = folder / "user_scripts"
        scripts.mkdir()
        (scripts / "target_cleaning.py").write_text("import os\n\nVALUE = int('x')\n")
        message = load_error(folder)
        assert message.startswith(f"{(scripts / 'target_cleaning.py').resolve()}:3: ValueError while importing it")
