"""Fixtures of the schema-contract tests: a Lab factory on DuckDB or on Snowflake (fakesnow)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.snowflake.conftest import database, sf_env  # noqa: F401 - fixtures

from .scenario import Lab


@pytest.fixture(params=["duckdb", pytest.param("snowflake", marks=pytest.mark.slow)])  # fakesnow: ~40 s a scenario
def make_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Lab]:
    """``make_lab(**options)``: a Lab in the parametrised warehouse (options as Lab takes them)."""
    snowflake = None
    if request.param == "snowflake":
        request.getfixturevalue("sf_env")
        snowflake = (request.getfixturevalue("fakesnow_server"), request.getfixturevalue("database"))
    count = iter(range(100))

    def make(**options: Any) -> Lab:
        return Lab(tmp_path / f"lab{next(count)}", snowflake=snowflake, **options)

    make.backend = request.param  # type: ignore[attr-defined]
    return make
