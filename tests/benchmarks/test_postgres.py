"""The PostgreSQL benchmark end to end on a tiny data set: every path moves the whole window and
the report is written. Timings are not checked (speed is the benchmark's business)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import postgres


@pytest.mark.slow
def test_the_smoke_run_moves_every_row_on_every_path(tmp_path: Path) -> None:
    args = postgres.parse_args(["--smoke", "--out", str(tmp_path), "--name", "smoke", "--python", sys.executable])
    document = postgres.run(args, say=lambda text: None)
    for size, rows in (("1d", 10_000), ("2d", 20_000)):
        for name in postgres.PATHS:
            measured = document["summary"][size][name]
            assert measured["errors"] == [] and measured["rows"] == rows, (size, name, measured)
            assert measured["seconds"] > 0 and measured["rss_mb"] > 0
        assert document["summary"][size]["limit"]["ratio_to_limit"] == 1.0
    assert (tmp_path / "smoke.md").read_text().startswith("# PostgreSQL -> DuckDB benchmark")
