"""Windows are built only between 1900 and 3000: a start date outside is a config error, not an
overflow deep inside a phase (the stage-cleaning cutoff of year 1) or a grid of millions of windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivetrain.errors import ConfigError
from drivetrain.pipeline import Pipeline

from .factory import make_pipeline_dir


@pytest.mark.parametrize("start", ["0001-01-01", "1899-12-31", "3000-01-01", "9999-12-31"])
def test_a_start_date_outside_the_range_is_a_config_error_naming_the_key(tmp_path: Path, start: str) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", dag_schedule__start_date=start)
    with pytest.raises(ConfigError, match=rf"dag_schedule.start_date: {start} is outside the range windows can be run in"):
        Pipeline.load(folder)


@pytest.mark.parametrize("start", ["1900-01-01", "2999-12-31"])
def test_the_ends_of_the_range_are_accepted(tmp_path: Path, start: str) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", dag_schedule__start_date=start)
    with Pipeline.load(folder) as pipeline:
        assert pipeline.grid.first().start.date().isoformat() == start
