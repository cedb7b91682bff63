"""The benchmark end to end on a tiny data set: every path runs and the report is written.

Timings are not checked (speed is the benchmark's business, not CI's); what is checked is that
the command builds its data set on a real MariaDB server, runs each path in its own process,
moves every row of each window, and writes the JSON and Markdown report. Peers that are not
installed here (dlt) are reported as not run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import run
from tests.servers.mariadb import ServerError

DRIVETRAIN_PATHS = ("drivetrain_s2s_fast", "drivetrain_s2s_pymysql", "drivetrain_push_down",
                    "drivetrain_counts", "drivetrain_pipeline", "drivetrain_pipeline_direct",
                    "drivetrain_pipeline_pymysql", "drivetrain_pipeline_1gb")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    args = run.parse_args(["--smoke", "--out", str(out), "--name", "smoke", "--python", sys.executable])
    try:
        document = run.run(args, say=lambda text: None)
    except ServerError as exc:
        pytest.fail(f"cannot start the MariaDB test server: {exc}", pytrace=False)
    return out, document


class TestSmokeRun:
    def test_writes_the_json_and_markdown_report(self, results: tuple[Path, dict[str, Any]]) -> None:
        out, document = results
        assert json.loads((out / "smoke.json").read_text())["meta"]["smoke"] is True
        assert (out / "smoke.md").read_text().startswith("# drivetrain benchmark results")

    def test_both_window_sizes_are_measured(self, results: tuple[Path, dict[str, Any]]) -> None:
        assert list(results[1]["summary"]) == ["1d", "2d"]

    @pytest.mark.parametrize("name", DRIVETRAIN_PATHS)
    def test_each_drivetrain_path_moves_the_whole_window(
        self, results: tuple[Path, dict[str, Any]], name: str
    ) -> None:
        summary = results[1]["summary"]
        for size, rows in (("1d", 10_000), ("2d", 20_000)):
            assert summary[size][name]["errors"] == []
            assert summary[size][name]["rows"] == rows

    def test_each_run_reports_time_and_peak_memory(self, results: tuple[Path, dict[str, Any]]) -> None:
        for paths in results[1]["runs"].values():
            for runs in paths.values():
                for one in runs:
                    assert one["seconds"] > 0 and one["rss_mb"] > 0

    def test_every_target_of_the_issue_is_in_the_report(self, results: tuple[Path, dict[str, Any]]) -> None:
        targets = " ".join(check["target"] for check in results[1]["targets"])
        for words in ("/ limit", "pymysql fetch-only", "dlt", "peak RSS", "push-down", "whole run"):
            assert words in targets

    def test_missing_peers_are_reported_not_failed(self, results: tuple[Path, dict[str, Any]]) -> None:
        document = results[1]
        failed = [n for paths in document["summary"].values() for n, v in paths.items() if v["errors"]]
        assert failed == []
        not_run = [n for n in run.ALL_PATHS if n not in document["summary"]["1d"]]
        assert all(any(n in note for note in document["meta"]["notes"]) for n in not_run)


WIDE_PATHS = ("connectorx_duckdb_load", "drivetrain_s2s_fast", "duckdb_delete_insert_qualify",
              "duckdb_keys_first_bounded", "drivetrain_pipeline")


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-wide")
    args = run.parse_args(["--smoke", "--shape", "wide", "--paths", ",".join(WIDE_PATHS), "--out", str(out),
                           "--python", sys.executable])
    try:
        return run.run(args, say=lambda text: None)
    except ServerError as exc:
        pytest.fail(f"cannot start the MariaDB test server: {exc}", pytrace=False)


class TestWideSmokeRun:
    """The wide data set (issue 22's ten columns) and the whole-run comparisons built on it."""

    def test_every_path_moves_the_whole_window_of_wide_rows(self, wide: dict[str, Any]) -> None:
        assert wide["meta"]["shape"] == "wide" and wide["meta"]["batch_size"] == 10_000
        for size, rows in (("1d", 10_000), ("2d", 20_000)):
            for name in WIDE_PATHS:
                assert wide["summary"][size][name]["errors"] == [], name
                if name != "duckdb_delete_insert_qualify":  # the hand-written SQL reports no count
                    assert wide["summary"][size][name]["rows"] == rows, name

    def test_the_whole_run_targets_of_issue_22_are_measured(self, wide: dict[str, Any]) -> None:
        measured = {c["target"]: c["measured"] for c in wide["targets"]}
        assert measured["whole run peak RSS 2d, MB"] > 0
        assert measured["whole run / (extract+load limit + hand-written push-down), 2d"] > 0
